// dlock's plain layout and the locks other programs write on the same key: Laravel's real
// Cache::lock (Debian's illuminate/cache 8.83 over phpredis, tests/interop/laravel_lock.php) and
// redis-py's Lock (tests/interop/redis_py_lock.py), against a private redis-server.
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using dlock::test::Child;
using dlock::test::ProcessResult;
using dlock::test::RedisServer;
using dlock::test::run;
using dlock::test::run_dlock_at;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Laravel 8's defaults: REDIS_PREFIX "laravel_database_", CACHE_PREFIX "laravel_cache", and
// RedisStore puts a ':' after the cache prefix.
const std::string laravel_prefix = "laravel_database_laravel_cache:";
const std::string lock_name = "withdraw_funds_user_5";
const std::string laravel_key = laravel_prefix + lock_name;

const std::string interop_dir = std::string(DLOCK_SOURCE_DIR) + "/tests/interop";

RedisServer tcp_server(std::vector<std::string> extra_args = {}) {
    return RedisServer(RedisServer::Options{std::move(extra_args), true});
}

std::vector<std::string> php(std::vector<std::string> args) {
    std::vector<std::string> argv{"/usr/bin/php", interop_dir + "/laravel_lock.php"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

std::vector<std::string> php_env(const RedisServer& server) {
    return {"REDIS_HOST=127.0.0.1", "REDIS_PORT=" + std::to_string(server.port()),
            "LOCK_NAME=" + lock_name};
}

std::vector<std::string> python(const RedisServer& server, const std::string& name,
                                std::vector<std::string> args) {
    std::vector<std::string> argv{"/usr/bin/python3", interop_dir + "/redis_py_lock.py",
                                  server.tcp_url(), name};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

// dlock in the plain layout with PREFIX, against `server`.
std::vector<std::string> plain(const RedisServer& server, const std::string& prefix,
                               std::vector<std::string> args) {
    std::vector<std::string> argv{DLOCK_BINARY, "--redis",  server.url(), "--layout",
                                  "plain",      "--prefix", prefix};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
        text.pop_back();
    return text;
}

// Waits until the child prints a line starting with `head` and returns the rest of that line;
// fails the test if it exits first or `limit` passes.
std::string wait_for_line(Child& child, const std::string& head,
                          std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        const std::string out = child.out_so_far();
        for (std::size_t at = 0; at < out.size();) {
            const std::size_t end = out.find('\n', at);
            if (end == std::string::npos)
                break;
            if (out.compare(at, head.size(), head) == 0)
                return out.substr(at + head.size(), end - at - head.size());
            at = end + 1;
        }
        if (child.wait_for(0ms))
            break;
        std::this_thread::sleep_for(2ms);
    }
    FAIL("no line '", head, "...' from the child; stdout: ", child.out_so_far(),
         " stderr: ", child.err_so_far());
    return {};
}

// Waits until dlock's waiter has found the lock held: its attempt leaves PREFIX+KEY+
// ":dlock:waiting" beside the lock (and in the plain layout it subscribed before that attempt).
void wait_for_waiter(const RedisServer& server, const std::string& key,
                     std::chrono::milliseconds limit = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (server.command({"EXISTS", key + ":dlock:waiting"}) != "1") {
        if (std::chrono::steady_clock::now() >= deadline)
            FAIL("no dlock waiter on ", key);
        std::this_thread::sleep_for(1ms);
    }
}

// A named pipe a lock holder reads one line from before it lets go: the test's signal.
class Fifo {
public:
    Fifo() : dir_(dlock::test::make_temp_dir()), path_(dir_ + "/go") {
        if (mkfifo(path_.c_str(), 0600) != 0)
            throw std::runtime_error(std::string("mkfifo: ") + std::strerror(errno));
    }
    ~Fifo() { dlock::test::remove_tree(dir_); }
    Fifo(const Fifo&) = delete;
    Fifo& operator=(const Fifo&) = delete;

    const std::string& path() const { return path_; }

    // Writes the line once the holder has opened the pipe (it may not have yet).
    void signal() const {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        int fd = -1;
        while ((fd = open(path_.c_str(), O_WRONLY | O_NONBLOCK)) < 0) {
            if (errno != ENXIO || std::chrono::steady_clock::now() >= deadline)
                throw std::runtime_error("nobody reads " + path_);
            std::this_thread::sleep_for(1ms);
        }
        const ssize_t written = write(fd, "go\n", 3);
        close(fd);
        if (written != 3)
            throw std::runtime_error("cannot write to " + path_);
    }

private:
    std::string dir_;
    std::string path_;
};

std::int64_t unix_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// A shell loop of `sections` `dlock run`s, each a slow read-modify-write of `counter`.
std::vector<std::string> dlock_worker(const RedisServer& server, const std::string& prefix,
                                      const std::string& key, int sections,
                                      const std::string& counter) {
    return {"/bin/sh",
            "-c",
            "i=0; while [ $i -lt \"$1\" ]; do i=$((i + 1)); "
            "\"$0\" --redis \"$2\" --layout plain --prefix \"$3\" run \"$4\" --wait 10s -- "
            "sh -c 'v=$(cat \"$0\"); sleep 0.002; echo $((v + 1)) > \"$0\"' \"$5\" || exit 1; "
            "done",
            DLOCK_BINARY,
            std::to_string(sections),
            server.url(),
            prefix,
            key,
            counter};
}

} // namespace

TEST_CASE("a lock Laravel holds is held for dlock's plain layout: status, acquire, run -n, "
          "force-release") {
    RedisServer server = tcp_server();
    Fifo go;
    Child holder(php({"hold", "10", go.path()}), php_env(server));
    const std::string owner = wait_for_line(holder, "held ");
    REQUIRE(owner.size() == 16); // Str::random(16)
    REQUIRE(server.command({"GET", laravel_key}) == owner);

    const auto status = run(plain(server, laravel_prefix, {"status", lock_name, "--json"}));
    CHECK(status.exit_code == 0);
    const json held = json::parse(status.out);
    CHECK(held["status"] == "held");
    CHECK(held["holder"] == owner);
    CHECK(held["ttl_ms"].get<std::int64_t>() > 5000);
    CHECK(held["ttl_ms"].get<std::int64_t>() <= 10000);
    CHECK(held["host"].is_null()); // Laravel leaves no holder record

    CHECK(run(plain(server, laravel_prefix, {"acquire", lock_name})).exit_code == 75);
    const std::string dir = dlock::test::make_temp_dir();
    const std::string ran = dir + "/ran";
    const auto skipped =
        run(plain(server, laravel_prefix, {"run", lock_name, "-n", "--", "/usr/bin/touch", ran}));
    CHECK(skipped.exit_code == 75);
    CHECK(access(ran.c_str(), F_OK) != 0);
    dlock::test::remove_tree(dir);
    CHECK(server.command({"GET", laravel_key}) == owner);

    // The control: dlock's own layout keys the same name elsewhere and takes it at once, which is
    // what the checks above would see from a plain layout that missed the app's key.
    CHECK(run_dlock_at(server.url(), {"acquire", lock_name}).exit_code == 0);

    const auto freed = run(plain(server, laravel_prefix, {"force-release", lock_name}));
    CHECK(freed.exit_code == 0);
    CHECK(freed.out.find(owner) != std::string::npos);
    CHECK(server.command({"EXISTS", laravel_key}) == "0");

    go.signal();
    CHECK(wait_for_line(holder, "released ") == "false"); // Laravel's release() is owner-checked
    CHECK(holder.wait().exit_code == 0);
}

TEST_CASE("dlock releases and extends a Laravel lock with its owner, and only with its owner") {
    RedisServer server = tcp_server();
    const auto got = run(php({"get", "10"}), php_env(server));
    REQUIRE(trimmed(got.out).rfind("true ", 0) == 0);
    const std::string owner = trimmed(got.out).substr(5);

    CHECK(run(plain(server, laravel_prefix, {"release", lock_name, "--owner", "someone-else"}))
              .exit_code == 1);
    CHECK(server.command({"GET", laravel_key}) == owner);
    CHECK(run(plain(server, laravel_prefix, {"extend", lock_name, "--owner", owner, "--ttl", "1m"}))
              .exit_code == 0);
    CHECK(std::stoll(server.command({"PTTL", laravel_key})) > 10000);

    CHECK(run(plain(server, laravel_prefix, {"release", lock_name, "--owner", owner})).exit_code ==
          0);
    CHECK(server.command({"EXISTS", laravel_key}) == "0");
    CHECK(trimmed(run(php({"release", owner}), php_env(server)).out) == "false");
}

TEST_CASE("Laravel's get() fails while dlock run holds the lock, and block() gets it right after") {
    RedisServer server = tcp_server();
    Fifo go;
    Child job(plain(server, laravel_prefix,
                    {"run", lock_name, "--ttl", "10s", "--", "/bin/sh", "-c",
                     "echo running; read line < \"$0\"", go.path()}));
    wait_for_line(job, "running");
    CHECK(server.command({"EXISTS", laravel_key}) == "1");

    CHECK(trimmed(run(php({"get", "10"}), php_env(server)).out) == "false");

    Child waiter(php({"block", "10", "5"}), php_env(server));
    wait_for_line(waiter, "waiting");
    const std::int64_t released_at = unix_ms();
    go.signal();
    CHECK(job.wait().exit_code == 0);
    const std::int64_t acquired_at = std::stoll(wait_for_line(waiter, "acquired "));
    CHECK(acquired_at >= released_at);
    // Laravel polls every 250 ms: it gets in on its next poll, not at once.
    CHECK(acquired_at - released_at < 1000);
    CHECK(waiter.wait().exit_code == 0);
}

TEST_CASE("4 Laravel and 4 dlock workers on one lock: 200 read-modify-writes count 200") {
    RedisServer server = tcp_server();
    const std::string dir = dlock::test::make_temp_dir();
    const std::string counter = dir + "/counter";
    std::ofstream(counter) << "0";

    std::vector<std::unique_ptr<Child>> workers;
    for (int i = 0; i < 4; ++i) {
        workers.push_back(std::make_unique<Child>(php({"worker", "25", counter}), php_env(server)));
        workers.push_back(
            std::make_unique<Child>(dlock_worker(server, laravel_prefix, lock_name, 25, counter)));
    }
    for (auto& worker : workers) {
        const ProcessResult result = worker->wait();
        CHECK_MESSAGE(result.exit_code == 0, result.err);
    }
    CHECK(trimmed(dlock::test::read_file(counter)) == "200");
    dlock::test::remove_tree(dir);
}

TEST_CASE("a dlock waiter gets the lock at once when Laravel releases it, with keyspace "
          "notifications and without") {
    for (const std::string events : {"KEA", ""}) {
        CAPTURE(events);
        RedisServer server = tcp_server({"--notify-keyspace-events", events});
        Fifo go;
        Child holder(php({"hold", "10", go.path()}), php_env(server));
        wait_for_line(holder, "held ");

        Child waiter(plain(server, laravel_prefix, {"block", lock_name, "--wait", "10s"}));
        wait_for_waiter(server, laravel_key);
        const auto released = std::chrono::steady_clock::now();
        go.signal();
        REQUIRE(waiter.wait_for(5s));
        const auto latency = std::chrono::steady_clock::now() - released;
        const ProcessResult result = waiter.wait();
        CHECK(result.exit_code == 0);
        CHECK(wait_for_line(holder, "released ") == "true");
        CHECK(server.command({"GET", laravel_key}) == trimmed(result.out));
        MESSAGE("notify-keyspace-events '", events, "': dlock got the lock ",
                std::chrono::duration_cast<std::chrono::milliseconds>(latency).count(),
                " ms after Laravel's release (bound: 1000)");
        CHECK(latency < 1s);
    }
}

TEST_CASE("redis-py's Lock and dlock's plain layout exclude each other on the bare key") {
    RedisServer server = tcp_server();
    const std::string name = "nightly-report";

    Fifo go;
    Child holder(python(server, name, {"hold", "10", go.path()}));
    const std::string token = wait_for_line(holder, "held ");
    const auto status = run(plain(server, "", {"status", name, "--json"}));
    CHECK(status.exit_code == 0);
    CHECK(json::parse(status.out)["holder"] == token);
    CHECK(run(plain(server, "", {"acquire", name})).exit_code == 75);

    server.command({"DEL", name + ":dlock:waiting"}); // left by the refused acquire
    Child waiter(plain(server, "", {"block", name, "--wait", "10s"}));
    wait_for_waiter(server, name);
    const auto released = std::chrono::steady_clock::now();
    go.signal();
    REQUIRE(waiter.wait_for(5s));
    const auto latency = std::chrono::steady_clock::now() - released;
    MESSAGE("dlock got the lock ",
            std::chrono::duration_cast<std::chrono::milliseconds>(latency).count(),
            " ms after redis-py's release (bound: 1000)");
    CHECK(latency < 1s);
    const std::string dlock_token = trimmed(waiter.wait().out);
    CHECK(wait_for_line(holder, "released ") == "true");
    CHECK(server.command({"GET", name}) == dlock_token);

    CHECK(trimmed(run(python(server, name, {"get", "10"})).out) == "false");
    Child py_waiter(python(server, name, {"block", "10", "5"}));
    wait_for_line(py_waiter, "waiting");
    CHECK(run(plain(server, "", {"release", name, "--owner", dlock_token})).exit_code == 0);
    wait_for_line(py_waiter, "acquired ");
    CHECK(py_waiter.wait().exit_code == 0);

    const std::string dir = dlock::test::make_temp_dir();
    const std::string counter = dir + "/counter";
    std::ofstream(counter) << "0";
    std::vector<std::unique_ptr<Child>> workers;
    for (int i = 0; i < 2; ++i) {
        workers.push_back(std::make_unique<Child>(python(server, name, {"worker", "25", counter})));
        workers.push_back(std::make_unique<Child>(dlock_worker(server, "", name, 25, counter)));
    }
    for (auto& worker : workers) {
        const ProcessResult result = worker->wait();
        CHECK_MESSAGE(result.exit_code == 0, result.err);
    }
    CHECK(trimmed(dlock::test::read_file(counter)) == "100");
    dlock::test::remove_tree(dir);
}
