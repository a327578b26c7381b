// The lock commands when Redis misbehaves: restarts, pauses, strangers on the port, ACLs.
#include "support/fake_server.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using dlock::test::Child;
using dlock::test::FakeServer;
using dlock::test::line_count;
using dlock::test::ProcessResult;
using dlock::test::RedisServer;
using dlock::test::run_dlock_at;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

TEST_CASE("waiters get a clear error or the lock when Redis restarts, never two holders") {
    RedisServer server;
    const json first =
        json::parse(run_dlock_at(server.url(), {"acquire", "job", "--ttl", "1m", "--json"}).out);
    std::vector<std::unique_ptr<Child>> waiters;
    for (int i = 0; i < 4; ++i)
        waiters.push_back(std::make_unique<Child>(dlock::test::dlock_argv(
            {"--redis", server.url(), "block", "job", "--wait", "20s", "--json"})));
    REQUIRE(server.wait_for_blocked_clients(4, 20s));
    server.restart(); // no persistence: the lock and its fence counter are gone

    int holders = 0;
    for (auto& waiter : waiters) {
        const ProcessResult result = waiter->wait();
        CAPTURE(result.err);
        CHECK((result.exit_code == 0 || result.exit_code == 69));
        CHECK(line_count(result.err) == (result.exit_code == 0 ? 0 : 1));
        if (result.exit_code == 0) {
            ++holders;
            CHECK(json::parse(result.out)["fence"].get<std::int64_t>() >
                  first["fence"].get<std::int64_t>());
        }
    }
    CHECK(holders <= 1);
    const json after =
        json::parse(run_dlock_at(server.url(), {"block", "job", "--json", "--wait", "15s"}).out);
    CHECK(after["fence"].get<std::int64_t>() > first["fence"].get<std::int64_t>());
}

TEST_CASE("a paused Redis makes dlock time out with 69, not hang") {
    RedisServer server;
    server.command({"CLIENT", "PAUSE", "5000", "ALL"});
    const auto start = clock_type::now();
    const auto result = run_dlock_at(server.url(), {"--timeout", "300ms", "acquire", "job"});
    const auto took = clock_type::now() - start;
    CHECK(result.exit_code == 69);
    CHECK(result.err.find("timed out") != std::string::npos);
    CHECK(took < 3s); // --timeout plus a generous margin, far below the 5s pause
}

TEST_CASE("a server that is not Redis is refused with 69 and one line") {
    FakeServer http(FakeServer::Behaviour::answer,
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    const auto result = run_dlock_at(http.url(), {"acquire", "job"});
    CHECK(result.exit_code == 69);
    CHECK(line_count(result.err) == 1);

    FakeServer silent(FakeServer::Behaviour::silent);
    const auto start = clock_type::now();
    const auto quiet = run_dlock_at(silent.url(), {"--timeout", "300ms", "status", "job"});
    CHECK(quiet.exit_code == 69);
    CHECK(quiet.err.find("timed out") != std::string::npos);
    CHECK(clock_type::now() - start < 3s);
}

TEST_CASE("an ACL user limited to dlock's keys and commands can run every subcommand") {
    RedisServer server;
    REQUIRE(server.command(dlock::test::documented_acl_setuser("acl-secret")) == "OK");
    const std::string url = "unix://dlock:acl-secret@" + server.url().substr(7);

    const json lease = json::parse(run_dlock_at(url, {"acquire", "job", "--json"}).out);
    const std::string token = lease["token"];
    CHECK(run_dlock_at(url, {"status", "job"}).exit_code == 0);
    CHECK(run_dlock_at(url, {"extend", "job", "--owner", token, "--ttl", "1m"}).exit_code == 0);
    CHECK(run_dlock_at(url, {"block", "job", "--wait", "100ms"}).exit_code == 75); // BLPOP
    CHECK(run_dlock_at(url, {"release", "job", "--owner", token}).exit_code == 0);
    CHECK(run_dlock_at(url, {"acquire", "job"}).exit_code == 0);
    CHECK(run_dlock_at(url, {"list"}).exit_code == 0); // SCAN
    CHECK(run_dlock_at(url, {"force-release", "job"}).exit_code == 0);
    CHECK(run_dlock_at(url + "?db=3", {"acquire", "in-db-3"}).exit_code == 0); // SELECT

    // run: acquire, renewals (extend, every TTL/3), release.
    const auto ran = run_dlock_at(url, {"run", "job", "--ttl", "1s", "--", "sleep", "0.7"});
    CAPTURE(ran.err);
    CHECK(ran.exit_code == 0);
    CHECK(ran.err.empty());
    CHECK(run_dlock_at(url, {"acquire", "job", "--ttl", "1m"}).exit_code == 0);
    CHECK(run_dlock_at(url, {"run", "job", "-n", "--", "true"}).exit_code == 75);
    CHECK(run_dlock_at(url, {"run", "job", "--wait", "100ms", "--", "true"}).exit_code == 75);

    // The ledger's locked commands: withdraw (block, then release with PUBLISH) and invoice
    // process (one attempt), also when they find the lock busy.
    const std::string dir = dlock::test::make_temp_dir();
    const std::string db = dir + "/ledger.db";
    const auto ledger = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"--db", db});
        return run_dlock_at(url, args);
    };
    CHECK(ledger({"deposit", "--account", "1", "--amount", "50"}).exit_code == 0);
    const auto withdrawn = ledger({"withdraw", "--account", "1", "--amount", "5"});
    CAPTURE(withdrawn.err);
    CHECK(withdrawn.exit_code == 0);
    CHECK(withdrawn.err.empty());
    CHECK(ledger({"invoice", "create", "--account", "1", "--amount", "5"}).exit_code == 0);
    CHECK(ledger({"invoice", "process", "1"}).out == "paid 40.00\n");
    CHECK(run_dlock_at(url, {"acquire", "withdraw_funds_user_1", "--ttl", "1m"}).exit_code == 0);
    CHECK(ledger({"withdraw", "--account", "1", "--amount", "5", "--wait", "100ms"}).exit_code ==
          75);
    CHECK(run_dlock_at(url, {"acquire", "invoice_2", "--ttl", "1m"}).exit_code == 0);
    CHECK(ledger({"invoice", "create", "--account", "1", "--amount", "5"}).exit_code == 0);
    CHECK(ledger({"invoice", "process", "2"}).out == "processing\n");
    CHECK(ledger({"balance", "--account", "1"}).out == "40.00\n");
    CHECK(ledger({"verify"}).exit_code == 0);
    dlock::test::remove_tree(dir);

    const auto outside = run_dlock_at(url, {"--prefix", "other:", "acquire", "job"});
    CHECK(outside.exit_code == 69);
    CHECK(outside.err.find("NOPERM") != std::string::npos);
    CHECK(outside.err.find("acl-secret") == std::string::npos);
}

TEST_CASE("a read-only replica is refused with 69, naming its master, not with a raw READONLY") {
    RedisServer master(RedisServer::Options{{}, true});
    const std::string master_port = std::to_string(master.port());
    RedisServer replica(RedisServer::Options{{"--replicaof", "127.0.0.1", master_port}, false});
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"acquire", "job"}, {"--json", "run", "job", "--", "true"}}) {
        const ProcessResult result = run_dlock_at(replica.url(), args);
        CAPTURE(result.err);
        CHECK(result.exit_code == 69);
        CHECK(result.err.find(
                  replica.url() + " is a read-only replica of 127.0.0.1:" + master_port +
                  "; point dlock at the master (or use redis+sentinel://)") != std::string::npos);
        CHECK(line_count(result.err) == 1);
        CHECK(result.err.find("READONLY") == std::string::npos);
        CHECK(result.err.find("redis.call") == std::string::npos); // no script source
    }
}
