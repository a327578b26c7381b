// Durations as users type them: 250ms, 10s, 2m, 1h, 1d, compounds from the largest unit down
// (1m30s, 1h30m), or a bare number of seconds (10, 0.5).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace dlock {

using Millis = std::chrono::milliseconds;

// The longest duration dlock accepts anywhere: about 31 years, far below any overflow.
inline constexpr Millis max_duration{Millis{1'000'000'000'000}};

// A --wait that never runs out.
inline constexpr Millis wait_forever = Millis::max();

// Parses DUR; throws UsageError on anything else (sign, exponent, unknown unit, overflow).
// Zero is accepted here; callers that need a positive value use parse_positive_duration.
Millis parse_duration(std::string_view text);

// As parse_duration, but zero (or anything that rounds to under 1 ms) is a UsageError.
Millis parse_positive_duration(std::string_view text);

// A --wait value: DUR, or 'inf' (or 'forever') for wait_forever.
Millis parse_wait(std::string_view text);

// DUR exactly as parse_duration reads it back, for the defaults that --help shows: "10s",
// "100ms".
std::string duration_text(Millis duration);

// Short human form for messages: "250ms", "4.2s", "3m12s", "2h5m", "3d4h".
std::string format_duration(Millis duration);

} // namespace dlock
