// Fuzz target: amounts and ids parse or are refused; a parsed amount survives formatting.
#include "dlock/amount.hpp"
#include "dlock/error.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const dlock::Cents cents = dlock::parse_amount(text);
        if (cents <= 0 || dlock::parse_amount(dlock::format_amount(cents)) != cents)
            std::abort();
    } catch (const dlock::UsageError&) {
    }
    try {
        if (dlock::parse_id("account id", text) <= 0)
            std::abort();
    } catch (const dlock::UsageError&) {
    }
    return 0;
}
