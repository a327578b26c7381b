#include "dlock/duration.hpp"

#include "dlock/error.hpp"

#include <cstdint>
#include <iterator>

namespace dlock {
namespace {

constexpr std::int64_t max_ms = max_duration.count();

// Longest first: "ms" must be tried before "m".
struct Unit {
    std::string_view name;
    std::int64_t ms;
};
constexpr Unit units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

[[noreturn]] void reject(std::string_view text, std::string_view why) {
    throw UsageError("invalid duration '" + std::string(text) + "': " + std::string(why) +
                     " (use e.g. 250ms, 10s, 2m, 1m30s, 1h, 1d or 0.5)");
}

// One NUMBER[UNIT] part of a duration, starting at `pos`: its length in ms, the unit's size (0
// for a bare number) and where the next part starts.
struct Part {
    std::int64_t ms;
    std::int64_t unit;
    std::size_t end;
};

Part parse_part(std::string_view text, std::size_t pos) {
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

    std::int64_t unit = 0;
    for (const Unit& candidate : units)
        if (text.substr(pos, candidate.name.size()) == candidate.name) {
            unit = candidate.ms;
            pos += candidate.name.size();
            break;
        }
    const std::int64_t scale = unit == 0 ? 1000 : unit; // a bare number is seconds
    if (pos < text.size() && !is_digit(text[pos]))
        reject(text, "unknown unit");
    if (whole > max_ms / scale)
        reject(text, "too long");
    return {whole * scale + fraction * scale / fraction_scale, unit, pos};
}

} // namespace

// NUMBER[UNIT] parts from the largest unit to the smallest ("1h30m", "1m30.5s"); a bare number
// is seconds and stands alone.
Millis parse_duration(std::string_view text) {
    std::int64_t total = 0;
    std::int64_t last_unit = 0;
    for (std::size_t pos = 0; pos == 0 || pos < text.size();) {
        const Part part = parse_part(text, pos);
        if (pos > 0 && part.unit == 0)
            reject(text, "every part after the first needs a unit");
        if (part.end < text.size() && part.unit == 0)
            reject(text, "unknown unit");
        if (pos > 0 && part.unit >= last_unit)
            reject(text, "units must go from the largest to the smallest, each once");
        total += part.ms;
        if (total > max_ms)
            reject(text, "too long");
        last_unit = part.unit;
        pos = part.end;
    }
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
    // The largest unit that states it exactly: units run from the largest down.
    for (auto unit = std::rbegin(units); unit != std::rend(units); ++unit)
        if (duration.count() % unit->ms == 0 && (duration.count() != 0 || unit->ms == 1000))
            return std::to_string(duration.count() / unit->ms) + std::string(unit->name);
    return std::to_string(duration.count()) + "ms";
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
    if (seconds < 86'400)
        return std::to_string(seconds / 3600) + "h" + std::to_string(seconds % 3600 / 60) + "m";
    return std::to_string(seconds / 86'400) + "d" + std::to_string(seconds % 86'400 / 3600) + "h";
}

} // namespace dlock
