// dlock: distributed locks for shell scripts, cron jobs and operators.
#include "cli/app.hpp"

#include <cerrno>
#include <cstring>
#include <exception>
#include <fcntl.h>
#include <iostream>
#include <new>
#include <string_view>
#include <unistd.h>

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

// Descriptors 0, 1 and 2 left closed by the caller would go to the next files dlock opens: a
// Redis socket would become stdin, and `dlock run`'s command would inherit a logged-in
// connection. /dev/null takes their place. Returns whether stdout was among them: a result
// written there would reach nobody.
bool reserve_standard_descriptors() {
    bool stdout_closed = false;
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; ++fd) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        stdout_closed = stdout_closed || fd == STDOUT_FILENO;
        // open returns the lowest free descriptor: this one.
        if (open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY) != fd)
            _exit(dlock::exit_code::os_error);
    }
    return stdout_closed;
}

// Out of memory, said without allocating: one line, exit 71.
void write_all_quietly(int fd, std::string_view text) {
    while (!text.empty()) {
        const ssize_t n = write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

int report_out_of_memory(bool json) {
    write_all_quietly(STDERR_FILENO, "dlock: out of memory\n");
    if (json)
        write_all_quietly(STDOUT_FILENO, "{\"code\":71,\"error\":\"out of memory\"}\n");
    return dlock::exit_code::os_error;
}

// An exception that escaped where none may (a static initializer, a destructor, a noexcept
// function): still one line and a documented code, never an abort with the runtime's message.
// Without an active exception, the runtime could not allocate the one being thrown: dlock
// starts no threads and rethrows nothing, so that is the only way here, and it is out of memory.
[[noreturn]] void on_terminate() {
    const std::exception_ptr current = std::current_exception();
    if (!current)
        _exit(report_out_of_memory(false));
    try {
        std::rethrow_exception(current);
    } catch (const std::bad_alloc&) {
        _exit(report_out_of_memory(false));
    } catch (...) {
    }
    write_all_quietly(STDERR_FILENO, "dlock: internal error: terminated\n");
    _exit(dlock::exit_code::internal);
}

// Before every static initializer (CLI11 builds its validators in them, and they allocate).
__attribute__((constructor(101))) void install_terminate_handler() {
    std::set_terminate(on_terminate);
}

int run_cli(int argc, char** argv) {
    using namespace dlock;
    CLI::App app{"dlock: distributed locks in Redis for shell scripts, cron jobs and operators,\n"
                 "and a balance ledger whose writes those locks protect.\n"
                 "DUR is 250ms, 10s, 2m, 1h, 1d, 1m30s, or a bare number of seconds.\n"
                 "Exit codes: 0 ok, 1 refused (not owner, not held, insufficient funds),\n"
                 "64 usage, 65 bad data, 69 Redis or ledger unavailable, 70 internal error,\n"
                 "71 out of memory, file descriptors or processes, 74 stdout not writable,\n"
                 "75 busy: lock or ledger (or -E N); run: 79 lock lost, 126/127 command not\n"
                 "executable/found, else the command's own status (128+N if killed by signal N).",
                 "dlock"};
    const std::string git_describe = DLOCK_GIT_DESCRIBE;
    app.set_version_flag("-V,--version",
                         std::string("dlock ") + DLOCK_VERSION +
                             (git_describe.empty() ? "" : " (" + git_describe + ")"));
    app.footer(
        "Global options (--redis, --timeout, --prefix, --json, -E, --db) may come before or\n"
        "after the subcommand. 'dlock SUBCOMMAND --help' shows a subcommand's own options.\n"
        "Settings: every default can come from the environment (DLOCK_REDIS_URL,\n"
        "DLOCK_REDIS_PASSWORD, DLOCK_SENTINEL_PASSWORD, DLOCK_REPLICAS, DLOCK_TIMEOUT,\n"
        "DLOCK_PREFIX, DLOCK_LAYOUT, DLOCK_JSON, DLOCK_CONFLICT_EXIT_CODE, DLOCK_DB (a ledger\n"
        "file, default ./dlock-ledger.db, or a postgresql:// URI), DLOCK_DB_PASSWORD,\n"
        "DLOCK_TTL, DLOCK_WAIT, DLOCK_KILL_GRACE,\n"
        "DLOCK_FENCE_IDLE, DLOCK_DB_BUSY_TIMEOUT, DLOCK_DB_RETRY) or a TOML config file\n"
        "(/etc/dlock/dlock.conf, then ~/.config/dlock/dlock.conf or --config FILE): flag >\n"
        "environment > user file > system file > built-in. 'dlock config' shows what is in\n"
        "effect. DLOCK_OWNER is --owner's default for release and extend.");

    cli::Invocation inv;
    try {
        inv.settings = cli::Settings::resolve(cli::config_file_argument(argc, argv));
    } catch (const Error& e) {
        return cli::report_error(e.what(), e.exit_code(), wants_json(argc, argv));
    }
    cli::add_commands(app, inv, argc, argv);

    if (const auto mistake = cli::empty_equals_value(argc, argv))
        return cli::report_error(*mistake, exit_code::usage, wants_json(argc, argv));
    try {
        app.parse(argc, argv);
        return inv.exit_code;
    } catch (const CLI::Success& e) {
        // --help and --version: CLI11 prints them to std::cout, whose failure it does not check.
        const int code = app.exit(e);
        if (!std::cout.flush())
            return cli::report_error("cannot write the help to stdout", exit_code::output, false);
        return code;
    } catch (const CLI::ParseError& e) {
        return cli::report_error(describe_parse_error(app, e, argc, argv), exit_code::usage,
                                 wants_json(argc, argv));
    } catch (const Error& e) {
        return cli::report_error(e.what(), e.exit_code(), inv.global.json);
    } catch (const std::bad_alloc&) {
        return report_out_of_memory(wants_json(argc, argv));
    } catch (const std::exception& e) {
        return cli::report_error(std::string("internal error: ") + e.what(), exit_code::internal,
                                 inv.global.json);
    }
}

} // namespace

int main(int argc, char** argv) {
    if (reserve_standard_descriptors())
        dlock::cli::stdout_is_closed();
    try {
        return run_cli(argc, argv);
    } catch (const std::bad_alloc&) { // also while reporting another error
        return report_out_of_memory(wants_json(argc, argv));
    }
}
