// The seed of the pseudo-random pauses and jitter, internal to the library.
#pragma once

#include <chrono>
#include <cstdint>
#include <sys/random.h>
#include <unistd.h>

namespace dlock::detail {

// From getrandom(2), not std::random_device: setting that up asks the CPU what it supports
// (CPUID), which traps to the hypervisor in a virtual machine, at every start of a fresh process.
// Pauses need no more than a different seed per process, so a failure falls back on the clock.
inline std::uint32_t random_seed() {
    std::uint32_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed))
        seed = static_cast<std::uint32_t>(
                   std::chrono::steady_clock::now().time_since_epoch().count()) ^
               static_cast<std::uint32_t>(getpid());
    return seed;
}

} // namespace dlock::detail
