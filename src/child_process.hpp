// The process mechanics behind `dlock run`, internal to the library: the signals dlock
// handles, the terminal, the guardian that outlives a killed dlock, and starting the command
// in its own process group. Linux only.
#pragma once

#include <csignal>
#include <string>
#include <sys/types.h>
#include <vector>

namespace dlock::detail {

// Blocks the signals `dlock run` handles and delivers them through a signalfd, so one poll
// loop sees them; ignores SIGPIPE (hiredis writes with write(2)); makes sure SIGCHLD is not
// ignored (an inherited SIG_IGN would have the kernel reap the command unseen). Makes dlock a
// child subreaper, so orphans of the command become its children and it learns when they
// exit. The destructor restores everything.
class SignalRouting {
public:
    SignalRouting();
    ~SignalRouting();
    SignalRouting(const SignalRouting&) = delete;
    SignalRouting& operator=(const SignalRouting&) = delete;

    int fd() const { return fd_; }
    // Pending signals, in arrival order; empty when none.
    std::vector<int> take_pending();
    // What the command must start with: the signal state dlock itself started with. Only
    // async-signal-safe calls, for the forked child.
    void restore_for_exec() const;

    // The signals forwarded to the command.
    static bool forwarded(int signo);

private:
    sigset_t original_mask_{};
    struct sigaction original_sigpipe_ {};
    struct sigaction original_sigchld_ {};
    int was_subreaper_ = 0;
    int fd_ = -1;
};

// dlock's controlling terminal, if it has one (not under cron or systemd). While dlock's job
// is in the foreground, the command's group has the terminal instead (so it can read it and
// Ctrl-C reaches it); dlock takes it back afterwards.
class Terminal {
public:
    Terminal();
    ~Terminal();
    Terminal(const Terminal&) = delete;
    Terminal& operator=(const Terminal&) = delete;

    bool active() const { return fd_ >= 0; }
    // The terminal for the command to take before exec: -1 unless dlock is in the foreground.
    int fd_for_command() const { return dlock_in_foreground() ? fd_ : -1; }
    // True when dlock's own process group is in the foreground.
    bool dlock_in_foreground() const;
    // The command's group has the terminal (it took it itself before exec, or we gave it).
    void handed_to(pid_t pgid) { holder_ = pgid; }
    // Gives the terminal to `pgid` if dlock's group is in the foreground.
    void give_to(pid_t pgid);
    // Takes the terminal back if the command's group still has it.
    void take_back();

private:
    int fd_ = -1;
    pid_t holder_ = -1;
};

// A small process that SIGKILLs the command's process group if dlock dies without saying
// goodbye (SIGKILL, a crash): PR_SET_PDEATHSIG reaches only the direct child, the guardian
// reaches the whole group. It runs in a process group of its own, ignores the signals a
// terminal or a job-control shell sends, and watches a socket that only dlock holds. It needs
// no more descriptors than dlock itself, and reports once it is in place.
class Guardian {
public:
    Guardian();
    ~Guardian(); // disarms and reaps
    Guardian(const Guardian&) = delete;
    Guardian& operator=(const Guardian&) = delete;

    pid_t pid() const { return pid_; }
    // Before the command starts: throws ResourceError unless the guardian reported that it is
    // in place and is still alive. A command without one could outlive a killed dlock.
    void confirm_started();
    // Where the command, right before its exec, tells the guardian its process group: from then
    // on, dlock's death kills that group (spawn_command).
    int control() const { return control_; }
    // dlock is done with the group; the guardian exits without killing anything.
    void disarm();
    // waitpid(-1) in dlock's loop reaped it (it was killed).
    void reaped() { pid_ = -1; }

private:
    pid_t pid_ = -1;
    int control_ = -1;
    void* stack_ = nullptr; // the guardian's, in memory it shares with dlock
};

// What starting the command came to.
struct Spawned {
    pid_t pid = -1;     // the command, leader of its own process group
    int exec_error = 0; // errno of the failed exec; then the child is already reaped
};

// Starts argv (PATH search and the /bin/sh fallback of execvp) with environment `env`, in a
// new process group that takes the terminal if `tty` >= 0, with PR_SET_PDEATHSIG SIGKILL and
// the signal state dlock had before `signals`. Before its exec, the child arms `guardian` with
// its group, so no moment of the command's life is unguarded. Returns once the exec succeeded
// or failed; a failure comes back as `exec_error`.
Spawned spawn_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                      const SignalRouting& signals, int tty, const Guardian& guardian);

// The environment of this process with `overrides` ("NAME=value") replacing or added.
std::vector<std::string> environment_with(const std::vector<std::string>& overrides);

} // namespace dlock::detail
