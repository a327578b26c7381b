// Redis Cluster end to end: three real masters (redis-cli --cluster create), started once for
// this executable, and the dlock binary pointed at one node, at a unix socket of one node, or at
// seeds. Keys are picked by the slot they hash to, so every test covers every node.
#include "dlock/redis_cluster.hpp"
#include "support/observe.hpp"
#include "support/process.hpp"
#include "support/redis_cluster.hpp"

#include <algorithm>
#include <chrono>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <set>
#include <signal.h>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace dlock::test;
using json = nlohmann::json;

std::string node_url(std::size_t index) {
    return "redis://127.0.0.1:" + std::to_string(shared_cluster().node(index).port());
}

// dlock's name in Redis for a lock KEY (the default prefix and layout).
std::string lock_name(const std::string& key) {
    return "dlock:{" + key + "}";
}

// A key of the form STEM-N whose lock lives on node `owner`.
std::string key_on(std::size_t owner, const std::string& stem) {
    for (int n = 0;; ++n) {
        const std::string key = stem + "-" + std::to_string(n);
        if (shared_cluster().owner_of(lock_name(key)) == owner)
            return key;
    }
}

// How many errors of a kind (MOVED, ASK, TRYAGAIN) a node has answered so far.
long error_count(const RedisServer& server, const std::string& kind) {
    const std::string stats = server.command({"INFO", "errorstats"});
    const std::string field = "errorstat_" + kind + ":count=";
    const auto at = stats.find(field);
    return at == std::string::npos ? 0 : std::stol(stats.substr(at + field.size()));
}

// How many ASKING commands a node has served.
long asking_count(const RedisServer& server) {
    const std::string stats = server.command({"INFO", "commandstats"});
    const auto at = stats.find("cmdstat_asking:calls=");
    return at == std::string::npos ? 0 : std::stol(stats.substr(at + 21));
}

} // namespace

TEST_CASE("key_slot hashes as Redis Cluster does, hash tags included") {
    RedisCluster& cluster = shared_cluster();
    for (const std::string key : {"123456789", "job", "dlock:{job}", "dlock:{job}:holder",
                                  "{}empty-tag", "a{b}c{d}", "{withdraw_funds_user_7}", "x{"})
        CHECK(dlock::redis::key_slot(key) == cluster.slot_of(key));
    CHECK(dlock::redis::key_slot("123456789") == 12739); // CRC16/XMODEM's check value
}

TEST_CASE("nothing is asked up front: a lone Redis, or the key's own node, gets one EVAL alone") {
    // The commands a server has run, as "name:calls ", but those a lock script runs inside
    // (which the counts include) and the test's own (INFO, the fixture's PING, CONFIG RESETSTAT).
    const std::set<std::string> not_dlocks{
        "info", "ping",    "config|resetstat", "get",  "set",     "del",   "exists",
        "incr", "time",    "pexpire",          "pttl", "publish", "rpush", "hset",
        "hget", "hgetall", "hincrby",          "hdel", "lindex",  "lpop",  "lrange",
        "lrem", "type"};
    const auto commands_run = [&](const RedisServer& server) {
        std::string out;
        const std::string stats = server.command({"INFO", "commandstats"});
        for (std::size_t at = stats.find("cmdstat_"); at != std::string::npos;
             at = stats.find("cmdstat_", at + 1)) {
            const std::string name = stats.substr(at + 8, stats.find(':', at) - at - 8);
            const std::size_t calls = stats.find("calls=", at) + 6;
            if (not_dlocks.count(name) == 0)
                out += name + ":" + stats.substr(calls, stats.find(',', calls) - calls) + " ";
        }
        return out;
    };
    RedisServer lone;
    REQUIRE(run_dlock_at(lone.url(), {"acquire", "job"}).exit_code == 0);
    CHECK(commands_run(lone) == "eval:1 ");

    RedisCluster& cluster = shared_cluster();
    const std::string key = key_on(2, "direct");
    REQUIRE(cluster.node(2).command({"CONFIG", "RESETSTAT"}) == "OK");
    REQUIRE(run_dlock_at(node_url(2), {"acquire", key}).exit_code == 0);
    CHECK(commands_run(cluster.node(2)) == "eval:1 ");
    CHECK(run_dlock_at(node_url(2), {"force-release", key}).exit_code == 0);
}

TEST_CASE(
    "through one node's URL, 50 keys on every node are each acquired, inspected and released") {
    RedisCluster& cluster = shared_cluster();
    // Half through the node's TCP port, half through its unix socket.
    const std::vector<std::string> urls{node_url(0), cluster.node(0).url()};
    std::set<std::size_t> owners;
    for (int i = 0; i < 50; ++i) {
        const std::string key = "fifty-" + std::to_string(i);
        const std::string& url = urls[i % 2];
        const std::size_t owner = cluster.owner_of(lock_name(key));
        owners.insert(owner);
        CAPTURE(key);
        CAPTURE(owner);

        const ProcessResult acquired = run_dlock_at(url, {"acquire", key, "--json"});
        REQUIRE(acquired.exit_code == 0);
        const std::string token = json::parse(acquired.out)["token"];
        CHECK(cluster.node(owner).command({"GET", lock_name(key)}) == token);

        const ProcessResult status = run_dlock_at(url, {"status", key, "--json"});
        REQUIRE(status.exit_code == 0);
        CHECK(json::parse(status.out)["holder"] == token);

        const ProcessResult released = run_dlock_at(url, {"release", key, "--owner", token});
        CHECK(released.exit_code == 0);
        CHECK(released.err.empty());
        CHECK(cluster.node(owner).command({"EXISTS", lock_name(key)}) == "0");
    }
    CHECK(owners.size() == cluster.size());
}

TEST_CASE("block, extend, force-release, run and list work on every node through one node's URL") {
    RedisCluster& cluster = shared_cluster();
    const std::string url = node_url(0);
    std::vector<std::string> keys;
    for (std::size_t owner = 0; owner < cluster.size(); ++owner) {
        const std::string key = key_on(owner, "verbs");
        keys.push_back(key);
        CAPTURE(key);
        RedisServer& server = cluster.node(owner);

        const ProcessResult held = run_dlock_at(url, {"acquire", key, "--ttl", "1m", "--json"});
        REQUIRE(held.exit_code == 0);
        const std::string token = json::parse(held.out)["token"];

        // block waits inside the owner node (BLPOP), and the release there wakes it.
        Child waiter(dlock_argv({"--redis", url, "block", key, "--wait", "20s", "--json"}));
        REQUIRE(server.wait_for_blocked_clients(1, std::chrono::seconds(10)));
        REQUIRE(run_dlock_at(url, {"release", key, "--owner", token}).exit_code == 0);
        const ProcessResult blocked = waiter.wait();
        REQUIRE(blocked.exit_code == 0);
        const std::string waiter_token = json::parse(blocked.out)["token"];
        CHECK(server.command({"GET", lock_name(key)}) == waiter_token);

        CHECK(
            run_dlock_at(url, {"extend", key, "--owner", waiter_token, "--ttl", "5m"}).exit_code ==
            0);
        CHECK(std::stol(server.command({"PTTL", lock_name(key)})) > 60'000);

        const ProcessResult forced = run_dlock_at(url, {"force-release", key});
        CHECK(forced.exit_code == 0);
        CHECK(contains(forced.out, waiter_token));
        CHECK(server.command({"EXISTS", lock_name(key)}) == "0");

        // run: acquire, renewals every TTL/3, release.
        const ProcessResult ran = run_dlock_at(
            url, {"run", key, "--ttl", "1s", "--", "sh", "-c", "sleep 0.7; echo done"});
        CHECK(ran.exit_code == 0);
        CHECK(ran.out == "done\n");
        CHECK(server.command({"EXISTS", lock_name(key)}) == "0");

        REQUIRE(run_dlock_at(url, {"acquire", key, "--ttl", "1m"}).exit_code == 0);
    }

    // list SCANs every master: the three locks, one per node, all listed through node 0.
    const ProcessResult listed = run_dlock_at(url, {"list", "verbs-*", "--json"});
    REQUIRE(listed.exit_code == 0);
    std::set<std::string> listed_keys;
    for (const json& lock : json::parse(listed.out))
        listed_keys.insert(lock["key"].get<std::string>());
    CHECK(listed_keys == std::set<std::string>(keys.begin(), keys.end()));
    for (const std::string& key : keys)
        CHECK(run_dlock_at(url, {"force-release", key}).exit_code == 0);
}

TEST_CASE("a slot in migration: ASK is followed with ASKING, TRYAGAIN waited out, then MOVED") {
    RedisCluster& cluster = shared_cluster();
    const std::string key = key_on(1, "migrating");
    const std::string name = lock_name(key);
    const int slot = cluster.slot_of(name);
    const std::size_t from = 1;
    const std::size_t to = 2;
    const std::string url = node_url(0);

    const ProcessResult held = run_dlock_at(url, {"acquire", key, "--ttl", "5m", "--json"});
    REQUIRE(held.exit_code == 0);
    const std::string token = json::parse(held.out)["token"];

    cluster.begin_migration(slot, from, to);
    cluster.migrate_keys(slot, from, to);
    // The lock, its holder and its fence now live on the importing node alone; the migrating
    // node, which still serves the slot, sends their askers there.
    REQUIRE(cluster.node(from).command({"TYPE", name}).rfind("ASK ", 0) == 0);
    REQUIRE(cluster.node(to).command({"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)}) == "3");

    // status reads exactly those three: the importing node answers it after ASKING.
    const long asked_before = asking_count(cluster.node(to));
    const ProcessResult status = run_dlock_at(url, {"status", key, "--json"});
    CAPTURE(status.err);
    REQUIRE(status.exit_code == 0);
    CHECK(json::parse(status.out)["holder"] == token);
    CHECK(asking_count(cluster.node(to)) > asked_before);

    // release touches names that exist on neither node yet: TRYAGAIN, until the migration ends.
    const long try_again_before = error_count(cluster.node(to), "TRYAGAIN");
    Child release(
        dlock_argv({"--redis", url, "--timeout", "30s", "release", key, "--owner", token}));
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (error_count(cluster.node(to), "TRYAGAIN") == try_again_before &&
           std::chrono::steady_clock::now() < limit)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(error_count(cluster.node(to), "TRYAGAIN") > try_again_before);
    cluster.finish_migration(slot, to);
    const ProcessResult released = release.wait();
    CAPTURE(released.err);
    CHECK(released.exit_code == 0);
    CHECK(cluster.node(to).command({"EXISTS", name}) == "0");

    // The old owner now answers MOVED, and the next lock lands on the new one.
    const long moved_before = error_count(cluster.node(from), "MOVED");
    const ProcessResult again = run_dlock_at(cluster.node(from).url(), {"acquire", key});
    REQUIRE(again.exit_code == 0);
    CHECK(error_count(cluster.node(from), "MOVED") > moved_before);
    CHECK(cluster.node(to).command({"GET", name}) + "\n" == again.out);
    CHECK(run_dlock_at(url, {"force-release", key}).exit_code == 0);
}

TEST_CASE("a waiter whose lock's slot moves to another node follows it and gets the lock") {
    RedisCluster& cluster = shared_cluster();
    const std::string key = key_on(1, "moving-wait");
    const std::string name = lock_name(key);
    const int slot = cluster.slot_of(name);
    const std::string url = node_url(0);
    const ProcessResult held = run_dlock_at(url, {"acquire", key, "--ttl", "5m", "--json"});
    REQUIRE(held.exit_code == 0);
    const std::string token = json::parse(held.out)["token"];

    Child waiter(dlock_argv({"--redis", url, "block", key, "--wait", "30s", "--json"}));
    REQUIRE(cluster.node(1).wait_for_blocked_clients(1, std::chrono::seconds(10)));
    // The waiter is blocked on node 1 when its slot, queue and all, moves to node 2; node 1
    // then ends the wait with MOVED.
    const long moved_before = error_count(cluster.node(1), "MOVED");
    cluster.begin_migration(slot, 1, 2);
    cluster.migrate_keys(slot, 1, 2);
    cluster.finish_migration(slot, 2);
    const ProcessResult released = run_dlock_at(url, {"release", key, "--owner", token});
    CAPTURE(released.err);
    REQUIRE(released.exit_code == 0);
    const ProcessResult blocked = waiter.wait();
    CAPTURE(blocked.err);
    REQUIRE(blocked.exit_code == 0);
    CHECK(cluster.node(2).command({"GET", name}) == json::parse(blocked.out)["token"]);
    CHECK(error_count(cluster.node(1), "MOVED") > moved_before);
    CHECK(run_dlock_at(url, {"force-release", key}).exit_code == 0);
}

TEST_CASE("a call that stays inside a migrating slot past --timeout exits 69 and says why") {
    RedisCluster& cluster = shared_cluster();
    const std::string key = key_on(0, "stuck");
    const int slot = cluster.slot_of(lock_name(key));
    cluster.begin_migration(slot, 0, 1);
    const ProcessResult stuck = run_dlock_at(node_url(2), {"--timeout", "300ms", "acquire", key});
    cluster.finish_migration(slot, 1);
    CHECK(stuck.exit_code == 69);
    CHECK(contains(stuck.err, "TRYAGAIN"));
    CHECK(contains(stuck.err, "slot " + std::to_string(slot) + " was still being migrated"));
    CHECK(line_count(stuck.err) == 1);
    CHECK(run_dlock_at(node_url(2), {"acquire", key}).exit_code == 0);
    CHECK(run_dlock_at(node_url(2), {"force-release", key}).exit_code == 0);
}

TEST_CASE("nodes that disagree on a slot's owner: 69 at --timeout, never an endless loop") {
    RedisCluster& cluster = shared_cluster();
    const std::string key = key_on(1, "disputed");
    const int slot = cluster.slot_of(lock_name(key));
    // Node 1 hands the slot to node 2, which never heard of it: each sends askers to the other.
    cluster.tell(1, slot, 2);
    const ProcessResult looped = run_dlock_at(node_url(0), {"--timeout", "300ms", "acquire", key});
    cluster.tell(1, slot, 1);
    CHECK(looped.exit_code == 69);
    CHECK(contains(looped.err,
                   "kept redirecting slot " + std::to_string(slot) + " for 300ms; its nodes"));
    CHECK(line_count(looped.err) == 1);
    CHECK(run_dlock_at(node_url(0), {"acquire", key}).exit_code == 0);
    CHECK(run_dlock_at(node_url(0), {"force-release", key}).exit_code == 0);
}

TEST_CASE("redis+cluster:// starts from the next seed when the first is down") {
    RedisCluster& cluster = shared_cluster();
    const std::string down = "127.0.0.1:" + std::to_string(free_tcp_port());
    const std::string url =
        "redis+cluster://" + down + ",127.0.0.1:" + std::to_string(cluster.node(1).port()) + "/";
    for (std::size_t owner = 0; owner < cluster.size(); ++owner) {
        const std::string key = key_on(owner, "seeded");
        const ProcessResult acquired = run_dlock_at(url, {"acquire", key, "--json"});
        CAPTURE(acquired.err);
        REQUIRE(acquired.exit_code == 0);
        const std::string token = json::parse(acquired.out)["token"];
        CHECK(cluster.node(owner).command({"GET", lock_name(key)}) == token);
        CHECK(run_dlock_at(url, {"release", key, "--owner", token}).exit_code == 0);
    }

    const std::string other_down = "127.0.0.1:" + std::to_string(free_tcp_port());
    const ProcessResult none = run_dlock_at(
        "redis+cluster://dlock:hunter2@" + down + "," + other_down, {"acquire", "job"});
    CHECK(none.exit_code == 69);
    CHECK(!contains(none.err, "hunter2"));
    CHECK(contains(none.err, "no seed of the Redis Cluster"));
    CHECK(contains(none.err, down));
    CHECK(contains(none.err, other_down));
    CHECK(line_count(none.err) == 1);
}

TEST_CASE("a database other than 0 on a cluster is a usage error that says why") {
    RedisCluster& cluster = shared_cluster();
    const ProcessResult selected = run_dlock_at(node_url(0) + "/1", {"acquire", "job"});
    CHECK(selected.exit_code == 64);
    CHECK(contains(selected.err, "SELECT is not allowed in cluster mode"));
    CHECK(contains(selected.err, "only database 0"));
    CHECK(line_count(selected.err) == 1);

    const ProcessResult seeded =
        run_dlock_at("redis+cluster://127.0.0.1:" + std::to_string(cluster.node(0).port()) + "/2",
                     {"acquire", "job"});
    CHECK(seeded.exit_code == 64);
    CHECK(contains(seeded.err, "only database 0"));
}

TEST_CASE("the plain layout: a key without a hash tag is refused with 64, a tagged one works") {
    const std::string url = node_url(0);
    // PREFIX+KEY and PREFIX+KEY:dlock:holder hash to different slots.
    REQUIRE(dlock::redis::key_slot("dlock:app-lock") !=
            dlock::redis::key_slot("dlock:app-lock:dlock:holder"));
    const ProcessResult untagged = run_dlock_at(url, {"--layout", "plain", "acquire", "app-lock"});
    CHECK(untagged.exit_code == 64);
    CHECK(contains(untagged.err, "CROSSSLOT"));
    CHECK(contains(untagged.err, "hash tag"));
    CHECK(line_count(untagged.err) == 1);

    const ProcessResult tagged =
        run_dlock_at(url, {"--layout", "plain", "acquire", "{app}-lock", "--json"});
    REQUIRE(tagged.exit_code == 0);
    const std::string token = json::parse(tagged.out)["token"];
    CHECK(run_dlock_at(url, {"--layout", "plain", "status", "{app}-lock"}).exit_code == 0);
    // A waiter on the plain layout polls in a cluster; the release frees it.
    Child waiter(dlock_argv(
        {"--redis", url, "--layout", "plain", "-v", "block", "{app}-lock", "--wait", "20s"}));
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!contains(waiter.err_so_far(), "waiting") && std::chrono::steady_clock::now() < limit)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    CHECK(run_dlock_at(url, {"--layout", "plain", "release", "{app}-lock", "--owner", token})
              .exit_code == 0);
    const ProcessResult blocked = waiter.wait();
    CHECK(blocked.exit_code == 0);
    CHECK(run_dlock_at(url, {"--layout", "plain", "force-release", "{app}-lock"}).exit_code == 0);
}

TEST_CASE("watch through one node hears the locks of every node, and infers their expiries") {
    RedisCluster& cluster = shared_cluster();
    const std::string url = node_url(0);
    Child watch(dlock_argv({"--redis", url, "watch", "watched-*"}));
    const auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!contains(watch.err_so_far(), "watching") && std::chrono::steady_clock::now() < limit)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(contains(watch.err_so_far(), "inferred"));
    std::vector<std::string> keys;
    for (std::size_t owner = 0; owner < cluster.size(); ++owner) {
        keys.push_back(key_on(owner, "watched"));
        REQUIRE(run_dlock_at(url, {"acquire", keys.back(), "--ttl", "1s"}).exit_code == 0);
    }
    const auto seen = [&](const std::string& event, const std::string& key) {
        const std::string out = watch.out_so_far();
        for (std::size_t at = out.find(event); at != std::string::npos;
             at = out.find(event, at + 1))
            if (out.compare(at + event.size(), key.size() + 2, "  " + key) == 0)
                return true;
        return false;
    };
    const auto all_seen = [&](const std::string& event) {
        return std::all_of(keys.begin(), keys.end(),
                           [&](const std::string& key) { return seen(event, key); });
    };
    while (!all_seen("expired") && std::chrono::steady_clock::now() < limit)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    watch.signal(SIGTERM);
    const ProcessResult watched = watch.wait();
    CAPTURE(watched.out);
    CHECK(watched.exit_code == 0);
    CHECK(all_seen("acquired"));
    CHECK(all_seen("expired"));
}

TEST_CASE(
    "a user with the documented ACL line on every node runs dlock on a cluster, list included") {
    RedisCluster& cluster = shared_cluster();
    for (std::size_t i = 0; i < cluster.size(); ++i)
        REQUIRE(cluster.node(i).command(documented_acl_setuser("cluster-secret")) == "OK");
    const std::string url =
        "redis://dlock:cluster-secret@127.0.0.1:" + std::to_string(cluster.node(0).port());
    for (std::size_t owner = 0; owner < cluster.size(); ++owner) {
        const std::string key = key_on(owner, "acl");
        const ProcessResult acquired = run_dlock_at(url, {"acquire", key, "--json"});
        CAPTURE(acquired.err);
        REQUIRE(acquired.exit_code == 0);
        CHECK(run_dlock_at(url, {"status", key}).exit_code == 0);
    }
    const ProcessResult listed = run_dlock_at(url, {"list", "acl-*", "--json"});
    CAPTURE(listed.err);
    REQUIRE(listed.exit_code == 0);
    CHECK(json::parse(listed.out).size() == cluster.size());
    for (std::size_t owner = 0; owner < cluster.size(); ++owner)
        CHECK(run_dlock_at(url, {"force-release", key_on(owner, "acl")}).exit_code == 0);
    for (std::size_t i = 0; i < cluster.size(); ++i)
        cluster.node(i).command({"ACL", "DELUSER", "dlock"});
}

TEST_CASE("the ledger's withdraw works on accounts whose lock slots sit on every node") {
    RedisCluster& cluster = shared_cluster();
    const std::string dir = make_temp_dir();
    const std::string url = node_url(0);
    const auto dlock = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"--db", dir + "/ledger.db"});
        return run_dlock_at(url, args);
    };
    std::set<std::size_t> covered;
    for (int account = 1; covered.size() < cluster.size(); ++account) {
        const std::size_t owner =
            cluster.owner_of(lock_name("withdraw_funds_user_" + std::to_string(account)));
        if (!covered.insert(owner).second)
            continue;
        CAPTURE(account);
        const std::string id = std::to_string(account);
        REQUIRE(dlock({"deposit", "--account", id, "--amount", "100"}).exit_code == 0);
        const ProcessResult withdrawn = dlock({"withdraw", "--account", id, "--amount", "30"});
        CAPTURE(withdrawn.err);
        CHECK(withdrawn.exit_code == 0);
        CHECK(withdrawn.err.empty());
        CHECK(dlock({"balance", "--account", id}).out == "70.00\n");
        // While another holds that account's lock, withdraw waits on its node, then gives up.
        REQUIRE(
            run_dlock_at(url, {"acquire", "withdraw_funds_user_" + id, "--ttl", "1m"}).exit_code ==
            0);
        CHECK(dlock({"withdraw", "--account", id, "--amount", "5", "--wait", "100ms"}).exit_code ==
              75);
        CHECK(run_dlock_at(url, {"force-release", "withdraw_funds_user_" + id}).exit_code == 0);
    }
    CHECK(dlock({"verify"}).exit_code == 0);
    remove_tree(dir);
}
