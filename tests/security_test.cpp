// Security properties, end to end: the Redis password stays out of process lists, messages and
// JSON; keys and ids that look like SQL or Lua are data, never code; the ledger file is
// private; a peer that hangs up cannot kill dlock with SIGPIPE, and `dlock run` commands start
// with the signal dispositions a shell would give them. (Owner tokens: tests/lock_key_test.cpp,
// "owner tokens are 128 random bits in hex, and 10,000 are all distinct". The least-privilege
// ACL user: tests/lock_fault_test.cpp.)
#include "dlock/redis_lock.hpp"
#include "support/fake_server.hpp"
#include "support/ledger_file.hpp"
#include "support/observe.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using dlock::test::Child;
using dlock::test::contains;
using dlock::test::FakeServer;
using dlock::test::line_count;
using dlock::test::ProcessResult;
using dlock::test::RedisServer;
using dlock::test::run_dlock;
using nlohmann::json;

namespace {

constexpr const char* secret = "hunter2-Sekr1t";

// What a process shows others: its command line and its environment, NULs as spaces.
std::string proc_text(const std::string& text) {
    std::string out = text;
    std::replace(out.begin(), out.end(), '\0', ' ');
    return out;
}

struct TempDir {
    TempDir() = default;
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() { dlock::test::remove_tree(path); }
    std::string path = dlock::test::make_temp_dir();
};

unsigned permissions(const std::string& path) {
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    return info.st_mode & 0777;
}

} // namespace

TEST_CASE("a password given in --redis reaches neither the argv nor the environment of the "
          "command dlock run starts") {
    RedisServer server({{"--requirepass", secret}, true});
    const std::string url =
        "redis://:" + std::string(secret) + "@127.0.0.1:" + std::to_string(server.port());
    // The command prints what /proc shows of it: its argv and its environment.
    const ProcessResult result = run_dlock(
        {"--redis", url, "run", "job", "--", "sh", "-c",
         "cat /proc/$$/cmdline; echo; cat /proc/$$/environ; echo; exec cat /proc/self/cmdline"},
        {"DLOCK_REDIS_URL=", "DLOCK_REDIS_PASSWORD="});
    CAPTURE(result.err);
    REQUIRE(result.exit_code == 0);
    const std::string shown = proc_text(result.out);
    CHECK(contains(shown, "DLOCK_FENCE=")); // it did print its environment
    CHECK_FALSE(contains(shown, secret));
    CHECK_FALSE(contains(result.err, secret));
}

TEST_CASE("DLOCK_REDIS_PASSWORD passes through to the command, as documented, and env -u keeps "
          "it out") {
    // The environment is private to the user (/proc/PID/environ is mode 0400), unlike argv; a
    // command may call dlock itself (dlock status "$DLOCK_KEY"), which needs it. docs/run.md
    // says so and shows the way to drop it.
    RedisServer server({{"--requirepass", secret}});
    const std::vector<std::string> env{"DLOCK_REDIS_URL=" + server.url(),
                                       "DLOCK_REDIS_PASSWORD=" + std::string(secret)};
    const ProcessResult inherited = run_dlock(
        {"run", "job", "--", "sh", "-c", "\"$0\" status \"$DLOCK_KEY\" --json", DLOCK_BINARY}, env);
    CHECK(inherited.exit_code == 0);
    CHECK(json::parse(inherited.out)["status"] == "held");

    const ProcessResult dropped =
        run_dlock({"run", "job", "--", "env", "-u", "DLOCK_REDIS_PASSWORD", "sh", "-c",
                   "cat /proc/$$/environ"},
                  env);
    CHECK(dropped.exit_code == 0);
    CHECK_FALSE(contains(proc_text(dropped.out), secret));
}

TEST_CASE("no error message, text or JSON, shows the password, on any path that names Redis") {
    TempDir temp;
    RedisServer guarded({{"--requirepass", "the-right-one"}, true});
    FakeServer http(FakeServer::Behaviour::answer, "HTTP/1.1 400 Bad Request\r\n\r\n");
    FakeServer silent(FakeServer::Behaviour::silent);
    FakeServer hang_up(FakeServer::Behaviour::hang_up, {}, temp.path + "/hangup.sock");
    const std::string closed_port = std::to_string(dlock::test::free_tcp_port());
    const std::string userinfo = "user:" + std::string(secret) + "@";
    const std::string s = secret;

    struct Case {
        std::string name;
        std::vector<std::string> args;
    };
    const std::vector<Case> cases{
        {"connection refused", {"--redis", "redis://" + userinfo + "127.0.0.1:" + closed_port}},
        {"timeout", {"--redis", "redis://" + userinfo + silent.url().substr(8)}},
        {"not Redis", {"--redis", "redis://" + userinfo + http.url().substr(8)}},
        {"wrong password",
         {"--redis", "redis://:" + s + "@127.0.0.1:" + std::to_string(guarded.port())}},
        {"peer hangs up", {"--redis", "unix://" + userinfo + hang_up.url().substr(7)}},
        {"bad port", {"--redis", "redis://" + userinfo + "host:99999"}},
        {"bad database", {"--redis", "redis://" + userinfo + "host/x"}},
        {"bad percent-encoding", {"--redis", "redis://user:" + s + "%zz@host"}},
        {"one slash", {"--redis", "redis:/" + userinfo + "host"}},
        {"no scheme", {"--redis", userinfo + "host:6379"}},
        {"other scheme", {"--redis", "http://" + userinfo + "host"}},
        {"stray argument", {"--redis", "redis://127.0.0.1:" + closed_port}},
        {"in the environment", {}},
    };
    for (const Case& c : cases) {
        for (const bool as_json : {false, true}) {
            CAPTURE(c.name);
            CAPTURE(as_json);
            std::vector<std::string> args = c.args;
            args.insert(args.end(), {"--timeout", "300ms", "acquire", "job"});
            if (c.name == "stray argument")
                args.push_back("redis://:" + s + "@elsewhere"); // a typo CLI11 echoes
            if (as_json)
                args.push_back("--json");
            std::vector<std::string> env{"DLOCK_REDIS_PASSWORD=", "DLOCK_REDIS_URL="};
            if (c.name == "in the environment")
                env = {"DLOCK_REDIS_URL=redis://" + userinfo + "127.0.0.1:" + closed_port};
            const ProcessResult result = run_dlock(args, env);
            CAPTURE(result.err);
            CHECK(result.signal == 0);
            CHECK((result.exit_code == 64 || result.exit_code == 69));
            CHECK(line_count(result.err) == 1);
            CHECK_FALSE(contains(result.err, secret));
            CHECK_FALSE(contains(result.out, secret));
            if (as_json)
                CHECK(json::parse(result.out)["code"] == result.exit_code);
        }
    }
}

TEST_CASE("messages of a run that loses Redis, and of a withdrawal that cannot release, show no "
          "password") {
    RedisServer server({{"--requirepass", secret}, true});
    const std::string url =
        "redis://:" + std::string(secret) + "@127.0.0.1:" + std::to_string(server.port());
    TempDir temp;
    // run: renewals fail once Redis is gone ("cannot renew ... (cannot connect to Redis at
    // redis://:***@...)"), then the lock is lost.
    Child job(
        dlock::test::dlock_argv({"--redis", url, "run", "job", "--ttl", "1s", "--", "sh", "-c",
                                 "touch \"$0\"; exec sleep 300", temp.path + "/started"}));
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (access((temp.path + "/started").c_str(), F_OK) != 0) {
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        std::this_thread::sleep_for(5ms);
    }
    server.stop();
    REQUIRE(job.wait_for(20s));
    const ProcessResult lost = job.wait();
    CHECK(lost.exit_code == 79);
    CHECK(contains(lost.err, "cannot renew lock 'job'"));
    CHECK(contains(lost.err, ":***@"));
    CHECK_FALSE(contains(lost.err, secret));

    // withdraw: Redis goes away while the ledger write holds (--hold); the release fails.
    server.start();
    const std::string db = temp.path + "/ledger.db";
    REQUIRE(run_dlock({"--db", db, "deposit", "--account", "1", "--amount", "10"}).exit_code == 0);
    Child writer(dlock::test::dlock_argv({"--redis", url, "--db", db, "withdraw", "--account", "1",
                                          "--amount", "1", "--hold", "1s"}));
    const auto write_deadline = std::chrono::steady_clock::now() + 20s;
    while (!dlock::test::ledger_write_locked(db)) {
        REQUIRE(std::chrono::steady_clock::now() < write_deadline);
        std::this_thread::sleep_for(2ms);
    }
    server.stop();
    REQUIRE(writer.wait_for(20s));
    const ProcessResult written = writer.wait();
    CAPTURE(written.err);
    CHECK(written.exit_code == 0); // the write committed under its fence; only the release failed
    CHECK(contains(written.err, "could not release lock"));
    CHECK_FALSE(contains(written.err, secret));
}

TEST_CASE("keys and ids that look like SQL or Lua are stored verbatim and run nothing") {
    RedisServer server;
    TempDir temp;
    const std::string db = temp.path + "/ledger.db";
    const std::vector<std::string> env{"DLOCK_REDIS_URL=" + server.url(), "DLOCK_DB=" + db};
    const auto dlock = [&](const std::vector<std::string>& args) {
        return run_dlock(args, env);
    };
    server.command({"SET", "sentinel", "still here"});
    REQUIRE(dlock({"deposit", "--account", "1", "--amount", "100"}).exit_code == 0);

    const std::vector<std::string> hostile{
        "'; DROP TABLE accounts; --",
        "\"]]..redis.call('FLUSHALL')..[[\"",
        "x') OR 1=1; DELETE FROM journal; --",
        "]]; redis.call('FLUSHALL'); --[[",
        "KEYS[1]'; redis.call('DEL', KEYS[1]) --",
        "%s%n%x {0} ${HOME} $(touch pwned) `touch pwned`",
    };
    std::int64_t fence = 0;
    int deposits = 0;
    for (const std::string& key : hostile) {
        CAPTURE(key);
        // Locks: every subcommand, and run, which hands the key to the command.
        const ProcessResult acquired = dlock({"acquire", key, "--json"});
        REQUIRE(acquired.exit_code == 0);
        const json lease = json::parse(acquired.out);
        CHECK(lease["key"] == key);
        const dlock::LockKeys names = dlock::lock_keys("dlock:", key);
        CHECK(server.command({"GET", names.lock}) == lease["token"]);
        CHECK(dlock({"status", key}).exit_code == 0);
        CHECK(dlock({"extend", key, "--owner", lease["token"], "--ttl", "1m"}).exit_code == 0);
        CHECK(dlock({"block", key, "--wait", "50ms"}).exit_code == 75);
        CHECK(dlock({"release", key, "--owner", lease["token"]}).exit_code == 0);
        CHECK(dlock({"acquire", key}).exit_code == 0);
        CHECK(dlock({"force-release", key}).exit_code == 0);
        const ProcessResult ran = dlock({"run", key, "--", "printenv", "DLOCK_KEY"});
        CHECK(ran.exit_code == 0);
        CHECK(ran.out == key + "\n");

        // The ledger: as a fence resource and as an idempotency key.
        const ProcessResult fenced =
            dlock({"withdraw", "--account", "1", "--amount", "1", "--fence",
                   std::to_string(++fence), "--lock-key", key, "--json"});
        CAPTURE(fenced.err);
        CHECK(fenced.exit_code == 0);
        CHECK(json::parse(fenced.out)["key"] == key);
        CHECK(dlock({"deposit", "--account", "1", "--amount", "2", "--idempotency-key", key})
                  .exit_code == 0);
        ++deposits;
        const ProcessResult again =
            dlock({"deposit", "--account", "1", "--amount", "2", "--idempotency-key", key});
        CHECK(again.exit_code == 0); // a duplicate: the key was matched as data
        CHECK(contains(again.err, "was used before"));
    }
    CHECK(server.command({"GET", "sentinel"}) == "still here");
    const json history =
        json::parse(dlock({"history", "--account", "1", "--limit", "100", "--json"}).out);
    std::vector<std::string> keys;
    for (const json& entry : history["entries"])
        if (!entry["idempotency_key"].is_null())
            keys.push_back(entry["idempotency_key"]);
    std::vector<std::string> expected = hostile;
    std::sort(keys.begin(), keys.end());
    std::sort(expected.begin(), expected.end());
    CHECK(keys == expected);
    CHECK(dlock::test::query_int(db, "SELECT COUNT(*) FROM fences") ==
          static_cast<std::int64_t>(hostile.size()));
    CHECK(json::parse(dlock({"balance", "--account", "1", "--json"}).out)["balance_cents"] ==
          10000 - static_cast<int>(hostile.size()) * 100 + deposits * 200);
    CHECK(dlock({"verify"}).exit_code == 0);
    CHECK(access("pwned", F_OK) != 0);
}

TEST_CASE("the ledger file is created with mode 0600 whatever the umask, or stricter if it says") {
    TempDir temp;
    for (const auto& [umask_text, mode] : std::vector<std::pair<std::string, unsigned>>{
             {"000", 0600}, {"022", 0600}, {"077", 0600}, {"277", 0400}}) {
        CAPTURE(umask_text);
        const std::string db = temp.path + "/ledger-" + umask_text + ".db";
        const ProcessResult created = dlock::test::run(
            {"/bin/sh", "-c", "umask " + umask_text + " && exec \"$0\" \"$@\"", DLOCK_BINARY,
             "--db", db, "deposit", "--account", "1", "--amount", "1"});
        CHECK(created.exit_code == 0);
        CHECK(permissions(db) == mode);
    }
}

namespace {

// Runs each command (with `touch TEMP/ran` as the command of a run) 20 times against `peer`,
// which hangs up on dlock: every run ends with 69 and one line, never a death by a signal; the
// ledger is as it was and nothing ran.
void check_hang_ups_give_69(const FakeServer& peer, const TempDir& temp,
                            const std::vector<std::vector<std::string>>& commands) {
    const std::string db = temp.path + "/ledger.db";
    REQUIRE(run_dlock({"--db", db, "deposit", "--account", "1", "--amount", "10"}).exit_code == 0);
    const std::string before = dlock::test::ledger_contents(db);
    for (int attempt = 0; attempt < 20; ++attempt) {
        for (const std::vector<std::string>& args : commands) {
            CAPTURE(attempt);
            CAPTURE(args);
            std::vector<std::string> full{"--redis", peer.url(), "--db", db};
            full.insert(full.end(), args.begin(), args.end());
            const ProcessResult result = run_dlock(full);
            CAPTURE(result.err);
            REQUIRE(result.signal == 0);
            CHECK(result.exit_code == 69);
            CHECK(line_count(result.err) == 1);
        }
    }
    CHECK(dlock::test::ledger_contents(db) == before);
    CHECK(access((temp.path + "/ran").c_str(), F_OK) != 0);
}

} // namespace

TEST_CASE("a Redis that hangs up while dlock sends gives 69, never a death by SIGPIPE") {
    TempDir temp;
    // Every connection is closed as soon as it is accepted: dlock's first write meets a closed
    // socket (EPIPE, which raises SIGPIPE) or its read meets the end of the stream.
    FakeServer hang_up(FakeServer::Behaviour::hang_up, {}, temp.path + "/redis.sock");
    check_hang_ups_give_69(hang_up, temp,
                           {{"acquire", "job"},
                            {"withdraw", "--account", "1", "--amount", "1"},
                            {"run", "job", "--", "touch", temp.path + "/ran"}});
}

TEST_CASE("a Redis that hangs up after answering 'busy' gives 69 while block sends its wait, "
          "never a death by SIGPIPE") {
    TempDir temp;
    // The first command (the acquire attempt) is answered "held, 5s left"; then the connection
    // is closed, and block's next send (its wait, pipelined with the next attempt) meets it.
    FakeServer busy_then_gone(FakeServer::Behaviour::answer_then_hang_up, "*2\r\n:0\r\n:5000\r\n",
                              temp.path + "/redis.sock");
    check_hang_ups_give_69(busy_then_gone, temp,
                           {{"block", "job", "--wait", "10s"},
                            {"withdraw", "--account", "1", "--amount", "1", "--wait", "10s"},
                            {"run", "job", "--wait", "10s", "--", "touch", temp.path + "/ran"}});
}

TEST_CASE("dlock run starts its command with SIGPIPE neither ignored nor blocked") {
    RedisServer server;
    // SigIgn and SigBlk are hex masks; SIGPIPE (13) is bit 12.
    const ProcessResult result = run_dlock({"--redis", server.url(), "run", "job", "--", "grep",
                                            "-E", "^Sig(Ign|Blk):", "/proc/self/status"});
    REQUIRE(result.exit_code == 0);
    std::istringstream lines(result.out);
    int masks = 0;
    for (std::string line; std::getline(lines, line);) {
        CAPTURE(line);
        const unsigned long long mask = std::stoull(line.substr(line.find(':') + 1), nullptr, 16);
        CHECK((mask & (1ULL << (SIGPIPE - 1))) == 0);
        ++masks;
    }
    CHECK(masks == 2);
    // And a pipeline in the command ends as pipelines do: the writer dies of SIGPIPE quietly.
    const ProcessResult piped =
        run_dlock({"--redis", server.url(), "run", "job", "-c", "yes | head -n 1"});
    CHECK(piped.exit_code == 0);
    CHECK(piped.out.rfind("y\n", 0) == 0);
    CHECK(piped.err.empty());
}
