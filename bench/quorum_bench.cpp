// dlock_quorum_bench: the quorum lock in one process, next to one server's lock, for
// scripts/bench (which runs node-redlock against the same servers).
//
//   dlock_quorum_bench CYCLES WORKERS SECONDS TIMEOUT_MS URL1 URL2 URL3 ...
//
// Prints key=value pairs (times in microseconds):
//   single_acquire, quorum_acquire: the median of CYCLES uncontended acquisitions (each
//     released before the next) on the first server alone, and on all of them
//   quorum_cycle: the median acquire + release on all of them
//   contended_per_s: WORKERS threads, each its own QuorumLock, taking one key with block() and
//     releasing it at once, for SECONDS: lock entries per second
// With "paused" as CYCLES: the time one acquire + release takes while the first server is
// paused (CLIENT PAUSE, sent here once the quorum's connections are up), with TIMEOUT_MS as the
// timeout.
// Not a test: it asserts nothing about speed. Not installed.
#include "dlock/backends.hpp"
#include "dlock/error.hpp"
#include "dlock/redis.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::unique_ptr<dlock::LockService> open(const std::vector<std::string>& urls, long timeout_ms) {
    dlock::LockConfig config;
    config.url.clear();
    for (const std::string& url : urls)
        config.url += (config.url.empty() ? "" : " ") + url;
    config.timeout = dlock::Millis{timeout_ms};
    config.prefix = "bench:";
    return dlock::open_lock_service(config);
}

long micros_since(Clock::time_point start) {
    return static_cast<long>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count());
}

long median(std::vector<long> values) {
    std::sort(values.begin(), values.end());
    return values.empty() ? 0 : values[values.size() / 2];
}

// The median time of `cycles` acquisitions, and of acquire + release.
std::pair<long, long> cycles_on(dlock::LockService& locks, int cycles) {
    std::vector<long> acquires;
    std::vector<long> whole;
    for (int i = 0; i < cycles; ++i) {
        const auto start = Clock::now();
        const dlock::AcquireResult result = locks.try_acquire("uncontended", dlock::Millis{10'000});
        acquires.push_back(micros_since(start));
        if (!result.acquired())
            throw dlock::InternalError("an uncontended acquisition failed");
        locks.release("uncontended", result.lease->token);
        whole.push_back(micros_since(start));
    }
    return {median(acquires), median(whole)};
}

} // namespace

int main(int argc, char** argv) {
    try {
        if (argc < 8) {
            std::fprintf(stderr, "usage: dlock_quorum_bench CYCLES|paused WORKERS SECONDS "
                                 "TIMEOUT_MS URL1 URL2 URL3 ...\n");
            return 64;
        }
        const std::string mode = argv[1];
        const int workers = std::stoi(argv[2]);
        const double seconds = std::stod(argv[3]);
        const long timeout_ms = std::stol(argv[4]);
        const std::vector<std::string> urls(argv + 5, argv + argc);

        if (mode == "paused") {
            const auto quorum = open(urls, timeout_ms);
            cycles_on(*quorum, 2);
            dlock::redis::Options admin_options;
            admin_options.url = dlock::redis::parse_url(urls.front());
            dlock::redis::Connection admin(admin_options);
            admin.command({"CLIENT", "PAUSE", std::to_string(timeout_ms * 4), "ALL"});
            const auto start = Clock::now();
            const dlock::AcquireResult result =
                quorum->try_acquire("paused", dlock::Millis{10'000});
            if (result.acquired())
                quorum->release("paused", result.lease->token);
            const long took = micros_since(start);
            admin.command({"CLIENT", "UNPAUSE"});
            std::printf("paused_answer=%ld acquired=%d\n", took, result.acquired() ? 1 : 0);
            return 0;
        }
        const int cycles = std::stoi(mode);
        const auto single = open({urls.front()}, timeout_ms);
        const auto quorum = open(urls, timeout_ms);
        cycles_on(*single, 5); // connections made, scripts cached
        cycles_on(*quorum, 5);
        const auto [single_acquire, single_cycle] = cycles_on(*single, cycles);
        const auto [quorum_acquire, quorum_cycle] = cycles_on(*quorum, cycles);

        std::atomic<long> entries{0};
        std::atomic<bool> stop{false};
        std::vector<std::thread> threads;
        for (int w = 0; w < workers; ++w)
            threads.emplace_back([&] {
                const auto locks = open(urls, timeout_ms);
                while (!stop) {
                    const dlock::AcquireResult result =
                        locks->block("contended", dlock::Millis{10'000}, dlock::Millis{30'000});
                    if (!result.acquired())
                        continue;
                    locks->release("contended", result.lease->token);
                    ++entries;
                }
            });
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
        stop = true;
        for (std::thread& t : threads)
            t.join();
        std::printf("single_acquire=%ld single_cycle=%ld quorum_acquire=%ld quorum_cycle=%ld "
                    "contended_per_s=%.0f\n",
                    single_acquire, single_cycle, quorum_acquire, quorum_cycle,
                    static_cast<double>(entries) / seconds);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "dlock_quorum_bench: %s\n", e.what());
        return 1;
    }
}
