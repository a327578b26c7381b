// The lock library against a real, private redis-server.
#include "dlock/lock.hpp"
#include "support/redis_server.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <doctest/doctest.h>
#include <future>
#include <thread>

using namespace std::chrono_literals;
using dlock::Millis;
using dlock::OwnerCheck;
using dlock::RedisLock;
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

} // namespace

TEST_CASE("acquire takes a free lock and returns a token, a fence and the TTL") {
    RedisServer server;
    RedisLock lock = lock_on(server);
    const auto result = lock.try_acquire("job", 10s);
    REQUIRE(result.acquired());
    CHECK(result.lease->token.size() == 32);
    CHECK(result.lease->fence > 0);
    CHECK(result.lease->ttl == 10s);
    const auto pttl = std::stoll(server.command({"PTTL", "dlock:{job}"}));
    CHECK(pttl > 9000);
    CHECK(pttl <= 10000);
    CHECK(server.command({"GET", "dlock:{job}"}) == result.lease->token);
}

TEST_CASE("acquire of a held lock is refused and reports the holder's remaining time") {
    RedisServer server;
    RedisLock lock = lock_on(server);
    REQUIRE(lock.try_acquire("job", 10s).acquired());
    const auto second = lock.try_acquire("job", 10s);
    CHECK_FALSE(second.acquired());
    CHECK(second.holder_ttl > 9s);
    CHECK(second.holder_ttl <= 10s);
}

TEST_CASE("release with a foreign token leaves the lock in place") {
    RedisServer server;
    RedisLock lock = lock_on(server);
    const auto held = lock.try_acquire("job", 10s);
    REQUIRE(held.acquired());
    CHECK(lock.release("job", dlock::new_owner_token()) == OwnerCheck::not_owner);
    CHECK(lock.status("job").holder == held.lease->token);
    CHECK(lock.release("job", held.lease->token) == OwnerCheck::done);
    CHECK_FALSE(lock.status("job").holder.has_value());
    CHECK(lock.release("job", held.lease->token) == OwnerCheck::not_held);
}

TEST_CASE("an expired lock is free again and its old owner can no longer release it") {
    RedisServer server;
    RedisLock lock = lock_on(server);
    const auto first = lock.try_acquire("job", 50ms);
    REQUIRE(first.acquired());
    const auto second = lock.block("job", 10s, 5s); // wakes at the holder's lease end
    REQUIRE(second.acquired());
    CHECK(lock.release("job", first.lease->token) == OwnerCheck::not_owner);
    CHECK(lock.status("job").holder == second.lease->token);
}

TEST_CASE("extend resets the TTL only for the owner") {
    RedisServer server;
    RedisLock lock = lock_on(server);
    const auto held = lock.try_acquire("job", 1s);
    REQUIRE(held.acquired());
    CHECK(lock.extend("job", dlock::new_owner_token(), 60s) == OwnerCheck::not_owner);
    CHECK(lock.status("job").ttl <= 1s);
    CHECK(lock.extend("job", held.lease->token, 60s) == OwnerCheck::done);
    CHECK(lock.status("job").ttl > 50s);
    CHECK(lock.extend("other", held.lease->token, 60s) == OwnerCheck::not_held);
}

TEST_CASE("force-release removes any holder and reports what it removed") {
    RedisServer server;
    RedisLock lock = lock_on(server);
    const auto held = lock.try_acquire("job", 30s);
    REQUIRE(held.acquired());
    const auto removed = lock.force_release("job");
    CHECK(removed.holder == held.lease->token);
    CHECK(removed.ttl > 25s);
    CHECK_FALSE(lock.force_release("job").holder.has_value());
    CHECK(lock.try_acquire("job", 1s).acquired());
}

TEST_CASE("status shows holder, TTL and the last fencing token issued") {
    RedisServer server;
    RedisLock lock = lock_on(server);
    CHECK_FALSE(lock.status("job").holder.has_value());
    CHECK_FALSE(lock.status("job").fence.has_value());
    const auto held = lock.try_acquire("job", 10s);
    const auto state = lock.status("job");
    CHECK(state.holder == held.lease->token);
    CHECK(state.fence == held.lease->fence);
    lock.release("job", held.lease->token);
    CHECK(lock.status("job").fence == held.lease->fence);
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

TEST_CASE("block gives up with busy when the wait runs out") {
    RedisServer server;
    RedisLock holder = lock_on(server);
    RedisLock waiter = lock_on(server);
    REQUIRE(holder.try_acquire("job", 60s).acquired());
    const auto start = clock_type::now();
    const auto result = waiter.block("job", 10s, 300ms);
    CHECK_FALSE(result.acquired());
    CHECK(since(start) >= 300ms);
    CHECK(since(start) < 5s);
}

TEST_CASE("block with no wait is a single attempt") {
    RedisServer server;
    RedisLock lock = lock_on(server);
    REQUIRE(lock.try_acquire("job", 60s).acquired());
    CHECK_FALSE(lock.block("job", 10s, 0ms).acquired());
}

TEST_CASE("force-release wakes a blocked waiter long before the holder's TTL") {
    RedisServer server;
    RedisLock holder = lock_on(server);
    REQUIRE(holder.try_acquire("job", 60s).acquired());
    auto waiting = std::async(std::launch::async, [&] {
        RedisLock waiter = lock_on(server);
        return waiter.block("job", 10s, 30s);
    });
    REQUIRE(server.wait_for_blocked_clients(1, 10s)); // the waiter is inside block()
    const auto released_at = clock_type::now();
    REQUIRE(holder.force_release("job").holder.has_value());
    const auto result = waiting.get();
    CHECK(result.acquired());
    CHECK(since(released_at) < 5s); // the holder's lease had 60s left
}

TEST_CASE("release hands the lock to a waiter well under Laravel's 250ms poll") {
    RedisServer server;
    RedisLock holder = lock_on(server);
    std::vector<Millis> gaps;
    for (int round = 0; round < 5; ++round) {
        const auto held = holder.try_acquire("job", 60s);
        REQUIRE(held.acquired());
        std::atomic<clock_type::time_point> acquired_at{};
        auto waiting = std::async(std::launch::async, [&] {
            RedisLock waiter = lock_on(server);
            const auto result = waiter.block("job", 10s, 30s);
            acquired_at = clock_type::now();
            if (result.acquired())
                waiter.release("job", result.lease->token);
            return result.acquired();
        });
        REQUIRE(server.wait_for_blocked_clients(1, 10s)); // the waiter is inside block()
        const auto released_at = clock_type::now();
        REQUIRE(holder.release("job", held.lease->token) == OwnerCheck::done);
        REQUIRE(waiting.get());
        gaps.push_back(std::chrono::duration_cast<Millis>(acquired_at.load() - released_at));
    }
    std::sort(gaps.begin(), gaps.end());
    MESSAGE("median hand-off gap: " << gaps[2].count() << "ms");
    CHECK(gaps[2] < 100ms);
}

TEST_CASE("many waiters take turns and never hold the lock together") {
    RedisServer server;
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    std::atomic<int> entries{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 6; ++w) {
        workers.emplace_back([&] {
            RedisLock lock = lock_on(server);
            for (int i = 0; i < 20; ++i) {
                const auto result = lock.block("job", 10s, 30s);
                if (!result.acquired())
                    continue;
                if (inside.fetch_add(1) != 0)
                    overlaps++;
                entries++;
                inside.fetch_sub(1);
                lock.release("job", result.lease->token);
            }
        });
    }
    for (auto& worker : workers)
        worker.join();
    CHECK(entries == 120);
    CHECK(overlaps == 0);
}

TEST_CASE("an unreachable Redis is an unavailable error, not a hang") {
    RedisServer server;
    const std::string url = server.url();
    server.stop();
    CHECK_THROWS_AS(RedisLock(options_for(url), "dlock:"), dlock::redis::IoError);
    CHECK_THROWS_AS(
        RedisLock(options_for("redis://127.0.0.1:" + std::to_string(dlock::test::free_tcp_port())),
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
