// The balance ledger as the rest of dlock sees it, whatever stores it: accounts, a journal of
// every movement, invoices, fencing, idempotency.
//
// Every request ends in one LedgerStatus from a closed set: expected refusals are values, not
// exceptions. An exception (error.hpp) means the ledger could not be used at all: a store that
// is not a ledger or comes from a newer dlock (DataError), one that cannot be reached or stays
// locked while opening (UnavailableError). Money is integer cents throughout.
//
// A backend (sqlite_ledger.hpp, postgres_ledger.hpp) implements Ledger and passes the contract
// suite in tests/ledger_test.cpp; backends.hpp is the only place that picks one.
#pragma once

#include "dlock/amount.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dlock {

using AccountId = std::int64_t;
using InvoiceId = std::int64_t;

// The outcome of a ledger request. When several apply, the first in this order wins:
//   1. duplicate, idempotency_conflict: the idempotency key was used before (deposit, withdraw);
//      unknown_invoice, then paid (process_invoice).
//   2. unknown_account: the account does not exist (withdraw, create_invoice, reads; deposit
//      opens a missing account instead).
//   3. stale_fence: a write under a newer lock on the same resource was already accepted.
//   4. insufficient_funds: the balance does not cover the debit.
// busy can end any request: other writers kept the ledger locked past the retry deadline.
// Whatever the status other than ok, the request wrote nothing.
enum class LedgerStatus {
    ok,
    insufficient_funds,
    duplicate,            // same key, same request: nothing moved
    idempotency_conflict, // same key, different kind, account or amount
    stale_fence,
    busy,
    paid, // the invoice was paid before; nothing charged
    unknown_account,
    unknown_invoice,
};

// The status as the word in dlock's JSON "status" field: "ok", "insufficient_funds", ...
std::string_view to_string(LedgerStatus status);

// Proof that a write is made under a lock: the resource the lock protects (the lock's
// LockService::fence_resource name) and the fencing token that acquisition handed out. Tokens
// grow with every acquisition.
struct Fence {
    std::string resource;
    std::int64_t token;
};

// Every member has an initializer so that callers can name just the ones they need,
// e.g. {.hold = 2s}, without -Wmissing-field-initializers.
struct WriteOptions {
    // A repeat of a request with the same key moves no money (status duplicate).
    std::optional<std::string> idempotency_key{};
    // Refused with stale_fence when a write carrying a higher token for the same resource was
    // accepted before; otherwise the token is recorded when the write commits.
    std::optional<Fence> fence{};
    // The caller's own work that must commit or roll back with this write: run inside the
    // transaction, after the checks and changes, right before the commit. An exception from it
    // rolls the write back and leaves the request.
    std::function<void()> before_commit{};
};

struct BalanceResult {
    LedgerStatus status;
    AccountId account;
    // ok: the new balance; duplicate: the balance the first write left; insufficient_funds: the
    // current balance. Absent otherwise.
    std::optional<Cents> balance;
};

enum class EntryKind { deposit, withdraw, invoice };

// "deposit", "withdraw" or "invoice".
std::string_view to_string(EntryKind kind);

// One movement of money, as the journal recorded it.
struct JournalEntry {
    std::int64_t id;
    std::int64_t time_ms; // milliseconds since the Unix epoch
    EntryKind kind;
    Cents amount;        // signed: credits positive, debits negative
    Cents balance_after; // the account's balance right after this entry
    std::optional<std::string> idempotency_key;
    std::optional<std::int64_t> fence_token;
    std::optional<InvoiceId> invoice; // the invoice paid, for kind invoice
};

struct HistoryResult {
    LedgerStatus status;               // ok, unknown_account or busy
    std::vector<JournalEntry> entries; // newest first
};

struct Invoice {
    InvoiceId id;
    AccountId account;
    Cents amount;
    bool paid;
};

struct InvoiceResult {
    LedgerStatus status;
    // The invoice as it stands after the request; absent when unknown or busy.
    std::optional<Invoice> invoice;
    // process_invoice with ok, paid or insufficient_funds: the account's balance afterwards.
    std::optional<Cents> balance;
};

// An account whose stored balance is not the sum of its journal.
struct BalanceMismatch {
    AccountId account;
    Cents expected;   // the sum of the account's journal
    Cents actual;     // the stored balance
    Cents difference; // actual - expected: positive when money appeared, e.g. lost debits
};

struct VerifyReport {
    LedgerStatus status; // ok or busy
    std::vector<BalanceMismatch> mismatches;
    // The storage engine's own consistency check: "ok", or its findings one per line.
    std::string integrity;

    bool clean() const {
        return status == LedgerStatus::ok && mismatches.empty() && integrity == "ok";
    }
};

// What a request answers when the ledger stayed busy past its retry deadline (for backends).
inline BalanceResult busy_balance(AccountId account) {
    return {LedgerStatus::busy, account, std::nullopt};
}
inline InvoiceResult busy_invoice() {
    return {LedgerStatus::busy, std::nullopt, std::nullopt};
}

// The ledger as the rest of dlock sees it, whatever stores it. Amounts must be positive (a
// UsageError otherwise). Every write is atomic: a request that ends in any status but ok, or in
// an exception, or whose process dies half-way, leaves the ledger as it was.
class Ledger {
public:
    virtual ~Ledger() = default;
    Ledger(const Ledger&) = delete;
    Ledger& operator=(const Ledger&) = delete;

    // Credits the account, opening it first if it does not exist.
    virtual BalanceResult deposit(AccountId account, Cents amount, const WriteOptions& options) = 0;

    // Debits the account. The balance check and the debit are one atomic step, so concurrent
    // withdrawals can never take a balance below zero.
    virtual BalanceResult withdraw(AccountId account, Cents amount,
                                   const WriteOptions& options) = 0;

    // An application's write after its own read: stores `new_balance` as the account's
    // balance, whatever the balance is now, and journals the withdrawal of `amount` that led to
    // it. Correct only if nothing else wrote since the caller read the balance, which is what
    // the account's lock is for; the race demo (race_demo.hpp) shows what happens without one.
    // unknown_account if the account does not exist.
    virtual BalanceResult store_withdrawal(AccountId account, Cents amount, Cents new_balance) = 0;

    virtual BalanceResult balance(AccountId account) = 0;

    // The account's latest `limit` journal entries, newest first.
    virtual HistoryResult history(AccountId account, std::size_t limit) = 0;

    // Compares every account's stored balance with the sum of its journal.
    virtual VerifyReport verify() = 0;

    // Opens an invoice for `amount` on the account; nothing is charged until it is processed.
    virtual InvoiceResult create_invoice(AccountId account, Cents amount) = 0;

    // Charges an open invoice to its account and marks it paid, atomically. An invoice that
    // cannot be covered stays open and can be processed again later. An invoice is paid at most
    // once by itself: options.idempotency_key is not used.
    virtual InvoiceResult process_invoice(InvoiceId invoice, const WriteOptions& options) = 0;

protected:
    Ledger() = default;
};

} // namespace dlock
