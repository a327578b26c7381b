#include "dlock/runner.hpp"

#include "child_process.hpp"
#include "dlock/lease_keeper.hpp"
#include "dlock/scoped_lease.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace dlock {
namespace {

using Clock = LeaseKeeper::Clock;
using TimePoint = LeaseKeeper::TimePoint;

// How often a draining group is looked at even without a SIGCHLD: a member whose parent is
// neither dlock nor gone dies without telling dlock.
constexpr Millis drain_check_interval{100};
constexpr Millis longest_poll{60'000};

std::string quoted(std::string_view key) {
    return "'" + std::string(key) + "'";
}

int status_code(int wait_status) {
    if (WIFSIGNALED(wait_status))
        return 128 + WTERMSIG(wait_status);
    return WEXITSTATUS(wait_status);
}

// The command's process while dlock supervises it: if supervision ends by an exception, the
// group is killed and the command reaped before the lock is released.
class CommandProcess {
public:
    explicit CommandProcess(pid_t pid) : pid_(pid) {}
    ~CommandProcess() {
        if (exited_)
            return;
        kill(-pid_, SIGKILL);
        int status = 0;
        while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    CommandProcess(const CommandProcess&) = delete;
    CommandProcess& operator=(const CommandProcess&) = delete;

    pid_t pid() const { return pid_; }
    bool exited() const { return exited_; }
    int status() const { return status_; }
    void exited_with(int wait_status) {
        exited_ = true;
        status_ = status_code(wait_status);
    }
    // Signals the whole group: leader, children and whatever they left behind.
    void signal_group(int signo) const { kill(-pid_, signo); }
    bool group_empty() const { return kill(-pid_, 0) != 0 && errno == ESRCH; }

private:
    pid_t pid_;
    bool exited_ = false;
    int status_ = 0;
};

// One poll loop: signals (forwarded ones and SIGCHLD) through the signalfd, and deadlines
// for the next renewal, the lease end and the SIGKILL after the grace period.
class Supervisor {
public:
    Supervisor(const RunSpec& spec, const RunHooks& hooks, const Lease& lease, LeaseKeeper& keeper,
               std::unique_ptr<LockService>& acquired_by, detail::SignalRouting& signals,
               detail::Terminal& terminal, detail::Guardian& guardian, CommandProcess& command)
        : spec_(spec), hooks_(hooks), lease_(lease), keeper_(keeper), acquired_by_(acquired_by),
          signals_(signals), terminal_(terminal), guardian_(guardian), command_(command) {}

    // Returns when the command has exited and its group is empty (or got SIGKILL).
    void run() {
        for (;;) {
            if (!lost_)
                keep_lease();
            const TimePoint now = Clock::now();
            if (kill_at_ && now >= *kill_at_) {
                command_.signal_group(SIGKILL);
                killed_ = true;
                kill_at_.reset();
            }
            if (command_.exited()) {
                if (killed_ || command_.group_empty())
                    return;
                // Whatever the command left running must not outlive the lock.
                stop_group();
            }
            wait_for_events();
        }
    }

    bool lost() const { return lost_; }

private:
    void lose(const std::string& why) {
        lost_ = true;
        hooks_.notice("lock " + quoted(spec_.key) + " lost: " + why + "; stopping the command" +
                      (command_.exited() ? "'s leftover processes" : "") +
                      " (SIGTERM now, SIGKILL after " + format_duration(spec_.kill_grace) + ")");
        stop_group();
    }

    // Renews when due; declares the lock lost when renewals failed until the lease end.
    void keep_lease() {
        const TimePoint now = Clock::now();
        if (keeper_.ran_out(now))
            lose("Redis could not be reached before the lease ran out (" + last_error_ + ")");
        else if (now >= keeper_.next_attempt())
            renew();
    }

    void renew() {
        acquired_by_.reset(); // a command that runs this long gets fresh connections only
        const TimePoint sent = Clock::now();
        try {
            const auto service = hooks_.connect(keeper_.attempt_timeout(sent, hooks_.timeout));
            switch (service->extend(spec_.key, lease_.token, spec_.ttl)) {
            case OwnerCheck::done:
                if (keeper_.failing())
                    hooks_.notice("renewed lock " + quoted(spec_.key) + " again after " +
                                  std::to_string(keeper_.failures()) + " failed attempts");
                keeper_.renewed(sent);
                return;
            case OwnerCheck::not_held:
                lose("it is no longer held (it expired or was force-released)");
                return;
            case OwnerCheck::not_owner:
                lose("another owner holds it now");
                return;
            }
        } catch (const std::exception& e) {
            // Any failure to get an answer is retried: only the lease end decides.
            const TimePoint now = Clock::now();
            last_error_ = e.what();
            keeper_.failed(now);
            if (keeper_.ran_out(now)) {
                lose("Redis could not be reached before the lease ran out (" + last_error_ + ")");
            } else if (keeper_.failures() == 1) {
                const auto left = std::chrono::floor<Millis>(keeper_.lease_end() - now);
                hooks_.notice("cannot renew lock " + quoted(spec_.key) + " (" + last_error_ +
                              "); retrying until its lease ends in " + format_duration(left));
            }
        }
    }

    // SIGTERM to the group at once (SIGCONT too, so a stopped member can act on it), then
    // SIGKILL when the grace period is over.
    void stop_group() {
        if (stopping_)
            return;
        stopping_ = true;
        command_.signal_group(SIGTERM);
        command_.signal_group(SIGCONT);
        kill_at_ = Clock::now() + spec_.kill_grace;
    }

    void wait_for_events() {
        const TimePoint now = Clock::now();
        std::optional<TimePoint> wake;
        const auto consider = [&](TimePoint t) {
            wake = wake ? std::min(*wake, t) : t;
        };
        if (!lost_)
            consider(std::min(keeper_.next_attempt(), keeper_.lease_end()));
        if (kill_at_)
            consider(*kill_at_);
        if (command_.exited())
            consider(now + drain_check_interval);
        int timeout = -1;
        if (wake) {
            const Millis left =
                std::clamp(std::chrono::ceil<Millis>(*wake - now), Millis{0}, longest_poll);
            timeout = static_cast<int>(left.count());
        }
        pollfd pfd{signals_.fd(), POLLIN, 0};
        if (poll(&pfd, 1, timeout) < 0 && errno != EINTR)
            throw InternalError(std::string("poll: ") + std::strerror(errno));
        for (const int signo : signals_.take_pending()) {
            if (signo == SIGCHLD)
                reap();
            else if (!detail::SignalRouting::forwarded(signo))
                continue;
            else if (!command_.exited())
                kill(command_.pid(), signo);
            else // the command is gone: to what it left behind, which dlock is waiting for
                command_.signal_group(signo);
        }
    }

    // Collects every child that changed state: the command, the guardian, and orphans of the
    // command that were reparented to dlock (it is their subreaper).
    void reap() {
        for (;;) {
            int status = 0;
            const pid_t pid = waitpid(-1, &status, WNOHANG | WUNTRACED | WCONTINUED);
            if (pid <= 0)
                return;
            const bool ended = WIFEXITED(status) || WIFSIGNALED(status);
            if (pid == command_.pid() && ended) {
                command_.exited_with(status);
                terminal_.take_back();
            } else if (pid == command_.pid() && WIFSTOPPED(status)) {
                follow_stop(WSTOPSIG(status));
            } else if (pid == guardian_.pid() && ended) {
                guardian_.reaped();
                hooks_.notice("the guardian process died; if dlock is killed now, processes the "
                              "command started may outlive the lock");
            }
        }
    }

    // Job control stopped the command: Ctrl-Z, or reading (writing, with TOSTOP) the terminal
    // while dlock's job is in the background. Stop dlock's own job too, as the terminal would
    // have if the command were in it, so the shell sees the job stopped and gets the terminal;
    // on `fg`, hand the terminal over again. Renewals pause while dlock is stopped: a stop
    // longer than the lease loses the lock. A plain SIGSTOP (an operator's) is left alone.
    void follow_stop(int signo) {
        const bool job_control = signo == SIGTSTP || signo == SIGTTIN || signo == SIGTTOU;
        if (!terminal_.active() || !job_control)
            return;
        terminal_.take_back();
        kill(0, SIGTSTP);
        // Continued (fg or bg). Check the lease before the command may work again.
        keep_lease();
        if (lost_)
            return;
        terminal_.give_to(command_.pid());
        command_.signal_group(SIGCONT);
    }

    const RunSpec& spec_;
    const RunHooks& hooks_;
    const Lease& lease_;
    LeaseKeeper& keeper_;
    std::unique_ptr<LockService>& acquired_by_;
    detail::SignalRouting& signals_;
    detail::Terminal& terminal_;
    detail::Guardian& guardian_;
    CommandProcess& command_;

    bool lost_ = false;
    bool stopping_ = false;
    bool killed_ = false;
    std::optional<TimePoint> kill_at_;
    std::string last_error_;
};

std::string exec_failure(const std::string& file, int error) {
    if (error == ENOENT && file.find('/') == std::string::npos)
        return file + ": command not found";
    return file + ": " + std::strerror(error);
}

void validate(const RunSpec& spec) {
    validate_key(spec.key);
    if (spec.argv.empty() || spec.argv.front().empty())
        throw UsageError("no command to run");
    if (spec.ttl < min_run_ttl)
        throw UsageError("--ttl for run must be at least " + format_duration(min_run_ttl) +
                         " (renewals go out every TTL/3)");
    if (spec.kill_grace < Millis{0})
        throw UsageError("--kill-grace must not be negative");
}

} // namespace

RunResult run_locked(const RunSpec& spec, const RunHooks& hooks) {
    validate(spec);
    RunResult result;

    // Started before the lock is taken, while nobody waits on us: then its start costs the
    // next holder nothing.
    detail::Guardian guardian;
    // The connection that takes the lock stays open until the first renewal (its descriptor
    // is close-on-exec, and the guardian closed everything before it existed): a command that
    // ends before a renewal is due, as most do, has its lock released there, while the
    // connection is still known open, without the next holder waiting on a new connection.
    // After that, every renewal and the release go out on fresh connections, so that none
    // idles for long.
    std::unique_ptr<LockService> acquired_by = hooks.connect(hooks.timeout);
    std::unique_ptr<LockService> releasing;
    std::optional<ScopedLease> held;
    std::optional<LeaseKeeper> keeper;
    {
        LockService* const service = acquired_by.get();
        const AcquireResult acquired =
            spec.wait.count() <= 0 ? service->try_acquire(spec.key, spec.ttl)
                                   : service->block(spec.key, spec.ttl, spec.wait, hooks.on_wait);
        if (!acquired.acquired()) {
            result.outcome = RunOutcome::busy;
            result.holder_ttl = acquired.holder_ttl;
            return result;
        }
        result.lease = *acquired.lease;
        held.emplace(
            [&hooks, &acquired_by, &releasing]() -> LockService& {
                if (acquired_by && acquired_by->still_connected())
                    return *acquired_by;
                releasing = hooks.connect(hooks.timeout);
                return *releasing;
            },
            spec.key, *acquired.lease, hooks.notice);
        // The lease counts from some moment after the winning attempt was sent. Sent recently,
        // the command starts at once. Sent so long ago that a renewal is due (block waited
        // inside Redis, or dlock was stopped), the lease may be nearly over: one extend first
        // gives it a start dlock knows.
        keeper.emplace(spec.ttl, acquired.sent);
        const TimePoint now = Clock::now();
        if (now >= keeper->next_attempt()) {
            if (service->extend(spec.key, acquired.lease->token, spec.ttl) != OwnerCheck::done) {
                hooks.notice("lock " + quoted(spec.key) +
                             " was lost before the command could start; it did not run");
                result.outcome = RunOutcome::lost;
                result.detail = "lost before the command started";
                held->release(); // said already: whatever it answers
                return result;
            }
            keeper->renewed(now);
        }
    }

    const Lease& lease = held->lease();
    // No guardian, no command: it could outlive a dlock that is killed.
    guardian.confirm_started();
    if (hooks.on_acquired)
        hooks.on_acquired(lease);
    {
        detail::SignalRouting signals;
        detail::Terminal terminal;
        const std::vector<std::string> env =
            detail::environment_with({"DLOCK_KEY=" + spec.key, "DLOCK_OWNER=" + lease.token,
                                      "DLOCK_FENCE=" + std::to_string(lease.fence)});
        const int tty = terminal.fd_for_command();
        const detail::Spawned spawned =
            detail::spawn_command(spec.argv, env, signals, tty, guardian);
        if (tty >= 0)
            terminal.handed_to(spawned.pid);
        if (spawned.exec_error != 0) {
            terminal.take_back();
            result.outcome =
                spawned.exec_error == ENOENT ? RunOutcome::not_found : RunOutcome::not_executable;
            result.detail = exec_failure(spec.argv.front(), spawned.exec_error);
            held->release();
            return result;
        }

        CommandProcess command(spawned.pid);
        Supervisor supervisor(spec, hooks, lease, *keeper, acquired_by, signals, terminal, guardian,
                              command);
        supervisor.run();
        terminal.take_back();

        // Released while the forwarded signals are still blocked: a late SIGTERM cannot cut
        // the release short. The command's group is gone by now, so the guardian is disarmed
        // after the release: its wake-up and exit are not on the next holder's way in.
        const std::optional<OwnerCheck> released = held->release();
        guardian.disarm();
        if (supervisor.lost()) {
            result.outcome = RunOutcome::lost;
            result.detail = "lost while the command ran";
        } else if (released && *released != OwnerCheck::done) {
            // Renewals went fine, yet the key is gone or foreign: it expired while dlock was
            // stopped, Redis lost it, or someone force-released it since the last renewal.
            hooks.notice(
                "lock " + quoted(spec.key) +
                " was lost before the command ended: at release it was " +
                (*released == OwnerCheck::not_held ? "no longer held" : "held by another owner"));
            result.outcome = RunOutcome::lost;
        } else {
            result.outcome = RunOutcome::exited;
            result.status = command.status();
        }
    }
    return result;
}

} // namespace dlock
