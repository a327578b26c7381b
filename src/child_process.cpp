#include "child_process.hpp"

#include "dlock/error.hpp"
#include "os_error.hpp"

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <string_view>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

extern char** environ;

namespace dlock::detail {
namespace {

constexpr std::array forwarded_signals{SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

[[noreturn]] void fail(std::string_view doing) {
    throw_os_error(doing, errno);
}

void close_quietly(int fd) {
    if (fd >= 0)
        close(fd);
}

} // namespace

// --- signals -------------------------------------------------------------------------------

bool SignalRouting::forwarded(int signo) {
    for (const int s : forwarded_signals)
        if (s == signo)
            return true;
    return false;
}

SignalRouting::SignalRouting() {
    sigset_t routed;
    sigemptyset(&routed);
    for (const int s : forwarded_signals)
        sigaddset(&routed, s);
    sigaddset(&routed, SIGCHLD);
    fd_ = signalfd(-1, &routed, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd_ < 0)
        fail("signalfd");
    // Blocked, SIGTTOU is not even generated when dlock, in the background, hands the
    // terminal around or writes to it (tcsetpgrp(3), TOSTOP).
    sigset_t blocked = routed;
    sigaddset(&blocked, SIGTTOU);
    if (sigprocmask(SIG_BLOCK, &blocked, &original_mask_) != 0) {
        close(fd_);
        fail("sigprocmask");
    }
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &original_sigpipe_);
    struct sigaction by_default {};
    by_default.sa_handler = SIG_DFL;
    sigemptyset(&by_default.sa_mask);
    sigaction(SIGCHLD, &by_default, &original_sigchld_);
    prctl(PR_GET_CHILD_SUBREAPER, &was_subreaper_);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
}

SignalRouting::~SignalRouting() {
    prctl(PR_SET_CHILD_SUBREAPER, was_subreaper_);
    // Whatever arrived after the command ended has nobody to go to; delivered after the
    // mask is restored, it would kill dlock instead.
    take_pending();
    restore_for_exec();
    close(fd_);
}

void SignalRouting::restore_for_exec() const {
    sigaction(SIGPIPE, &original_sigpipe_, nullptr);
    sigaction(SIGCHLD, &original_sigchld_, nullptr);
    sigprocmask(SIG_SETMASK, &original_mask_, nullptr);
}

std::vector<int> SignalRouting::take_pending() {
    std::vector<int> signals;
    signalfd_siginfo info{};
    for (;;) {
        const ssize_t n = read(fd_, &info, sizeof info);
        if (n == static_cast<ssize_t>(sizeof info)) {
            signals.push_back(static_cast<int>(info.ssi_signo));
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return signals; // EAGAIN: nothing more
    }
}

// --- terminal ------------------------------------------------------------------------------

Terminal::Terminal() : fd_(open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) {}

Terminal::~Terminal() {
    take_back();
    close_quietly(fd_);
}

bool Terminal::dlock_in_foreground() const {
    return fd_ >= 0 && tcgetpgrp(fd_) == getpgrp();
}

void Terminal::give_to(pid_t pgid) {
    if (dlock_in_foreground() && tcsetpgrp(fd_, pgid) == 0)
        holder_ = pgid;
}

void Terminal::take_back() {
    // Only from the command: if a job-control shell moved the terminal elsewhere (dlock was
    // put in the background), it is not ours to take.
    if (fd_ >= 0 && holder_ > 0 && tcgetpgrp(fd_) == holder_)
        tcsetpgrp(fd_, getpgrp());
    holder_ = -1;
}

// --- guardian ------------------------------------------------------------------------------

namespace {

constexpr char disarm_byte = 'D';
constexpr char ready_byte = 'R';
// The guardian's end of the control socket, once it has set itself up.
constexpr int guardian_control_fd = 3;
// How long dlock waits for a guardian to report, which it does microseconds after its fork.
constexpr int guardian_start_limit_ms = 10'000;

// The guardian runs on a stack of its own, which AddressSanitizer does not know: its code is
// left uninstrumented, or ASan takes that stack for a corrupted one of dlock's.
#define DLOCK_GUARDIAN_CODE __attribute__((no_sanitize("address")))

// Reads exactly `size` bytes; false on EOF or error first.
DLOCK_GUARDIAN_CODE bool read_exactly(int fd, void* buffer, std::size_t size) {
    auto* bytes = static_cast<char*>(buffer);
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = read(fd, bytes + done, size - done);
        if (n > 0)
            done += static_cast<std::size_t>(n);
        else if (n == 0 || errno != EINTR)
            return false;
    }
    return true;
}

// The guardian's whole life, on its own stack in memory it shares with dlock: system calls only,
// nothing allocated.
[[noreturn]] DLOCK_GUARDIAN_CODE void guard(int control) {
    setpgid(0, 0);
    prctl(PR_SET_NAME, "dlock-guardian");
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    for (const int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGTSTP,
                        SIGTTIN, SIGTTOU, SIGALRM})
        sigaction(s, &ignore, nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // Hold nothing of dlock's: not its stdout (a reader waits for EOF), not its cwd. Needs no
    // descriptor beyond the five it ends with, so it starts under any limit dlock runs at.
    if (control != guardian_control_fd && dup2(control, guardian_control_fd) < 0)
        _exit(1);
    close_range(guardian_control_fd + 1, ~0U, 0);
    const int null_fd = open("/dev/null", O_RDWR);
    if (null_fd < 0)
        _exit(1);
    for (int fd = 0; fd <= 2; ++fd)
        if (dup2(null_fd, fd) < 0)
            _exit(1);
    if (null_fd > 2)
        close(null_fd);
    if (chdir("/") != 0) {
        // Stays where it is; harmless.
    }
    // In place: dlock starts no command without hearing this.
    if (write(guardian_control_fd, &ready_byte, 1) != 1)
        _exit(1);

    pid_t pgid = 0;
    if (!read_exactly(guardian_control_fd, &pgid, sizeof pgid))
        _exit(0); // dlock ended before starting the command
    char byte = 0;
    if (read_exactly(guardian_control_fd, &byte, 1) && byte == disarm_byte)
        _exit(0);
    kill(-pgid, SIGKILL); // EOF: dlock died with the command's group still in its care
    _exit(0);
}

// Sends to the guardian; a guardian that is gone is an EPIPE, never a SIGPIPE for dlock.
bool send_to_guardian(int control, const void* data, std::size_t size) {
    ssize_t n = 0;
    do
        n = send(control, data, size, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == static_cast<ssize_t>(size);
}

constexpr std::size_t guardian_stack_bytes = 64 * 1024;

// clone's entry point. Both descriptors come in the argument itself, not in memory that dlock
// goes on changing.
DLOCK_GUARDIAN_CODE int start_guardian(void* descriptors) {
    const auto packed = reinterpret_cast<std::uintptr_t>(descriptors);
    close(static_cast<int>(packed >> 32)); // dlock's end
    guard(static_cast<int>(packed & 0xFFFF'FFFFU));
}

// Valgrind runs a clone only as a fork, a vfork or a thread, and stops the program at any other:
// under it (its preloaded core is named in LD_PRELOAD) the guardian is forked, as it once was.
bool under_valgrind() {
    const char* const preload = std::getenv("LD_PRELOAD");
    return preload != nullptr && std::strstr(preload, "vgpreload_core") != nullptr;
}

} // namespace

// The guardian shares dlock's memory (clone with CLONE_VM, as the command's child does, but
// dlock goes on meanwhile): fork copied dlock's page tables and then made each page dlock wrote
// afterwards a copy-on-write fault, about a tenth of the CPU time of a short `dlock run`. The
// guardian runs on a stack of its own and writes nothing else but errno (the thread's, shared),
// which its system calls set only when they fail, and while dlock lives they fail only on the
// guardian's way to _exit. It has its own descriptors and signal dispositions (no CLONE_FILES,
// no CLONE_SIGHAND), and dlock installs no signal handler that could run on the shared memory.
Guardian::Guardian() {
    // A socket pair, not a pipe: the guardian also tells dlock that it started.
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        fail("socketpair");
    const auto give_up = [&fds](std::string_view doing) {
        const int error = errno;
        close(fds[0]);
        close(fds[1]);
        throw_os_error(doing, error);
    };
    void* const stack = mmap(nullptr, guardian_stack_bytes, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED)
        give_up("mmap");
    stack_ = stack;
    const auto packed = static_cast<std::uintptr_t>(fds[0]) | static_cast<std::uintptr_t>(fds[1])
                                                                  << 32;
    if (under_valgrind()) {
        pid_ = fork();
        if (pid_ == 0)
            start_guardian(reinterpret_cast<void*>(packed));
    } else {
        pid_ = clone(start_guardian, static_cast<char*>(stack) + guardian_stack_bytes,
                     CLONE_VM | SIGCHLD, reinterpret_cast<void*>(packed));
    }
    if (pid_ < 0) {
        munmap(stack_, guardian_stack_bytes);
        stack_ = nullptr;
        give_up("clone");
    }
    close(fds[0]);
    control_ = fds[1];
}

Guardian::~Guardian() {
    disarm();
    if (pid_ > 0) {
        int status = 0;
        while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
    }
    // Reaped, here or by dlock's loop (reaped()): nothing runs on its stack any more.
    if (stack_ != nullptr)
        munmap(stack_, guardian_stack_bytes);
}

void Guardian::confirm_started() {
    pollfd pfd{control_, POLLIN, 0};
    int ready = 0;
    do
        ready = control_ >= 0 ? poll(&pfd, 1, guardian_start_limit_ms) : 0;
    while (ready < 0 && errno == EINTR);
    char byte = 0;
    bool started = ready > 0 && read_exactly(control_, &byte, 1) && byte == ready_byte;
    // It may have reported and died since (someone killed it while dlock waited for the lock).
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        started = false;
    }
    if (!started)
        throw ResourceError("the guardian process did not start or died: without it, killing "
                            "dlock could leave the command's children running; command not run");
}

void Guardian::disarm() {
    if (control_ < 0)
        return;
    if (!send_to_guardian(control_, &disarm_byte, 1)) {
        // Gone already; nothing to disarm.
    }
    close(control_);
    control_ = -1;
}

// --- the command ---------------------------------------------------------------------------

namespace {

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (auto& s : strings)
        out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

// Where execvp would look for argv[0], in order.
std::vector<std::string> candidates(const std::string& file) {
    if (file.find('/') != std::string::npos)
        return {file};
    const char* path = std::getenv("PATH");
    const std::string_view dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        const std::size_t colon = dirs.find(':', start);
        const std::string_view dir = dirs.substr(start, colon - start);
        out.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + file);
        if (colon == std::string_view::npos)
            break;
        start = colon + 1;
    }
    return out;
}

// execvp's search, with everything allocated before the clone. Returns the errno to report.
int exec_search(std::vector<std::string>& files, char* const argv[], std::vector<char*>& sh_argv,
                char* const envp[]) {
    bool denied = false;
    for (auto& file : files) {
        execve(file.c_str(), argv, envp);
        switch (errno) {
        case ENOEXEC:
            // No #! and not a binary: a shell script, as execvp and shells treat it.
            sh_argv[1] = file.data();
            execve("/bin/sh", sh_argv.data(), envp);
            return errno;
        case EACCES:
            denied = true;
            break;
        case ENOENT:
        case ENOTDIR:
        case ESTALE:
        case ENODEV:
        case ETIMEDOUT:
            break;
        default:
            return errno;
        }
    }
    return denied ? EACCES : ENOENT;
}

} // namespace

std::vector<std::string> environment_with(const std::vector<std::string>& overrides) {
    std::vector<std::string> out;
    const auto overridden = [&](std::string_view entry) {
        const std::string_view name = entry.substr(0, entry.find('='));
        for (const auto& o : overrides)
            if (std::string_view(o).substr(0, o.find('=')) == name)
                return true;
        return false;
    };
    for (char** e = environ; e != nullptr && *e != nullptr; ++e)
        if (!overridden(*e))
            out.emplace_back(*e);
    out.insert(out.end(), overrides.begin(), overrides.end());
    return out;
}

namespace {

// Everything the command's child needs, built before the clone: the child only makes system
// calls, on memory it borrows from dlock until its exec.
struct ExecPlan {
    ExecPlan(const std::vector<std::string>& argv, const std::vector<std::string>& env,
             const SignalRouting& signals, int tty, int guardian)
        : files(candidates(argv.at(0))), args(argv), sh_args{"sh", ""}, environment(env),
          signals(signals), tty(tty), guardian(guardian), parent(getpid()) {
        sh_args.insert(sh_args.end(), argv.begin() + 1, argv.end());
        c_args = pointers(args);
        c_sh_args = pointers(sh_args);
        c_env = pointers(environment);
    }
    std::vector<std::string> files;
    std::vector<std::string> args;
    std::vector<std::string> sh_args;
    std::vector<std::string> environment;
    std::vector<char*> c_args;
    std::vector<char*> c_sh_args;
    std::vector<char*> c_env;
    const SignalRouting& signals;
    int tty;
    int guardian; // the guardian's control socket, or -1
    pid_t parent;
    int exec_error = 0; // written by the child when no exec succeeded
};

// The child's whole life until exec.
int exec_command(void* arg) {
    ExecPlan& plan = *static_cast<ExecPlan*>(arg);
    setpgid(0, 0);
    // Armed before the exec: killed right after it, dlock still takes the whole group along.
    // The socket is close-on-exec, so the command never holds it.
    const pid_t group = getpid();
    if (plan.guardian >= 0 && !send_to_guardian(plan.guardian, &group, sizeof group)) {
        // The guardian is gone (someone killed it); dlock still stops the group itself.
    }
    // SIGTTOU is still blocked here, so a child of a background group may do this too.
    if (plan.tty >= 0)
        tcsetpgrp(plan.tty, getpid());
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != plan.parent) // dlock died before PR_SET_PDEATHSIG took hold
        _exit(128 + SIGKILL);
    plan.signals.restore_for_exec();
    plan.exec_error =
        exec_search(plan.files, plan.c_args.data(), plan.c_sh_args, plan.c_env.data());
    _exit(127);
}

// Room for exec_command's frames and execve's arguments on the way in.
constexpr std::size_t child_stack_bytes = 64 * 1024;

} // namespace

Spawned spawn_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                      const SignalRouting& signals, int tty, const Guardian& guardian) {
    ExecPlan plan(argv, env, signals, tty, guardian.control());
    // The child shares dlock's memory (CLONE_VM) and dlock sleeps until the child's exec or
    // exit (CLONE_VFORK), as posix_spawn does: no page tables are copied, which made fork the
    // slowest step between taking the lock and starting the command. dlock installs no signal
    // handlers (only SIG_IGN and SIG_DFL), so no handler can run on the borrowed memory. The
    // child's stack is this array: no live frame of dlock's lies in it, and it is inside the
    // thread's stack, where tools such as AddressSanitizer expect a stack to be.
    alignas(16) char stack[child_stack_bytes];
    const pid_t pid =
        clone(exec_command, stack + child_stack_bytes, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
    if (pid < 0)
        fail("clone");
    // We resume after the child's exec (or its exit): its own setpgid has run, and kill(-pid)
    // reaches its group from now on.
    Spawned spawned{pid, plan.exec_error};
    if (spawned.exec_error != 0) {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    return spawned;
}

} // namespace dlock::detail
