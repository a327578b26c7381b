// deposit, withdraw, balance, history, verify, invoice create, invoice process.
//
// Every command parses all of its arguments first, so a usage error touches neither Redis nor
// the ledger; then connects to Redis if it takes a lock; then opens the ledger (only these
// commands ever open it); then takes its lock, writes, and releases the lock.
#include "cli/commands.hpp"
#include "cli/common.hpp"
#include "dlock/ledger.hpp"

#include <algorithm>
#include <array>
#include <ctime>
#include <iostream>
#include <thread>

namespace dlock::cli {
namespace {

using nlohmann::json;

constexpr std::size_t max_idempotency_key_bytes = 256;
// The lesson's lock names (README, "The ledger"): withdraw_funds_user_{ID}, invoice_{ID}.
constexpr std::string_view withdraw_lock_prefix = "withdraw_funds_user_";
constexpr std::string_view invoice_lock_prefix = "invoice_";

// A default duration as an option shows and parses it: "10s", "100ms".
std::string duration_text(Millis duration) {
    return duration.count() % 1000 == 0 ? std::to_string(duration.count() / 1000) + "s"
                                        : std::to_string(duration.count()) + "ms";
}

struct LedgerOptions {
    std::string account;
    std::string amount;
    std::string invoice;
    std::string idempotency_key; // empty: none (an explicit empty key is refused by CLI11)
    std::string ttl = duration_text(default_ttl);
    std::string wait = duration_text(default_wait);
    std::string hold = "0s";
    bool no_lock = false;
    std::string fence; // empty: none
    std::string lock_key;
    std::int64_t limit = 20;
    std::string busy_timeout = duration_text(SqliteLedgerOptions{}.busy_timeout);
    std::string retry = duration_text(SqliteLedgerOptions{}.retry_deadline);
};

// ----- parsing -----

std::optional<std::string> idempotency_key(const LedgerOptions& opts) {
    const std::string& key = opts.idempotency_key;
    if (key.empty())
        return std::nullopt;
    // The same rule as lock keys: a key is text that JSON, terminals and logs can carry.
    static_assert(max_idempotency_key_bytes == max_key_bytes);
    try {
        validate_key(key);
    } catch (const UsageError&) {
        throw UsageError("invalid idempotency key: 1-" + std::to_string(max_idempotency_key_bytes) +
                         " bytes of UTF-8 without control characters");
    }
    return key;
}

// --fence N --lock-key KEY: a token some other command's lock handed out.
Fence external_fence(const LedgerOptions& opts) {
    validate_key(opts.lock_key);
    try {
        return {opts.lock_key, parse_id("fence", opts.fence)};
    } catch (const UsageError&) {
        throw UsageError("invalid fencing token '" + opts.fence +
                         "': expected a positive whole number, as DLOCK_FENCE or 'dlock acquire "
                         "--json' gives it");
    }
}

// Where the ledger is and how patiently to use it; parsed before anything is opened.
struct LedgerAccess {
    std::string path;
    SqliteLedgerOptions options;

    std::unique_ptr<Ledger> open() const { return std::make_unique<SqliteLedger>(path, options); }
};

LedgerAccess ledger_access(const Invocation& inv, const LedgerOptions& opts) {
    const std::string& path = inv.global.db;
    if (path.empty())
        throw UsageError("--db needs a file path");
    // This SQLite understands URIs and ':memory:'; a ledger is always a plain file.
    if (path == ":memory:" || path.rfind("file:", 0) == 0)
        throw UsageError("--db '" + path + "' is not a plain file path (write ./" + path +
                         " for a file of that name)");
    return {path,
            {.busy_timeout = parse_duration(opts.busy_timeout),
             .retry_deadline = parse_duration(opts.retry)}};
}

// ----- outcomes -----

// What a message about a ledger outcome may have to name.
struct Subject {
    std::optional<AccountId> account{};
    std::optional<InvoiceId> invoice{};
    std::optional<Cents> amount{};  // what the request asked to move
    std::optional<Cents> balance{}; // the balance the outcome reports
    std::optional<Fence> fence{};
    std::optional<std::string> idempotency_key{};
};

// The exit code of an outcome and what to tell the user about it: for exit 0, a note for
// stderr (empty when there is nothing to add); otherwise the reason for the refusal.
struct Verdict {
    int code;
    std::string message;
};

std::string in_quotes(std::string_view text) {
    return "'" + std::string(text) + "'";
}

std::string id_text(const std::optional<std::int64_t>& id) {
    return id ? std::to_string(*id) : std::string("?");
}

std::string amount_text(const std::optional<Cents>& cents) {
    return cents ? format_amount(*cents) : std::string("?");
}

// The one place a LedgerStatus becomes an exit code and a message.
Verdict judge(LedgerStatus status, const Subject& subject, int conflict_code) {
    const std::string account = "account " + id_text(subject.account);
    const std::string invoice = "invoice " + id_text(subject.invoice);
    const std::string key = in_quotes(subject.idempotency_key.value_or(""));
    switch (status) {
    case LedgerStatus::ok:
        return {exit_code::ok, ""};
    case LedgerStatus::duplicate:
        return {exit_code::ok, "idempotency key " + key + " was used before: nothing moved"};
    case LedgerStatus::paid:
        return {exit_code::ok, invoice + " was already paid: nothing charged"};
    case LedgerStatus::processing:
        return {exit_code::ok, invoice + " is being processed by another server"};
    case LedgerStatus::insufficient_funds: {
        std::string message = "refused: insufficient funds: " + account + " has " +
                              amount_text(subject.balance) + ", " + amount_text(subject.amount) +
                              " needed";
        if (subject.invoice)
            message += "; " + invoice + " stays open";
        return {exit_code::refused, message};
    }
    case LedgerStatus::stale_fence:
        return {exit_code::refused,
                "refused: a newer lock holder already wrote to " +
                    (subject.fence ? subject.fence->resource : std::string("?")) + " (fence " +
                    (subject.fence ? std::to_string(subject.fence->token) : std::string("?")) +
                    " is stale)"};
    case LedgerStatus::idempotency_conflict:
        return {exit_code::refused,
                "refused: idempotency key " + key + " was already used for a different request"};
    case LedgerStatus::unknown_account:
        return {exit_code::refused, "refused: " + account + " does not exist"};
    case LedgerStatus::unknown_invoice:
        return {exit_code::refused, "refused: " + invoice + " does not exist"};
    case LedgerStatus::busy:
        return {conflict_code, "ledger busy, please try again."};
    }
    throw InternalError("ledger status out of range: " + std::to_string(static_cast<int>(status)));
}

// Prints an outcome: `text` on stdout and any note on stderr when it exits 0, the refusal
// otherwise. `result` gets the status word.
int report(const Invocation& inv, LedgerStatus status, const Subject& subject, json result,
           const std::string& text) {
    const Reporter reporter(inv.global.json);
    const Verdict verdict = judge(status, subject, inv.global.conflict_exit_code);
    result["status"] = to_string(status);
    if (verdict.code != exit_code::ok)
        return reporter.refuse(std::move(result), verdict.message, verdict.code);
    if (!verdict.message.empty())
        reporter.warn(verdict.message);
    reporter.ok(result, text);
    return verdict.code;
}

// Money in JSON: the decimal string users read and the integer cents programs add up.
void put_money(json& result, const std::string& name, const std::optional<Cents>& cents) {
    result[name] = cents ? json(format_amount(*cents)) : json(nullptr);
    result[name + "_cents"] = cents ? json(*cents) : json(nullptr);
}

json account_json(AccountId account, const std::optional<Cents>& balance) {
    json result{{"account", account}};
    put_money(result, "balance", balance);
    return result;
}

void put_fence(json& result, const Fence& fence) {
    result["key"] = fence.resource;
    result["fence"] = fence.token;
}

// ----- locks -----

// A lock this command took. It is released, owner-checked, when the command is done with it,
// whatever happened meanwhile; an exception on the way out still releases it.
class HeldLock {
public:
    HeldLock(LockService& locks, std::string key, Lease lease)
        : locks_(locks), key_(std::move(key)), lease_(std::move(lease)) {}
    ~HeldLock() {
        const Reporter reporter(false);
        try {
            if (locks_.release(key_, lease_.token) != OwnerCheck::done)
                reporter.warn("lock " + in_quotes(key_) +
                              " expired before dlock released it; its fence still guarded "
                              "the write");
        } catch (const std::exception& e) {
            reporter.warn("could not release lock " + in_quotes(key_) + " (" + e.what() +
                          "); it frees itself when its TTL runs out");
        }
    }
    HeldLock(const HeldLock&) = delete;
    HeldLock& operator=(const HeldLock&) = delete;

    Fence fence() const { return {key_, lease_.fence}; }

private:
    LockService& locks_;
    std::string key_;
    Lease lease_;
};

json lock_busy_json(const std::string& key, std::optional<AccountId> account) {
    json result{{"status", "busy"}, {"key", key}};
    result["account"] = account ? json(*account) : json(nullptr);
    put_money(result, "balance", std::nullopt);
    return result;
}

// ----- commands -----

int deposit(const Invocation& inv, const LedgerOptions& opts) {
    const AccountId account = parse_id("account", opts.account);
    const Cents amount = parse_amount(opts.amount);
    const std::optional<std::string> key = idempotency_key(opts);
    const Millis hold = parse_duration(opts.hold);
    const LedgerAccess access = ledger_access(inv, opts);

    const BalanceResult result =
        access.open()->deposit(account, amount, {.idempotency_key = key, .hold = hold});
    return report(
        inv, result.status,
        {.account = account, .amount = amount, .balance = result.balance, .idempotency_key = key},
        account_json(account, result.balance), amount_text(result.balance));
}

int report_withdrawal(const Invocation& inv, const BalanceResult& result, Cents amount,
                      const std::optional<Fence>& fence, const std::optional<std::string>& key) {
    json out = account_json(result.account, result.balance);
    if (fence)
        put_fence(out, *fence);
    return report(inv, result.status,
                  {.account = result.account,
                   .amount = amount,
                   .balance = result.balance,
                   .fence = fence,
                   .idempotency_key = key},
                  std::move(out), amount_text(result.balance));
}

int withdraw(const Invocation& inv, const LedgerOptions& opts) {
    const AccountId account = parse_id("account", opts.account);
    const Cents amount = parse_amount(opts.amount);
    const std::optional<std::string> key = idempotency_key(opts);
    const Millis hold = parse_duration(opts.hold);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const Millis wait = parse_wait(opts.wait);
    const std::optional<Fence> given_fence =
        opts.fence.empty() ? std::nullopt : std::optional(external_fence(opts));
    const LedgerAccess access = ledger_access(inv, opts);

    // The race demo: no lock, no Redis, a read and a write that others can come between.
    if (opts.no_lock)
        return report_withdrawal(inv, access.open()->withdraw_unsafe(account, amount, hold), amount,
                                 std::nullopt, std::nullopt);

    // Someone else holds the lock (e.g. 'dlock run'); its fence guards this write.
    if (given_fence)
        return report_withdrawal(
            inv,
            access.open()->withdraw(account, amount,
                                    {.idempotency_key = key, .fence = given_fence, .hold = hold}),
            amount, given_fence, key);

    // The lesson's WithdrawFunds: block on the account's lock, then check and debit.
    const std::string lock_key = std::string(withdraw_lock_prefix) + std::to_string(account);
    const std::unique_ptr<LockService> locks = connect_lock_service(inv.global);
    const std::unique_ptr<Ledger> ledger = access.open();
    const AcquireResult acquired = locks->block(lock_key, ttl, wait);
    if (!acquired.acquired())
        return Reporter(inv.global.json)
            .refuse(lock_busy_json(lock_key, account), "System busy, please try again.",
                    inv.global.conflict_exit_code);
    const HeldLock held(*locks, lock_key, *acquired.lease);
    const Fence fence = held.fence();
    return report_withdrawal(
        inv,
        ledger->withdraw(account, amount, {.idempotency_key = key, .fence = fence, .hold = hold}),
        amount, fence, key);
}

int balance(const Invocation& inv, const LedgerOptions& opts) {
    const AccountId account = parse_id("account", opts.account);
    const LedgerAccess access = ledger_access(inv, opts);

    const BalanceResult result = access.open()->balance(account);
    return report(inv, result.status, {.account = account, .balance = result.balance},
                  account_json(account, result.balance), amount_text(result.balance));
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

// Rows of cells as columns: numbers (the columns in `right`) aligned right, the rest left.
std::string table(const std::vector<std::vector<std::string>>& rows,
                  const std::vector<bool>& right) {
    std::vector<std::size_t> widths(right.size(), 0);
    for (const auto& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c)
            widths[c] = std::max(widths[c], row[c].size());
    std::string text;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            const std::string padding(widths[c] - row[c].size(), ' ');
            line += (c == 0 ? "" : "  ") + (right[c] ? padding + row[c] : row[c] + padding);
        }
        line.erase(line.find_last_not_of(' ') + 1);
        text += (text.empty() ? "" : "\n") + line;
    }
    return text;
}

int history(const Invocation& inv, const LedgerOptions& opts) {
    const AccountId account = parse_id("account", opts.account);
    const LedgerAccess access = ledger_access(inv, opts);

    const HistoryResult result =
        access.open()->history(account, static_cast<std::size_t>(opts.limit));
    // Entries come newest first, so the first one holds the balance the history ends with.
    const std::optional<Cents> latest =
        result.entries.empty() ? std::nullopt : std::optional(result.entries.front().balance_after);
    json out = account_json(account, latest);
    out["entries"] = json::array();
    std::vector<std::vector<std::string>> rows{
        {"TIME", "KIND", "AMOUNT", "BALANCE", "FENCE", "IDEMPOTENCY KEY"}};
    for (const JournalEntry& entry : result.entries) {
        out["entries"].push_back(entry_json(entry));
        std::string kind(to_string(entry.kind));
        if (entry.invoice)
            kind += " " + std::to_string(*entry.invoice);
        rows.push_back({iso_time(entry.time_ms), kind, signed_amount(entry.amount),
                        format_amount(entry.balance_after),
                        entry.fence_token ? std::to_string(*entry.fence_token) : "-",
                        entry.idempotency_key.value_or("-")});
    }
    return report(inv, result.status, {.account = account}, std::move(out),
                  table(rows, {false, false, true, true, true, false}));
}

int verify(const Invocation& inv, const LedgerOptions& opts) {
    const LedgerAccess access = ledger_access(inv, opts);

    const VerifyReport checked = access.open()->verify();
    if (checked.status != LedgerStatus::ok)
        return report(inv, checked.status, {}, json::object(), "");

    json out{{"status", checked.clean() ? "ok" : "mismatch"},
             {"clean", checked.clean()},
             {"mismatches", json::array()},
             {"integrity", checked.integrity}};
    std::string text;
    for (const BalanceMismatch& m : checked.mismatches) {
        json mismatch{{"account", m.account}};
        put_money(mismatch, "expected", m.expected);
        put_money(mismatch, "actual", m.actual);
        put_money(mismatch, "difference", m.difference);
        out["mismatches"].push_back(mismatch);
        text += "account " + std::to_string(m.account) + ": expected " + format_amount(m.expected) +
                ", actual " + format_amount(m.actual) + ", difference " +
                signed_amount(m.difference) + "\n";
    }
    const Reporter reporter(inv.global.json);
    if (checked.clean())
        return reporter.ok(out, "ok: every balance matches its journal; integrity ok");

    if (checked.integrity != "ok")
        for (std::size_t start = 0; start < checked.integrity.size();) {
            const std::size_t end =
                std::min(checked.integrity.find('\n', start), checked.integrity.size());
            text += "integrity: " + checked.integrity.substr(start, end - start) + "\n";
            start = end + 1;
        }
    write_stdout(inv.global.json ? out.dump() + '\n' : text);
    reporter.warn("the ledger does not balance: " + std::to_string(checked.mismatches.size()) +
                  " account(s) differ from their journal" +
                  (checked.integrity == "ok" ? "" : ", and the integrity check failed"));
    return exit_code::refused;
}

json invoice_json(const InvoiceResult& result, InvoiceId id) {
    json out{{"invoice", id}};
    out["account"] = result.invoice ? json(result.invoice->account) : json(nullptr);
    put_money(out, "amount", result.invoice ? std::optional(result.invoice->amount) : std::nullopt);
    out["paid"] = result.invoice ? json(result.invoice->paid) : json(nullptr);
    put_money(out, "balance", result.balance);
    return out;
}

int create_invoice(const Invocation& inv, const LedgerOptions& opts) {
    const AccountId account = parse_id("account", opts.account);
    const Cents amount = parse_amount(opts.amount);
    const LedgerAccess access = ledger_access(inv, opts);

    const InvoiceResult result = access.open()->create_invoice(account, amount);
    json out = result.invoice ? invoice_json(result, result.invoice->id)
                              : account_json(account, std::nullopt);
    return report(inv, result.status, {.account = account, .amount = amount}, std::move(out),
                  result.invoice ? std::to_string(result.invoice->id) : "");
}

// The lesson's ProcessInvoice: one attempt at the invoice's lock; if another server holds it,
// say so and answer "processing" instead of failing.
int process_invoice(const Invocation& inv, const LedgerOptions& opts) {
    const InvoiceId id = parse_id("invoice", opts.invoice);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const Millis hold = parse_duration(opts.hold);
    const LedgerAccess access = ledger_access(inv, opts);

    const std::string lock_key = std::string(invoice_lock_prefix) + std::to_string(id);
    const std::unique_ptr<LockService> locks = connect_lock_service(inv.global);
    const std::unique_ptr<Ledger> ledger = access.open();
    const AcquireResult acquired = locks->try_acquire(lock_key, ttl);
    if (!acquired.acquired()) {
        json out = lock_busy_json(lock_key, std::nullopt);
        out["invoice"] = id;
        return report(inv, LedgerStatus::processing, {.invoice = id}, std::move(out),
                      std::string(to_string(LedgerStatus::processing)));
    }
    const HeldLock held(*locks, lock_key, *acquired.lease);
    const Fence fence = held.fence();
    // Simulated work under the lock, so that demos and tests can make processors overlap.
    std::this_thread::sleep_for(hold);

    const InvoiceResult result = ledger->process_invoice(id, fence);
    json out = invoice_json(result, id);
    put_fence(out, fence);
    const std::optional<AccountId> account =
        result.invoice ? std::optional(result.invoice->account) : std::nullopt;
    const std::optional<Cents> amount =
        result.invoice ? std::optional(result.invoice->amount) : std::nullopt;
    return report(inv, result.status,
                  {.account = account,
                   .invoice = id,
                   .amount = amount,
                   .balance = result.balance,
                   .fence = fence},
                  std::move(out), "paid " + amount_text(result.balance));
}

// ----- wiring -----

using LedgerCommand = int (*)(const Invocation&, const LedgerOptions&);

const CLI::Validator non_empty{[](std::string& value) {
                                   return value.empty() ? std::string("must not be empty")
                                                        : std::string();
                               },
                               "", "non-empty"};

// A ledger subcommand; its callback owns the options CLI11 parses into.
std::pair<CLI::App*, LedgerOptions*> add_ledger_command(CLI::App& parent, Invocation& inv,
                                                        const std::string& name,
                                                        const std::string& help,
                                                        LedgerCommand run) {
    auto opts = std::make_shared<LedgerOptions>();
    auto* command = parent.add_subcommand(name, help);
    command->callback([&inv, opts, run] { inv.exit_code = run(inv, *opts); });
    command
        ->add_option("--db-busy-timeout", opts->busy_timeout,
                     "How long SQLite waits for the ledger's write lock per attempt (DUR)")
        ->type_name("DUR")
        ->group("Advanced")
        ->capture_default_str();
    command
        ->add_option("--db-retry", opts->retry,
                     "How long to retry a busy ledger before answering 'ledger busy' (DUR)")
        ->type_name("DUR")
        ->group("Advanced")
        ->capture_default_str();
    return {command, opts.get()};
}

CLI::Option* add_account(CLI::App& command, LedgerOptions& opts) {
    return command.add_option("--account", opts.account, "Account id (a positive whole number)")
        ->type_name("ID")
        ->required();
}

CLI::Option* add_amount(CLI::App& command, LedgerOptions& opts, const std::string& help) {
    return command.add_option("--amount", opts.amount, help)->type_name("AMT")->required();
}

CLI::Option* add_idempotency_key(CLI::App& command, LedgerOptions& opts) {
    return command
        .add_option("--idempotency-key", opts.idempotency_key,
                    "A repeat with the same key moves no money (answers 'duplicate')")
        ->type_name("K")
        ->check(non_empty);
}

CLI::Option* add_hold(CLI::App& command, LedgerOptions& opts, const std::string& help) {
    return command.add_option("--hold", opts.hold, help)
        ->type_name("DUR")
        ->group("Advanced")
        ->capture_default_str();
}

constexpr const char* amount_help = "Amount: up to two decimals, e.g. 50 or 50.25";

void setup_withdraw(CLI::App& app, Invocation& inv) {
    auto [cmd, opts] = add_ledger_command(
        app, inv, "withdraw",
        "Debit an account under its lock 'withdraw_funds_user_ID' (the lesson's WithdrawFunds); "
        "prints the new balance",
        withdraw);
    add_account(*cmd, *opts);
    add_amount(*cmd, *opts, amount_help);
    auto* wait = cmd->add_option("--wait", opts->wait, "Longest wait for the lock (DUR, or 'inf')")
                     ->type_name("DUR")
                     ->capture_default_str();
    auto* ttl = cmd->add_option("--ttl", opts->ttl, "Lease length of the lock (DUR)")
                    ->type_name("DUR")
                    ->capture_default_str();
    auto* key = add_idempotency_key(*cmd, *opts);
    add_hold(*cmd, *opts, "Sleep inside the ledger transaction (DUR): simulated work");
    auto* no_lock = cmd->add_flag("--no-lock", opts->no_lock,
                                  "UNSAFE race demo: no lock, read then write; loses updates");
    auto* fence = cmd->add_option("--fence", opts->fence,
                                  "Write under a lock another command holds: its fencing token "
                                  "(needs --lock-key; never read from DLOCK_FENCE)")
                      ->type_name("N")
                      ->check(non_empty);
    auto* lock_key = cmd->add_option("--lock-key", opts->lock_key,
                                     "The KEY of that lock (needs --fence; never read from "
                                     "DLOCK_KEY)")
                         ->type_name("KEY")
                         ->check(non_empty);
    fence->needs(lock_key);
    lock_key->needs(fence);
    no_lock->excludes(fence)->excludes(lock_key)->excludes(key)->excludes(wait)->excludes(ttl);
    fence->excludes(wait)->excludes(ttl);
}

void setup_invoice_commands(CLI::App& app, Invocation& inv) {
    auto* invoice = app.add_subcommand(
        "invoice", "Invoices: 'invoice create' opens one, 'invoice process' charges it once");
    invoice->require_subcommand(1);

    auto [cmd, opts] = add_ledger_command(
        *invoice, inv, "create", "Open an invoice on an account; prints its id", create_invoice);
    add_account(*cmd, *opts);
    add_amount(*cmd, *opts, amount_help);

    std::tie(cmd, opts) = add_ledger_command(
        *invoice, inv, "process",
        "Charge invoice ID once under its lock 'invoice_ID' (the lesson's ProcessInvoice); "
        "answers 'processing' if another server holds the lock",
        process_invoice);
    cmd->add_option("ID", opts->invoice, "Invoice id, as 'invoice create' printed")->required();
    cmd->add_option("--ttl", opts->ttl, "Lease length of the invoice's lock (DUR)")
        ->type_name("DUR")
        ->capture_default_str();
    add_hold(*cmd, *opts, "Sleep while holding the invoice's lock, before charging (DUR)");
}

} // namespace

void setup_ledger_commands(CLI::App& app, Invocation& inv) {
    auto [cmd, opts] =
        add_ledger_command(app, inv, "deposit",
                           "Credit an account, opening it if new; prints the new balance", deposit);
    add_account(*cmd, *opts);
    add_amount(*cmd, *opts, amount_help);
    add_idempotency_key(*cmd, *opts);
    add_hold(*cmd, *opts, "Sleep inside the ledger transaction (DUR): simulated work");

    setup_withdraw(app, inv);

    std::tie(cmd, opts) =
        add_ledger_command(app, inv, "balance", "Print an account's balance", balance);
    add_account(*cmd, *opts);

    std::tie(cmd, opts) = add_ledger_command(
        app, inv, "history", "List an account's latest journal entries, newest first", history);
    add_account(*cmd, *opts);
    cmd->add_option("--limit", opts->limit, "How many entries")
        ->type_name("N")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000}))
        ->capture_default_str();

    add_ledger_command(app, inv, "verify",
                       "Check every balance against its journal, and the file's integrity "
                       "(exit 1 if anything is wrong)",
                       verify);

    setup_invoice_commands(app, inv);
}

} // namespace dlock::cli
