// What every ledger backend shares below the Ledger interface: the checks on a request's
// amounts, the journal entry a write appends, and the pause between tries of a busy ledger.
#pragma once

#include "dlock/amount.hpp"
#include "dlock/error.hpp"
#include "dlock/ledger.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <thread>

namespace dlock::detail {

// Every write's amount: a UsageError unless it is positive.
inline void require_positive(Cents amount) {
    if (amount <= 0)
        throw UsageError("amount must be positive, not " + format_amount(amount));
}

// store_withdrawal's new balance: a UsageError when it is negative.
inline void require_storable_balance(Cents balance) {
    if (balance < 0)
        throw UsageError("a balance cannot be negative, not " + format_amount(balance));
}

// A deposit the largest balance cannot hold.
[[noreturn]] inline void refuse_overflow(AccountId account, Cents amount) {
    throw UsageError("depositing " + format_amount(amount) + " would overflow account " +
                     std::to_string(account) + "'s balance");
}

// A journal row's kind, from the word to_string(EntryKind) stored; DataError for any other.
inline EntryKind entry_kind_from(const std::string& word) {
    for (const EntryKind kind : {EntryKind::deposit, EntryKind::withdraw, EntryKind::invoice})
        if (to_string(kind) == word)
            return kind;
    throw DataError("ledger journal holds an unknown entry kind '" + word + "'");
}

// One journal row as a write appends it.
struct NewEntry {
    AccountId account;
    EntryKind kind;
    Cents amount; // signed
    Cents balance_after;
    std::optional<std::string> idempotency_key;
    std::optional<std::int64_t> fence_token;
    std::optional<InvoiceId> invoice;
};

inline std::optional<std::int64_t> token_of(const std::optional<Fence>& fence) {
    return fence ? std::optional(fence->token) : std::nullopt;
}

// The pauses between tries of a busy ledger grow from 1 ms to this, doubling.
constexpr Millis longest_retry_pause{32};

inline Millis next_retry_pause(Millis longest) {
    return std::min(longest * 2, longest_retry_pause);
}

// Sleeps a random 1..`longest` ms, never past `left`: processes that collided once should not
// collide again in step.
template <typename Rng>
void pause_before_retry(Millis longest, std::chrono::steady_clock::duration left, Rng& rng) {
    const Millis pause{std::uniform_int_distribution<Millis::rep>{1, longest.count()}(rng)};
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, left));
}

} // namespace dlock::detail
