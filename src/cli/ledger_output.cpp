#include "cli/ledger_output.hpp"

#include <array>
#include <ctime>

namespace dlock::cli {
namespace {

using nlohmann::json;

std::string id_text(const std::optional<std::int64_t>& id) {
    return id ? std::to_string(*id) : std::string("?");
}

std::string iso_time(std::int64_t time_ms) {
    const std::time_t seconds = static_cast<std::time_t>(time_ms / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    std::array<char, 32> text{};
    const std::size_t length = std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%S", &utc);
    const std::string millis = std::to_string(1000 + time_ms % 1000).substr(1);
    return std::string(text.data(), length) + "." + millis + "Z";
}

// Credits with a sign, so that a column of amounts reads as movements.
std::string signed_amount(Cents cents) {
    return (cents > 0 ? "+" : "") + format_amount(cents);
}

} // namespace

Verdict judge(Outcome outcome, const Subject& subject, int conflict_code) {
    const std::string account = "account " + id_text(subject.account);
    const std::string invoice = "invoice " + id_text(subject.invoice);
    const std::string key = in_quotes(subject.idempotency_key.value_or(""));
    switch (outcome) {
    case Outcome::ok:
        return {exit_code::ok, ""};
    case Outcome::duplicate:
        return {exit_code::ok, "idempotency key " + key + " was used before: nothing moved"};
    case Outcome::paid:
        return {exit_code::ok, invoice + " was already paid: nothing charged"};
    case Outcome::processing:
        return {exit_code::ok, invoice + " is being processed by another server"};
    case Outcome::insufficient_funds: {
        std::string message = "refused: insufficient funds: " + account + " has " +
                              amount_text(subject.balance) + ", " + amount_text(subject.amount) +
                              " needed";
        if (subject.invoice)
            message += "; " + invoice + " stays open";
        return {exit_code::refused, message};
    }
    case Outcome::stale_fence:
        return {exit_code::refused, "refused: a newer lock holder already wrote to " +
                                        subject.lock_key.value_or("?") + " (fence " +
                                        id_text(subject.fence) + " is stale)"};
    case Outcome::idempotency_conflict:
        return {exit_code::refused,
                "refused: idempotency key " + key + " was already used for a different request"};
    case Outcome::unknown_account:
        return {exit_code::refused, "refused: " + account + " does not exist"};
    case Outcome::unknown_invoice:
        return {exit_code::refused, "refused: " + invoice + " does not exist"};
    case Outcome::busy:
        return {conflict_code, "ledger busy, please try again."};
    case Outcome::lock_busy:
        return {conflict_code, "System busy, please try again."};
    }
    throw InternalError("outcome out of range: " + std::to_string(static_cast<int>(outcome)));
}

int report(const Invocation& inv, Outcome outcome, const Subject& subject, json result,
           const std::string& text) {
    const Reporter reporter(inv.global);
    const Verdict verdict = judge(outcome, subject, inv.global.conflict_exit_code);
    result["status"] = to_string(outcome);
    if (verdict.code != exit_code::ok)
        return reporter.refuse(std::move(result), verdict.message, verdict.code);
    if (!verdict.message.empty())
        reporter.warn(verdict.message);
    reporter.ok(result, text);
    return verdict.code;
}

std::string amount_text(const std::optional<Cents>& cents) {
    return cents ? format_amount(*cents) : std::string("?");
}

void put_money(json& result, const std::string& name, const std::optional<Cents>& cents) {
    result[name] = cents ? json(format_amount(*cents)) : json(nullptr);
    result[name + "_cents"] = cents ? json(*cents) : json(nullptr);
}

json account_json(AccountId account, const std::optional<Cents>& balance) {
    json result{{"account", account}};
    put_money(result, "balance", balance);
    return result;
}

void put_lock(json& result, const std::string& key, std::int64_t fence) {
    result["key"] = key;
    result["fence"] = fence;
}

json invoice_json(InvoiceId id, const std::optional<Invoice>& invoice,
                  const std::optional<Cents>& balance) {
    json out{{"invoice", id}};
    out["account"] = invoice ? json(invoice->account) : json(nullptr);
    put_money(out, "amount", invoice ? std::optional(invoice->amount) : std::nullopt);
    out["paid"] = invoice ? json(invoice->paid) : json(nullptr);
    put_money(out, "balance", balance);
    return out;
}

json entry_json(const JournalEntry& entry) {
    json result{{"id", entry.id},
                {"time", iso_time(entry.time_ms)},
                {"time_ms", entry.time_ms},
                {"kind", to_string(entry.kind)}};
    put_money(result, "amount", entry.amount);
    put_money(result, "balance_after", entry.balance_after);
    result["fence"] = entry.fence_token ? json(*entry.fence_token) : json(nullptr);
    result["idempotency_key"] =
        entry.idempotency_key ? json(*entry.idempotency_key) : json(nullptr);
    result["invoice"] = entry.invoice ? json(*entry.invoice) : json(nullptr);
    return result;
}

std::string history_table(const std::vector<JournalEntry>& entries) {
    std::vector<std::vector<std::string>> rows{
        {"TIME", "KIND", "AMOUNT", "BALANCE", "FENCE", "IDEMPOTENCY KEY"}};
    for (const JournalEntry& entry : entries) {
        std::string kind(to_string(entry.kind));
        if (entry.invoice)
            kind += " " + std::to_string(*entry.invoice);
        rows.push_back({iso_time(entry.time_ms), kind, signed_amount(entry.amount),
                        format_amount(entry.balance_after),
                        entry.fence_token ? std::to_string(*entry.fence_token) : "-",
                        entry.idempotency_key.value_or("-")});
    }
    return text_table(rows, {false, false, true, true, true, false});
}

std::string mismatch_lines(const VerifyReport& report) {
    std::string text;
    for (const BalanceMismatch& m : report.mismatches)
        text += "account " + std::to_string(m.account) + ": expected " + format_amount(m.expected) +
                ", actual " + format_amount(m.actual) + ", difference " +
                signed_amount(m.difference) + "\n";
    if (report.integrity != "ok")
        for (std::size_t start = 0; start < report.integrity.size();) {
            const std::size_t end =
                std::min(report.integrity.find('\n', start), report.integrity.size());
            text += "integrity: " + report.integrity.substr(start, end - start) + "\n";
            start = end + 1;
        }
    return text;
}

json verify_json(const VerifyReport& report) {
    json out{{"status", report.clean() ? "ok" : "mismatch"},
             {"clean", report.clean()},
             {"mismatches", json::array()},
             {"integrity", report.integrity}};
    for (const BalanceMismatch& m : report.mismatches) {
        json mismatch{{"account", m.account}};
        put_money(mismatch, "expected", m.expected);
        put_money(mismatch, "actual", m.actual);
        put_money(mismatch, "difference", m.difference);
        out["mismatches"].push_back(mismatch);
    }
    return out;
}

} // namespace dlock::cli
