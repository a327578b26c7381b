#include "dlock/guarded_ledger.hpp"

#include "dlock/error.hpp"

#include <array>
#include <thread>
#include <utility>

namespace dlock {

std::string withdraw_lock_key(AccountId account) {
    return std::string(withdraw_lock_prefix) + std::to_string(account);
}

std::string invoice_lock_key(InvoiceId invoice) {
    return std::string(invoice_lock_prefix) + std::to_string(invoice);
}

namespace {

// Every ledger status is the outcome of the same name.
constexpr std::array<std::pair<LedgerStatus, Outcome>, 9> ledger_outcomes{{
    {LedgerStatus::ok, Outcome::ok},
    {LedgerStatus::insufficient_funds, Outcome::insufficient_funds},
    {LedgerStatus::duplicate, Outcome::duplicate},
    {LedgerStatus::idempotency_conflict, Outcome::idempotency_conflict},
    {LedgerStatus::stale_fence, Outcome::stale_fence},
    {LedgerStatus::busy, Outcome::busy},
    {LedgerStatus::paid, Outcome::paid},
    {LedgerStatus::unknown_account, Outcome::unknown_account},
    {LedgerStatus::unknown_invoice, Outcome::unknown_invoice},
}};

} // namespace

Outcome outcome_of(LedgerStatus status) {
    for (const auto& [ledger_status, outcome] : ledger_outcomes)
        if (ledger_status == status)
            return outcome;
    throw InternalError("ledger status out of range: " + std::to_string(static_cast<int>(status)));
}

std::string_view to_string(Outcome outcome) {
    if (outcome == Outcome::lock_busy)
        return "busy";
    if (outcome == Outcome::processing)
        return "processing";
    for (const auto& [ledger_status, same] : ledger_outcomes)
        if (same == outcome)
            return to_string(ledger_status);
    throw InternalError("outcome out of range: " + std::to_string(static_cast<int>(outcome)));
}

std::function<void()> simulated_work(Millis duration) {
    if (duration.count() <= 0)
        return {};
    return [duration] {
        std::this_thread::sleep_for(duration);
    };
}

WithdrawalResult withdraw_under_lock(LockService& locks, Ledger& ledger,
                                     const LockedWithdrawal& request, const Notice& notice) {
    WithdrawalResult result;
    result.account = request.account;
    result.lock_key = withdraw_lock_key(request.account);
    const AcquireResult acquired =
        locks.block(result.lock_key, request.ttl, request.wait, request.on_wait);
    if (!acquired.acquired()) {
        result.outcome = Outcome::lock_busy;
        return result;
    }
    const ScopedLease held(locks, result.lock_key, *acquired.lease, notice);
    result.fence = Fence{locks.fence_resource(result.lock_key), held.lease().fence};
    const BalanceResult written = ledger.withdraw(request.account, request.amount,
                                                  {.idempotency_key = request.idempotency_key,
                                                   .fence = result.fence,
                                                   .before_commit = simulated_work(request.work)});
    result.outcome = outcome_of(written.status);
    result.balance = written.balance;
    return result;
}

InvoiceProcessing process_invoice_once(LockService& locks, Ledger& ledger, InvoiceId invoice,
                                       Millis ttl, Millis work, const Notice& notice) {
    InvoiceProcessing result;
    result.invoice = invoice;
    result.lock_key = invoice_lock_key(invoice);
    const AcquireResult acquired = locks.try_acquire(result.lock_key, ttl);
    if (!acquired.acquired()) {
        result.outcome = Outcome::processing;
        return result;
    }
    const ScopedLease held(locks, result.lock_key, *acquired.lease, notice);
    result.fence = Fence{locks.fence_resource(result.lock_key), held.lease().fence};
    const InvoiceResult charged = ledger.process_invoice(
        invoice, {.fence = result.fence, .before_commit = simulated_work(work)});
    result.outcome = outcome_of(charged.status);
    result.details = charged.invoice;
    result.balance = charged.balance;
    return result;
}

} // namespace dlock
