#include "dlock/ledger.hpp"

#include "dlock/error.hpp"

namespace dlock {

std::string_view to_string(LedgerStatus status) {
    switch (status) {
    case LedgerStatus::ok:
        return "ok";
    case LedgerStatus::insufficient_funds:
        return "insufficient_funds";
    case LedgerStatus::duplicate:
        return "duplicate";
    case LedgerStatus::idempotency_conflict:
        return "idempotency_conflict";
    case LedgerStatus::stale_fence:
        return "stale_fence";
    case LedgerStatus::busy:
        return "busy";
    case LedgerStatus::paid:
        return "paid";
    case LedgerStatus::unknown_account:
        return "unknown_account";
    case LedgerStatus::unknown_invoice:
        return "unknown_invoice";
    }
    throw InternalError("ledger status out of range: " + std::to_string(static_cast<int>(status)));
}

std::string_view to_string(EntryKind kind) {
    switch (kind) {
    case EntryKind::deposit:
        return "deposit";
    case EntryKind::withdraw:
        return "withdraw";
    case EntryKind::invoice:
        return "invoice";
    }
    throw InternalError("journal entry kind out of range: " +
                        std::to_string(static_cast<int>(kind)));
}

} // namespace dlock
