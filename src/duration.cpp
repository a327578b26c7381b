#include "dlock/duration.hpp"

#include "dlock/error.hpp"

#include <cstdint>

namespace dlock {
namespace {

constexpr std::int64_t max_ms = max_duration.count();

std::int64_t unit_in_ms(std::string_view unit) {
    if (unit.empty() || unit == "s")
        return 1000;
    if (unit == "ms")
        return 1;
    if (unit == "m")
        return 60 * 1000;
    if (unit == "h")
        return 60 * 60 * 1000;
    return 0;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

[[noreturn]] void reject(std::string_view text, std::string_view why) {
    throw UsageError("invalid duration '" + std::string(text) + "': " + std::string(why) +
                     " (use e.g. 250ms, 10s, 2m, 1h or 0.5)");
}

} // namespace

Millis parse_duration(std::string_view text) {
    std::size_t pos = 0;
    std::int64_t whole = 0;
    const std::size_t whole_start = pos;
    while (pos < text.size() && is_digit(text[pos])) {
        whole = whole * 10 + (text[pos] - '0');
        if (whole > max_ms)
            reject(text, "too long");
        ++pos;
    }
    if (pos == whole_start)
        reject(text, "not a number");

    // Fraction digits past a millisecond's resolution cannot matter; keep at most 9.
    std::int64_t fraction = 0;
    std::int64_t fraction_scale = 1;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        const std::size_t fraction_start = pos;
        while (pos < text.size() && is_digit(text[pos])) {
            if (fraction_scale < 1'000'000'000) {
                fraction = fraction * 10 + (text[pos] - '0');
                fraction_scale *= 10;
            }
            ++pos;
        }
        if (pos == fraction_start)
            reject(text, "digits must follow the decimal point");
    }

    const std::int64_t unit = unit_in_ms(text.substr(pos));
    if (unit == 0)
        reject(text, "unknown unit");
    if (whole > max_ms / unit)
        reject(text, "too long");
    const std::int64_t total = whole * unit + fraction * unit / fraction_scale;
    if (total > max_ms)
        reject(text, "too long");
    return Millis{total};
}

Millis parse_positive_duration(std::string_view text) {
    const Millis duration = parse_duration(text);
    if (duration.count() <= 0)
        reject(text, "must be at least 1ms");
    return duration;
}

Millis parse_wait(std::string_view text) {
    if (text == "inf" || text == "forever")
        return wait_forever;
    return parse_duration(text);
}

std::string duration_text(Millis duration) {
    return duration.count() % 1000 == 0 ? std::to_string(duration.count() / 1000) + "s"
                                        : std::to_string(duration.count()) + "ms";
}

std::string format_duration(Millis duration) {
    const std::int64_t ms = duration.count();
    if (ms < 1000)
        return std::to_string(ms) + "ms";
    if (ms < 60'000) {
        const std::int64_t tenths = ms / 100;
        return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "s";
    }
    const std::int64_t seconds = ms / 1000;
    if (seconds < 3600)
        return std::to_string(seconds / 60) + "m" + std::to_string(seconds % 60) + "s";
    return std::to_string(seconds / 3600) + "h" + std::to_string(seconds % 3600 / 60) + "m";
}

} // namespace dlock
