#include "cli/app.hpp"

#include "cli/ledger_commands.hpp"
#include "cli/lock_commands.hpp"
#include "cli/run_command.hpp"

#include <algorithm>
#include <array>
#include <string_view>

namespace dlock::cli {
namespace {

// The subcommand groups, each set up by one function, with the names it adds. The function adds
// the one subcommand it is given, or all of its subcommands when given none.
struct CommandGroup {
    void (*setup)(CLI::App&, Invocation&, std::string_view only);
    std::vector<std::string_view> names;
};

const std::array<CommandGroup, 4>& command_groups() {
    static const std::array<CommandGroup, 4> groups{{
        {setup_lock_commands,
         {"acquire", "block", "release", "force-release", "status", "list", "watch", "extend"}},
        {setup_run_command, {"run"}},
        {setup_ledger_commands, {"deposit", "withdraw", "balance", "history", "verify", "invoice"}},
        {setup_config_command, {"config"}},
    }};
    return groups;
}

void add_subcommands(CLI::App& app, Invocation& inv, std::string_view invoked) {
    for (const CommandGroup& group : command_groups())
        if (invoked.empty() ||
            std::find(group.names.begin(), group.names.end(), invoked) != group.names.end())
            group.setup(app, inv, invoked);
}

// The root: exactly one subcommand, and the global options, which may also follow it.
void add_root(CLI::App& app, Invocation& inv, const GlobalOptionFilter& filter) {
    app.require_subcommand(1);
    app.fallthrough();
    add_global_options(app, inv, filter);
}

} // namespace

void add_commands(CLI::App& app, Invocation& inv, std::string_view invoked) {
    add_root(app, inv, GlobalOptionFilter::all());
    add_subcommands(app, inv, invoked);
}

void add_commands(CLI::App& app, Invocation& inv, int argc, const char* const* argv) {
    const GlobalOptionFilter named = GlobalOptionFilter::named_in(argc, argv);
    add_root(app, inv, named);
    const std::string_view invoked = invoked_subcommand(app, argc, argv);
    if (invoked.empty() && !named.wants_all())
        add_global_options(app, inv, named.rest()); // the whole tree
    add_subcommands(app, inv, invoked);
}

std::string_view invoked_subcommand(const CLI::App& app, int argc, const char* const* argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--")
            return {};
        if (arg.empty() || arg.front() == '-') {
            // A global option whose value is the next word: that word is no subcommand.
            const CLI::Option* option = app.get_option_no_throw(std::string(arg));
            if (option != nullptr && option->get_items_expected_min() > 0)
                ++i;
            continue; // a flag, or an option's `=` form
        }
        for (const CommandGroup& group : command_groups())
            if (std::find(group.names.begin(), group.names.end(), arg) != group.names.end())
                return arg;
        return {}; // not a subcommand: CLI11 says what is wrong, with the whole tree
    }
    return {};
}

void setup_config_command(CLI::App& app, Invocation& inv, std::string_view /*only*/) {
    auto* command = app.add_subcommand(
        "config", "Print the effective settings and where each came from (passwords masked)");
    command->callback([&inv] { inv.exit_code = print_settings(inv); });
}

int print_settings(const Invocation& inv) {
    nlohmann::json out{{"status", "ok"}, {"settings", nlohmann::json::array()}};
    std::vector<std::vector<std::string>> rows;
    for (const auto& [key, setting] : inv.settings.all()) {
        // Passwords never show: the one of its own, and one inside a URL (printable masks it).
        const std::string value =
            key.ends_with("_password") && !setting.value.empty() ? "***" : printable(setting.value);
        out["settings"].push_back(
            {{"key", key}, {"value", value}, {"source", setting.source}, {"env", env_name(key)}});
        rows.push_back({key + " = \"" + value + "\"", "# " + setting.source});
    }
    return Reporter(inv.global).ok(out, text_table(rows, {false, false}));
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
