// What dlock leaves in Redis per lock name: N distinct names each acquired and released once,
// then INFO memory's used_memory and the key count right after, and again after the fence idle
// period. Prints one line of key=value pairs for scripts/bench.
//
//   dlock_memory_bench URL N FENCE_IDLE_MS
#include "dlock/backends.hpp"
#include "dlock/redis.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

long long info_number(dlock::redis::Connection& redis, const std::string& section,
                      const std::string& field) {
    const std::string info = redis.command({"INFO", section}).view().string();
    const auto at = info.find(field + ":");
    return at == std::string::npos ? 0 : std::atoll(info.c_str() + at + field.size() + 1);
}

long long keys(dlock::redis::Connection& redis) {
    return redis.command({"DBSIZE"}).view().integer();
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: dlock_memory_bench URL N FENCE_IDLE_MS\n");
        return 64;
    }
    const int names = std::atoi(argv[2]);
    const dlock::Millis idle{std::atoll(argv[3])};
    const dlock::Millis ttl{1'000};
    dlock::LockConfig config;
    config.url = argv[1];
    config.fence_idle = idle;
    dlock::redis::Options options;
    options.url = dlock::redis::parse_url(argv[1]);
    dlock::redis::Connection redis(options);

    redis.command({"FLUSHALL"});
    const long long before = info_number(redis, "memory", "used_memory");
    const auto locks = dlock::open_lock_service(config);
    for (int i = 0; i < names; ++i) {
        const std::string key = "withdraw_funds_user_" + std::to_string(i);
        const auto held = locks->try_acquire(key, ttl);
        if (!held.acquired() || locks->release(key, held.lease->token) != dlock::OwnerCheck::done)
            return 1;
    }
    const long long after = info_number(redis, "memory", "used_memory");
    const long long keys_after = keys(redis);
    // Past the lock's TTL plus the idle period, and Redis's active expiry has had time to run.
    std::this_thread::sleep_for(ttl + idle + std::chrono::seconds(2));
    const long long idle_keys = keys(redis);
    const long long after_idle = info_number(redis, "memory", "used_memory");
    std::printf("names=%d keys_after=%lld bytes_per_name=%.1f keys_after_idle=%lld "
                "bytes_per_name_after_idle=%.1f\n",
                names, keys_after, static_cast<double>(after - before) / names, idle_keys,
                static_cast<double>(after_idle - before) / names);
    return 0;
}
