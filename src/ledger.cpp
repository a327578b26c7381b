#include "dlock/ledger.hpp"

#include "dlock/error.hpp"

#include <array>
#include <utility>

namespace dlock {
namespace {

constexpr std::array<std::pair<LedgerStatus, std::string_view>, 9> status_words{{
    {LedgerStatus::ok, "ok"},
    {LedgerStatus::insufficient_funds, "insufficient_funds"},
    {LedgerStatus::duplicate, "duplicate"},
    {LedgerStatus::idempotency_conflict, "idempotency_conflict"},
    {LedgerStatus::stale_fence, "stale_fence"},
    {LedgerStatus::busy, "busy"},
    {LedgerStatus::paid, "paid"},
    {LedgerStatus::unknown_account, "unknown_account"},
    {LedgerStatus::unknown_invoice, "unknown_invoice"},
}};

constexpr std::array<std::pair<EntryKind, std::string_view>, 3> kind_words{{
    {EntryKind::deposit, "deposit"},
    {EntryKind::withdraw, "withdraw"},
    {EntryKind::invoice, "invoice"},
}};

template <typename Enum, std::size_t N>
std::string_view word_of(const std::array<std::pair<Enum, std::string_view>, N>& words, Enum value,
                         std::string_view what) {
    for (const auto& [known, word] : words)
        if (known == value)
            return word;
    throw InternalError(std::string(what) +
                        " out of range: " + std::to_string(static_cast<int>(value)));
}

} // namespace

std::string_view to_string(LedgerStatus status) {
    return word_of(status_words, status, "ledger status");
}

std::string_view to_string(EntryKind kind) {
    return word_of(kind_words, kind, "journal entry kind");
}

} // namespace dlock
