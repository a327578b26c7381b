// `dlock run`: run a command while holding a lock, like flock(1) across a fleet.
//
// run_locked takes the lock, starts the command in its own process group, renews the lease
// every TTL/3 while the command runs, stops the group if the lock is lost, forwards signals,
// and releases the lock (owner-checked) at the end, whatever happened. Everything here is
// Linux-specific (signalfd, PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER).
#pragma once

#include "dlock/duration.hpp"
#include "dlock/lock.hpp"
#include "dlock/redis.hpp"
#include "dlock/scoped_lease.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dlock {

inline constexpr Millis default_kill_grace{5'000};
// Renewals go out every TTL/3; shorter leases would leave no room for a slow round trip.
inline constexpr Millis min_run_ttl{1'000};

struct RunSpec {
    std::string key;
    Millis ttl = default_ttl;
    Millis wait = default_wait; // 0: one attempt; wait_forever: no limit
    Millis kill_grace = default_kill_grace;
    // argv[0] is looked up in PATH unless it contains '/'; a file that is not a binary or
    // a #! script runs with /bin/sh, as execvp does.
    std::vector<std::string> argv;
};

// Opens a new connection to the lock store whose connect and commands give up after
// `timeout`. Called once per renewal attempt, so a broken connection never lingers.
using LockConnector = std::function<std::unique_ptr<LockService>(Millis timeout)>;

struct RunHooks {
    LockConnector connect;
    Millis timeout = redis::default_timeout; // the configured Redis timeout
    // One-line messages while the command runs (renewal trouble, lost lock, release failure).
    Notice notice;
    // Told how the wait for the lock goes (optional), and when the lock is taken, right before
    // the command starts (optional).
    WaitObserver on_wait;
    std::function<void(const Lease&)> on_acquired;
};

// How a run ended; one value from a closed set, mapped to exit codes by the CLI.
enum class RunOutcome {
    exited,         // the command ran to its end under the lock; `status` is its status
    busy,           // the lock was never taken (busy, or the wait ran out); nothing ran
    lost,           // the lock was lost while the command ran; the command was stopped
    not_found,      // the command does not exist; the lock was taken and released again
    not_executable, // the command exists but cannot be executed (permissions, format)
};

struct RunResult {
    RunOutcome outcome = RunOutcome::exited;
    int status = 0;             // exited: its exit code, or 128+N if signal N killed it
    std::optional<Lease> lease; // set once the lock was taken
    Remaining holder_ttl;       // busy: what was left of the holder's lease
    std::string detail;         // not_found, not_executable, lost: a one-line reason
};

// Throws UsageError for a bad spec (empty argv, TTL under min_run_ttl, bad key) and
// UnavailableError when Redis cannot be reached before the command starts. Once the command
// has started, Redis trouble no longer throws: it is retried until the lease ends. Should a
// system call fail (InternalError), the command's group is SIGKILLed and the command reaped
// before the exception leaves, and the lock is released on the way out.
RunResult run_locked(const RunSpec& spec, const RunHooks& hooks);

} // namespace dlock
