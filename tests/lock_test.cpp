// The lock contract: the rules every LockService backend keeps, run against each backend's
// factory (a new backend adds one type to `lock_backends`), and then what is particular to each
// backend. Everything runs against real, private servers.
#include "dlock/backends.hpp"
#include "dlock/redis_lock.hpp"
#include "support/observe.hpp"
#include "support/redis_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <doctest/doctest.h>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using dlock::LockService;
using dlock::Millis;
using dlock::OwnerCheck;
using dlock::RedisLock;
using dlock::test::eventually;
using dlock::test::RedisServer;
using clock_type = std::chrono::steady_clock;

namespace {

dlock::redis::Options options_for(const std::string& url) {
    dlock::redis::Options options;
    options.url = dlock::redis::parse_url(url);
    options.timeout = 2s;
    return options;
}

RedisLock lock_on(const RedisServer& server) {
    return RedisLock(options_for(server.url()), "dlock:");
}

Millis since(clock_type::time_point start) {
    return std::chrono::duration_cast<Millis>(clock_type::now() - start);
}

// Waits until `count` clients listen on `channel`; false after `limit`.
bool subscribers(const RedisServer& server, const std::string& channel, int count, Millis limit) {
    const std::string expected = channel + "\n" + std::to_string(count);
    return eventually(
        [&] {
            return server.command({"PUBSUB", "NUMSUB", channel}) == expected;
        },
        limit);
}

// A lock backend for the contract suite: a private store, and clients of it. Each client is a
// separate LockService (its own connection), as separate processes would have.
struct OneRedisServer {
    RedisServer server;
    std::unique_ptr<LockService> client(dlock::Identity identity = {}) const {
        dlock::LockConfig config;
        config.url = server.url();
        config.timeout = 2s;
        config.identity = std::move(identity);
        return dlock::open_lock_service(config);
    }
    // Blocks until `count` clients wait inside block() (false after `limit`).
    bool waiters(int count, Millis limit) const {
        return server.wait_for_blocked_clients(count, limit);
    }
    // How many waiters the lock's queue holds (the tests' KEY is job).
    long long queued() const { return std::stoll(server.command({"LLEN", "dlock:{job}:queue"})); }
};

// The same server, locks in the plain layout: PREFIX + KEY exactly, as apps write them.
struct OneRedisServerPlainLayout {
    RedisServer server;
    std::unique_ptr<LockService> client(dlock::Identity identity = {}) const {
        dlock::LockConfig config;
        config.url = server.url();
        config.timeout = 2s;
        config.prefix = "app_cache:";
        config.layout = dlock::KeyLayout::plain;
        config.identity = std::move(identity);
        return dlock::open_lock_service(config);
    }
    // A waiter of the plain layout listens on the lock's event channel (the tests' KEY is job).
    bool waiters(int count, Millis limit) const {
        return subscribers(server, "app_cache:job:dlock:events", count, limit);
    }
    long long queued() const {
        return std::stoll(server.command({"LLEN", "app_cache:job:dlock:queue"}));
    }
};

} // namespace

#define lock_backends OneRedisServer, OneRedisServerPlainLayout

TEST_CASE_TEMPLATE("acquire takes a free lock and returns a token, a fence and the TTL", Backend,
                   lock_backends) {
    Backend backend;
    const auto lock = backend.client();
    const auto result = lock->try_acquire("job", 10s);
    REQUIRE(result.acquired());
    CHECK(result.lease->token.size() == 32);
    CHECK(result.lease->fence > 0);
    CHECK(result.lease->ttl == 10s);
    const auto state = backend.client()->status("job");
    CHECK(state.holder == result.lease->token);
    REQUIRE(state.ttl.has_value());
    CHECK(*state.ttl > 9s);
    CHECK(*state.ttl <= 10s);
}

TEST_CASE_TEMPLATE("acquire of a held lock is refused and reports the holder's remaining time",
                   Backend, lock_backends) {
    Backend backend;
    REQUIRE(backend.client()->try_acquire("job", 10s).acquired());
    const auto second = backend.client()->try_acquire("job", 10s);
    CHECK_FALSE(second.acquired());
    REQUIRE(second.holder_ttl.has_value());
    CHECK(*second.holder_ttl > 9s);
    CHECK(*second.holder_ttl <= 10s);
}

TEST_CASE_TEMPLATE("release with a foreign token leaves the lock in place", Backend,
                   lock_backends) {
    Backend backend;
    const auto lock = backend.client();
    const auto held = lock->try_acquire("job", 10s);
    REQUIRE(held.acquired());
    CHECK(lock->release("job", dlock::new_owner_token()) == OwnerCheck::not_owner);
    CHECK(lock->status("job").holder == held.lease->token);
    CHECK(lock->release("job", held.lease->token) == OwnerCheck::done);
    CHECK_FALSE(lock->status("job").holder.has_value());
    CHECK(lock->release("job", held.lease->token) == OwnerCheck::not_held);
}

TEST_CASE_TEMPLATE("an expired lock is free again and its old owner can no longer release it",
                   Backend, lock_backends) {
    Backend backend;
    const auto lock = backend.client();
    const auto first = lock->try_acquire("job", 50ms);
    REQUIRE(first.acquired());
    const auto second = lock->block("job", 10s, 5s); // wakes at the holder's lease end
    REQUIRE(second.acquired());
    CHECK(lock->release("job", first.lease->token) == OwnerCheck::not_owner);
    CHECK(lock->status("job").holder == second.lease->token);
}

TEST_CASE_TEMPLATE("extend resets the TTL only for the owner", Backend, lock_backends) {
    Backend backend;
    const auto lock = backend.client();
    const auto held = lock->try_acquire("job", 1s);
    REQUIRE(held.acquired());
    CHECK(lock->extend("job", dlock::new_owner_token(), 60s) == OwnerCheck::not_owner);
    CHECK(lock->status("job").ttl <= 1s);
    CHECK(lock->extend("job", held.lease->token, 60s) == OwnerCheck::done);
    CHECK(lock->status("job").ttl > 50s);
    CHECK(lock->extend("other", held.lease->token, 60s) == OwnerCheck::not_held);
}

TEST_CASE_TEMPLATE("force-release removes any holder and reports what it removed", Backend,
                   lock_backends) {
    Backend backend;
    const auto held = backend.client()->try_acquire("job", 30s);
    REQUIRE(held.acquired());
    const auto lock = backend.client();
    const auto removed = lock->force_release("job", std::nullopt);
    CHECK(removed.holder == held.lease->token);
    CHECK(removed.ttl > 25s);
    CHECK_FALSE(lock->force_release("job", std::nullopt).holder.has_value());
    CHECK(lock->try_acquire("job", 1s).acquired());
}

TEST_CASE_TEMPLATE("status shows holder, TTL and the last fencing token issued", Backend,
                   lock_backends) {
    Backend backend;
    const auto lock = backend.client();
    CHECK_FALSE(lock->status("job").holder.has_value());
    CHECK_FALSE(lock->status("job").fence.has_value());
    const auto held = lock->try_acquire("job", 10s);
    const auto state = lock->status("job");
    CHECK(state.holder == held.lease->token);
    CHECK(state.fence == held.lease->fence);
    lock->release("job", held.lease->token);
    CHECK(lock->status("job").fence == held.lease->fence);
}

TEST_CASE_TEMPLATE("fencing tokens strictly increase with every acquisition, whoever takes it",
                   Backend, lock_backends) {
    Backend backend;
    std::int64_t last = 0;
    for (int i = 0; i < 20; ++i) {
        const auto lock = backend.client();
        const auto held = i % 2 == 0 ? lock->try_acquire("job", 10s) : lock->block("job", 10s, 1s);
        REQUIRE(held.acquired());
        CHECK(held.lease->fence > last);
        last = held.lease->fence;
        if (i % 3 == 0)
            lock->force_release("job", std::nullopt);
        else
            lock->release("job", held.lease->token);
    }
}

TEST_CASE_TEMPLATE("block gives up with busy when the wait runs out", Backend, lock_backends) {
    Backend backend;
    REQUIRE(backend.client()->try_acquire("job", 60s).acquired());
    const auto start = clock_type::now();
    const auto result = backend.client()->block("job", 10s, 300ms);
    CHECK_FALSE(result.acquired());
    CHECK(since(start) >= 300ms);
    CHECK(since(start) < 5s);
}

TEST_CASE_TEMPLATE("block with no wait is a single attempt", Backend, lock_backends) {
    Backend backend;
    const auto lock = backend.client();
    REQUIRE(lock->try_acquire("job", 60s).acquired());
    CHECK_FALSE(lock->block("job", 10s, 0ms).acquired());
}

TEST_CASE_TEMPLATE("force-release wakes a blocked waiter long before the holder's TTL", Backend,
                   lock_backends) {
    Backend backend;
    const auto holder = backend.client();
    REQUIRE(holder->try_acquire("job", 60s).acquired());
    auto waiting =
        std::async(std::launch::async, [&] { return backend.client()->block("job", 10s, 30s); });
    REQUIRE(backend.waiters(1, 10s)); // the waiter is inside block()
    const auto released_at = clock_type::now();
    REQUIRE(holder->force_release("job", std::nullopt).holder.has_value());
    const auto result = waiting.get();
    CHECK(result.acquired());
    CHECK(since(released_at) < 5s); // the holder's lease had 60s left
}

TEST_CASE_TEMPLATE("release hands the lock to a waiter well under Laravel's 250ms poll", Backend,
                   lock_backends) {
    Backend backend;
    const auto holder = backend.client();
    std::vector<Millis> gaps;
    for (int round = 0; round < 5; ++round) {
        const auto held = holder->try_acquire("job", 60s);
        REQUIRE(held.acquired());
        std::atomic<clock_type::time_point> acquired_at{};
        auto waiting = std::async(std::launch::async, [&] {
            const auto waiter = backend.client();
            const auto result = waiter->block("job", 10s, 30s);
            acquired_at = clock_type::now();
            if (result.acquired())
                waiter->release("job", result.lease->token);
            return result.acquired();
        });
        REQUIRE(backend.waiters(1, 10s)); // the waiter is inside block()
        const auto released_at = clock_type::now();
        REQUIRE(holder->release("job", held.lease->token) == OwnerCheck::done);
        REQUIRE(waiting.get());
        gaps.push_back(std::chrono::duration_cast<Millis>(acquired_at.load() - released_at));
    }
    std::sort(gaps.begin(), gaps.end());
    MESSAGE("median hand-off gap: " << gaps[2].count() << "ms");
    CHECK(gaps[2] < 100ms);
}

// Each holder stays inside for a few milliseconds and asks the store, through a connection of
// its own, whether it is still the holder: a second holder would overlap it in time (the
// counter) or take the key from it (the store's answer).
TEST_CASE_TEMPLATE("many waiters take turns and never hold the lock together", Backend,
                   lock_backends) {
    Backend backend;
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    std::atomic<int> foreign_holders{0};
    std::atomic<int> entries{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 6; ++w) {
        workers.emplace_back([&] {
            const auto lock = backend.client();
            const auto observer = backend.client();
            for (int i = 0; i < 20; ++i) {
                const auto result = lock->block("job", 10s, 60s);
                if (!result.acquired())
                    continue;
                if (inside.fetch_add(1) != 0)
                    overlaps++;
                entries++;
                std::this_thread::sleep_for(2ms);
                if (observer->status("job").holder != result.lease->token)
                    foreign_holders++;
                inside.fetch_sub(1);
                lock->release("job", result.lease->token);
            }
        });
    }
    for (auto& worker : workers)
        worker.join();
    CHECK(entries == 120);
    CHECK(overlaps == 0);
    CHECK(foreign_holders == 0);
}

// `count` waiters start waiting one after another: each starts once the one before it is in the
// lock's queue (read from the store), so the order they arrived in is known. Each records when
// it entered, and its fence; meanwhile a newcomer keeps calling acquire, and notes every time it
// got in while a waiter had not entered yet (what it reads while it holds the lock cannot
// change under it: a waiter counts itself in while holding the lock). The lock the waiters wait
// for is first held for `holder_ttl`: `release` frees it, or else it expires.
template <typename Backend>
void check_strict_order(const Backend& backend, int count, Millis holder_ttl, bool release) {
    const auto holder = backend.client();
    const auto held = holder->try_acquire("job", holder_ttl);
    REQUIRE(held.acquired());
    std::mutex mutex;
    std::vector<int> entered;
    std::vector<std::int64_t> fences;
    std::atomic<int> not_entered{count};
    std::vector<std::thread> waiters;
    for (int w = 0; w < count; ++w) {
        waiters.emplace_back([&, w] {
            const auto lock = backend.client();
            const auto result = lock->block("job", 10s, 60s);
            if (!result.acquired())
                return;
            {
                const std::lock_guard guard(mutex);
                entered.push_back(w);
                fences.push_back(result.lease->fence);
            }
            not_entered--;
            std::this_thread::sleep_for(1ms); // a section of some length, for the newcomer
            lock->release("job", result.lease->token);
        });
        REQUIRE(eventually([&] { return backend.queued() == w + 1; }, 10s));
    }
    std::atomic<bool> stop{false};
    std::atomic<int> tries{0};
    std::atomic<int> overtakes{0};
    std::thread newcomer([&] {
        const auto lock = backend.client();
        while (!stop) {
            const auto result = lock->try_acquire("job", 10s);
            tries++;
            if (!result.acquired())
                continue;
            if (not_entered > 0)
                overtakes++;
            lock->release("job", result.lease->token);
        }
    });
    REQUIRE(eventually([&] { return tries > 10; }, 10s));
    if (release)
        REQUIRE(holder->release("job", held.lease->token) == OwnerCheck::done);
    for (auto& waiter : waiters)
        waiter.join();
    stop = true;
    newcomer.join();
    MESSAGE("the newcomer tried " << tries << " times");
    REQUIRE(entered.size() == static_cast<std::size_t>(count));
    for (int w = 0; w < count; ++w)
        CHECK(entered[w] == w);
    CHECK(std::is_sorted(fences.begin(), fences.end()));
    CHECK(std::adjacent_find(fences.begin(), fences.end()) == fences.end());
    CHECK(fences.front() > held.lease->fence);
    CHECK(overtakes == 0);
}

TEST_CASE_TEMPLATE("16 waiters enter in the order they started waiting, and a newcomer never gets "
                   "in ahead of one",
                   Backend, lock_backends) {
    Backend backend;
    check_strict_order(backend, 16, 60s, true);
}

TEST_CASE_TEMPLATE("a holder's expiry hands the lock to the first waiter, not to a newcomer",
                   Backend, lock_backends) {
    Backend backend;
    check_strict_order(backend, 4, 1s, false);
}

TEST_CASE_TEMPLATE("a waiter whose wait runs out leaves the queue; the first one still gets "
                   "the lock",
                   Backend, lock_backends) {
    Backend backend;
    const auto holder = backend.client();
    const auto held = holder->try_acquire("job", 60s);
    REQUIRE(held.acquired());
    auto waiting =
        std::async(std::launch::async, [&] { return backend.client()->block("job", 10s, 60s); });
    REQUIRE(eventually([&] { return backend.queued() == 1; }, 10s));
    CHECK_FALSE(backend.client()->block("job", 10s, 300ms).acquired());
    CHECK(backend.queued() == 1); // the one that gave up is gone; the first still waits
    REQUIRE(holder->release("job", held.lease->token) == OwnerCheck::done);
    const auto first = waiting.get();
    REQUIRE(first.acquired());
    CHECK(first.lease->fence > held.lease->fence);
    CHECK(backend.queued() == 0);
    CHECK(holder->status("job").holder == first.lease->token);
}

TEST_CASE_TEMPLATE("bad keys and tokens are usage errors before anything reaches the store",
                   Backend, lock_backends) {
    Backend backend;
    const auto lock = backend.client();
    const std::string too_long(dlock::max_key_bytes + 1, 'k');
    for (const std::string& key :
         {std::string(), too_long, std::string("a\nb"), std::string("\xff")}) {
        CAPTURE(key);
        CHECK_THROWS_AS(lock->try_acquire(key, 1s), dlock::UsageError);
        CHECK_THROWS_AS(lock->block(key, 1s, 1s), dlock::UsageError);
        CHECK_THROWS_AS(lock->release(key, dlock::new_owner_token()), dlock::UsageError);
        CHECK_THROWS_AS(lock->extend(key, dlock::new_owner_token(), 1s), dlock::UsageError);
        CHECK_THROWS_AS(lock->force_release(key, std::nullopt), dlock::UsageError);
        CHECK_THROWS_AS(lock->status(key), dlock::UsageError);
    }
    for (const std::string& owner : {std::string(), std::string("a\nb"), std::string(300, 'o')}) {
        CHECK_THROWS_AS(lock->release("job", owner), dlock::UsageError);
        CHECK_THROWS_AS(lock->extend("job", owner, 1s), dlock::UsageError);
        CHECK_THROWS_AS(lock->force_release("job", owner), dlock::UsageError);
    }
}

TEST_CASE_TEMPLATE("two namespaces never share fences", Backend, lock_backends) {
    Backend backend;
    const auto lock = backend.client();
    dlock::LockConfig other;
    other.prefix = "other:";
    CHECK(lock->fence_resource("job") != dlock::fence_resource(other, "job"));
    CHECK(lock->fence_resource("job") != lock->fence_resource("job2"));
    CHECK(lock->fence_resource("job") == lock->fence_resource("job"));
}

TEST_CASE_TEMPLATE("status and force-release tell who holds the lock, since when, renewals counted",
                   Backend, lock_backends) {
    Backend backend;
    const dlock::Identity web3{"web-3", 4242, "deploy", "backup.sh --full"};
    const auto holder = backend.client(web3);
    const auto held = holder->try_acquire("job", 10s);
    REQUIRE(held.acquired());
    REQUIRE(holder->extend("job", held.lease->token, 10s) == OwnerCheck::done);
    REQUIRE(holder->extend("job", held.lease->token, 10s) == OwnerCheck::done);

    const auto operator_view = backend.client();
    const auto state = operator_view->status("job");
    REQUIRE(state.details.has_value());
    CHECK(state.details->who.host == "web-3");
    CHECK(state.details->who.pid == 4242);
    CHECK(state.details->who.user == "deploy");
    CHECK(state.details->who.command == "backup.sh --full");
    CHECK(state.details->renewals == 2);
    REQUIRE(state.details->renewed_ms.has_value());
    CHECK(*state.details->renewed_ms >= state.details->since_ms);
    CHECK(state.now_ms >= state.details->since_ms);
    CHECK(state.now_ms - state.details->since_ms < 10'000);

    const auto busy = operator_view->try_acquire("job", 1s);
    REQUIRE(busy.holder.has_value());
    CHECK(busy.holder->who.command == "backup.sh --full");

    const auto removed = operator_view->force_release("job", std::nullopt);
    CHECK(removed.released);
    REQUIRE(removed.details.has_value());
    CHECK(removed.details->who.host == "web-3");
    // The record goes with the lock: the next holder starts its own.
    const auto next = backend.client(dlock::Identity{"web-4", 7, "ops", "cron"});
    REQUIRE(next->try_acquire("job", 10s).acquired());
    const auto again = operator_view->status("job");
    REQUIRE(again.details.has_value());
    CHECK(again.details->who.host == "web-4");
    CHECK(again.details->renewals == 0);
}

TEST_CASE_TEMPLATE("force-release with an owner frees only that owner's lock", Backend,
                   lock_backends) {
    Backend backend;
    const auto lock = backend.client();
    const auto first = lock->try_acquire("job", 10s);
    REQUIRE(first.acquired());
    // What an operator saw; then the lock changed hands.
    const std::string seen = first.lease->token;
    lock->release("job", seen);
    const auto second = backend.client()->try_acquire("job", 10s);
    REQUIRE(second.acquired());

    const auto refused = lock->force_release("job", seen);
    CHECK_FALSE(refused.released);
    CHECK(refused.holder == second.lease->token); // who holds it now
    CHECK(lock->status("job").holder == second.lease->token);

    const auto removed = lock->force_release("job", second.lease->token);
    CHECK(removed.released);
    CHECK_FALSE(lock->status("job").holder.has_value());
    CHECK_FALSE(lock->force_release("job", second.lease->token).holder.has_value());
}

TEST_CASE_TEMPLATE("list finds the held locks matching a pattern, sorted, and nothing else",
                   Backend, lock_backends) {
    Backend backend;
    const auto lock = backend.client(dlock::Identity{"web-1", 1, "u", "job"});
    for (const char* key : {"report-b", "report-a", "deploy", "odd{key}%", "report-c"})
        REQUIRE(lock->try_acquire(key, 10s).acquired());
    const auto released = lock->try_acquire("report-gone", 10s);
    lock->release("report-gone", released.lease->token);

    std::vector<std::string> all;
    for (const auto& listing : lock->list("*"))
        all.push_back(listing.key);
    CHECK(all ==
          std::vector<std::string>{"deploy", "odd{key}%", "report-a", "report-b", "report-c"});
    const auto reports = lock->list("report-*");
    REQUIRE(reports.size() == 3);
    CHECK(reports[0].key == "report-a");
    REQUIRE(reports[0].status.details.has_value());
    CHECK(reports[0].status.details->who.host == "web-1");
    CHECK(reports[0].status.ttl > 5s);
    CHECK(lock->list("odd{*").size() == 1);
    CHECK(lock->list("nothing*").empty());
}

TEST_SUITE("one Redis server") {
    TEST_CASE("an unreachable Redis is an unavailable error, not a hang") {
        RedisServer server;
        const std::string url = server.url();
        server.stop();
        CHECK_THROWS_AS(RedisLock(options_for(url), "dlock:"), dlock::redis::IoError);
        CHECK_THROWS_AS(RedisLock(options_for("redis://127.0.0.1:" +
                                              std::to_string(dlock::test::free_tcp_port())),
                                  "dlock:"),
                        dlock::UnavailableError);
    }

    TEST_CASE("a wrong or missing password is an auth error; the right one works") {
        RedisServer server({{"--requirepass", "right-password"}});
        auto options = options_for(server.url());
        CHECK_THROWS_AS(RedisLock(options, "dlock:").status("job"), dlock::redis::AuthError);
        options.url.password = "wrong-password";
        CHECK_THROWS_AS(RedisLock(options, "dlock:").status("job"), dlock::redis::AuthError);
        options.url.password = "right-password";
        CHECK(RedisLock(options, "dlock:").try_acquire("job", 1s).acquired());
    }

    TEST_CASE("a Redis that stops answering times out with an unavailable error") {
        RedisServer server;
        auto options = options_for(server.url());
        options.timeout = 200ms;
        RedisLock lock(options, "dlock:");
        lock.status("job"); // connected and working
        server.command({"CLIENT", "PAUSE", "3000", "ALL"});
        const auto start = clock_type::now();
        CHECK_THROWS_AS(lock.try_acquire("job", 1s), dlock::redis::TimeoutError);
        CHECK(since(start) < 2s);
    }

    TEST_CASE("the selected database keeps locks apart") {
        RedisServer server;
        RedisLock db0 = lock_on(server);
        RedisLock db1(options_for(server.url() + "?db=1"), "dlock:");
        REQUIRE(db0.try_acquire("job", 10s).acquired());
        CHECK(db1.try_acquire("job", 10s).acquired());
    }

    TEST_CASE("fencing tokens strictly increase, also across a Redis restart that lost all data") {
        RedisServer server;
        std::int64_t last = 0;
        for (int round = 0; round < 3; ++round) {
            RedisLock lock = lock_on(server);
            for (int i = 0; i < 5; ++i) {
                const auto held = lock.try_acquire("job", 10s);
                REQUIRE(held.acquired());
                CHECK(held.lease->fence > last);
                last = held.lease->fence;
                lock.release("job", held.lease->token);
            }
            server.restart(); // no persistence: the counter is gone
            REQUIRE(server.command({"EXISTS", "dlock:{job}:fence"}) == "0");
        }
    }

    TEST_CASE("a lock's keys live where the README says, with the lease as the key's TTL") {
        RedisServer server;
        RedisLock lock = lock_on(server);
        const auto held = lock.try_acquire("job", 10s);
        REQUIRE(held.acquired());
        CHECK(server.command({"GET", "dlock:{job}"}) == held.lease->token);
        const auto pttl = std::stoll(server.command({"PTTL", "dlock:{job}"}));
        CHECK(pttl > 9000);
        CHECK(pttl <= 10000);
        CHECK(server.command({"GET", "dlock:{job}:fence"}) == std::to_string(held.lease->fence));
        CHECK(lock.fence_resource("job") == "dlock:{job}");
    }

    TEST_CASE("a key without a TTL is reported as never freeing by itself") {
        RedisServer server;
        server.command({"SET", "dlock:{job}", "someone-else"});
        RedisLock lock = lock_on(server);
        const auto busy = lock.try_acquire("job", 1s);
        CHECK_FALSE(busy.acquired());
        CHECK_FALSE(busy.holder_ttl.has_value());
        const auto state = lock.status("job");
        CHECK(state.holder == "someone-else");
        CHECK_FALSE(state.ttl.has_value());
        // A waiter does not spin on it: it waits for a release, which wakes it.
        auto waiting =
            std::async(std::launch::async, [&] { return lock_on(server).block("job", 1s, 30s); });
        REQUIRE(server.wait_for_blocked_clients(1, 10s));
        const auto removed = lock.force_release("job", std::nullopt);
        CHECK(removed.holder == "someone-else");
        CHECK_FALSE(removed.ttl.has_value());
        CHECK(waiting.get().acquired());
    }

    TEST_CASE("a fence counter someone overwrote is bad data, and the lock stays free") {
        RedisServer server;
        RedisLock lock = lock_on(server);
        for (const std::vector<std::string>& write :
             {std::vector<std::string>{"SET", "dlock:{job}:fence", "not-a-number"},
              std::vector<std::string>{"SET", "dlock:{job}:fence", "99999999999999999999"},
              std::vector<std::string>{"RPUSH", "dlock:{job}:fence", "1"}}) {
            server.command({"DEL", "dlock:{job}:fence"});
            server.command(write);
            CAPTURE(write[2]);
            CHECK_THROWS_AS(lock.try_acquire("job", 10s), dlock::DataError);
            CHECK(server.command({"EXISTS", "dlock:{job}"}) == "0"); // nothing was taken
            if (write[0] == "SET")
                CHECK_THROWS_AS(lock.status("job"), dlock::DataError);
        }
        server.command({"DEL", "dlock:{job}:fence"});
        CHECK(lock.try_acquire("job", 10s).acquired());
    }

} // TEST_SUITE

TEST_SUITE("one Redis server: memory") {
    TEST_CASE("a lock released with nobody waiting leaves only its fence counter, which expires") {
        RedisServer server;
        dlock::LockConfig config;
        config.url = server.url();
        config.fence_idle = 300ms;
        const auto lock = dlock::open_lock_service(config);
        const auto first = lock->try_acquire("job", 10s);
        REQUIRE(first.acquired());
        REQUIRE(lock->release("job", first.lease->token) == OwnerCheck::done);
        CHECK(server.command({"KEYS", "*"}) == "dlock:{job}:fence");
        const auto fence_ttl = std::stoll(server.command({"PTTL", "dlock:{job}:fence"}));
        CHECK(fence_ttl > 0);
        CHECK(fence_ttl <= 10'300);

        // Idle past the lock's TTL plus the idle period: nothing is left of it.
        server.command({"PEXPIRE", "dlock:{job}:fence", "1"});
        std::this_thread::sleep_for(50ms);
        CHECK(server.command({"EXISTS", "dlock:{job}", "dlock:{job}:holder", "dlock:{job}:fence",
                              "dlock:{job}:waiting", "dlock:{job}:wake"}) == "0");
        // The counter restarts from the clock, past every token it gave before.
        const auto second = lock->try_acquire("job", 10s);
        REQUIRE(second.acquired());
        CHECK(second.lease->fence > first.lease->fence);
    }

    TEST_CASE("a release that someone may be waiting for leaves one wake-up, with a TTL") {
        RedisServer server;
        RedisLock lock = lock_on(server);
        const auto held = lock.try_acquire("job", 10s);
        REQUIRE(held.acquired());
        CHECK_FALSE(lock.try_acquire("job", 10s).acquired()); // someone tried: they may wait
        REQUIRE(lock.release("job", held.lease->token) == OwnerCheck::done);
        CHECK(server.command({"LLEN", "dlock:{job}:wake"}) == "1");
        CHECK(std::stoll(server.command({"PTTL", "dlock:{job}:wake"})) > 0);
        CHECK(std::stoll(server.command({"PTTL", "dlock:{job}:waiting"})) > 0);
    }

    TEST_CASE("a release wakes only the waiter it hands the lock to") {
        RedisServer server;
        server.command({"CONFIG", "SET", "notify-keyspace-events", "Kl"});
        RedisLock holder = lock_on(server);
        const auto held = holder.try_acquire("job", 30s);
        REQUIRE(held.acquired());
        // Three waiters, each holding the lock once it comes, until the test has looked.
        std::promise<void> looked;
        const std::shared_future<void> done_looking = looked.get_future().share();
        std::vector<std::thread> waiters;
        for (int w = 0; w < 3; ++w)
            waiters.emplace_back([&server, done_looking] {
                RedisLock waiter = lock_on(server);
                const auto got = waiter.block("job", 30s, 20s);
                done_looking.wait();
                if (got.acquired())
                    waiter.release("job", got.lease->token);
            });
        REQUIRE(server.wait_for_blocked_clients(3, 10s));
        REQUIRE(server.command({"LLEN", "dlock:{job}:queue"}) == "3");

        // Every wake-up is an RPUSH onto a waiter's own wake list.
        dlock::redis::Connection events(options_for(server.url()));
        events.send({"PSUBSCRIBE", "__keyspace@0__:dlock:{job}:wake:*"});
        REQUIRE(events.receive(2s).has_value()); // the subscription's confirmation
        REQUIRE(holder.release("job", held.lease->token) == OwnerCheck::done);
        int wake_ups = 0;
        // One script pushes every wake-up of a release at once; the waiters keep the lock, so
        // no later release pushes more.
        for (Millis quiet = 2s; const auto message = events.receive(quiet); quiet = 300ms)
            wake_ups += message->view()[3].string() == "rpush";
        CHECK(wake_ups == 1);
        CHECK(server.command({"LLEN", "dlock:{job}:queue"}) == "2");
        looked.set_value();
        for (std::thread& waiter : waiters)
            waiter.join();
    }

    TEST_CASE("10,000 lock names each taken and released leave only counters that expire") {
        RedisServer server;
        dlock::LockConfig config;
        config.url = server.url();
        const auto lock = dlock::open_lock_service(config);
        for (int i = 0; i < 10'000; ++i) {
            const std::string key = "withdraw_funds_user_" + std::to_string(i);
            const auto held = lock->try_acquire(key, 10s);
            REQUIRE(held.acquired());
            lock->release(key, held.lease->token);
        }
        CHECK(server.command({"DBSIZE"}) == "10000");
        // Every one of them has a TTL: nothing stays forever.
        const std::string no_ttl =
            server.command({"EVAL",
                            "local n = 0 for _, k in ipairs(redis.call('KEYS', '*')) do "
                            "if redis.call('PTTL', k) < 0 then n = n + 1 end end return n",
                            "0"});
        CHECK(no_ttl == "0");
    }
}

TEST_SUITE("one Redis server: the plain layout") {
    namespace {

    dlock::LockConfig plain_config(const RedisServer& server, std::string prefix) {
        dlock::LockConfig config;
        config.url = server.url();
        config.prefix = std::move(prefix);
        config.layout = dlock::KeyLayout::plain;
        return config;
    }

    // What Laravel's RedisLock (and redis-py's Lock) do: SET NX with a TTL, and an owner-checked
    // compare-and-delete.
    bool app_acquires(const RedisServer& server, const std::string& key, const std::string& owner) {
        return server.command({"SET", key, owner, "PX", "30000", "NX"}) == "OK";
    }
    void app_releases(const RedisServer& server, const std::string& key, const std::string& owner) {
        server.command({"EVAL",
                        "if redis.call('get', KEYS[1]) == ARGV[1] then return "
                        "redis.call('del', KEYS[1]) else return 0 end",
                        "1", key, owner});
    }

    } // namespace

    TEST_CASE("in the plain layout the lock is PREFIX + KEY holding the bare owner") {
        RedisServer server;
        const auto lock = dlock::open_lock_service(plain_config(server, "laravel_cache:"));
        const auto held = lock->try_acquire("withdraw_funds_user_5", 10s);
        REQUIRE(held.acquired());
        CHECK(server.command({"GET", "laravel_cache:withdraw_funds_user_5"}) == held.lease->token);
        CHECK(server.command({"EXISTS", "laravel_cache:withdraw_funds_user_5:dlock:fence"}) == "1");
        CHECK(lock->fence_resource("withdraw_funds_user_5") ==
              "laravel_cache:withdraw_funds_user_5");
        // An empty prefix is the bare key, as redis-py names its locks.
        const auto bare = dlock::open_lock_service(plain_config(server, ""));
        REQUIRE(bare->try_acquire("nightly", 10s).acquired());
        CHECK(server.command({"EXISTS", "nightly"}) == "1");
        // A prefix with braces and spaces, as an app may use.
        const auto odd = dlock::open_lock_service(plain_config(server, "{app} cache:"));
        REQUIRE(odd->try_acquire("k", 10s).acquired());
        CHECK(server.command({"EXISTS", "{app} cache:k"}) == "1");
    }

    TEST_CASE("an app's lock is seen, refused, and released with the app's own owner") {
        RedisServer server;
        REQUIRE(app_acquires(server, "app:job", "Xk2hB7qLm0pR9sTz")); // Laravel: 16 random chars
        const auto lock = dlock::open_lock_service(plain_config(server, "app:"));
        const auto state = lock->status("job");
        CHECK(state.holder == "Xk2hB7qLm0pR9sTz");
        CHECK_FALSE(state.details.has_value()); // the app keeps no holder record
        CHECK(state.ttl > 25s);
        CHECK_FALSE(lock->try_acquire("job", 1s).acquired());
        CHECK(lock->release("job", "someone-else") == OwnerCheck::not_owner);
        CHECK(lock->release("job", "Xk2hB7qLm0pR9sTz") == OwnerCheck::done);
        CHECK(server.command({"EXISTS", "app:job"}) == "0");
        // And the app's release of dlock's lock is refused by the app's own check.
        const auto held = lock->try_acquire("job", 10s);
        REQUIRE(held.acquired());
        app_releases(server, "app:job", "Xk2hB7qLm0pR9sTz");
        CHECK(server.command({"GET", "app:job"}) == held.lease->token);
    }

    TEST_CASE("a plain-layout waiter notices an app's release quickly, notified or polled") {
        for (const bool notifications : {false, true}) {
            CAPTURE(notifications);
            RedisServer server;
            if (notifications)
                server.command({"CONFIG", "SET", "notify-keyspace-events", "Kgx"});
            REQUIRE(app_acquires(server, "app:job", "app-owner"));
            std::atomic<clock_type::time_point> acquired_at{};
            auto waiting = std::async(std::launch::async, [&] {
                const auto waiter = dlock::open_lock_service(plain_config(server, "app:"));
                const auto result = waiter->block("job", 10s, 30s);
                acquired_at = clock_type::now();
                return result.acquired();
            });
            // The waiter is waiting: it listens for dlock's releases, and for the key's
            // keyspace notifications when the server sends them.
            REQUIRE(subscribers(server, "app:job:dlock:events", 1, 10s));
            CHECK(subscribers(server, "__keyspace@0__:app:job", notifications ? 1 : 0, 10s));
            const auto released_at = clock_type::now();
            app_releases(server, "app:job", "app-owner");
            REQUIRE(waiting.get());
            const auto gap = std::chrono::duration_cast<Millis>(acquired_at.load() - released_at);
            MESSAGE("an app's release seen after " << gap.count() << "ms");
            CHECK(gap < 1s); // the app's own lock (the holder's TTL) had 30s left
        }
    }
}
