// run: hold a lock while a command runs (the library's run_locked does the work).
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "dlock/runner.hpp"

namespace dlock::cli {
namespace {

using nlohmann::json;

struct RunOptions {
    std::string key;
    std::string ttl = "10s";
    std::string wait = "5s";
    bool nonblock = false;
    std::string kill_grace = "5s";
    std::string shell_command;
    CLI::Option* shell_option = nullptr;
    std::vector<std::string> command;
};

std::vector<std::string> command_argv(const RunOptions& opts) {
    const bool shell = opts.shell_option->count() > 0;
    if (shell && !opts.command.empty())
        throw UsageError("give either -c 'shell command' or -- CMD [ARGS...], not both");
    if (shell)
        return {"/bin/sh", "-c", opts.shell_command};
    if (opts.command.empty())
        throw UsageError("no command to run: give -- CMD [ARGS...] or -c 'shell command'");
    return opts.command;
}

int run(const Invocation& inv, const RunOptions& opts) {
    const Reporter reporter(inv.global.json);
    RunSpec spec;
    spec.key = opts.key;
    validate_key(spec.key);
    spec.ttl = parse_positive_duration(opts.ttl);
    spec.wait = opts.nonblock ? Millis{0} : parse_wait(opts.wait);
    spec.kill_grace = parse_duration(opts.kill_grace);
    spec.argv = command_argv(opts);

    validate_prefix(inv.global.prefix);
    const redis::Options redis = redis_options(inv.global);
    RunHooks hooks;
    hooks.timeout = redis.timeout;
    hooks.connect = [&redis, &inv](Millis timeout) -> std::unique_ptr<LockService> {
        redis::Options options = redis;
        options.timeout = timeout;
        return std::make_unique<RedisLock>(options, inv.global.prefix);
    };
    hooks.notice = [&reporter](const std::string& message) {
        reporter.warn(message);
    };

    const RunResult result = run_locked(spec, hooks);
    switch (result.outcome) {
    case RunOutcome::exited:
        return result.status;
    case RunOutcome::busy:
        return reporter.refuse(
            {{"status", "busy"}, {"key", spec.key}, {"ttl_ms", result.holder_ttl.count()}},
            spec.wait.count() <= 0
                ? "lock '" + spec.key + "' is held by another owner (free in " +
                      format_duration(result.holder_ttl) + " at the latest); command not run"
                : "lock busy, try again later ('" + spec.key + "' still held after waiting " +
                      format_duration(spec.wait) + "); command not run",
            inv.global.conflict_exit_code);
    case RunOutcome::lost:
        // Said on stderr when it happened; stdout belongs to the command.
        return exit_code::lock_lost;
    case RunOutcome::not_found:
        return reporter.refuse({{"status", "not_found"}, {"key", spec.key}}, result.detail,
                               exit_code::command_not_found);
    case RunOutcome::not_executable:
        break;
    }
    return reporter.refuse({{"status", "not_executable"}, {"key", spec.key}}, result.detail,
                           exit_code::command_not_executable);
}

} // namespace

void setup_run_command(CLI::App& app, Invocation& inv) {
    auto opts = std::make_shared<RunOptions>();
    auto* cmd = app.add_subcommand(
        "run", "Run a command while holding KEY, renewing the lease while it runs");
    cmd->footer("Usage: dlock run KEY [options] -- CMD [ARGS...]\n"
                "       dlock run KEY [options] -c 'shell command'\n"
                "The command gets DLOCK_KEY, DLOCK_OWNER and DLOCK_FENCE in its environment.\n"
                "Exit codes: the command's own status (128+N if signal N killed it);\n"
                "75 (or -E N) KEY busy or the wait ran out, nothing run; 79 the lock was lost\n"
                "while the command ran (it was stopped); 69 Redis unreachable at start;\n"
                "71 out of descriptors or memory, or no guardian process: nothing run;\n"
                "127 command not found; 126 not executable. --json changes only dlock's own\n"
                "error reports: stdout belongs to the command.");
    add_key_argument(*cmd, opts->key);
    cmd->add_option("CMD", opts->command, "The command and its arguments (after --)")
        ->type_name("ARG");
    opts->shell_option =
        cmd->add_option("-c", opts->shell_command, "Run this with /bin/sh -c instead of CMD")
            ->type_name("COMMAND");
    cmd->add_option("--ttl", opts->ttl,
                    "Lease length (at least 1s), renewed every TTL/3 while CMD runs; if dlock "
                    "dies, the lock frees within one TTL")
        ->type_name("DUR")
        ->capture_default_str();
    auto* wait = cmd->add_option("--wait", opts->wait, "Longest wait for KEY (DUR, or 'inf')")
                     ->type_name("DUR")
                     ->capture_default_str();
    cmd->add_flag("-n,--nonblock", opts->nonblock, "One attempt, no waiting (same as --wait 0)")
        ->excludes(wait);
    cmd->add_option("--kill-grace", opts->kill_grace,
                    "After SIGTERM to the command's group, wait this long before SIGKILL")
        ->type_name("DUR")
        ->capture_default_str();
    cmd->callback([&inv, opts] { inv.exit_code = run(inv, *opts); });
}

} // namespace dlock::cli
