// Money and ids as users type them on the command line.
//
// Money is integer cents everywhere: a user's "50.25" becomes 5025 at the edge and is never a
// floating-point number anywhere in dlock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dlock {

using Cents = std::int64_t;

// Parses a positive amount with at most two decimals: "50", "50.5", "50.25", "007.50".
// Throws UsageError naming the input on anything else: zero, a sign, a third decimal, an
// exponent, spaces anywhere, "", ".5", "5.", or more cents than fit in Cents.
Cents parse_amount(std::string_view text);

// Always two decimals: 8000 -> "80.00", -50 -> "-0.50".
std::string format_amount(Cents cents);

// Parses a positive 64-bit id (an account, an invoice). Digits only: "0", "-1", "+1", " 1",
// "abc" and overflow are UsageErrors whose message names the kind: "invalid account id 'abc'",
// for what = "account".
std::int64_t parse_id(std::string_view what, std::string_view text);

} // namespace dlock
