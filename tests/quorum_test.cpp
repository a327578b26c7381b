// The quorum lock over 3 and 5 independent redis-servers (started once for this executable):
// every operation, servers down, paused and restarted empty, fences that stay strictly
// increasing whichever majority answers, mutual exclusion of `dlock run`, and the ledger's fence
// refusing a holder the quorum lost. Time bounds are generous: they prove a mechanism (a timeout
// that caps a hung server), not speed.
#include "dlock/backends.hpp"
#include "dlock/quorum_lock.hpp"
#include "support/observe.hpp"
#include "support/process.hpp"
#include "support/quorum_servers.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <doctest/doctest.h>
#include <fstream>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using dlock::LockService;
using dlock::Millis;
using dlock::OwnerCheck;
using dlock::test::Child;
using dlock::test::contains;
using dlock::test::eventually;
using dlock::test::process_state;
using dlock::test::ProcessResult;
using dlock::test::QuorumServers;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

Millis since(Clock::time_point start) {
    return std::chrono::duration_cast<Millis>(Clock::now() - start);
}

std::string join(const std::vector<std::string>& urls) {
    std::string out;
    for (const std::string& url : urls)
        out += (out.empty() ? "" : " ") + url;
    return out;
}

// A client of the quorum of the given URLs, with its own connections (as a process has).
std::unique_ptr<LockService> quorum_client(const std::vector<std::string>& urls,
                                           Millis timeout = 500ms) {
    dlock::LockConfig config;
    config.url = join(urls);
    config.timeout = timeout;
    config.identity = dlock::this_process("quorum_test");
    return dlock::open_lock_service(config);
}

// The shared servers, reset to running and empty, as each test starts.
QuorumServers& servers() {
    QuorumServers& shared = QuorumServers::shared();
    shared.reset();
    return shared;
}

// The fencing counter of KEY on one server.
std::int64_t counter_on(dlock::test::RedisServer& server, const std::string& key) {
    return std::stoll(server.command({"GET", "dlock:{" + key + "}:fence"}));
}

// A holder that takes withdraw_funds_user_1 (`dlock ACQUIRE... --json`), stops itself before
// its write, and once continued withdraws 10.00 with the fence it was given. Returns when it has
// stopped, with the fence.
struct PausedHolder {
    std::unique_ptr<Child> process;
    std::int64_t fence = 0;
};
PausedHolder paused_holder(const std::vector<std::string>& env, const std::string& lease_file,
                           const std::vector<std::string>& acquire) {
    std::vector<std::string> argv{"/bin/sh", "-c", R"sh(
lease=$1
shift
"$DLOCK_BIN" "$@" --json >"$lease" || exit 3
kill -STOP $$
fence=$(sed -n 's/.*"fence":\([0-9]*\).*/\1/p' "$lease")
exec "$DLOCK_BIN" withdraw --account 1 --amount 10 --fence "$fence" \
    --lock-key withdraw_funds_user_1 --json
)sh",
                                  "sh", lease_file};
    argv.insert(argv.end(), acquire.begin(), acquire.end());
    PausedHolder holder{std::make_unique<Child>(argv, env)};
    REQUIRE(eventually([&] { return process_state(holder.process->pid()) == 'T'; }, 20s));
    holder.fence = json::parse(dlock::test::read_file(lease_file))["fence"].get<std::int64_t>();
    return holder;
}

ProcessResult dlock_on(const QuorumServers& quorum, std::size_t n, std::vector<std::string> args,
                       const std::vector<std::string>& env = {}) {
    std::vector<std::string> all = quorum.redis_args(n);
    all.insert(all.end(), args.begin(), args.end());
    return dlock::test::run_dlock(all, env);
}

} // namespace

TEST_CASE("quorum: every lock operation works on 3 and on 5 servers") {
    QuorumServers& quorum = servers();
    for (const std::size_t n : {std::size_t{3}, std::size_t{5}}) {
        CAPTURE(n);
        const auto a = quorum_client(quorum.urls(n));
        const auto b = quorum_client(quorum.urls(n));
        const std::string key = "every-op-" + std::to_string(n);

        const dlock::AcquireResult first = a->try_acquire(key, 10s);
        REQUIRE(first.acquired());
        for (std::size_t i = 0; i < n; ++i) // taken on every server, each storing the fence
            CHECK(quorum[i].command({"GET", "dlock:{" + key + "}"}) == first.lease->token);

        const dlock::AcquireResult busy = b->try_acquire(key, 10s);
        CHECK_FALSE(busy.acquired());
        REQUIRE(busy.holder_ttl);
        CHECK(*busy.holder_ttl > 5s);
        REQUIRE(busy.holder);
        CHECK(busy.holder->who.command == "quorum_test");

        const dlock::LockStatus status = b->status(key);
        CHECK(status.holder == first.lease->token);
        // The highest counter: a server that answered after the majority may count further.
        CHECK(status.fence >= first.lease->fence);
        CHECK(status.servers.size() == n);
        REQUIRE(status.details);
        CHECK(status.details->who.command == "quorum_test");

        CHECK(b->extend(key, dlock::new_owner_token(), 10s) == OwnerCheck::not_owner);
        CHECK(a->extend(key, first.lease->token, 20s) == OwnerCheck::done);
        CHECK(*b->status(key).ttl > 15s);
        CHECK(b->release(key, dlock::new_owner_token()) == OwnerCheck::not_owner);
        CHECK(a->release(key, first.lease->token) == OwnerCheck::done);
        CHECK_FALSE(b->status(key).holder);
        CHECK(a->release(key, first.lease->token) == OwnerCheck::not_held);

        const dlock::AcquireResult second = b->try_acquire(key, 10s);
        REQUIRE(second.acquired());
        CHECK(second.lease->fence > first.lease->fence);
        const dlock::ForceReleaseResult forced = a->force_release(key, std::nullopt);
        CHECK(forced.released);
        CHECK(forced.holder == second.lease->token);
        CHECK_FALSE(a->status(key).holder);

        const dlock::AcquireResult third = a->try_acquire(key, 10s);
        REQUIRE(third.acquired());
        const std::vector<dlock::LockListing> listed = b->list("every-op-*");
        REQUIRE(listed.size() == 1);
        CHECK(listed[0].key == key);
        CHECK(a->release(key, third.lease->token) == OwnerCheck::done);
    }
}

TEST_CASE("quorum: a waiter is woken by a release on the servers, long before the holder's TTL") {
    QuorumServers& quorum = servers();
    for (const std::size_t n : {std::size_t{3}, std::size_t{5}}) {
        CAPTURE(n);
        const auto holder = quorum_client(quorum.urls(n));
        const dlock::AcquireResult held = holder->try_acquire("wake", 30s);
        REQUIRE(held.acquired());
        auto waited = std::async(std::launch::async, [&] {
            const auto waiter = quorum_client(quorum.urls(n));
            const auto start = Clock::now();
            const dlock::AcquireResult result = waiter->block("wake", 10s, 20s);
            if (result.acquired())
                waiter->release("wake", result.lease->token);
            return std::make_pair(result.acquired(), since(start));
        });
        // The waiter listens on every server's events channel before it waits.
        REQUIRE(eventually(
            [&] {
                for (std::size_t i = 0; i < n; ++i)
                    if (quorum[i].command({"PUBSUB", "NUMSUB", "dlock:{wake}:events"}) !=
                        "dlock:{wake}:events\n1")
                        return false;
                return true;
            },
            10s));
        CHECK(holder->release("wake", held.lease->token) == OwnerCheck::done);
        const auto [acquired, took] = waited.get();
        CHECK(acquired);
        CHECK(took < 10s); // not the holder's 30s TTL
    }
}

TEST_CASE("quorum: every subcommand works from the command line with 3 and 5 servers") {
    QuorumServers& quorum = servers();
    for (const std::size_t n : {std::size_t{3}, std::size_t{5}}) {
        CAPTURE(n);
        const ProcessResult acquired = dlock_on(quorum, n, {"acquire", "cli", "--json"});
        REQUIRE(acquired.exit_code == 0);
        const json lease = json::parse(acquired.out);
        const std::string token = lease["token"];

        const ProcessResult busy = dlock_on(quorum, n, {"acquire", "cli"});
        CHECK(busy.exit_code == 75);

        const ProcessResult status = dlock_on(quorum, n, {"status", "cli", "--json"});
        CHECK(status.exit_code == 0);
        const json state = json::parse(status.out);
        CHECK(state["holder"] == token);
        CHECK(state["fence"] >= lease["fence"]);
        REQUIRE(state["servers"].size() == n);
        CHECK(state["servers"][0]["holder"] == token);
        const ProcessResult people = dlock_on(quorum, n, {"status", "cli"});
        CHECK(contains(people.out,
                       "quorum: " + std::to_string(n) + " of " + std::to_string(n) + " servers"));

        CHECK(dlock_on(quorum, n, {"extend", "cli", "--owner", token, "--ttl", "30s"}).exit_code ==
              0);
        CHECK(dlock_on(quorum, n, {"release", "cli", "--owner", token}).exit_code == 0);
        CHECK(dlock_on(quorum, n, {"release", "cli", "--owner", token}).exit_code != 0);

        // The same servers through DLOCK_REDIS_URL, separated by spaces.
        const std::vector<std::string> env{"DLOCK_REDIS_URL=" + quorum.url_list(n)};
        const ProcessResult again = dlock::test::run_dlock({"acquire", "cli", "--json"}, env);
        REQUIRE(again.exit_code == 0);
        CHECK(json::parse(again.out)["fence"].get<std::int64_t>() > lease["fence"]);
        CHECK(dlock::test::run_dlock({"force-release", "cli"}, env).exit_code == 0);

        // block waits for a holder's release; run holds the lock around a command.
        const std::string held =
            json::parse(dlock_on(quorum, n, {"acquire", "cli", "--json"}).out)["token"];
        Child releaser(
            {"/bin/sh", "-c", "sleep 0.3; exec \"$DLOCK_BIN\" release cli --owner " + held},
            {"DLOCK_REDIS_URL=" + quorum.url_list(n), std::string("DLOCK_BIN=") + DLOCK_BINARY});
        const ProcessResult blocked =
            dlock_on(quorum, n, {"block", "cli", "--wait", "20s", "--json"});
        CHECK(blocked.exit_code == 0);
        CHECK(releaser.wait().exit_code == 0);
        CHECK(dlock_on(quorum, n, {"force-release", "cli"}).exit_code == 0);
        const ProcessResult ran = dlock_on(quorum, n, {"run", "cli", "--", "sh", "-c", "echo ran"});
        CHECK(ran.exit_code == 0);
        CHECK(ran.out == "ran\n");
        CHECK(dlock_on(quorum, n, {"list", "--json"}).exit_code == 0);
    }
}

TEST_CASE("quorum: an even count or fewer than 3 servers is a usage error, and so is --replicas") {
    QuorumServers& quorum = servers();
    for (const std::size_t n : {std::size_t{2}, std::size_t{4}}) {
        const ProcessResult result = dlock_on(quorum, n, {"acquire", "k"});
        CAPTURE(result.err);
        CHECK(result.exit_code == 64);
        CHECK(contains(result.err, std::to_string(n) + " Redis servers given; a quorum takes 3, "
                                                       "5 or 7"));
    }
    const ProcessResult env =
        dlock::test::run_dlock({"acquire", "k"}, {"DLOCK_REDIS_URL=" + quorum.url_list(2)});
    CHECK(env.exit_code == 64);
    // Independent masters have no replicas to wait for: refused, not silently ignored.
    const ProcessResult replicas = dlock::test::run_dlock(
        {"acquire", "k"}, {"DLOCK_REDIS_URL=" + quorum.url_list(3), "DLOCK_REPLICAS=1"});
    CHECK(replicas.exit_code == 64);
    CHECK(contains(replicas.err, "--replicas"));
}

TEST_CASE("quorum: a config file names the servers as a TOML array or one spaced string") {
    QuorumServers& quorum = servers();
    const std::string dir = dlock::test::make_temp_dir();
    const std::vector<std::string> urls = quorum.urls(3);
    const std::string array =
        "redis_url = [\"" + urls[0] + "\", \"" + urls[1] + "\", \"" + urls[2] + "\"]\n";
    const std::string spaced = "redis_url = \"" + quorum.url_list(3) + "\"\n";
    for (const std::string& text : {array, spaced}) {
        CAPTURE(text);
        const std::string file = dir + "/dlock.conf";
        std::ofstream(file) << text;
        const ProcessResult status =
            dlock::test::run_dlock({"--config", file, "status", "conf", "--json"});
        CAPTURE(status.err);
        REQUIRE(status.exit_code == 1); // free
        CHECK(json::parse(status.out)["servers"].size() == 3);
    }
    dlock::test::remove_tree(dir);
}

TEST_CASE("quorum: one server down (connection refused) leaves a working lock") {
    QuorumServers& quorum = servers();
    quorum[2].stop();
    const auto client = quorum_client(quorum.urls(3));
    const dlock::AcquireResult held = client->try_acquire("one-down", 10s);
    REQUIRE(held.acquired());
    const dlock::LockStatus status = client->status("one-down");
    CHECK(status.holder == held.lease->token);
    REQUIRE(status.servers.size() == 3);
    REQUIRE(status.servers[2].error);
    CHECK(contains(*status.servers[2].error, "refused"));
    CHECK(client->release("one-down", held.lease->token) == OwnerCheck::done);
    // Down at start, back later: the same client reaches it then.
    quorum[2].start();
    const dlock::AcquireResult again = client->try_acquire("one-down", 10s);
    REQUIRE(again.acquired());
    // Its answer may come after the majority's.
    CHECK(eventually(
        [&] {
            return quorum[2].command({"GET", "dlock:{one-down}"}) == again.lease->token;
        },
        5s));
}

TEST_CASE("quorum: a majority down gives 69 with a clear message") {
    QuorumServers& quorum = servers();
    quorum[0].stop();
    quorum[1].stop();
    const ProcessResult result = dlock_on(quorum, 3, {"acquire", "k"});
    CAPTURE(result.err);
    CHECK(result.exit_code == 69);
    CHECK(contains(result.err, "2 of 3 Redis servers unavailable: "));
    CHECK(contains(result.err, quorum.urls(3)[0]));
    CHECK(dlock::test::line_count(result.err) == 1);
    CHECK(dlock_on(quorum, 3, {"status", "k"}).exit_code == 69);
}

TEST_CASE("quorum: a paused server (CLIENT PAUSE, SIGSTOP) costs at most --timeout") {
    QuorumServers& quorum = servers();
    const Millis timeout = 400ms;
    for (const bool sigstop : {false, true}) {
        CAPTURE(sigstop);
        if (sigstop)
            kill(quorum[1].pid(), SIGSTOP);
        else
            quorum[1].command({"CLIENT", "PAUSE", "20000", "ALL"});
        const auto client = quorum_client(quorum.urls(3), timeout);
        auto start = Clock::now();
        const dlock::AcquireResult held = client->try_acquire("paused", 10s);
        REQUIRE(held.acquired());
        CHECK(since(start) < timeout + 300ms); // the others answered; the hung one did not hold us
        start = Clock::now();
        CHECK(client->status("paused").holder == held.lease->token);
        CHECK(client->release("paused", held.lease->token) == OwnerCheck::done);
        CHECK(since(start) < 2 * timeout + 600ms);
        // The command line too: one attempt, answered by the two that run.
        start = Clock::now();
        const ProcessResult cli = dlock_on(quorum, 3, {"--timeout", "400ms", "acquire", "paused2"});
        CHECK(cli.exit_code == 0);
        CHECK(since(start) < 3s);
        if (sigstop)
            kill(quorum[1].pid(), SIGCONT);
        else
            quorum[1].command({"CLIENT", "UNPAUSE"});
    }
}

TEST_CASE("quorum fences: counters A=10, B=1, C=1 still give strictly increasing fences") {
    QuorumServers& quorum = servers();
    const std::string key = "abc";
    quorum[0].command({"SET", "dlock:{abc}:fence", "10"});
    quorum[1].command({"SET", "dlock:{abc}:fence", "1"});
    quorum[2].command({"SET", "dlock:{abc}:fence", "1"});

    // C stopped (its memory kept): the lock is taken on A and B; the fence is A's 10 + 1, and
    // it is written back to B before the holder hears of it.
    kill(quorum[2].pid(), SIGSTOP);
    const auto first = quorum_client(quorum.urls(3), 300ms)->try_acquire(key, 5s);
    REQUIRE(first.acquired());
    CHECK(first.lease->fence == 11);
    CHECK(counter_on(quorum[1], key) == 11);
    quorum_client(quorum.urls(3), 300ms)->force_release(key, std::nullopt);
    kill(quorum[2].pid(), SIGCONT);
    // C runs the attempt it was sent while stopped; its counter moves to 2, its lock is cleared.
    REQUIRE(eventually([&] { return counter_on(quorum[2], key) == 2; }, 5s));
    quorum[2].command({"DEL", "dlock:{abc}"});

    // A stopped: the next lock is taken on B and C, and B remembers 11.
    kill(quorum[0].pid(), SIGSTOP);
    const auto second = quorum_client(quorum.urls(3), 300ms)->try_acquire(key, 5s);
    kill(quorum[0].pid(), SIGCONT);
    REQUIRE(second.acquired());
    CHECK(second.lease->fence == 12);
    CHECK(second.lease->fence > first.lease->fence);
}

TEST_CASE("quorum fences: a server restarted empty between acquisitions never moves fences back") {
    QuorumServers& quorum = servers();
    std::int64_t last = 0;
    for (std::size_t round = 0; round < 6; ++round) {
        CAPTURE(round);
        const auto client = quorum_client(quorum.urls(3));
        const dlock::AcquireResult held = client->try_acquire("restarted", 5s);
        REQUIRE(held.acquired());
        CHECK(held.lease->fence > last);
        last = held.lease->fence;
        CHECK(client->release("restarted", held.lease->token) == OwnerCheck::done);
        quorum[round % 3].restart(); // empty: no persistence
    }
    // Down during one acquisition, back (empty) for the next, while another is down.
    quorum[0].stop();
    const dlock::AcquireResult without_a =
        quorum_client(quorum.urls(3))->try_acquire("restarted", 5s);
    REQUIRE(without_a.acquired());
    CHECK(without_a.lease->fence > last);
    quorum_client(quorum.urls(3))->release("restarted", without_a.lease->token);
    quorum[0].start();
    quorum[1].stop();
    const dlock::AcquireResult without_b =
        quorum_client(quorum.urls(3))->try_acquire("restarted", 5s);
    REQUIRE(without_b.acquired());
    CHECK(without_b.lease->fence > without_a.lease->fence);
}

TEST_CASE("quorum fences: 300 acquisitions with random servers unreachable or restarted empty "
          "never see a fence go backwards") {
    QuorumServers& quorum = servers();
    std::mt19937 random{20261202};
    // An address nothing listens on: a server the client cannot reach this round (a partition),
    // while it keeps its state.
    const std::string unreachable =
        "redis://127.0.0.1:" + std::to_string(dlock::test::free_tcp_port());
    for (const std::size_t n : {std::size_t{3}, std::size_t{5}}) {
        CAPTURE(n);
        std::int64_t last = 0;
        int acquired = 0;
        for (int round = 0; round < 150; ++round) {
            CAPTURE(round);
            std::vector<std::string> urls = quorum.urls(n);
            std::vector<std::size_t> order(n);
            for (std::size_t i = 0; i < n; ++i)
                order[i] = i;
            std::shuffle(order.begin(), order.end(), random);
            const std::size_t down = std::uniform_int_distribution<std::size_t>{0, n / 2}(random);
            for (std::size_t i = 0; i < down; ++i)
                urls[order[i]] = unreachable;
            if (std::uniform_int_distribution<int>{0, 9}(random) == 0)
                quorum[order[n - 1]].restart(); // a reachable one restarts empty
            const auto client = quorum_client(urls);
            const dlock::AcquireResult held = client->try_acquire("property", 5s);
            std::string state;
            for (std::size_t i = 0; i < n; ++i)
                state += (urls[i] == unreachable ? "down:" : "up:") +
                         quorum[i].command({"GET", "dlock:{property}"}) + " ";
            CAPTURE(state);
            REQUIRE(held.acquired());
            ++acquired;
            CHECK(held.lease->fence > last);
            last = held.lease->fence;
            // Released on the servers this client reaches; the others never had it.
            CHECK(client->release("property", held.lease->token) == OwnerCheck::done);
        }
        CHECK(acquired == 150);
    }
}

TEST_CASE("quorum: run loses its lock when no majority renews it, and says so with 79") {
    QuorumServers& quorum = servers();
    const std::string dir = dlock::test::make_temp_dir();
    Child run(dlock::test::dlock_argv({"--redis", quorum.urls(3)[0], "--redis", quorum.urls(3)[1],
                                       "--redis", quorum.urls(3)[2], "--timeout", "500ms", "run",
                                       "lost", "--ttl", "1500ms", "--", "sh", "-c",
                                       "touch " + dir + "/started; exec sleep 30"}));
    REQUIRE(eventually([&] { return access((dir + "/started").c_str(), F_OK) == 0; }, 10s));
    const auto start = Clock::now();
    quorum[0].stop();
    quorum[1].stop();
    REQUIRE(run.wait_for(15s));
    const ProcessResult result = run.wait();
    CAPTURE(result.err);
    CHECK(result.exit_code == 79);
    CHECK(since(start) < 10s);
    dlock::test::remove_tree(dir);
}

TEST_CASE("quorum: 8 workers x 25 run sections on one counter, one server killed and restarted "
          "after one TTL, count exactly 200") {
    QuorumServers& quorum = servers();
    const std::string dir = dlock::test::make_temp_dir();
    const std::string counter = dir + "/counter";
    std::ofstream(counter) << "0\n";
    const std::string worker = R"sh(
i=0
while [ $i -lt 25 ]; do
  "$DLOCK_BIN" run counter --ttl 2s --wait 120s -- sh -c 'n=$(cat "$1"); echo $((n + 1)) >"$1"' sh "$1" || exit 1
  i=$((i + 1))
done
)sh";
    const std::vector<std::string> env{"DLOCK_REDIS_URL=" + quorum.url_list(3),
                                       std::string("DLOCK_BIN=") + DLOCK_BINARY};
    std::vector<std::unique_ptr<Child>> workers;
    for (int w = 0; w < 8; ++w)
        workers.push_back(std::make_unique<Child>(
            std::vector<std::string>{"/bin/sh", "-c", worker, "sh", counter}, env));
    // In the middle: one server killed, kept out for one max TTL (the delayed restart), back.
    REQUIRE(eventually(
        [&] {
            std::ifstream in(counter);
            int n = 0;
            in >> n;
            return n >= 60;
        },
        120s));
    quorum[1].stop();
    std::this_thread::sleep_for(2s); // the delayed restart itself: the rule under test
    quorum[1].start();
    for (auto& w : workers) {
        REQUIRE(w->wait_for(300s));
        const ProcessResult result = w->wait();
        CAPTURE(result.err);
        CHECK(result.exit_code == 0);
    }
    std::ifstream in(counter);
    int total = 0;
    in >> total;
    CHECK(total == 200);
    dlock::test::remove_tree(dir);
}

TEST_CASE("quorum: a server restarted empty at once (the delayed-restart rule broken) lets a "
          "second holder in, and the ledger's fence refuses the first") {
    QuorumServers& quorum = servers();
    const std::string dir = dlock::test::make_temp_dir();
    const std::string db = dir + "/ledger.db";
    const std::vector<std::string> env{"DLOCK_REDIS_URL=" + quorum.url_list(3), "DLOCK_DB=" + db,
                                       std::string("DLOCK_BIN=") + DLOCK_BINARY};
    REQUIRE(
        dlock::test::run_dlock({"deposit", "--account", "1", "--amount", "100"}, env).exit_code ==
        0);
    // C is down: holder H takes the lock on A and B only, then freezes before its write.
    quorum[2].stop();
    const PausedHolder holder =
        paused_holder(env, dir + "/lease",
                      {"--timeout", "300ms", "acquire", "withdraw_funds_user_1", "--ttl", "60s"});
    const std::int64_t fence_h = holder.fence;
    // B restarts empty at once and C comes back: B and C are a majority without H's lock.
    quorum[1].restart();
    quorum[2].start();
    const ProcessResult second = dlock::test::run_dlock(
        {"withdraw", "--account", "1", "--amount", "10", "--wait", "0", "--json"}, env);
    CAPTURE(second.err);
    REQUIRE(second.exit_code == 0); // exclusion broken: H still holds A
    const json taken = json::parse(second.out);
    CHECK(taken["fence"].get<std::int64_t>() > fence_h);
    kill(holder.process->pid(), SIGCONT);
    const ProcessResult late = holder.process->wait();
    CAPTURE(late.err);
    CHECK(late.exit_code == 1);
    CHECK(json::parse(late.out)["status"] == "stale_fence");
    const json balance =
        json::parse(dlock::test::run_dlock({"balance", "--account", "1", "--json"}, env).out);
    CHECK(balance["balance_cents"] == 9000); // the second holder's withdrawal only
    dlock::test::remove_tree(dir);
}

TEST_CASE("quorum: the ledger's locked withdraw refuses a paused holder by its fence") {
    QuorumServers& quorum = servers();
    const std::string dir = dlock::test::make_temp_dir();
    const std::string db = dir + "/ledger.db";
    const std::vector<std::string> env{"DLOCK_REDIS_URL=" + quorum.url_list(3), "DLOCK_DB=" + db,
                                       std::string("DLOCK_BIN=") + DLOCK_BINARY};
    REQUIRE(
        dlock::test::run_dlock({"deposit", "--account", "1", "--amount", "1000"}, env).exit_code ==
        0);
    int refused = 0;
    for (int round = 0; round < 5; ++round) {
        CAPTURE(round);
        const PausedHolder a =
            paused_holder(env, dir + "/lease-" + std::to_string(round),
                          {"acquire", "withdraw_funds_user_1", "--ttl", "300ms"});
        const std::int64_t fence_a = a.fence;
        const ProcessResult b = dlock::test::run_dlock(
            {"withdraw", "--account", "1", "--amount", "10", "--wait", "20s", "--json"}, env);
        CAPTURE(b.err);
        REQUIRE(b.exit_code == 0);
        CHECK(json::parse(b.out)["fence"].get<std::int64_t>() > fence_a);
        kill(a.process->pid(), SIGCONT);
        const ProcessResult late = a.process->wait();
        CAPTURE(late.err);
        CHECK(late.exit_code == 1);
        if (late.exit_code == 1 && json::parse(late.out)["status"] == "stale_fence")
            ++refused;
    }
    CHECK(refused == 5);
    const json balance =
        json::parse(dlock::test::run_dlock({"balance", "--account", "1", "--json"}, env).out);
    CHECK(balance["balance_cents"] == 100000 - 5 * 1000);
    dlock::test::remove_tree(dir);
}
