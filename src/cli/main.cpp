// dlock: distributed locks for shell scripts, cron jobs and operators.
#include "cli/app.hpp"

#include <cstring>
#include <exception>
#include <iostream>

namespace {

// CLI11 reports a mistyped subcommand as a missing one; name it instead.
std::string describe_parse_error(const CLI::App& app, const CLI::ParseError& error, int argc,
                                 char** argv) {
    if (argc > 1 && argv[1][0] != '-') {
        try {
            app.get_subcommand(argv[1]);
        } catch (const CLI::OptionNotFound&) {
            return std::string("unknown command '") + argv[1] + "' (see 'dlock --help')";
        }
    }
    return std::string(error.what()) + " (see 'dlock --help')";
}

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
                 "Exit codes: 0 ok, 1 refused (not owner, not held, insufficient funds),\n"
                 "64 usage, 65 bad data, 69 Redis or ledger unavailable, 70 internal error,\n"
                 "75 busy: lock or ledger (or -E N); run: 79 lock lost, 126/127 command not\n"
                 "executable/found, else the command's own status (128+N if killed by signal N).",
                 "dlock"};
    app.set_version_flag("--version", std::string("dlock ") + DLOCK_VERSION);
    app.footer(
        "Global options (--redis, --timeout, --prefix, --json, -E, --db) may come before or\n"
        "after the subcommand. 'dlock SUBCOMMAND --help' shows a subcommand's own options.\n"
        "Environment: DLOCK_REDIS_URL, DLOCK_REDIS_PASSWORD, DLOCK_PREFIX, DLOCK_OWNER,\n"
        "DLOCK_DB (the ledger: a file, default ./dlock-ledger.db, or a postgresql:// URI),\n"
        "DLOCK_DB_PASSWORD (the PostgreSQL ledger's password, if the URI has none).");

    cli::Invocation inv;
    cli::add_commands(app, inv);

    if (const auto mistake = cli::empty_equals_value(argc, argv))
        return cli::report_error(*mistake, exit_code::usage, wants_json(argc, argv));
    try {
        app.parse(argc, argv);
        return inv.exit_code;
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        return cli::report_error(describe_parse_error(app, e, argc, argv), exit_code::usage,
                                 wants_json(argc, argv));
    } catch (const Error& e) {
        return cli::report_error(e.what(), e.exit_code(), inv.global.json);
    } catch (const std::exception& e) {
        return cli::report_error(std::string("internal error: ") + e.what(), exit_code::internal,
                                 inv.global.json);
    }
}
