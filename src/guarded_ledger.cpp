#include "dlock/guarded_ledger.hpp"

#include "dlock/error.hpp"

#include <thread>

namespace dlock {

std::string withdraw_lock_key(AccountId account) {
    return std::string(withdraw_lock_prefix) + std::to_string(account);
}

std::string invoice_lock_key(InvoiceId invoice) {
    return std::string(invoice_lock_prefix) + std::to_string(invoice);
}

Outcome outcome_of(LedgerStatus status) {
    switch (status) {
    case LedgerStatus::ok:
        return Outcome::ok;
    case LedgerStatus::insufficient_funds:
        return Outcome::insufficient_funds;
    case LedgerStatus::duplicate:
        return Outcome::duplicate;
    case LedgerStatus::idempotency_conflict:
        return Outcome::idempotency_conflict;
    case LedgerStatus::stale_fence:
        return Outcome::stale_fence;
    case LedgerStatus::busy:
        return Outcome::busy;
    case LedgerStatus::paid:
        return Outcome::paid;
    case LedgerStatus::unknown_account:
        return Outcome::unknown_account;
    case LedgerStatus::unknown_invoice:
        return Outcome::unknown_invoice;
    }
    throw InternalError("ledger status out of range: " + std::to_string(static_cast<int>(status)));
}

std::string_view to_string(Outcome outcome) {
    switch (outcome) {
    case Outcome::lock_busy:
        return "busy";
    case Outcome::processing:
        return "processing";
    case Outcome::ok:
        return to_string(LedgerStatus::ok);
    case Outcome::insufficient_funds:
        return to_string(LedgerStatus::insufficient_funds);
    case Outcome::duplicate:
        return to_string(LedgerStatus::duplicate);
    case Outcome::idempotency_conflict:
        return to_string(LedgerStatus::idempotency_conflict);
    case Outcome::stale_fence:
        return to_string(LedgerStatus::stale_fence);
    case Outcome::busy:
        return to_string(LedgerStatus::busy);
    case Outcome::paid:
        return to_string(LedgerStatus::paid);
    case Outcome::unknown_account:
        return to_string(LedgerStatus::unknown_account);
    case Outcome::unknown_invoice:
        return to_string(LedgerStatus::unknown_invoice);
    }
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
    const AcquireResult acquired = locks.block(result.lock_key, request.ttl, request.wait);
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
