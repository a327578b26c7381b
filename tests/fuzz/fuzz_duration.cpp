// Fuzz target: durations parse into [0, max_duration] or are refused with a UsageError.
#include "dlock/duration.hpp"
#include "dlock/error.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const dlock::Millis duration = dlock::parse_duration(text);
        if (duration.count() < 0 || duration > dlock::max_duration)
            std::abort();
        if (dlock::format_duration(duration).empty())
            std::abort();
    } catch (const dlock::UsageError&) {
    }
    return 0;
}
