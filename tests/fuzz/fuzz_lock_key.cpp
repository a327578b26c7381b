// Fuzz target: key validation, and the one-hash-tag property of every valid key's names.
#include "dlock/redis_lock.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view key(reinterpret_cast<const char*>(data), size);
    try {
        dlock::validate_key(key);
    } catch (const dlock::UsageError&) {
        return 0;
    }
    if (key.empty() || key.size() > dlock::max_key_bytes)
        std::abort();
    const dlock::LockKeys keys = dlock::lock_keys("dlock:", key);
    // Redis hashes from the first '{' to the first '}' after it: that must be the whole key.
    const auto open = keys.lock.find('{');
    const auto close = keys.lock.find('}', open + 1);
    if (open != 6 || close != keys.lock.size() - 1 || close == open + 1)
        std::abort();
    return 0;
}
