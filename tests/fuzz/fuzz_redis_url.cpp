// Fuzz target: Redis URL parsing must accept or refuse with a UsageError, never crash.
#include "dlock/redis.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const dlock::redis::Url url = dlock::redis::parse_url(text);
        if (url.port < 1 || url.port > 65535 || url.db < 0)
            std::abort();
        // The redacted form must parse back to the same place.
        const dlock::redis::Url again = dlock::redis::parse_url(url.redacted());
        if (again.host != url.host || again.port != url.port || again.db != url.db ||
            again.socket_path != url.socket_path)
            std::abort();
    } catch (const dlock::UsageError&) {
    }
    return 0;
}
