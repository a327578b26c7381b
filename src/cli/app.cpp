#include "cli/app.hpp"

#include "cli/ledger_commands.hpp"
#include "cli/lock_commands.hpp"
#include "cli/run_command.hpp"

#include <string_view>

namespace dlock::cli {

void add_commands(CLI::App& app, Invocation& inv) {
    app.require_subcommand(1);
    app.fallthrough(); // global options may also follow the subcommand
    add_global_options(app, inv.global);
    setup_ledger_commands(app, inv);
    setup_lock_commands(app, inv);
    setup_run_command(app, inv);
}

std::optional<std::string> empty_equals_value(int argc, const char* const* argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--")
            break;
        if (arg.size() > 3 && arg.rfind("--", 0) == 0 && arg.find('=') == arg.size() - 1)
            return "option " + std::string(arg) +
                   " has an empty value; give one after the '=' (see 'dlock --help')";
    }
    return std::nullopt;
}

} // namespace dlock::cli
