#include "dlock/duration.hpp"
#include "dlock/error.hpp"

#include <doctest/doctest.h>

using dlock::Millis;
using dlock::parse_duration;
using dlock::parse_positive_duration;

TEST_CASE("durations accept the units users type") {
    CHECK(parse_duration("250ms") == Millis{250});
    CHECK(parse_duration("10s") == Millis{10'000});
    CHECK(parse_duration("2m") == Millis{120'000});
    CHECK(parse_duration("1h") == Millis{3'600'000});
    CHECK(parse_duration("1.5h") == Millis{5'400'000});
}

TEST_CASE("compound durations go from the largest unit down, and days count") {
    CHECK(parse_duration("1m30s") == Millis{90'000});
    CHECK(parse_duration("1h30m") == Millis{5'400'000});
    CHECK(parse_duration("1d") == Millis{86'400'000});
    CHECK(parse_duration("1d2h3m4s5ms") == Millis{93'784'005});
    CHECK(parse_duration("2m0.5s") == Millis{120'500});
    for (const char* bad : {"30s1m", "1m1m", "1m30", "1h 30m", "1m+30s", "1msx", "10md"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_duration(bad), dlock::UsageError);
    }
}

TEST_CASE("a bare number means seconds, fractions included") {
    CHECK(parse_duration("10") == Millis{10'000});
    CHECK(parse_duration("0.5") == Millis{500});
    CHECK(parse_duration("0.001") == Millis{1});
    CHECK(parse_duration("0") == Millis{0});
}

TEST_CASE("malformed durations are usage errors") {
    for (const char* bad : {"", "abc", "10x", "-1", "+1", "1e3", "1e9999", " 1", "1 ", "1.", ".5",
                            "1..2", "10 s", "ms", "5sec", "0x10", "1,5"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_duration(bad), dlock::UsageError);
    }
}

TEST_CASE("durations past the limit are refused instead of overflowing") {
    CHECK_THROWS_AS(parse_duration("99999999999999999999999"), dlock::UsageError);
    CHECK_THROWS_AS(parse_duration("9223372036854775807ms"), dlock::UsageError);
    CHECK_THROWS_AS(parse_duration("5000000000h"), dlock::UsageError);
    CHECK(parse_duration("1000000000000ms") == dlock::max_duration);
}

TEST_CASE("a positive duration refuses zero and sub-millisecond values") {
    CHECK_THROWS_AS(parse_positive_duration("0"), dlock::UsageError);
    CHECK_THROWS_AS(parse_positive_duration("0ms"), dlock::UsageError);
    CHECK_THROWS_AS(parse_positive_duration("0.0001"), dlock::UsageError);
    CHECK(parse_positive_duration("1ms") == Millis{1});
}

TEST_CASE("defaults are shown in the largest unit that states them exactly, and read back") {
    for (const auto& [ms, text] :
         std::initializer_list<std::pair<long, const char*>>{{0, "0s"},
                                                             {100, "100ms"},
                                                             {5'000, "5s"},
                                                             {90'000, "90s"},
                                                             {120'000, "2m"},
                                                             {604'800'000, "7d"},
                                                             {1'500, "1500ms"}}) {
        CAPTURE(text);
        CHECK(dlock::duration_text(Millis{ms}) == text);
        CHECK(parse_duration(text) == Millis{ms});
    }
}

TEST_CASE("durations format for humans") {
    CHECK(dlock::format_duration(Millis{250}) == "250ms");
    CHECK(dlock::format_duration(Millis{4'250}) == "4.2s");
    CHECK(dlock::format_duration(Millis{192'000}) == "3m12s");
    CHECK(dlock::format_duration(Millis{3'720'000}) == "1h2m");
    CHECK(dlock::format_duration(Millis{2 * 86'400'000 + 3'600'000}) == "2d1h");
}
