// Hardening, end to end: peers that trickle, descriptors dlock must not leak or lack, memory
// that runs out, output that cannot be written, and paths that do not fit or are not files.
// Real dlock processes, a real redis-server (from the fixture), and slow peers written here.
//
// Synchronization is by events (a FIFO the command writes to, pidfds, Redis's own count of
// blocked clients), not sleeps. Timing bounds are generous: they prove that a deadline exists,
// not how fast anything is.
#include "support/fake_server.hpp"
#include "support/ledger_file.hpp"
#include "support/observe.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <set>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace dlock::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct TempDir {
    TempDir() = default;
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() { remove_tree(path); }
    std::string path = make_temp_dir();
};

// A shell command line with `word` as one argument.
std::string shell_quoted(const std::string& word) {
    std::string out = "'";
    for (const char c : word)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string dlock_line(const std::vector<std::string>& args) {
    std::string line = shell_quoted(DLOCK_BINARY);
    for (const auto& a : args)
        line += " " + shell_quoted(a);
    return line;
}

// Shell words that close the descriptors 3 to 9 a test process may pass on, so that a limit on
// descriptors counts only dlock's own.
const std::string close_inherited = "exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; ";

// Runs `script` with /bin/sh: for redirections and limits that dlock must start under.
ProcessResult shell(const std::string& script) {
    return run({"/bin/sh", "-c", script});
}

// SIGKILLs `target` (as kill(2) takes it: -PGID for a group) when the test ends, passed or not.
struct KillOnExit {
    pid_t target;
    ~KillOnExit() { kill(target, SIGKILL); }
};

// A client socket connected to the unix socket at `path`, or -1: the peers' way to the real Redis.
int connect_unix(const std::string& path) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

// A TCP peer that never finishes an answer: to anything a client sends it replies "+", then one
// more byte every 500 ms, never the "\r\n" that would end the reply. With `relay_first_to`,
// the first connection is passed through to the real Redis at that unix socket instead: Redis
// that starts trickling after dlock took the lock.
class TricklingPeer {
public:
    explicit TricklingPeer(std::string relay_first_to = {})
        : relay_path_(std::move(relay_first_to)) {
        const LoopbackListener listener = listen_on_loopback(64);
        listener_ = listener.fd;
        port_ = listener.port;
        thread_ = std::thread([this] { serve(); });
    }
    ~TricklingPeer() {
        stop_ = true;
        thread_.join();
        for (Client& c : clients_)
            close_client(c);
        close(listener_);
    }
    TricklingPeer(const TricklingPeer&) = delete;
    TricklingPeer& operator=(const TricklingPeer&) = delete;

    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
    int trickling_clients() const { return trickling_.load(); }

private:
    struct Client {
        int fd;
        int upstream = -1; // relayed to the real Redis
        bool spoke = false;
        bool said_plus = false;
    };

    static void close_client(Client& c) {
        if (c.fd >= 0)
            close(c.fd);
        if (c.upstream >= 0)
            close(c.upstream);
        c.fd = -1; // poll ignores negative descriptors
        c.upstream = -1;
        c.spoke = false;
    }

    static void send_all(int fd, const char* data, std::size_t size) {
        while (size > 0) {
            const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
            if (n <= 0)
                return;
            data += n;
            size -= static_cast<std::size_t>(n);
        }
    }

    void serve() {
        auto next_byte = Clock::now() + 500ms;
        while (!stop_) {
            std::vector<pollfd> fds{{listener_, POLLIN, 0}};
            for (const Client& c : clients_) {
                fds.push_back({c.fd, POLLIN, 0});
                fds.push_back({c.upstream, POLLIN, 0}); // a negative fd is ignored
            }
            poll(fds.data(), fds.size(), 50);
            if (fds[0].revents & POLLIN) {
                const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
                if (fd >= 0) {
                    Client client{fd};
                    if (!relay_path_.empty() && !relayed_) {
                        relayed_ = true;
                        client.upstream = connect_unix(relay_path_);
                    }
                    clients_.push_back(client);
                }
            }
            for (std::size_t i = 0; i + 1 < fds.size(); i += 2) {
                Client& c = clients_[i / 2];
                char buffer[4096];
                if (fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) {
                    const ssize_t n = recv(c.fd, buffer, sizeof buffer, 0);
                    if (n <= 0) { // the client went away
                        close_client(c);
                        continue;
                    }
                    if (c.upstream >= 0)
                        send_all(c.upstream, buffer, static_cast<std::size_t>(n));
                    else if (n > 0 && !c.spoke) {
                        c.spoke = true;
                        ++trickling_;
                    }
                }
                if (c.upstream >= 0 && (fds[i + 2].revents & (POLLIN | POLLHUP | POLLERR))) {
                    const ssize_t n = recv(c.upstream, buffer, sizeof buffer, 0);
                    if (n <= 0)
                        close_client(c);
                    else
                        send_all(c.fd, buffer, static_cast<std::size_t>(n));
                }
            }
            if (Clock::now() >= next_byte) {
                next_byte += 500ms;
                for (Client& c : clients_)
                    if (c.fd >= 0 && c.upstream < 0 && c.spoke) {
                        send_all(c.fd, c.said_plus ? "a" : "+", 1);
                        c.said_plus = true;
                    }
            }
        }
    }

    std::string relay_path_;
    bool relayed_ = false;
    int listener_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::vector<Client> clients_;
    std::atomic<bool> stop_{false};
    std::atomic<int> trickling_{0};
};

// The unix socket path of a fixture's redis-server.
std::string socket_path(const RedisServer& server) {
    return server.url().substr(std::string("unix://").size());
}

bool lock_exists(const RedisServer& server, const std::string& key) {
    return server.command({"EXISTS", "dlock:{" + key + "}"}) == "1";
}

// Runs dlock with `prepare()` called in the child just before its exec (for a stdout or a
// limit the shell cannot set up exactly); stdout goes to a file unless `prepare` moves it.
template <class Prepare>
ProcessResult run_prepared(const std::vector<std::string>& args, Prepare prepare) {
    TempDir dir;
    const std::string out_path = dir.path + "/out";
    const std::string err_path = dir.path + "/err";
    std::vector<std::string> argv{DLOCK_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c_argv;
    for (auto& a : argv)
        c_argv.push_back(a.data());
    c_argv.push_back(nullptr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        dup2(null, 0);
        dup2(out, 1);
        dup2(err, 2);
        signal(SIGPIPE, SIG_DFL);
        prepare();
        execv(c_argv[0], c_argv.data());
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ProcessResult result;
    if (WIFEXITED(status))
        result.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        result.signal = WTERMSIG(status);
    result.out = read_file(out_path);
    result.err = read_file(err_path);
    return result;
}

// Runs dlock with its stdout the write end of a pipe whose read end is already closed.
ProcessResult run_into_closed_pipe(const std::vector<std::string>& args) {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    close(fds[0]);
    ProcessResult result = run_prepared(args, [&] { dup2(fds[1], 1); });
    close(fds[1]);
    return result;
}

// The children of `pid` (Linux: /proc/PID/task/PID/children).
std::vector<pid_t> children_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    std::vector<pid_t> out;
    for (pid_t child = 0; in >> child;)
        out.push_back(child);
    return out;
}

std::string process_name(pid_t pid) {
    std::string name = read_file("/proc/" + std::to_string(pid) + "/comm");
    while (!name.empty() && name.back() == '\n')
        name.pop_back();
    return name;
}

} // namespace

// --- 1. a slow peer cannot defeat a deadline ----------------------------------------------

TEST_CASE("a peer that trickles one byte every 500 ms cannot keep any command past --timeout") {
    TricklingPeer peer;
    TempDir dir;
    const std::string db = dir.path + "/ledger.db";
    REQUIRE(run_dlock({"--db", db, "deposit", "--account", "1", "--amount", "10"}).exit_code == 0);
    const std::string token(32, 'a');
    const std::vector<std::vector<std::string>> commands{
        {"acquire", "k"},
        {"block", "k", "--wait", "1s"},
        {"status", "k"},
        {"release", "k", "--owner", token},
        {"extend", "k", "--owner", token, "--ttl", "5s"},
        {"force-release", "k"},
        {"--db", db, "withdraw", "--account", "1", "--amount", "1"},
        {"run", "k", "--", "true"},
    };
    for (const auto& args : commands) {
        CAPTURE(args[0]);
        std::vector<std::string> argv{DLOCK_BINARY, "--redis", peer.url(), "--timeout", "1s"};
        argv.insert(argv.end(), args.begin(), args.end());
        const auto start = Clock::now();
        Child child(argv);
        // Without an overall deadline, each read gets its byte in time and this never ends.
        const bool ended = child.wait_for(10s);
        CHECK(ended);
        if (!ended)
            continue;
        const ProcessResult result = child.wait();
        CHECK(result.exit_code == 69);
        CHECK(line_count(result.err) == 1);
        CHECK(contains(result.err, "timed out"));
        CHECK(seconds_since(start) < 6.0); // --timeout 1s (block: plus its wait of 1s)
    }
    // The balance is untouched: the withdrawal never got its lock.
    CHECK(run_dlock({"--db", db, "balance", "--account", "1"}).out == "10.00\n");
}

TEST_CASE("a Redis that starts trickling while run holds the lock: the command is stopped and "
          "dlock exits 79 by the lease end") {
    RedisServer server;
    TricklingPeer peer(socket_path(server)); // the acquire goes through; every renewal trickles
    TempDir dir;
    Fifo fifo(dir.path + "/started");
    // The command ignores SIGTERM: only the SIGKILL after --kill-grace stops it.
    Child dlock(dlock_argv({"--redis", peer.url(), "--timeout", "1s", "run", "k", "--ttl", "3s",
                            "--kill-grace", "500ms", "--", "/bin/sh", "-c",
                            "trap '' TERM; echo $$ > " + fifo.path() + "; sleep 60 & wait"}));
    const auto line = fifo.read_line(10s);
    REQUIRE(line);
    const auto started = Clock::now();
    const pid_t command = static_cast<pid_t>(std::stol(*line));
    const KillOnExit cleanup{-command}; // whatever a failed check leaves running
    CHECK(lock_exists(server, "k"));

    // The lease ends 3s after the acquire was sent, before `started`; then SIGTERM, ignored,
    // and SIGKILL 500 ms later. Without a deadline on the renewal, it is still running.
    const bool stopped = exits_within(command, 8s);
    CHECK(stopped);
    CHECK(seconds_since(started) < 3.0 + 0.5 + 2.0);
    CHECK(peer.trickling_clients() >= 1); // a renewal did meet the trickle
    REQUIRE(dlock.wait_for(10s));         // the release also trickles: cut off by --timeout
    const ProcessResult result = dlock.wait();
    CHECK(result.exit_code == 79);
    CHECK(contains(result.err, "lock 'k' lost"));
    CHECK(contains(result.err, "timed out"));
}

// --- 2. descriptors ------------------------------------------------------------------------

TEST_CASE("dlock run with stdin closed hands its command no Redis socket, on fd 0 or any other") {
    RedisServer server;
    // Each open descriptor of the command as "fd -> target", one per line.
    const std::string list_fds =
        "for f in /proc/$$/fd/*; do echo \"${f##*/} -> $(readlink $f)\"; done";
    const ProcessResult baseline = shell("/bin/sh -c " + shell_quoted(list_fds) + " <&-");
    const ProcessResult result =
        shell(dlock_line({"--redis", server.url(), "run", "k", "--", "/bin/sh", "-c", list_fds}) +
              " <&-");
    REQUIRE(result.exit_code == 0);
    CAPTURE(result.out);
    CHECK(contains(result.out, "0 -> /dev/null\n"));
    std::istringstream lines(result.out);
    for (std::string entry; std::getline(lines, entry);)
        if (contains(entry, "socket:"))
            CHECK(contains(baseline.out, entry)); // only what the test itself passed down
    CHECK_FALSE(lock_exists(server, "k"));
}

// --- 3. a unix socket path that does not fit -----------------------------------------------

TEST_CASE("a unix:// path longer than a socket address holds is a usage error naming the limit, "
          "never a connection to a shorter path") {
    RedisServer server;
    TempDir dir;
    // A 107-byte path (the most a socket address holds) that leads to the real Redis, and the
    // same path with one more byte: cut short, it would reach that Redis.
    std::string fits = dir.path + "/";
    fits += std::string(107 - fits.size(), 's');
    REQUIRE(fits.size() == 107);
    REQUIRE(symlink(socket_path(server).c_str(), fits.c_str()) == 0);
    REQUIRE(run_dlock_at("unix://" + fits, {"status", "k"}).exit_code == 1); // free: reachable

    const ProcessResult too_long = run_dlock_at("unix://" + fits + "x", {"status", "k"});
    CHECK(too_long.exit_code == 64);
    CHECK(line_count(too_long.err) == 1);
    CHECK(contains(too_long.err, "108 bytes long"));
    CHECK(contains(too_long.err, "at most 107"));
    CHECK(run_dlock_at("unix://" + fits + "x", {"status", "k", "--json"}).exit_code == 64);
}

// --- 4. output that cannot be written ------------------------------------------------------

TEST_CASE("acquire and block into a full disk exit 74 and release the lock they took") {
    RedisServer server;
    for (const std::string command : {"acquire", "block"}) {
        CAPTURE(command);
        const ProcessResult result =
            shell(dlock_line({"--redis", server.url(), command, "k"}) + " > /dev/full");
        CHECK(result.exit_code == 74);
        CHECK(line_count(result.err) == 1);
        CHECK(contains(result.err, "cannot write the result to stdout"));
        CHECK(contains(result.err, "released the lock it took"));
        CHECK_FALSE(lock_exists(server, "k")); // the token reached nobody: nobody holds it
    }
}

TEST_CASE("help and version into a full disk exit 74 with one line") {
    for (const std::string flag : {"--help", "--version"}) {
        CAPTURE(flag);
        const ProcessResult result = shell(dlock_line({flag}) + " > /dev/full");
        CHECK(result.exit_code == 74);
        CHECK(line_count(result.err) == 1);
    }
}

TEST_CASE("acquire --json into a closed pipe exits 74, never dies by SIGPIPE, and releases") {
    RedisServer server;
    const ProcessResult result =
        run_into_closed_pipe({"--redis", server.url(), "acquire", "k", "--json"});
    CHECK(result.signal == 0);
    CHECK(result.exit_code == 74);
    CHECK(line_count(result.err) == 1);
    CHECK(contains(result.err, "Broken pipe"));
    CHECK_FALSE(lock_exists(server, "k"));
}

TEST_CASE("a withdrawal whose result cannot be written exits 74 and says so") {
    RedisServer server;
    TempDir dir;
    const std::string db = dir.path + "/ledger.db";
    REQUIRE(run_dlock({"--db", db, "deposit", "--account", "1", "--amount", "10"}).exit_code == 0);
    const ProcessResult result = shell(dlock_line({"--redis", server.url(), "--db", db, "withdraw",
                                                   "--account", "1", "--amount", "3"}) +
                                       " > /dev/full");
    CHECK(result.exit_code == 74);
    CHECK(line_count(result.err) == 1);
    CHECK(contains(result.err, "cannot write the result to stdout"));
    CHECK_FALSE(lock_exists(server, "withdraw_funds_user_1"));
    // The withdrawal itself was made; only its report was lost.
    CHECK(run_dlock({"--db", db, "balance", "--account", "1"}).out == "7.00\n");
}

// --- 5. descriptor limits ------------------------------------------------------------------

// The sanitizers' runtimes need descriptors of their own, which a limit of 4 does not leave.
#if !defined(__SANITIZE_ADDRESS__)
TEST_CASE("at ulimit -n 4, dlock run exits 71 naming file descriptors, and runs nothing") {
    RedisServer server;
    TempDir dir;
    const std::string marker = dir.path + "/ran";
    const ProcessResult result =
        shell(close_inherited + "ulimit -n 4 && exec " +
              dlock_line({"--redis", server.url(), "run", "k", "--", "touch", marker}));
    CAPTURE(result.err);
    CHECK(result.exit_code == 71);
    CHECK(line_count(result.err) == 1);
    CHECK(contains(result.err, "out of file descriptors"));
    CHECK_FALSE(std::filesystem::exists(marker));
    CHECK_FALSE(lock_exists(server, "k"));
}
#endif

TEST_CASE("at ulimit -n 10, a SIGKILL of dlock run still kills the command's children") {
    RedisServer server;
    TempDir dir;
    Fifo fifo(dir.path + "/child");
    // dlock and its guardian start under the limit; the command raises its own again (a shell
    // saves descriptors at 10 and above when it redirects).
    const std::string command = "ulimit -S -n 64; sleep 60 & echo $! > " + fifo.path() + "; wait";
    Child dlock({"/bin/sh", "-c",
                 close_inherited + "ulimit -S -n 10 && exec " +
                     dlock_line({"--redis", server.url(), "run", "k", "--ttl", "30s", "--",
                                 "/bin/sh", "-c", command})});
    const auto line = fifo.read_line(10s);
    CAPTURE(dlock.err_so_far());
    REQUIRE(line);
    const pid_t grandchild = static_cast<pid_t>(std::stol(*line));
    const KillOnExit cleanup{grandchild};
    dlock.signal(SIGKILL);
    dlock.wait();
    // The guardian is all that is left to do it.
    CHECK(exits_within(grandchild, 5s));
}

TEST_CASE("a guardian killed before the command starts makes dlock run refuse to start it") {
    RedisServer server;
    TempDir dir;
    const std::string marker = dir.path + "/ran";
    const ProcessResult holder = run_dlock_at(server.url(), {"acquire", "k", "--ttl", "30s"});
    REQUIRE(holder.exit_code == 0);
    const std::string token = holder.out.substr(0, 32);

    Child dlock(
        dlock_argv({"--redis", server.url(), "run", "k", "--wait", "20s", "--", "touch", marker}));
    REQUIRE(server.wait_for_blocked_clients(1, 10s)); // waiting, its guardian already forked
    // Forked, but it names itself a moment later: look until it has.
    pid_t guardian = -1;
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (guardian < 0 && std::chrono::steady_clock::now() < give_up) {
        for (const pid_t child : children_of(dlock.pid()))
            if (process_name(child) == "dlock-guardian")
                guardian = child;
        if (guardian < 0)
            std::this_thread::sleep_for(10ms);
    }
    REQUIRE(guardian > 0);
    kill(guardian, SIGKILL);
    REQUIRE(exits_within(guardian, 5s));

    REQUIRE(run_dlock_at(server.url(), {"release", "k", "--owner", token}).exit_code == 0);
    REQUIRE(dlock.wait_for(10s));
    const ProcessResult result = dlock.wait();
    CHECK(result.exit_code == 71);
    CHECK(line_count(result.err) == 1);
    CHECK(contains(result.err, "guardian"));
    CHECK_FALSE(std::filesystem::exists(marker));
    CHECK_FALSE(lock_exists(server, "k")); // taken, then given back
}

// --- 6. memory limits ----------------------------------------------------------------------

#if !defined(__SANITIZE_ADDRESS__) // AddressSanitizer cannot run under an address-space limit
namespace {

// Runs dlock with an address-space limit of `kib` KiB (ulimit -v).
ProcessResult run_with_memory_limit(const std::vector<std::string>& args, rlim_t kib) {
    return run_prepared(args, [kib] {
        const rlimit limit{kib * 1024, kib * 1024};
        setrlimit(RLIMIT_AS, &limit);
    });
}

} // namespace

TEST_CASE("under any small address-space limit dlock ends with one line and a documented code, "
          "never an abort") {
    RedisServer server;
    int out_of_memory = 0;
    // From too little to load the program to plenty, in steps of 128 KiB.
    for (rlim_t kib = 1024; kib <= 16384; kib += 128) {
        CAPTURE(kib);
        const ProcessResult result =
            run_with_memory_limit({"--redis", server.url(), "status", "k"}, kib);
        CAPTURE(result.err);
        CHECK(result.signal != SIGABRT);
        CHECK_FALSE(contains(result.err, "terminate called"));
        if (result.signal != 0) {
            // Too little to map the program at all: the kernel kills it before it runs a line.
            CHECK(result.err.empty());
        } else if (result.exit_code == 71) {
            CHECK(result.err == "dlock: out of memory\n");
            ++out_of_memory;
        } else if (result.exit_code == 127) {
            // The dynamic loader gave up (a library, or thread-local storage, did not fit):
            // its message, not dlock's.
            CHECK(result.err.rfind("dlock: ", 0) == std::string::npos);
            CHECK(line_count(result.err) == 1);
        } else { // enough: the status of a free lock, answered in full
            CHECK(result.exit_code == 1);
        }
    }
    MESSAGE(out_of_memory << " limits ran out of memory inside dlock");
}
#endif

// --- 7. the URL usage hint -----------------------------------------------------------------

TEST_CASE("the usage hint for a bad URL shows its placeholder, and real passwords stay masked") {
    const ProcessResult bad = run_dlock({"--redis", "bogus", "status", "k"});
    CHECK(bad.exit_code == 64);
    CHECK(contains(bad.err, "redis://[user[:password]@]host[:port][/db]"));
    CHECK(contains(bad.err, "unix://[user[:password]@]/path/to/socket"));
    CHECK_FALSE(contains(bad.err, "***"));

    const ProcessResult secret =
        run_dlock({"--redis", "redis://user:s3cr3t-pw@host:99999", "status", "k"});
    CHECK(secret.exit_code == 64);
    CHECK_FALSE(contains(secret.err, "s3cr3t-pw"));
    CHECK(contains(secret.err, "[user[:password]@]"));
}

// --- 8. ledger paths that are not files ----------------------------------------------------

TEST_CASE("a ledger path that is not a regular file is refused with 64 before SQLite opens it") {
    for (const char* beside : {"/dev/null-journal", "/dev/null-wal", "/dev/null-shm"})
        unlink(beside); // left by an earlier dlock, if any
    const ProcessResult dev_null = run_dlock({"--db", "/dev/null", "balance", "--account", "1"});
    CHECK(dev_null.exit_code == 64);
    CHECK(line_count(dev_null.err) == 1);
    CHECK(contains(dev_null.err, "not a regular file"));
    for (const char* beside : {"/dev/null-journal", "/dev/null-wal", "/dev/null-shm"}) {
        CAPTURE(beside);
        CHECK_FALSE(std::filesystem::exists(beside));
        unlink(beside);
    }

    TempDir dir;
    const std::string fifo = dir.path + "/fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    const std::string folder = dir.path + "/folder";
    REQUIRE(mkdir(folder.c_str(), 0700) == 0);
    for (const std::string& path : {fifo, folder}) {
        CAPTURE(path);
        const ProcessResult result =
            run_dlock({"--db", path, "deposit", "--account", "1", "--amount", "1"});
        CHECK(result.exit_code == 64);
        CHECK(contains(result.err, "not a regular file"));
        CHECK_FALSE(std::filesystem::exists(path + "-journal"));
        CHECK_FALSE(std::filesystem::exists(path + "-wal"));
    }
    // A file that does not exist yet is still a new ledger.
    CHECK(run_dlock({"--db", dir.path + "/new.db", "deposit", "--account", "1", "--amount", "1"})
              .exit_code == 0);
}

// --- a soak with faults (not in ctest: scripts/soak --faults runs it) ----------------------

namespace {

// A TCP proxy in front of the real Redis that can turn into a slow peer: while `slow`, it hands
// Redis's answers on one byte every 100 ms. A Redis that is down makes it hang up.
class FaultProxy {
public:
    explicit FaultProxy(std::string redis_socket) : socket_(std::move(redis_socket)) {
        const LoopbackListener listener = listen_on_loopback(128);
        listener_ = listener.fd;
        port_ = listener.port;
        thread_ = std::thread([this] { serve(); });
    }
    ~FaultProxy() {
        stop_ = true;
        thread_.join();
        for (const auto& [client, upstream] : pairs_) {
            close(client);
            close(upstream);
        }
        close(listener_);
    }
    FaultProxy(const FaultProxy&) = delete;
    FaultProxy& operator=(const FaultProxy&) = delete;

    std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
    std::atomic<bool> slow{false};

private:
    static bool pass(int from, int to, std::size_t most) {
        char buffer[4096];
        const ssize_t n = recv(from, buffer, std::min(most, sizeof buffer), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return false;
        for (ssize_t sent = 0; n > 0 && sent < n;) {
            const ssize_t m =
                send(to, buffer + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
            if (m <= 0)
                return false;
            sent += m;
        }
        return true;
    }

    void serve() {
        auto next_slow_byte = Clock::now();
        while (!stop_) {
            std::vector<pollfd> fds{{listener_, POLLIN, 0}};
            const bool trickle = slow.load();
            const bool byte_due = Clock::now() >= next_slow_byte;
            for (const auto& [client, upstream] : pairs_) {
                fds.push_back({client, POLLIN, 0});
                fds.push_back({upstream, static_cast<short>(!trickle || byte_due ? POLLIN : 0), 0});
            }
            poll(fds.data(), fds.size(), 20);
            if (fds[0].revents & POLLIN) {
                const int client = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
                const int upstream = client >= 0 ? connect_unix(socket_) : -1;
                if (upstream >= 0)
                    pairs_.emplace_back(client, upstream);
                else if (client >= 0)
                    close(client);
            }
            if (trickle && byte_due)
                next_slow_byte = Clock::now() + 100ms;
            std::vector<std::pair<int, int>> kept;
            for (std::size_t i = 0; i < pairs_.size(); ++i) {
                const auto [client, upstream] = pairs_[i];
                bool open = true;
                if (fds[1 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR))
                    open = pass(client, upstream, 4096);
                if (open && (fds[2 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)))
                    open = pass(upstream, client, trickle ? 1 : 4096);
                if (open) {
                    kept.emplace_back(client, upstream);
                } else {
                    close(client);
                    close(upstream);
                }
            }
            pairs_ = std::move(kept);
        }
    }

    std::string socket_;
    int listener_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::vector<std::pair<int, int>> pairs_;
    std::atomic<bool> stop_{false};
};

// Counts of each line in `text`, "line xN", for the report.
std::string histogram(const std::string& text) {
    std::map<std::string, int> counts;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
        ++counts[line];
    std::string out;
    for (const auto& [line, count] : counts)
        out += (out.empty() ? "" : ", ") + line + " x" + std::to_string(count);
    return out.empty() ? "none" : out;
}

} // namespace

TEST_CASE("fault soak: dlock run and locked ledger writes under pauses, kills, restarts and a "
          "slow peer" *
          doctest::skip()) {
    const char* seconds_env = std::getenv("DLOCK_SOAK_FAULTS_SECONDS");
    const int seconds = seconds_env != nullptr ? std::atoi(seconds_env) : 120;
    constexpr int workers = 4;
    RedisServer server;
    FaultProxy proxy(socket_path(server));
    TempDir dir;
    const std::string db = dir.path + "/ledger.db";
    REQUIRE(run_dlock({"--db", db, "deposit", "--account", "1", "--amount", "1000000"}).exit_code ==
            0);

    // The critical section: note an overlap if another section that is still alive is inside,
    // then write to the ledger under this run's fence.
    const std::string section =
        "D=" + shell_quoted(dir.path) +
        "; "
        "if ! mkdir \"$D/in\" 2>/dev/null; then "
        "  old=$(cat \"$D/in/pid\" 2>/dev/null); "
        "  if [ -n \"$old\" ] && kill -0 \"$old\" 2>/dev/null; then "
        "    echo \"$DLOCK_FENCE\" >> \"$D/overlaps\"; fi; fi; "
        "echo $$ > \"$D/in/pid\"; trap 'rm -rf \"$D/in\"; exit 143' TERM; " +
        dlock_line({"--db", db, "withdraw", "--account", "1", "--amount", "0.01"}) +
        " --fence \"$DLOCK_FENCE\" --lock-key \"$DLOCK_KEY\" >/dev/null 2>&1; "
        "echo $? >> \"$D/withdraw-codes\"; sleep 0.05; rm -rf \"$D/in\"";
    const std::string loop =
        "end=$(( $(date +%s) + " + std::to_string(seconds) +
        " )); "
        "while [ $(date +%s) -lt $end ]; do " +
        dlock_line({"--redis", proxy.url(), "--timeout", "1s", "run", "soak", "--ttl", "2s",
                    "--wait", "3s", "--kill-grace", "200ms", "--", "/bin/sh", "-c", section}) +
        " 2>>" + shell_quoted(dir.path + "/run-errors") + "; echo $? >> " +
        shell_quoted(dir.path + "/run-codes") + "; done";
    std::vector<std::unique_ptr<Child>> running;
    for (int i = 0; i < workers; ++i)
        running.push_back(std::make_unique<Child>(std::vector<std::string>{"/bin/sh", "-c", loop}));

    std::map<std::string, int> faults;
    std::srand(static_cast<unsigned>(Clock::now().time_since_epoch().count()));
    const auto end = Clock::now() + std::chrono::seconds(seconds);
    while (Clock::now() < end) {
        std::this_thread::sleep_for(milliseconds(1500 + std::rand() % 1500)); // between faults
        switch (std::rand() % 4) {
        case 0: // a frozen Redis (a long GC, a stopped VM)
            ++faults["pause"];
            kill(server.pid(), SIGSTOP);
            std::this_thread::sleep_for(1500ms);
            kill(server.pid(), SIGCONT);
            break;
        case 1: // a Redis that restarts and loses every lock
            ++faults["restart"];
            server.restart();
            break;
        case 2: // a slow peer: answers trickle in
            ++faults["slow"];
            proxy.slow = true;
            std::this_thread::sleep_for(2000ms);
            proxy.slow = false;
            break;
        case 3: { // a dlock killed in the middle (the guardian takes its command down)
            ++faults["kill dlock"];
            const auto& worker = running[static_cast<std::size_t>(std::rand() % workers)];
            for (const pid_t child : children_of(worker->pid()))
                if (process_name(child) == "dlock")
                    kill(child, SIGKILL);
            break;
        }
        }
    }
    for (auto& worker : running)
        CHECK(worker->wait_for(60s));

    const std::string run_codes = read_file(dir.path + "/run-codes");
    const std::string withdraw_codes = read_file(dir.path + "/withdraw-codes");
    const std::string overlaps = read_file(dir.path + "/overlaps");
    const ProcessResult verify = run_dlock({"--db", db, "verify"});
    std::string fault_list;
    for (const auto& [name, count] : faults)
        fault_list += (fault_list.empty() ? "" : ", ") + name + " x" + std::to_string(count);
    MESSAGE("faults: " << fault_list);
    MESSAGE("dlock run exit codes: " << histogram(run_codes));
    MESSAGE("withdraw exit codes: " << histogram(withdraw_codes));
    MESSAGE("overlapping sections: " << line_count(overlaps));
    MESSAGE("ledger verify: " << verify.out << verify.err);
    // 0 ran; 69 Redis unreachable at the start; 75 busy; 79 lost and stopped; 137 killed here.
    std::istringstream codes(run_codes);
    for (std::string code; std::getline(codes, code);) {
        CAPTURE(code);
        CHECK(std::set<std::string>{"0", "69", "75", "79", "137"}.count(code) == 1);
    }
    CHECK(verify.exit_code == 0);
    // The fence kept every stale holder out: the journal's fences never go back.
    CHECK(query_int(db, "SELECT COUNT(*) FROM journal a JOIN journal b ON b.id > a.id "
                        "WHERE a.fence_token IS NOT NULL AND b.fence_token < a.fence_token") == 0);
}
