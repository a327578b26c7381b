// dlock_handoff_bench: how fast the lock passes from one holder to the next, in one process.
//
//   dlock_handoff_bench [--redis URL] [--threads N] [--seconds S] [--hold-us H] [--prefix P]
//
// N threads, each with its own RedisLock (its own connection), take one key with block(),
// hold it H microseconds, and release it. A thread that released waits until another thread
// has entered before it tries again, so every entry is a hand-off from another holder to a
// waiter, not the releaser taking the lock straight back. The gap is the time from the moment
// the holder sends its release to the moment the next holder's block() returns. The Redis
// round-trip time (PING) is measured in the same run: in a tight loop before and after, the
// reference; and every 500 us during the hand-offs, on a connection of its own, which shows what
// a round trip costs under the same load.
//
// Prints one line of key=value pairs (times in microseconds) for scripts/bench. Not a test:
// it asserts nothing about speed. Not installed.
#include "dlock/error.hpp"
#include "dlock/redis.hpp"
#include "dlock/redis_lock.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    std::string url = "redis://127.0.0.1:6379";
    int threads = 8;
    double seconds = 3;
    long hold_us = 0;
    std::string prefix = "dlock-bench:";
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "dlock_handoff_bench: %s\nusage: dlock_handoff_bench [--redis URL] "
                 "[--threads N] [--seconds S] [--hold-us H] [--prefix P]\n",
                 why.c_str());
    std::exit(dlock::exit_code::usage);
}

Options parse(int argc, char** argv) {
    Options options;
    if (const char* url = std::getenv("DLOCK_REDIS_URL"); url != nullptr && *url != '\0')
        options.url = url;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (i + 1 >= argc)
            usage("missing value after " + flag);
        const char* value = argv[++i];
        try {
            if (flag == "--redis")
                options.url = value;
            else if (flag == "--threads")
                options.threads = std::stoi(value);
            else if (flag == "--seconds")
                options.seconds = std::stod(value);
            else if (flag == "--hold-us")
                options.hold_us = std::stol(value);
            else if (flag == "--prefix")
                options.prefix = value;
            else
                usage("unknown option " + flag);
        } catch (const std::logic_error&) {
            usage("bad value for " + flag + ": " + value);
        }
    }
    if (options.threads < 2 || options.threads > 256)
        usage("--threads must be 2 to 256: a hand-off needs a second thread");
    if (options.seconds <= 0 || options.hold_us < 0)
        usage("--seconds must be positive and --hold-us not negative");
    return options;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

// Nearest-rank percentile of sorted samples, in microseconds.
double percentile_us(const std::vector<std::int64_t>& sorted, double p) {
    if (sorted.empty())
        return 0;
    const auto rank = static_cast<std::size_t>(std::max(1.0, p * double(sorted.size()) + 0.999));
    return double(sorted[std::min(rank, sorted.size()) - 1]) / 1000.0;
}

std::vector<std::int64_t> ping_round_trips(const dlock::redis::Options& options, int count) {
    dlock::redis::Connection connection(options);
    for (int i = 0; i < 100; ++i) // warm up: first command, caches, the scheduler
        connection.command({"PING"});
    std::vector<std::int64_t> samples;
    samples.reserve(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
        const std::int64_t start = now_ns();
        connection.command({"PING"});
        samples.push_back(now_ns() - start);
    }
    return samples;
}

// PINGs every 500 us until told to stop.
void probe(const dlock::redis::Options& options, const std::atomic<bool>& stop,
           std::vector<std::int64_t>& samples) {
    dlock::redis::Connection connection(options);
    connection.command({"PING"});
    while (!stop.load()) {
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        const std::int64_t start = now_ns();
        connection.command({"PING"});
        samples.push_back(now_ns() - start);
    }
}

struct Shared {
    std::atomic<std::int64_t> released_at{0}; // when the last holder sent its release
    std::atomic<int> last_holder{-1};
    std::atomic<bool> stop{false};
    std::mutex mutex;
    // Grows with every entry; threads that released wait on it. A condition variable, not
    // atomic::wait, whose spinning with sched_yield took CPU from the threads being measured.
    std::uint64_t entries = 0;
    std::condition_variable entered;
    std::vector<std::int64_t> gaps;
    std::vector<std::string> errors;
};

void contend(int self, const Options& options, const dlock::redis::Options& redis, Shared& shared) {
    const std::string key = "handoff";
    std::vector<std::int64_t> gaps;
    try {
        dlock::RedisLock lock(redis, options.prefix);
        std::uint64_t after_my_entry = UINT64_MAX; // nothing to wait for before the first try
        while (!shared.stop.load()) {
            // Let someone else have it: measure hand-offs, not the releaser taking it back.
            if (after_my_entry != UINT64_MAX) {
                std::unique_lock lock_guard(shared.mutex);
                shared.entered.wait(lock_guard, [&] {
                    return shared.entries != after_my_entry || shared.stop.load();
                });
            }
            if (shared.stop.load())
                break;
            const dlock::AcquireResult acquired =
                lock.block(key, dlock::Millis{10'000}, dlock::Millis{1'000});
            if (!acquired.acquired())
                continue;
            const std::int64_t entered = now_ns();
            {
                const std::lock_guard guard(shared.mutex);
                after_my_entry = ++shared.entries;
            }
            shared.entered.notify_all();
            const int previous = shared.last_holder.exchange(self);
            if (previous >= 0 && previous != self)
                gaps.push_back(entered - shared.released_at.load());
            if (options.hold_us > 0)
                std::this_thread::sleep_for(std::chrono::microseconds(options.hold_us));
            shared.released_at.store(now_ns());
            lock.release(key, acquired.lease->token);
        }
    } catch (const std::exception& e) {
        const std::lock_guard guard(shared.mutex);
        shared.errors.push_back(e.what());
    }
    const std::lock_guard guard(shared.mutex);
    shared.gaps.insert(shared.gaps.end(), gaps.begin(), gaps.end());
}

} // namespace

int main(int argc, char** argv) {
    const Options options = parse(argc, argv);
    dlock::redis::Options redis;
    try {
        redis.url = dlock::redis::parse_url(options.url);
        std::vector<std::int64_t> rtt = ping_round_trips(redis, 1000);

        Shared shared;
        std::vector<std::thread> threads;
        std::vector<std::int64_t> loaded_rtt;
        std::atomic<bool> probe_stop{false};
        std::thread prober(probe, std::cref(redis), std::cref(probe_stop), std::ref(loaded_rtt));
        const auto start = Clock::now();
        for (int i = 0; i < options.threads; ++i)
            threads.emplace_back(contend, i, std::cref(options), std::cref(redis),
                                 std::ref(shared));
        std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
        {
            const std::lock_guard guard(shared.mutex);
            shared.stop.store(true); // under the mutex, so no waiter misses it
        }
        shared.entered.notify_all();
        for (auto& thread : threads)
            thread.join();
        const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        probe_stop.store(true);
        prober.join();
        if (!shared.errors.empty()) {
            std::fprintf(stderr, "dlock_handoff_bench: %s\n", shared.errors.front().c_str());
            return dlock::exit_code::unavailable;
        }

        const std::vector<std::int64_t> after = ping_round_trips(redis, 1000);
        rtt.insert(rtt.end(), after.begin(), after.end());
        std::sort(rtt.begin(), rtt.end());
        std::sort(loaded_rtt.begin(), loaded_rtt.end());
        std::sort(shared.gaps.begin(), shared.gaps.end());
        std::printf("threads=%d seconds=%.2f rtt_p50_us=%.1f rtt_p99_us=%.1f "
                    "loaded_rtt_p50_us=%.1f loaded_rtt_p99_us=%.1f handoffs=%zu "
                    "handoffs_per_s=%.0f gap_p50_us=%.1f gap_p99_us=%.1f\n",
                    options.threads, elapsed, percentile_us(rtt, 0.50), percentile_us(rtt, 0.99),
                    percentile_us(loaded_rtt, 0.50), percentile_us(loaded_rtt, 0.99),
                    shared.gaps.size(), double(shared.gaps.size()) / elapsed,
                    percentile_us(shared.gaps, 0.50), percentile_us(shared.gaps, 0.99));
        return shared.gaps.empty() ? dlock::exit_code::internal : 0;
    } catch (const dlock::Error& e) {
        std::fprintf(stderr, "dlock_handoff_bench: %s\n", e.what());
        return e.exit_code();
    }
}
