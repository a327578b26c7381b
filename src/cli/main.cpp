// dlock: distributed locks for shell scripts, cron jobs and operators.
#include "cli/commands.hpp"
#include "cli/common.hpp"

#include <cstring>
#include <exception>
#include <iostream>

namespace {

// Parse errors happen before --json is known to CLI11; look for it ourselves.
bool wants_json(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--") == 0)
            return false;
        if (std::strcmp(argv[i], "--json") == 0)
            return true;
    }
    return false;
}

} // namespace

int main(int argc, char** argv) {
    using namespace dlock;
    CLI::App app{"dlock: distributed locks in Redis for shell scripts, cron jobs and operators,\n"
                 "and a balance ledger whose writes those locks protect.\n"
                 "DUR is 250ms, 10s, 2m, 1h, or a bare number of seconds.\n"
                 "Exit codes: 0 ok, 1 refused (not owner, not held), 64 usage, 65 bad data,\n"
                 "69 Redis or ledger unavailable, 70 internal error, 75 busy (or -E N).",
                 "dlock"};
    app.set_version_flag("--version", std::string("dlock ") + DLOCK_VERSION);
    app.require_subcommand(1);
    app.fallthrough(); // global options may also follow the subcommand

    cli::Invocation inv;
    cli::add_global_options(app, inv.global);
    cli::setup_lock_commands(app, inv);
    cli::setup_run_command(app, inv);

    try {
        app.parse(argc, argv);
        return inv.exit_code;
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        return cli::report_error(std::string(e.what()) + " (see 'dlock --help')", exit_code::usage,
                                 wants_json(argc, argv));
    } catch (const Error& e) {
        return cli::report_error(e.what(), e.exit_code(), inv.global.json);
    } catch (const std::exception& e) {
        return cli::report_error(std::string("internal error: ") + e.what(), exit_code::internal,
                                 inv.global.json);
    }
}
