#include "cli/app.hpp"

#include "cli/ledger_commands.hpp"
#include "cli/lock_commands.hpp"
#include "cli/run_command.hpp"

#include <string_view>

namespace dlock::cli {

void add_commands(CLI::App& app, Invocation& inv) {
    app.require_subcommand(1);
    app.fallthrough(); // global options may also follow the subcommand
    add_global_options(app, inv);
    setup_ledger_commands(app, inv);
    setup_lock_commands(app, inv);
    setup_run_command(app, inv);
    setup_config_command(app, inv);
}

void setup_config_command(CLI::App& app, Invocation& inv) {
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
