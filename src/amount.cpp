#include "dlock/amount.hpp"

#include "dlock/error.hpp"

#include <algorithm>
#include <limits>
#include <optional>

namespace dlock {
namespace {

constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

bool all_digits(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The value of a string of decimal digits, or nullopt when it does not fit in an int64.
std::optional<std::int64_t> value_of_digits(std::string_view digits) {
    std::int64_t value = 0;
    for (const char c : digits) {
        const int digit = c - '0';
        if (value > (int64_max - digit) / 10)
            return std::nullopt;
        value = value * 10 + digit;
    }
    return value;
}

[[noreturn]] void reject_amount(std::string_view text, std::string_view why) {
    throw UsageError("invalid amount '" + std::string(text) + "': " + std::string(why) +
                     " (use e.g. 50, 50.5 or 50.25)");
}

[[noreturn]] void reject_id(std::string_view what, std::string_view text, std::string_view why) {
    throw UsageError("invalid " + std::string(what) + " id '" + std::string(text) +
                     "': " + std::string(why));
}

} // namespace

Cents parse_amount(std::string_view text) {
    const std::size_t dot = text.find('.');
    const std::string_view whole = text.substr(0, dot);
    const std::string_view fraction =
        dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);

    if (!all_digits(whole))
        reject_amount(text, "not a positive decimal number");
    if (dot != std::string_view::npos) {
        if (fraction.empty())
            reject_amount(text, "digits must follow the decimal point");
        if (!all_digits(fraction))
            reject_amount(text, "not a positive decimal number");
        if (fraction.size() > 2)
            reject_amount(text, "at most two decimals");
    }

    // Written out in cents the amount is a plain integer, so one overflow check covers it.
    std::string cents_digits(whole);
    cents_digits += fraction;
    cents_digits.append(2 - fraction.size(), '0');
    const std::optional<std::int64_t> cents = value_of_digits(cents_digits);
    if (!cents)
        reject_amount(text, "too large");
    if (*cents == 0)
        reject_amount(text, "must be more than zero");
    return *cents;
}

std::string format_amount(Cents cents) {
    // Unsigned, so that the most negative Cents has a magnitude too.
    const auto magnitude =
        cents < 0 ? 0 - static_cast<std::uint64_t>(cents) : static_cast<std::uint64_t>(cents);
    const std::uint64_t fraction = magnitude % 100;
    return (cents < 0 ? "-" : "") + std::to_string(magnitude / 100) + (fraction < 10 ? ".0" : ".") +
           std::to_string(fraction);
}

std::int64_t parse_id(std::string_view what, std::string_view text) {
    if (!all_digits(text))
        reject_id(what, text, "not a positive whole number");
    const std::optional<std::int64_t> id = value_of_digits(text);
    if (!id)
        reject_id(what, text, "too large");
    if (*id == 0)
        reject_id(what, text, "must be at least 1");
    return *id;
}

} // namespace dlock
