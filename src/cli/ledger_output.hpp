// How ledger outcomes look: the one place an Outcome becomes an exit code and a message, and
// the text and JSON shapes of balances, journal entries and invoices.
#pragma once

#include "cli/common.hpp"
#include "dlock/guarded_ledger.hpp"

#include <optional>
#include <string>
#include <vector>

namespace dlock::cli {

// What a message about a ledger outcome may have to name.
struct Subject {
    std::optional<AccountId> account{};
    std::optional<InvoiceId> invoice{};
    std::optional<Cents> amount{};  // what the request asked to move
    std::optional<Cents> balance{}; // the balance the outcome reports
    std::optional<std::string> lock_key{};
    std::optional<std::int64_t> fence{};
    std::optional<std::string> idempotency_key{};
};

// The exit code of an outcome and what to tell the user about it: for exit 0, a note for
// stderr (empty when there is nothing to add); otherwise the reason for the refusal.
struct Verdict {
    int code;
    std::string message;
};

Verdict judge(Outcome outcome, const Subject& subject, int conflict_code);

// Prints an outcome: `text` on stdout and any note on stderr when it exits 0, the refusal
// otherwise. `result` gets the status word.
int report(const Invocation& inv, Outcome outcome, const Subject& subject, nlohmann::json result,
           const std::string& text);

std::string amount_text(const std::optional<Cents>& cents);
// Money in JSON: the decimal string users read and the integer cents programs add up.
void put_money(nlohmann::json& result, const std::string& name, const std::optional<Cents>& cents);
nlohmann::json account_json(AccountId account, const std::optional<Cents>& balance);
// The lock a write ran under: its key and the fencing token it carried.
void put_lock(nlohmann::json& result, const std::string& key, std::int64_t fence);
nlohmann::json invoice_json(InvoiceId id, const std::optional<Invoice>& invoice,
                            const std::optional<Cents>& balance);

// History: one JSON object per entry, and the rows of the text table.
nlohmann::json entry_json(const JournalEntry& entry);
std::string history_table(const std::vector<JournalEntry>& entries);

// verify's findings as text lines, one per mismatch or integrity finding, and as JSON.
std::string mismatch_lines(const VerifyReport& report);
nlohmann::json verify_json(const VerifyReport& report);

} // namespace dlock::cli
