// Locks through Redis Sentinel, end to end: the real binary against one master, one replica and
// three redis-sentinel processes (quorum 2), started once for this executable. Failovers are
// real: SENTINEL FAILOVER, and kill -9 of the master (last, as it is the slowest to settle).
//
// Commands that hold a lock log "enter"/"exit" with CLOCK_MONOTONIC to one append-only file;
// two holders overlapped exactly when one entered before the other exited.
#include "support/observe.hpp"
#include "support/process.hpp"
#include "support/sentinel_setup.hpp"

#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace dlock::test;
using namespace std::chrono_literals;

SentinelSetup& setup() {
    static SentinelSetup topology;
    topology.wait_settled();
    return topology;
}

// The command a holder runs: logs "enter NAME NS", sleeps, logs "exit NAME NS"; on SIGTERM it
// logs its exit at once and ends (143), as a well-behaved job stopped by a lost lock does.
class HolderLog {
public:
    HolderLog() : dir_(make_temp_dir()), log_(dir_ + "/log"), script_(dir_ + "/hold.py") {
        std::ofstream(script_) << R"py(import os, signal, sys, time
log, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
def write(what):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, ('%s %s %d\n' % (what, name, time.monotonic_ns())).encode())
    os.close(fd)
def stopped(signo, frame):
    write('exit')
    os._exit(143)
signal.signal(signal.SIGTERM, stopped)
write('enter')
time.sleep(seconds)
write('exit')
)py";
    }
    ~HolderLog() { remove_tree(dir_); }
    HolderLog(const HolderLog&) = delete;
    HolderLog& operator=(const HolderLog&) = delete;

    std::vector<std::string> command(const std::string& name, const std::string& seconds) const {
        return {"--", "python3", script_, log_, name, seconds};
    }
    bool entered(const std::string& name) const {
        return read_file(log_).find("enter " + name + " ") != std::string::npos;
    }
    // Each holder's [enter, exit] in CLOCK_MONOTONIC ns.
    std::map<std::string, std::pair<long long, long long>> spans() const {
        std::map<std::string, std::pair<long long, long long>> out;
        std::istringstream in(read_file(log_));
        std::string what, name;
        long long ns = 0;
        while (in >> what >> name >> ns)
            (what == "enter" ? out[name].first : out[name].second) = ns;
        return out;
    }
    std::string text() const { return read_file(log_); }

private:
    std::string dir_;
    std::string log_;
    std::string script_;
};

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

std::vector<std::string> dlock_with(const std::string& url, std::vector<std::string> args) {
    std::vector<std::string> argv = dlock_argv({"--redis", url});
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

// What `status KEY --json` says against `server`; an empty object when nobody holds the lock.
nlohmann::json status_on(RedisServer& server, const std::string& key) {
    const ProcessResult status = run_dlock_at(server.tcp_url(), {"status", key, "--json"});
    return status.exit_code == 0 ? nlohmann::json::parse(status.out) : nlohmann::json::object();
}

std::string holder_on(RedisServer& server, const std::string& key) {
    return status_on(server, key).value("holder", "");
}

// How often the lock's holder has renewed it, as `server` records it; -1 when nobody holds it.
int renewals_on(RedisServer& server, const std::string& key) {
    return status_on(server, key).value("renewals", -1);
}

std::string first_line(const std::string& text) {
    return text.substr(0, text.find('\n'));
}

} // namespace

TEST_CASE("every lock subcommand works through redis+sentinel://") {
    SentinelSetup& s = setup();
    const std::string url = s.url();
    const ProcessResult acquired = run_dlock_at(url, {"acquire", "sentinel-job", "--ttl", "20s"});
    REQUIRE(acquired.exit_code == 0);
    const std::string token = first_line(acquired.out);
    CHECK(holder_on(s.master(), "sentinel-job") == token);

    const ProcessResult status = run_dlock_at(url, {"status", "sentinel-job", "--json"});
    CHECK(status.exit_code == 0);
    CHECK(nlohmann::json::parse(status.out)["stale"] == false);
    CHECK(
        run_dlock_at(url, {"extend", "sentinel-job", "--owner", token, "--ttl", "30s"}).exit_code ==
        0);
    CHECK(run_dlock_at(url, {"list"}).out.find("sentinel-job") != std::string::npos);
    CHECK(run_dlock_at(url, {"acquire", "sentinel-job"}).exit_code == 75);
    CHECK(run_dlock_at(url, {"release", "sentinel-job", "--owner", token}).exit_code == 0);
    CHECK(run_dlock_at(url, {"status", "sentinel-job"}).exit_code == 1);

    const ProcessResult blocked = run_dlock_at(url, {"block", "sentinel-job", "--wait", "5s"});
    CHECK(blocked.exit_code == 0);
    CHECK(run_dlock_at(url, {"force-release", "sentinel-job"}).exit_code == 0);
    const ProcessResult ran =
        run_dlock_at(url, {"run", "sentinel-job", "--", "sh", "-c", "echo ran"});
    CHECK(ran.exit_code == 0);
    CHECK(ran.out == "ran\n");
    CHECK(holder_on(s.master(), "sentinel-job").empty());
}

TEST_CASE("a quorum member may be a redis+sentinel:// URL: the lock is taken on the master its "
          "sentinels name") {
    SentinelSetup& s = setup();
    const RedisServer second;
    const RedisServer third;
    const std::vector<std::string> quorum =
        dlock_argv({"--redis", s.url(), "--redis", second.url(), "--redis", third.url(), "--json"});
    const ProcessResult acquired =
        run(with(quorum, {"acquire", "quorum-sentinel-job", "--ttl", "20s"}));
    REQUIRE(acquired.exit_code == 0);
    const std::string token = nlohmann::json::parse(acquired.out).at("token");
    CHECK(holder_on(s.master(), "quorum-sentinel-job") == token);
    CHECK(second.command({"GET", "dlock:{quorum-sentinel-job}"}) == token);
    CHECK(third.command({"GET", "dlock:{quorum-sentinel-job}"}) == token);

    const ProcessResult status = run(with(quorum, {"status", "quorum-sentinel-job"}));
    CHECK(status.exit_code == 0);
    CHECK(nlohmann::json::parse(status.out).at("servers").size() == 3);
    CHECK(run(with(quorum, {"release", "quorum-sentinel-job", "--owner", token})).exit_code == 0);
    CHECK(holder_on(s.master(), "quorum-sentinel-job").empty());
    CHECK(second.command({"EXISTS", "dlock:{quorum-sentinel-job}"}) == "0");
}

TEST_CASE("a failover while run holds a lock: the holder goes on on the new master, and a waiter "
          "through the sentinels never overlaps it") {
    SentinelSetup& s = setup();
    const HolderLog log;
    RedisServer& old_master = s.master();
    RedisServer& promoted = s.replica();
    // Renewals between the promotion and the moment the leading sentinel names the new master
    // (its INFO poll: about a second, more on a loaded host) land on the old master and are lost
    // with it; a 9 s TTL leaves 3 s for that, and for a host that stalls the holder. The command
    // outlives the new master's copy of any renewal made before the promotion.
    Child first(dlock_with(
        s.url(), with({"run", "--ttl", "9s", "failover-run"}, log.command("first", "12"))));
    REQUIRE(eventually([&] { return log.entered("first"); }, 20s));
    Child second(dlock_with(s.url(), with({"run", "--ttl", "3s", "--wait", "inf", "failover-run"},
                                          log.command("second", "0.2"))));
    REQUIRE(old_master.wait_for_blocked_clients(1, 20s));

    s.failover();
    REQUIRE(s.wait_named(promoted, 30s));
    // The next renewal (within 3 s) goes to the new master and counts there.
    const int renewals = renewals_on(promoted, "failover-run");
    CHECK(eventually([&] { return renewals_on(promoted, "failover-run") > renewals; }, 8s));

    REQUIRE(first.wait_for(60s));
    REQUIRE(second.wait_for(60s));
    const ProcessResult first_result = first.wait();
    const ProcessResult second_result = second.wait();
    INFO(log.text(), first_result.err, second_result.err);
    // The lock had replicated: the first run renewed it on the new master and went on.
    CHECK(first_result.exit_code == 0);
    CHECK(second_result.exit_code == 0);
    const auto spans = log.spans();
    REQUIRE(spans.size() == 2);
    CHECK(spans.at("first").second < spans.at("second").first);
}

TEST_CASE("block --wait inf survives a failover and takes the lock on the new master; with "
          "--replicas 1 the lock it waits for is on the promoted replica") {
    SentinelSetup& s = setup();
    RedisServer& promoted = s.replica();
    const ProcessResult held =
        run_dlock_at(s.url(), {"--replicas", "1", "acquire", "failover-block", "--ttl", "6s"});
    REQUIRE(held.exit_code == 0);
    const std::string holder = first_line(held.out);
    Child waiter(dlock_with(s.url(), {"block", "failover-block", "--wait", "inf", "--ttl", "20s"}));
    REQUIRE(s.master().wait_for_blocked_clients(1, 20s));

    s.failover();
    REQUIRE(s.wait_named(promoted, 30s));
    CHECK(holder_on(promoted, "failover-block") == holder);

    REQUIRE(waiter.wait_for(60s));
    const ProcessResult taken = waiter.wait();
    INFO(taken.err);
    REQUIRE(taken.exit_code == 0);
    CHECK(holder_on(promoted, "failover-block") == first_line(taken.out));
    CHECK(run_dlock_at(s.url(), {"release", "failover-block", "--owner", first_line(taken.out)})
              .exit_code == 0);
}

TEST_CASE("--replicas 1 with no replica answering releases the lock and exits 69") {
    SentinelSetup& s = setup();
    RedisServer& replica = s.replica();
    kill(replica.pid(), SIGSTOP);
    const ProcessResult refused =
        run_dlock_at(s.url(), {"--replicas", "1", "--timeout", "500ms", "acquire", "unreplicated"});
    kill(replica.pid(), SIGCONT);
    CHECK(refused.exit_code == 69);
    CHECK(line_count(refused.err) == 1);
    CHECK(refused.err.find("only 0 of 1 replicas acknowledged") != std::string::npos);
    CHECK(holder_on(s.master(), "unreplicated").empty());
    // The same with the replica answering: taken, and on the replica.
    const ProcessResult taken =
        run_dlock_at(s.url(), {"--replicas", "1", "acquire", "unreplicated", "--ttl", "20s"});
    REQUIRE(taken.exit_code == 0);
    CHECK(replica.command({"GET", "dlock:{unreplicated}"}) == first_line(taken.out));
    CHECK(run_dlock_at(s.url(), {"release", "unreplicated", "--owner", first_line(taken.out)})
              .exit_code == 0);
}

TEST_CASE("status against a replica says its answer may be stale") {
    SentinelSetup& s = setup();
    const ProcessResult text = run_dlock_at(s.replica().tcp_url(), {"status", "stale-job"});
    CHECK(text.exit_code == 1);
    CHECK(text.err.find("replica: this answer may be stale") != std::string::npos);
    const ProcessResult json =
        run_dlock_at(s.replica().tcp_url(), {"status", "stale-job", "--json"});
    CHECK(nlohmann::json::parse(json.out)["stale"] == true);
    const ProcessResult master =
        run_dlock_at(s.master().tcp_url(), {"status", "stale-job", "--json"});
    CHECK(nlohmann::json::parse(master.out)["stale"] == false);
    CHECK(master.err.empty());
}

TEST_CASE("redis:// pointed at a sentinel says to use redis+sentinel://, never quoting a script") {
    SentinelSetup& s = setup();
    const std::string address = "127.0.0.1:" + std::to_string(s.sentinel(1).port());
    for (const char* command : {"acquire", "status"}) {
        const ProcessResult result = run_dlock_at("redis://" + address, {command, "job"});
        CHECK(result.exit_code == 69);
        CHECK(line_count(result.err) == 1);
        CHECK(result.err == "dlock: " + address + " is a Redis Sentinel; use redis+sentinel://" +
                                address + "/MASTER\n");
        CHECK(result.err.find("redis.call") == std::string::npos);
    }
}

// Whether a client of `sentinel` asked it SENTINEL MASTER last (the second of dlock's two
// questions; the sentinels ask each other other things).
bool asked_for_the_master(RedisServer& sentinel) {
    return sentinel.command({"CLIENT", "LIST"}).find("cmd=sentinel|master") != std::string::npos;
}

TEST_CASE("the sentinels are asked at once: a stopped first sentinel does not hold back the "
          "question to the others") {
    SentinelSetup& s = setup();
    REQUIRE_FALSE(asked_for_the_master(s.sentinel(1)));
    ::kill(s.sentinel(0).pid(), SIGSTOP);
    Child status(dlock_with(s.url(), {"--timeout", "5s", "status", "asked-at-once"}));
    // Asked one after another, the second sentinel would hear nothing until the first answered.
    const auto limit = Clock::now() + 3s;
    bool asked = false;
    while (!(asked = asked_for_the_master(s.sentinel(1))) && Clock::now() < limit)
        std::this_thread::sleep_for(10ms);
    ::kill(s.sentinel(0).pid(), SIGCONT);
    const ProcessResult result = status.wait();
    CHECK(asked);
    CHECK_MESSAGE(result.exit_code == 1, result.err); // answered: the lock is free
}

TEST_CASE("when no sentinel names a master, dlock exits 69 saying what each sentinel said") {
    SentinelSetup& s = setup();
    const int dead = free_tcp_port();
    const std::string url = "redis+sentinel://127.0.0.1:" + std::to_string(s.sentinel(0).port()) +
                            ",127.0.0.1:" + std::to_string(dead) + "/no-such-master";
    const auto start = Clock::now();
    const ProcessResult result = run_dlock_at(url, {"acquire", "job", "--timeout", "1s"});
    CHECK(Clock::now() - start < 10s);
    CHECK(result.exit_code == 69);
    CHECK(line_count(result.err) == 1);
    CHECK(result.err.find("No such master with that name") != std::string::npos);
    CHECK(result.err.find("127.0.0.1:" + std::to_string(dead) + ": Connection refused") !=
          std::string::npos);
}

TEST_CASE("DLOCK_SENTINEL_PASSWORD logs in to sentinels that want a password, and never shows") {
    RedisServer master(RedisServer::Options{{"--requirepass", "master-secret"}, true});
    RedisServer sentinel(RedisServer::Options{
        {},
        true,
        {"sentinel monitor guarded 127.0.0.1 " + std::to_string(master.port()) + " 1",
         "sentinel auth-pass guarded master-secret", "requirepass sentinel-secret"}});
    const std::string url =
        "redis+sentinel://127.0.0.1:" + std::to_string(sentinel.port()) + "/guarded";
    const ProcessResult refused =
        run_dlock_at(url, {"acquire", "guarded-job"}, {"DLOCK_REDIS_PASSWORD=master-secret"});
    CHECK(refused.exit_code == 69);
    CHECK(line_count(refused.err) == 1);
    CHECK(refused.err.find("NOAUTH") != std::string::npos);
    const ProcessResult taken = run_dlock_at(
        url, {"acquire", "guarded-job"},
        {"DLOCK_REDIS_PASSWORD=master-secret", "DLOCK_SENTINEL_PASSWORD=sentinel-secret"});
    CHECK(taken.exit_code == 0);
    const ProcessResult wrong = run_dlock_at(
        url, {"status", "guarded-job"},
        {"DLOCK_REDIS_PASSWORD=master-secret", "DLOCK_SENTINEL_PASSWORD=wrong-secret"});
    CHECK(wrong.exit_code == 69);
    for (const ProcessResult* result : {&refused, &taken, &wrong}) {
        CHECK(result->err.find("secret") == std::string::npos);
        CHECK(result->out.find("secret") == std::string::npos);
    }
}

TEST_CASE("kill -9 of the master while run holds a lock: no overlap with a waiter through the "
          "sentinels, and block --wait inf takes its lock on the new master") {
    SentinelSetup& s = setup();
    const HolderLog log;
    RedisServer& promoted = s.replica();
    Child first(
        dlock_with(s.url(), with({"run", "--ttl", "3s", "killed-run"}, log.command("first", "6"))));
    REQUIRE(eventually([&] { return log.entered("first"); }, 20s));
    Child second(dlock_with(s.url(), with({"run", "--ttl", "3s", "--wait", "inf", "killed-run"},
                                          log.command("second", "0.2"))));
    const ProcessResult held = run_dlock_at(s.url(), {"acquire", "killed-block", "--ttl", "3s"});
    REQUIRE(held.exit_code == 0);
    Child waiter(dlock_with(s.url(), {"block", "killed-block", "--wait", "inf", "--ttl", "20s"}));
    REQUIRE(s.master().wait_for_blocked_clients(2, 20s));

    s.kill_master();
    REQUIRE(s.wait_named(promoted, 60s));

    REQUIRE(first.wait_for(60s));
    REQUIRE(second.wait_for(60s));
    const ProcessResult first_result = first.wait();
    const ProcessResult second_result = second.wait();
    REQUIRE(waiter.wait_for(60s));
    const ProcessResult taken = waiter.wait();
    s.restore();
    INFO(log.text(), first_result.err, second_result.err, taken.err);
    // Renewed on the new master when it was promoted within the lease, else lost (79).
    CHECK((first_result.exit_code == 0 || first_result.exit_code == 79));
    CHECK(second_result.exit_code == 0);
    const auto spans = log.spans();
    REQUIRE(spans.size() == 2);
    CHECK(spans.at("first").second < spans.at("second").first);
    REQUIRE(taken.exit_code == 0);
    CHECK(holder_on(promoted, "killed-block") == first_line(taken.out));
}
