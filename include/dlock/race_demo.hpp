// The race the lesson is about, built on purpose and only here: a withdrawal that reads the
// balance, thinks, and writes back what it computed, with no lock. Concurrent callers lose each
// other's debits while the journal records every one of them, so Ledger::verify() exposes the
// damage. It works over any Ledger, from its ordinary operations; never use it for money.
#pragma once

#include "dlock/duration.hpp"
#include "dlock/ledger.hpp"

namespace dlock {

// Refuses what the balance it read cannot cover (insufficient_funds), like the lesson's code.
BalanceResult withdraw_without_lock(Ledger& ledger, AccountId account, Cents amount, Millis think);

} // namespace dlock
