// The ledger's use cases under a lock, as the lesson tells them: "withdraw under the user's
// lock" (WithdrawFunds) and "process an invoice once" (ProcessInvoice). They work over any
// LockService and any Ledger, and end in one Outcome from a closed set.
#pragma once

#include "dlock/ledger.hpp"
#include "dlock/lock.hpp"
#include "dlock/scoped_lease.hpp"

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace dlock {

// The lesson's lock names: withdraw_funds_user_{ID} and invoice_{ID}.
inline constexpr std::string_view withdraw_lock_prefix = "withdraw_funds_user_";
inline constexpr std::string_view invoice_lock_prefix = "invoice_";
std::string withdraw_lock_key(AccountId account);
std::string invoice_lock_key(InvoiceId invoice);

// Every answer a ledger request can end in: the ledger's own (LedgerStatus, same names and
// precedence), and what taking the lock adds. Whatever the outcome other than ok, the request
// wrote nothing.
enum class Outcome {
    ok,
    insufficient_funds,
    duplicate,
    idempotency_conflict,
    stale_fence,
    busy, // the ledger stayed locked past its retry deadline
    paid,
    unknown_account,
    unknown_invoice,
    lock_busy,  // withdraw: the account's lock was still held when the wait ran out
    processing, // process invoice: another process holds the invoice's lock right now
};

Outcome outcome_of(LedgerStatus status);
// The word in dlock's JSON "status" field. lock_busy is "busy", as for a busy ledger: either
// way, try again later.
std::string_view to_string(Outcome outcome);

// Simulated work (--hold) for a write: a pause inside its transaction, after its checks and
// right before its commit. Empty for zero.
std::function<void()> simulated_work(Millis duration);

struct LockedWithdrawal {
    AccountId account = 0;
    Cents amount = 0;
    std::optional<std::string> idempotency_key{};
    Millis ttl = default_ttl;   // lease of the account's lock
    Millis wait = default_wait; // longest wait for it; wait_forever waits
    Millis work{0};             // simulated work inside the write
    WaitObserver on_wait{};     // told how the wait for the lock goes (optional)
};

struct WithdrawalResult {
    Outcome outcome = Outcome::ok;
    AccountId account = 0;
    // As BalanceResult::balance: the new balance, the one a duplicate left, or the current one
    // when insufficient.
    std::optional<Cents> balance;
    std::string lock_key;       // withdraw_funds_user_{ID}
    std::optional<Fence> fence; // the fence the write carried, once the lock was taken
};

// The lesson's WithdrawFunds: block on the account's lock, then check and debit under it, the
// write fenced by the lock's token. The lock is released before returning, whatever happened.
WithdrawalResult withdraw_under_lock(LockService& locks, Ledger& ledger,
                                     const LockedWithdrawal& request, const Notice& notice);

struct InvoiceProcessing {
    Outcome outcome = Outcome::ok;
    InvoiceId invoice = 0;
    std::optional<Invoice> details; // as it stands afterwards; absent when unknown or not tried
    std::optional<Cents> balance;   // the account's balance afterwards, when charged or refused
    std::string lock_key;           // invoice_{ID}
    std::optional<Fence> fence;     // the fence the charge carried, once the lock was taken
};

// The lesson's ProcessInvoice: one attempt at the invoice's lock; when another process holds
// it, answer processing instead of waiting. Otherwise charge it once, fenced, under the lock.
InvoiceProcessing process_invoice_once(LockService& locks, Ledger& ledger, InvoiceId invoice,
                                       Millis ttl, Millis work, const Notice& notice);

} // namespace dlock
