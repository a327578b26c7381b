#include "dlock/race_demo.hpp"

#include "dlock/error.hpp"

#include <thread>

namespace dlock {

BalanceResult withdraw_without_lock(Ledger& ledger, AccountId account, Cents amount, Millis think) {
    if (amount <= 0)
        throw UsageError("amount must be positive, not " + format_amount(amount));
    const BalanceResult read = ledger.balance(account);
    if (read.status != LedgerStatus::ok)
        return read;
    if (*read.balance < amount)
        return {LedgerStatus::insufficient_funds, account, read.balance};
    std::this_thread::sleep_for(think);
    // The bug, on purpose: other writers may have changed the balance since it was read.
    return ledger.store_withdrawal(account, amount, *read.balance - amount);
}

} // namespace dlock
