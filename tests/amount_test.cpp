#include "dlock/amount.hpp"
#include "dlock/error.hpp"

#include <doctest/doctest.h>
#include <limits>
#include <string>
#include <utility>

using dlock::Cents;
using dlock::format_amount;
using dlock::parse_amount;
using dlock::parse_id;

TEST_CASE("amounts parse to exact cents") {
    const std::pair<const char*, Cents> cases[] = {
        {"50", 5000},
        {"50.5", 5050},
        {"50.25", 5025},
        {"0.01", 1},
        {"0.1", 10},
        {"007.50", 750},
        {"92233720368547758.07", std::numeric_limits<Cents>::max()},
    };
    for (const auto& [text, cents] : cases) {
        CAPTURE(text);
        CHECK(parse_amount(text) == cents);
    }
}

TEST_CASE("malformed, zero and oversized amounts are usage errors") {
    for (const char* bad : {"",
                            "0",
                            "0.0",
                            "0.00",
                            "000",
                            "-5",
                            "+5",
                            "5.001",
                            "1e3",
                            "1E3",
                            " 5",
                            "5 ",
                            "5 0",
                            "5. 5",
                            ".5",
                            "5.",
                            "5..5",
                            "5.5.5",
                            "abc",
                            "5,50",
                            "0x10",
                            "92233720368547758.08",
                            "99999999999999999999",
                            "100000000000000000000000"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_amount(bad), dlock::UsageError);
    }
}

TEST_CASE("an amount error is one line naming the input") {
    try {
        parse_amount("12.345");
        FAIL("12.345 was accepted");
    } catch (const dlock::UsageError& e) {
        const std::string message = e.what();
        CHECK(message.find("'12.345'") != std::string::npos);
        CHECK(message.find('\n') == std::string::npos);
    }
}

TEST_CASE("amounts format with exactly two decimals") {
    const std::pair<Cents, const char*> cases[] = {
        {8000, "80.00"},
        {1, "0.01"},
        {10, "0.10"},
        {5025, "50.25"},
        {0, "0.00"},
        {-50, "-0.50"},
        {-12345, "-123.45"},
        {std::numeric_limits<Cents>::max(), "92233720368547758.07"},
        {std::numeric_limits<Cents>::min(), "-92233720368547758.08"},
    };
    for (const auto& [cents, text] : cases) {
        CAPTURE(cents);
        CHECK(format_amount(cents) == text);
    }
}

TEST_CASE("ids are positive 64-bit integers") {
    CHECK(parse_id("account", "1") == 1);
    CHECK(parse_id("account", "0042") == 42);
    CHECK(parse_id("invoice", "9223372036854775807") == std::numeric_limits<std::int64_t>::max());
    for (const char* bad : {"", "0", "000", "-1", "+1", " 1", "1 ", "abc", "1.0", "1e3",
                            "9223372036854775808", "99999999999999999999"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_id("account", bad), dlock::UsageError);
    }
}

TEST_CASE("an id error names the kind of id and the input") {
    CHECK_THROWS_WITH_AS(parse_id("account", "abc"), doctest::Contains("invalid account id 'abc'"),
                         dlock::UsageError);
    CHECK_THROWS_WITH_AS(parse_id("invoice", "0"), doctest::Contains("invalid invoice id '0'"),
                         dlock::UsageError);
}
