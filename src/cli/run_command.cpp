#include "cli/run_command.hpp"

#include "cli/lock_output.hpp"
#include "cli/progress.hpp"

namespace dlock::cli {

std::vector<std::string> command_argv(const RunCommandOptions& opts) {
    const bool shell = opts.shell;
    if (shell && !opts.command.empty())
        throw UsageError("give either -c 'shell command' or -- CMD [ARGS...], not both");
    if (shell)
        return {"/bin/sh", "-c", opts.shell_command};
    if (opts.command.empty())
        throw UsageError("no command to run: give -- CMD [ARGS...] or -c 'shell command'");
    return opts.command;
}

RunSpec run_spec(const RunCommandOptions& opts) {
    RunSpec spec;
    spec.key = opts.key;
    validate_key(spec.key);
    spec.ttl = parse_positive_duration(opts.ttl);
    spec.wait = opts.nonblock ? Millis{0} : parse_wait(opts.wait);
    spec.kill_grace = parse_duration(opts.kill_grace);
    spec.argv = command_argv(opts);
    return spec;
}

int run(const Invocation& inv, const RunCommandOptions& opts) {
    const Reporter reporter(inv.global);
    const RunSpec spec = run_spec(opts);
    std::string command_line;
    for (const std::string& arg : spec.argv)
        command_line += (command_line.empty() ? "" : " ") + arg;
    const LockConfig config = lock_config(inv.global, this_process(command_line));
    RunHooks hooks;
    hooks.timeout = config.timeout;
    hooks.connect = [&config](Millis timeout) {
        LockConfig renewal = config;
        renewal.timeout = timeout;
        return open_lock_service(renewal);
    };
    hooks.notice = reporter.notice();
    WaitReport report(inv.global, spec.key);
    hooks.on_wait = report.observer();
    // Before the command writes anything: the status line goes first.
    hooks.on_acquired = [&report](const Lease& lease) {
        report.finished(lease.fence);
    };

    const RunResult result = run_locked(spec, hooks);
    report.finished(std::nullopt);
    switch (result.outcome) {
    case RunOutcome::exited:
        return result.status;
    case RunOutcome::busy:
        return reporter.refuse(
            {{"status", "busy"}, {"key", spec.key}, {"ttl_ms", ttl_ms_json(result.holder_ttl)}},
            spec.wait.count() <= 0
                ? "lock '" + spec.key + "' is held by another owner (" +
                      when_free(result.holder_ttl) + "); command not run"
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

void setup_run_command(CLI::App& app, Invocation& inv, std::string_view /*only*/) {
    auto opts = std::make_shared<RunCommandOptions>();
    apply_settings(*opts, inv.settings);
    opts->kill_grace = inv.settings.value("kill_grace");
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
    auto* shell =
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
    cmd->callback([&inv, opts, shell] {
        opts->shell = shell->count() > 0;
        inv.exit_code = run(inv, *opts);
    });
}

} // namespace dlock::cli
