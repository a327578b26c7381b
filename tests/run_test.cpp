// dlock run, end to end: the real binary, real commands, a private redis-server.
//
// Synchronization is by events, not sleeps: a command announces itself by writing a line to
// a FIFO the test reads with a deadline, and process exits are watched through pidfds, which
// work for processes that are not the test's children too. Timing bounds are generous: they
// prove a mechanism (renewal, lease end, grace period), not speed.
#include "support/observe.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <poll.h>
#include <pty.h>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace {

using namespace dlock::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::vector<pid_t> pids_in(const std::string& line) {
    std::vector<pid_t> pids;
    std::size_t pos = 0;
    while (pos < line.size()) {
        std::size_t used = 0;
        pids.push_back(static_cast<pid_t>(std::stol(line.substr(pos), &used)));
        pos += used;
    }
    return pids;
}

// A process on a new pseudo-terminal: it is a session leader with the terminal as its
// controlling terminal, as a login shell is.
class Pty {
public:
    Pty(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
        std::vector<std::string> args = argv;
        std::vector<std::string> vars = env;
        std::vector<char*> c_args, c_vars;
        for (auto& a : args)
            c_args.push_back(a.data());
        c_args.push_back(nullptr);
        for (auto& v : vars)
            c_vars.push_back(v.data());
        c_vars.push_back(nullptr);
        pid_ = forkpty(&master_, nullptr, nullptr, nullptr);
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            for (const int s : {SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGHUP})
                std::signal(s, SIG_DFL);
            execve(c_args[0], c_args.data(), c_vars.data());
            _exit(127);
        }
    }
    ~Pty() {
        if (!reaped_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        close(master_);
    }
    Pty(const Pty&) = delete;
    Pty& operator=(const Pty&) = delete;

    pid_t pid() const { return pid_; }
    // The terminal's foreground process group.
    pid_t foreground() const { return tcgetpgrp(master_); }
    void type(const std::string& keys) const {
        REQUIRE(write(master_, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size()));
    }
    // Reads what the terminal shows until `text` appears; false after `limit`.
    bool shows(const std::string& text, milliseconds limit) {
        const auto deadline = Clock::now() + limit;
        for (;;) {
            if (output_.find(text) != std::string::npos)
                return true;
            const auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
            if (left.count() <= 0)
                return false;
            pollfd pfd{master_, POLLIN, 0};
            if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0)
                continue;
            char chunk[512];
            const ssize_t n = read(master_, chunk, sizeof chunk);
            if (n <= 0)
                return false;
            output_.append(chunk, static_cast<std::size_t>(n));
        }
    }
    int wait_exit(milliseconds limit) {
        const auto deadline = Clock::now() + limit;
        int status = 0;
        while (waitpid(pid_, &status, WNOHANG) == 0) {
            shows("\x01never\x01", 50ms); // keeps the terminal drained meanwhile
            if (Clock::now() > deadline)
                return -1;
        }
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    const std::string& output() const { return output_; }

private:
    pid_t pid_ = -1;
    int master_ = -1;
    bool reaped_ = false;
    std::string output_;
};

// Each test case: its own redis-server, a scratch directory, and the environment pointing
// dlock (and scripts that call it as "$DLOCK_BIN") at that server.
struct RunFixture {
    RedisServer server;
    std::string dir = make_temp_dir();
    std::vector<std::string> env{"DLOCK_REDIS_URL=" + server.url(),
                                 std::string("DLOCK_BIN=") + DLOCK_BINARY};

    ~RunFixture() { remove_tree(dir); }

    ProcessResult dlock(const std::vector<std::string>& args) const { return run_dlock(args, env); }
    std::unique_ptr<Child> start(const std::vector<std::string>& args) const {
        std::vector<std::string> argv{DLOCK_BINARY};
        argv.insert(argv.end(), args.begin(), args.end());
        return std::make_unique<Child>(argv, env);
    }
    std::unique_ptr<Child> start_shell(const std::string& script) const {
        return std::make_unique<Child>(std::vector<std::string>{"/bin/sh", "-c", script}, env);
    }
    // Waits for a background process that must end within `limit`.
    static ProcessResult finish(Child& child, milliseconds limit) {
        REQUIRE_MESSAGE(child.wait_for(limit), "process still running after the deadline");
        return child.wait();
    }
    std::string path(const std::string& name) const { return dir + "/" + name; }
    bool exists(const std::string& name) const { return access(path(name).c_str(), F_OK) == 0; }
};

} // namespace

TEST_CASE_FIXTURE(RunFixture, "run exits with the command's own status") {
    for (const int code : {0, 1, 42}) {
        CAPTURE(code);
        const auto r = dlock({"run", "job", "--", "sh", "-c", "exit " + std::to_string(code)});
        CHECK(r.exit_code == code);
        CHECK(r.err == "");
    }
}

TEST_CASE_FIXTURE(RunFixture, "a command killed by signal N makes run exit 128+N") {
    const auto r = dlock({"run", "job", "--", "sh", "-c", "kill -KILL $$"});
    CHECK(r.exit_code == 128 + SIGKILL);
}

TEST_CASE_FIXTURE(RunFixture, "-c runs a shell command with /bin/sh -c") {
    const auto r = dlock({"run", "job", "-c", "echo \"in $DLOCK_KEY\"; exit 7"});
    CHECK(r.exit_code == 7);
    CHECK(r.out == "in job\n");
}

TEST_CASE_FIXTURE(RunFixture, "stdout, stderr and stdin belong to the command") {
    SUBCASE("output passes through untouched, with or without --json") {
        for (const bool json : {false, true}) {
            CAPTURE(json);
            std::vector<std::string> args{"run", "job", "--", "sh", "-c", "echo out; echo err >&2"};
            if (json)
                args.insert(args.begin(), "--json");
            const auto r = dlock(args);
            CHECK(r.exit_code == 0);
            CHECK(r.out == "out\n");
            CHECK(r.err == "err\n");
        }
    }
    SUBCASE("the command reads dlock's stdin") {
        const auto r = run(
            {"/bin/sh", "-c", "printf 'line one\\nline two\\n' | \"$DLOCK_BIN\" run job -- cat"},
            env);
        CHECK(r.exit_code == 0);
        CHECK(r.out == "line one\nline two\n");
    }
}

TEST_CASE_FIXTURE(RunFixture, "the command sees DLOCK_KEY, DLOCK_OWNER and DLOCK_FENCE") {
    // The command asks dlock itself who holds the lock: it must be the owner it was given.
    const std::string script = "echo \"$DLOCK_KEY\"; echo \"$DLOCK_OWNER\"; echo \"$DLOCK_FENCE\"; "
                               "\"$DLOCK_BIN\" --json status \"$DLOCK_KEY\"";
    const auto first = dlock({"run", "nightly backup", "--", "sh", "-c", script});
    REQUIRE(first.exit_code == 0);
    std::istringstream lines(first.out);
    std::string key, owner, fence, status;
    std::getline(lines, key);
    std::getline(lines, owner);
    std::getline(lines, fence);
    std::getline(lines, status);
    CHECK(key == "nightly backup");
    CHECK(owner.size() == 32);
    CHECK(status.find("\"holder\":\"" + owner + "\"") != std::string::npos);
    CHECK(status.find("\"fence\":" + fence) != std::string::npos);

    long long previous = std::stoll(fence);
    for (int i = 0; i < 3; ++i) {
        const auto next = dlock({"run", "nightly backup", "--", "sh", "-c", "echo $DLOCK_FENCE"});
        REQUIRE(next.exit_code == 0);
        const long long current = std::stoll(next.out);
        CHECK(current > previous);
        previous = current;
    }
}

TEST_CASE_FIXTURE(RunFixture, "renewal keeps the lock held far past its TTL, and run frees it") {
    Fifo ready(path("ready"));
    auto job = start(
        {"run", "job", "--ttl", "1s", "--", "sh", "-c", "echo go > \"$0\"; sleep 4", ready.path()});
    REQUIRE(ready.read_line(10s) == "go");
    int refused = 0;
    bool taken_as_it_ended = false;
    while (!job->wait_for(250ms)) {
        const auto other = dlock({"acquire", "job", "--ttl", "1s"});
        if (job->wait_for(0ms)) {
            // The run ended while we asked: a refusal proves nothing, a success that the run
            // had freed the lock (and it holds the lock now).
            taken_as_it_ended = other.exit_code == 0;
            break;
        }
        CHECK(other.exit_code == 75);
        ++refused;
    }
    const auto r = job->wait();
    CHECK(r.exit_code == 0);
    CHECK(refused >= 3); // 4s of a 1s lease: it was renewed, or others would have got it
    if (!taken_as_it_ended)
        CHECK(dlock({"acquire", "job", "--ttl", "1s"}).exit_code == 0);
}

TEST_CASE_FIXTURE(RunFixture,
                  "a force-released lock stops the command at the next renewal: exit 79") {
    // TTL 9s: renewals every 3s. Stopped well before the lease would have ended, so it was
    // the renewal, refused, that noticed.
    Fifo fifo(path("fifo"));
    auto job =
        start({"run", "job", "--ttl", "9s", "--", "sh", "-c",
               "trap 'echo TERM > \"$0\"; exit 0' TERM; sleep 300 & echo \"$$ $!\" > \"$0\"; wait",
               fifo.path()});
    const auto line = fifo.read_line(10s);
    REQUIRE(line);
    const auto pids = pids_in(*line);
    REQUIRE(pids.size() == 2);

    const auto released = Clock::now();
    REQUIRE(dlock({"force-release", "job"}).exit_code == 0);
    const auto r = finish(*job, 15s);
    const double elapsed = seconds_since(released);
    CHECK(r.exit_code == 79);
    CHECK(r.err.find("lock 'job' lost") != std::string::npos);
    CHECK(elapsed < 6.0);
    CHECK(fifo.read_line(0ms) == "TERM"); // the command got SIGTERM
    CHECK(has_exited(pids[0]));
    CHECK(exits_within(pids[1], 5s)); // and so did its child, with the group
}

TEST_CASE_FIXTURE(RunFixture, "a command that ignores SIGTERM is killed after --kill-grace") {
    Fifo fifo(path("fifo"));
    auto job = start({"run", "job", "--ttl", "3s", "--kill-grace", "500ms", "--", "sh", "-c",
                      "trap '' TERM; echo $$ > \"$0\"; while :; do sleep 1; done", fifo.path()});
    REQUIRE(fifo.read_line(10s));
    const auto released = Clock::now();
    REQUIRE(dlock({"force-release", "job"}).exit_code == 0);
    const auto r = finish(*job, 15s);
    CHECK(r.exit_code == 79);
    CHECK(seconds_since(released) >= 0.5);
}

TEST_CASE_FIXTURE(RunFixture,
                  "signals sent to dlock reach the command; the lock is released after") {
    // A shell cannot trap what it inherited as ignored (a background job's SIGINT, SIGQUIT).
    for (const int s : {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGUSR1, SIGUSR2})
        std::signal(s, SIG_DFL);
    for (const std::string name : {"TERM", "INT", "HUP", "QUIT", "USR1", "USR2"}) {
        CAPTURE(name);
        Fifo fifo(path("fifo-" + name));
        auto job = start({"run", "job", "--", "sh", "-c",
                          "trap 'echo " + name + " > \"$0\"; exit 3' " + name +
                              "; sleep 300 & echo ready > \"$0\"; wait",
                          fifo.path()});
        REQUIRE(fifo.read_line(10s) == "ready");
        CHECK(dlock({"status", "job"}).exit_code == 0);
        const int signo = name == "TERM"   ? SIGTERM
                          : name == "INT"  ? SIGINT
                          : name == "HUP"  ? SIGHUP
                          : name == "QUIT" ? SIGQUIT
                          : name == "USR1" ? SIGUSR1
                                           : SIGUSR2;
        job->signal(signo);
        CHECK(fifo.read_line(10s) == name);
        const auto r = finish(*job, 15s);
        CHECK(r.exit_code == 3);                        // dlock itself did not die of the signal
        CHECK(dlock({"status", "job"}).exit_code == 1); // released
    }
}

TEST_CASE_FIXTURE(RunFixture, "processes the command leaves behind are stopped before release") {
    SUBCASE("SIGTERM ends them") {
        Fifo fifo(path("fifo"));
        const auto r =
            dlock({"run", "job", "--", "sh", "-c", "sleep 300 & echo $! > \"$0\"", fifo.path()});
        CHECK(r.exit_code == 0);
        const auto line = fifo.read_line(0ms);
        REQUIRE(line);
        CHECK(has_exited(std::stoi(*line))); // gone by the time dlock returned
    }
    SUBCASE("SIGKILL after the grace period ends those that ignore SIGTERM") {
        Fifo fifo(path("fifo"));
        const auto start = Clock::now();
        const auto r = dlock({"run", "job", "--kill-grace", "500ms", "--", "sh", "-c",
                              "trap '' TERM; sleep 300 & echo $! > \"$0\"", fifo.path()});
        CHECK(r.exit_code == 0);
        CHECK(seconds_since(start) >= 0.5);
        const auto line = fifo.read_line(0ms);
        REQUIRE(line);
        CHECK(exits_within(std::stoi(*line), 5s));
    }
    SUBCASE("signals sent to dlock meanwhile reach them") {
        Fifo fifo(path("fifo"));
        auto job = start({"run", "job", "--kill-grace", "120s", "--", "sh", "-c",
                          "trap '' TERM; (trap 'echo USR1 > \"$0\"; exit 0' USR1; "
                          "echo ready > \"$0\"; while :; do sleep 0.1; done) &",
                          fifo.path()});
        REQUIRE(fifo.read_line(10s) == "ready");
        // The command has exited; dlock waits for the leftover, which ignores SIGTERM.
        CHECK_FALSE(job->wait_for(300ms));
        job->signal(SIGUSR1);
        CHECK(fifo.read_line(10s) == "USR1");
        CHECK(finish(*job, 10s).exit_code == 0);
    }
}

TEST_CASE_FIXTURE(RunFixture, "SIGKILL to dlock kills the command and its children; the lock "
                              "frees within the TTL") {
    Fifo fifo(path("fifo"));
    auto job = start({"run", "job", "--ttl", "2s", "--", "sh", "-c",
                      "sleep 300 & echo \"$$ $!\" > \"$0\"; wait", fifo.path()});
    const auto line = fifo.read_line(10s);
    REQUIRE(line);
    const auto pids = pids_in(*line);
    REQUIRE(pids.size() == 2);

    const auto killed = Clock::now();
    job->signal(SIGKILL);
    CHECK(job->wait().signal == SIGKILL);
    CHECK(exits_within(pids[0], 5s)); // PR_SET_PDEATHSIG
    CHECK(exits_within(pids[1], 5s)); // the guardian, for the rest of the group
    // block wakes when the lease runs out: no polling.
    const auto taken = dlock({"block", "job", "--wait", "10s"});
    CHECK(taken.exit_code == 0);
    CHECK(seconds_since(killed) < 2.0 + 2.0);
}

TEST_CASE_FIXTURE(RunFixture, "Redis going away stops the command by the lease end, not before") {
    // TTL 3s: renewals every 1s, so after the stop the lease lasts at least ~2s more.
    Fifo fifo(path("fifo"));
    auto job = start({"run", "job", "--ttl", "3s", "--", "sh", "-c",
                      "echo $$ > \"$0\"; exec sleep 300", fifo.path()});
    const auto line = fifo.read_line(10s);
    REQUIRE(line);
    const pid_t command = std::stoi(*line);

    const auto stopped = Clock::now();
    server.stop();
    REQUIRE(exits_within(command, 10s));
    const double elapsed = seconds_since(stopped);
    CHECK(elapsed >= 1.5); // retried, not given up at the first failure
    CHECK(elapsed < 3.0 + 1.5);
    const auto r = finish(*job, 10s);
    CHECK(r.exit_code == 79);
    CHECK(r.err.find("cannot renew lock 'job'") != std::string::npos);
    CHECK(r.err.find("lock 'job' lost") != std::string::npos);
}

TEST_CASE_FIXTURE(RunFixture,
                  "a hung Redis stops the command by the lease end, whatever --timeout") {
    // The server is frozen: connections are accepted and never answered. Each attempt must
    // give up in time, though --timeout alone would wait 10s.
    Fifo fifo(path("fifo"));
    auto job = start({"--timeout", "10s", "run", "job", "--ttl", "2s", "--", "sh", "-c",
                      "echo $$ > \"$0\"; exec sleep 300", fifo.path()});
    const auto line = fifo.read_line(10s);
    REQUIRE(line);
    const pid_t command = std::stoi(*line);

    const auto frozen = Clock::now();
    kill(server.pid(), SIGSTOP);
    const bool stopped = exits_within(command, 10s);
    const double elapsed = seconds_since(frozen);
    kill(server.pid(), SIGCONT); // lets dlock's final release through
    CHECK(stopped);
    CHECK(elapsed < 2.0 + 1.5);
    const auto r = finish(*job, 15s);
    CHECK(r.exit_code == 79);
}

TEST_CASE_FIXTURE(RunFixture, "8 concurrent runs serialize a read-modify-write: 200 increments") {
    { std::ofstream(path("counter")) << "0\n"; }
    const std::string worker = "i=0; while [ $i -lt 25 ]; do "
                               "\"$DLOCK_BIN\" run counter --wait 120s -- sh -c "
                               "'n=$(cat \"$0\"); echo $((n+1)) > \"$0\"' \"$1\" || exit 1; "
                               "i=$((i+1)); done";
    std::vector<std::unique_ptr<Child>> workers;
    for (int w = 0; w < 8; ++w)
        workers.push_back(std::make_unique<Child>(
            std::vector<std::string>{"/bin/sh", "-c", worker, "worker", path("counter")}, env));
    for (auto& w : workers) {
        const auto r = finish(*w, 180s);
        CHECK(r.exit_code == 0);
        CHECK(r.err == "");
    }
    CHECK(read_file(path("counter")) == "200\n");
}

TEST_CASE_FIXTURE(RunFixture, "a busy lock: exit 75 (or -E N) and the command does not run") {
    REQUIRE(dlock({"acquire", "job", "--ttl", "30s"}).exit_code == 0);
    const std::vector<std::string> touch{"--", "touch", path("ran")};
    const auto with = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"run", "job"});
        args.insert(args.end(), touch.begin(), touch.end());
        return args;
    };

    SUBCASE("-n") {
        const auto r = dlock(with({"-n"}));
        CHECK(r.exit_code == 75);
        CHECK(r.err.find("held by another owner") != std::string::npos);
    }
    SUBCASE("--wait 0 is -n") {
        CHECK(dlock(with({"--wait", "0"})).exit_code == 75);
    }
    SUBCASE("-E N") {
        CHECK(dlock(with({"-n", "-E", "3"})).exit_code == 3);
    }
    SUBCASE("a wait that runs out") {
        const auto start = Clock::now();
        const auto r = dlock(with({"--wait", "300ms"}));
        CHECK(r.exit_code == 75);
        CHECK(seconds_since(start) >= 0.3);
    }
    SUBCASE("--json reports on stdout; nothing ran to write there") {
        const auto r = dlock({"--json", "run", "job", "-n", "--", "touch", path("ran")});
        CHECK(r.exit_code == 75);
        CHECK(r.out.find("\"status\":\"busy\"") != std::string::npos);
    }
    CHECK_FALSE(exists("ran"));
}

TEST_CASE_FIXTURE(RunFixture, "-n on a free lock runs the command") {
    CHECK(dlock({"run", "job", "-n", "--", "touch", path("ran")}).exit_code == 0);
    CHECK(exists("ran"));
}

TEST_CASE_FIXTURE(RunFixture, "a command that cannot start: 127 not found, 126 not executable") {
    SUBCASE("not found in PATH") {
        const auto r = dlock({"run", "job", "--", "no-such-command-anywhere"});
        CHECK(r.exit_code == 127);
        CHECK(r.err == "dlock: no-such-command-anywhere: command not found\n");
    }
    SUBCASE("no such file") {
        const auto r = dlock({"run", "job", "--", path("missing")});
        CHECK(r.exit_code == 127);
    }
    SUBCASE("not executable") {
        std::ofstream(path("script.sh")) << "echo hi\n";
        const auto r = dlock({"run", "job", "--", path("script.sh")});
        CHECK(r.exit_code == 126);
        CHECK(r.err.find("Permission denied") != std::string::npos);
    }
    SUBCASE("a directory") {
        CHECK(dlock({"run", "job", "--", dir}).exit_code == 126);
    }
    CHECK(dlock({"status", "job"}).exit_code == 1); // the lock was released
}

TEST_CASE_FIXTURE(RunFixture, "an executable file without #! runs with /bin/sh, as execvp does") {
    { std::ofstream(path("plain")) << "echo \"plain $1\"\n"; }
    chmod(path("plain").c_str(), 0700);
    const auto r = dlock({"run", "job", "--", path("plain"), "arg"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "plain arg\n");
}

TEST_CASE_FIXTURE(RunFixture, "Redis unreachable at start: exit 69, nothing runs") {
    const auto r = run_dlock(
        {"--redis", "unix://" + dir + "/no.sock", "run", "job", "--", "touch", path("ran")});
    CHECK(r.exit_code == 69);
    CHECK_FALSE(exists("ran"));
}

// How many connections Redis accepted while `action` ran.
long connections_during(const RedisServer& server, const std::function<void()>& action) {
    const auto received = [&server] {
        const std::string info = server.command({"INFO", "stats"});
        const std::string field = "total_connections_received:";
        return std::stol(info.substr(info.find(field) + field.size()));
    };
    const long first = received();
    const long asking = received() - first; // the connection asking takes, if any
    const long before = received();
    action();
    return received() - before - asking;
}

TEST_CASE_FIXTURE(RunFixture, "a command that ends before a renewal is released on the connection "
                              "that took the lock; one Redis closed while idle is not used") {
    CHECK(connections_during(server, [&] {
              CHECK(dlock({"run", "job", "--", "true"}).exit_code == 0);
          }) == 1);
    CHECK(dlock({"acquire", "job", "--ttl", "1s"}).exit_code == 0); // it was released

    // Idle clients closed after 1 s: the connection that took the lock is gone by the release,
    // which goes out on a new one (else the lock would stay held for its 30 s).
    server.command({"CONFIG", "SET", "timeout", "1"});
    CHECK(connections_during(server, [&] {
              const auto idle = dlock({"run", "idle", "--ttl", "30s", "--", "sleep", "3"});
              CHECK(idle.exit_code == 0);
              CHECK(idle.err.empty());
          }) == 2);
    CHECK(dlock({"acquire", "idle", "--ttl", "1s"}).exit_code == 0);
}

TEST_CASE_FIXTURE(RunFixture, "the command inherits no descriptor of dlock's") {
    const auto plain = run({"/bin/ls", "/proc/self/fd"}, env);
    const auto under = dlock({"run", "job", "--", "/bin/ls", "/proc/self/fd"});
    REQUIRE(under.exit_code == 0);
    CHECK(under.out == plain.out);
}

TEST_CASE_FIXTURE(RunFixture,
                  "the command starts with the signal dispositions dlock started with") {
    const auto ignored = [](const std::string& status) {
        const auto at = status.find("SigIgn:");
        REQUIRE(at != std::string::npos);
        return std::stoull(status.substr(at + 7, status.find('\n', at) - at - 7), nullptr, 16);
    };
    const auto bit = [](int signo) {
        return 1ULL << (signo - 1);
    };
    // dlock ignores SIGPIPE itself; the command must not inherit that.
    const auto plain = dlock({"run", "job", "--", "grep", "SigIgn", "/proc/self/status"});
    REQUIRE(plain.exit_code == 0);
    CHECK((ignored(plain.out) & bit(SIGPIPE)) == 0);

    // With SIGCHLD ignored the kernel would reap the command unseen: dlock undoes that for
    // itself, sees the exit, and hands the command what it was given.
    const std::vector<std::string> ignoring{
        "/usr/bin/env", "--ignore-signal=CHLD", DLOCK_BINARY, "run", "job", "--"};
    auto with = [&](std::vector<std::string> command) {
        std::vector<std::string> argv = ignoring;
        argv.insert(argv.end(), command.begin(), command.end());
        return std::make_unique<Child>(argv, env);
    };
    auto exits = with({"sh", "-c", "exit 3"});
    CHECK(finish(*exits, 20s).exit_code == 3);
    auto shows = with({"grep", "SigIgn", "/proc/self/status"});
    const auto r = finish(*shows, 20s);
    REQUIRE(r.exit_code == 0);
    CHECK((ignored(r.out) & bit(SIGCHLD)) != 0);
}

TEST_CASE_FIXTURE(RunFixture, "bad run arguments are usage errors") {
    CHECK(dlock({"run", "job"}).exit_code == 64);
    CHECK(dlock({"run", "job", "-c", "true", "--", "true"}).exit_code == 64);
    CHECK(dlock({"run", "job", "--ttl", "500ms", "--", "true"}).exit_code == 64);
    CHECK(dlock({"run", "job", "-n", "--wait", "1s", "--", "true"}).exit_code == 64);
    CHECK(dlock({"run", "job", "--kill-grace", "soon", "--", "true"}).exit_code == 64);
}

namespace {

// "TPGID PGID" of the shell that runs this, written to the FIFO in $1 with a tag.
constexpr const char* report_pgids = "echo \"$TAG $(ps -o tpgid= -p $$) $(ps -o pgid= -p $$)\"";

struct Pgids {
    std::string tag;
    pid_t terminal = 0; // the terminal's foreground group, as the shell sees it
    pid_t own = 0;      // the shell's own group
};

Pgids parse_pgids(const std::optional<std::string>& line) {
    REQUIRE(line);
    std::istringstream in(*line);
    Pgids p;
    in >> p.tag >> p.terminal >> p.own;
    return p;
}

} // namespace

TEST_CASE_FIXTURE(RunFixture, "on a terminal the command gets the foreground: Ctrl-C reaches only "
                              "it, and the terminal comes back") {
    // A non-interactive shell runs dlock, as a script started from a terminal does: it does
    // no job control, so whoever has the terminal afterwards got it from dlock.
    {
        std::ofstream(path("command.sh")) << "trap 'echo INT > \"$1\"; exit 5' INT\n"
                                          << "TAG=command; " << report_pgids << " > \"$1\"\n"
                                          << "sleep 300 &\nwhile :; do wait; done\n";
        std::ofstream(path("caller.sh")) << "\"$DLOCK_BIN\" run job -- sh \"$2\" \"$1\"\n"
                                         << "TAG=\"caller:$?\"; " << report_pgids << " > \"$1\"\n";
    }
    Fifo fifo(path("fifo"));
    Pty terminal({"/bin/sh", path("caller.sh"), fifo.path(), path("command.sh")},
                 {env[0], env[1], "PATH=/usr/bin:/bin"});

    const Pgids command = parse_pgids(fifo.read_line(10s));
    CHECK(command.tag == "command");
    CHECK(command.terminal == command.own); // the command's group is in the foreground
    CHECK(command.own != terminal.pid());   // and it is not the caller's group

    terminal.type("\x03"); // Ctrl-C
    CHECK(fifo.read_line(10s) == "INT");
    const Pgids caller = parse_pgids(fifo.read_line(10s));
    CHECK(caller.tag == "caller:5"); // the caller was not interrupted; run passed 5 through
    CHECK(caller.terminal == caller.own);
    CHECK(terminal.wait_exit(10s) == 0);
}

TEST_CASE_FIXTURE(RunFixture, "under an interactive shell, Ctrl-Z suspends the whole job and fg "
                              "resumes it with the terminal") {
    {
        std::ofstream(path("command.sh"))
            << "trap 'echo INT > \"$1\"; exit 5' INT\n"
            << "trap 'TAG=continued; " << report_pgids << " > \"$1\"' CONT\n"
            << "TAG=command; " << report_pgids << " > \"$1\"\n"
            << "sleep 300 &\nwhile :; do wait; done\n";
    }
    Fifo fifo(path("fifo"));
    Pty shell({"/bin/bash", "--norc", "--noprofile", "-i"},
              {env[0], env[1], "PATH=/usr/bin:/bin", "PS1=$ ", "TERM=dumb"});
    REQUIRE(shell.shows("$ ", 10s));
    shell.type("\"$DLOCK_BIN\" run job -- sh " + path("command.sh") + " " + fifo.path() + "\n");
    const Pgids command = parse_pgids(fifo.read_line(10s));
    CHECK(command.terminal == command.own);

    shell.type("\x1a"); // Ctrl-Z
    REQUIRE(shell.shows("Stopped", 10s));
    CHECK(shell.foreground() == shell.pid()); // the shell has its terminal back
    CHECK(dlock({"status", "job"}).exit_code == 0);

    shell.type("fg\n");
    const Pgids resumed = parse_pgids(fifo.read_line(10s));
    CHECK(resumed.tag == "continued");
    CHECK(resumed.own == command.own);
    CHECK(resumed.terminal == command.own); // dlock handed the terminal over again

    shell.type("\x03");
    CHECK(fifo.read_line(10s) == "INT");
    shell.type("echo \"status=$?\"\n");
    CHECK(shell.shows("status=5", 10s));
    shell.type("exit\n");
    CHECK(shell.wait_exit(10s) == 0);
}

TEST_CASE_FIXTURE(RunFixture, "a job started in the background stops when the command reads the "
                              "terminal, and fg lets it read") {
    {
        std::ofstream(path("command.sh")) << "TAG=command; " << report_pgids << " > \"$1\"\n"
                                          << "read line\necho \"read:$line\" > \"$1\"\n";
    }
    Fifo fifo(path("fifo"));
    Pty shell({"/bin/bash", "--norc", "--noprofile", "-i"},
              {env[0], env[1], "PATH=/usr/bin:/bin", "PS1=$ ", "TERM=dumb"});
    REQUIRE(shell.shows("$ ", 10s));
    shell.type("set -b; \"$DLOCK_BIN\" run job -- sh " + path("command.sh") + " " + fifo.path() +
               " &\n");
    const Pgids command = parse_pgids(fifo.read_line(10s));
    CHECK(command.terminal != command.own); // in the background, it did not take the terminal

    // Its read stops it (SIGTTIN); dlock stops its job in turn, so the shell can say so.
    REQUIRE(shell.shows("Stopped", 10s));
    shell.type("fg\n");
    REQUIRE(shell.shows("run job", 10s)); // fg prints the job it resumes
    shell.type("hello\n");
    CHECK(fifo.read_line(10s) == "read:hello");
    shell.type("echo \"status=$?\"\n");
    CHECK(shell.shows("status=0", 10s));
    shell.type("exit\n");
    CHECK(shell.wait_exit(10s) == 0);
}
