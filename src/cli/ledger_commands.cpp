// deposit, withdraw, balance, history, verify, invoice create, invoice process.
//
// Every command parses all of its arguments first, so a usage error touches neither Redis nor
// the ledger; then connects to Redis if it takes a lock; then opens the ledger (only these
// commands ever open it); then calls the library and prints what it answered.
#include "cli/ledger_commands.hpp"

#include "cli/ledger_output.hpp"
#include "cli/progress.hpp"
#include "dlock/race_demo.hpp"

#include <cstdlib>
#include <iostream>

namespace dlock::cli {

using nlohmann::json;

std::optional<std::string> idempotency_key(const LedgerCommandOptions& opts) {
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

std::optional<Fence> external_fence(const GlobalOptions& global, const LedgerCommandOptions& opts) {
    if (opts.fence.empty() && opts.lock_key.empty())
        return std::nullopt;
    if (opts.fence.empty() || opts.lock_key.empty())
        throw UsageError("--fence and --lock-key go together: the token and the KEY of the lock "
                         "it came from");
    std::int64_t token = 0;
    try {
        token = parse_id("fence", opts.fence);
    } catch (const UsageError&) {
        throw UsageError("invalid fencing token '" + opts.fence +
                         "': expected a positive whole number, as DLOCK_FENCE or 'dlock acquire "
                         "--json' gives it");
    }
    return Fence{fence_resource(lock_config(global), opts.lock_key), token};
}

LedgerOptions ledger_options(const GlobalOptions& global, const LedgerCommandOptions& opts) {
    const Millis retry = parse_duration(opts.retry);
    std::optional<std::string> password;
    if (!global.db_password.empty())
        password = global.db_password;
    return {.sqlite = {.busy_timeout = parse_duration(opts.busy_timeout), .retry_deadline = retry},
            .postgres = {.connect_timeout = parse_positive_duration(global.timeout),
                         .retry_deadline = retry,
                         .password = password}};
}

namespace {

std::unique_ptr<Ledger> open(const Invocation& inv, const LedgerOptions& options) {
    return open_ledger(inv.global.db, options);
}

int report_balance(const Invocation& inv, const BalanceResult& result, const Subject& subject,
                   json out) {
    return report(inv, outcome_of(result.status), subject, std::move(out),
                  amount_text(result.balance));
}

} // namespace

int deposit(const Invocation& inv, const LedgerCommandOptions& opts) {
    const AccountId account = parse_id("account", opts.account);
    const Cents amount = parse_amount(opts.amount);
    const std::optional<std::string> key = idempotency_key(opts);
    const Millis hold = parse_duration(opts.hold);
    const LedgerOptions options = ledger_options(inv.global, opts);

    const BalanceResult result =
        open(inv, options)
            ->deposit(account, amount,
                      {.idempotency_key = key, .before_commit = simulated_work(hold)});
    return report_balance(
        inv, result,
        {.account = account, .amount = amount, .balance = result.balance, .idempotency_key = key},
        account_json(account, result.balance));
}

int withdraw(const Invocation& inv, const LedgerCommandOptions& opts) {
    LockedWithdrawal request{.account = parse_id("account", opts.account),
                             .amount = parse_amount(opts.amount),
                             .idempotency_key = idempotency_key(opts),
                             .ttl = parse_positive_duration(opts.ttl),
                             .wait = parse_wait(opts.wait),
                             .work = parse_duration(opts.hold)};
    const std::optional<Fence> given_fence = external_fence(inv.global, opts);
    const LedgerOptions options = ledger_options(inv.global, opts);
    Subject subject{.account = request.account,
                    .amount = request.amount,
                    .idempotency_key = request.idempotency_key};

    // The race demo: no lock, no Redis, a read and a write that others can come between.
    if (opts.no_lock) {
        const BalanceResult result = withdraw_without_lock(*open(inv, options), request.account,
                                                           request.amount, request.work);
        subject.balance = result.balance;
        return report_balance(inv, result, subject, account_json(result.account, result.balance));
    }

    // Someone else holds the lock (e.g. 'dlock run'); its fence guards this write.
    if (given_fence) {
        const BalanceResult result =
            open(inv, options)
                ->withdraw(request.account, request.amount,
                           {.idempotency_key = request.idempotency_key,
                            .fence = given_fence,
                            .before_commit = simulated_work(request.work)});
        subject.balance = result.balance;
        subject.lock_key = opts.lock_key;
        subject.fence = given_fence->token;
        json out = account_json(result.account, result.balance);
        put_lock(out, opts.lock_key, given_fence->token);
        return report_balance(inv, result, subject, std::move(out));
    }

    // The lesson's WithdrawFunds: block on the account's lock, then check and debit.
    const std::unique_ptr<LockService> locks = open_locks(
        inv.global, this_process("dlock withdraw --account " + std::to_string(request.account)));
    const std::unique_ptr<Ledger> ledger = open(inv, options);
    WaitReport waiting(inv.global, withdraw_lock_key(request.account));
    request.on_wait = waiting.observer();
    const WithdrawalResult result =
        withdraw_under_lock(*locks, *ledger, request, Reporter(inv.global).notice());
    waiting.finished(result.fence ? std::optional(result.fence->token) : std::nullopt);
    subject.balance = result.balance;
    subject.lock_key = result.lock_key;
    json out = account_json(request.account, result.balance);
    if (result.fence) {
        subject.fence = result.fence->token;
        put_lock(out, result.lock_key, result.fence->token);
    } else {
        out["key"] = result.lock_key;
    }
    return report(inv, result.outcome, subject, std::move(out), amount_text(result.balance));
}

int balance(const Invocation& inv, const LedgerCommandOptions& opts) {
    const AccountId account = parse_id("account", opts.account);
    const LedgerOptions options = ledger_options(inv.global, opts);

    const BalanceResult result = open(inv, options)->balance(account);
    return report_balance(inv, result, {.account = account, .balance = result.balance},
                          account_json(account, result.balance));
}

int history(const Invocation& inv, const LedgerCommandOptions& opts) {
    const AccountId account = parse_id("account", opts.account);
    const LedgerOptions options = ledger_options(inv.global, opts);

    const HistoryResult result =
        open(inv, options)->history(account, static_cast<std::size_t>(opts.limit));
    // Entries come newest first, so the first one holds the balance the history ends with.
    const std::optional<Cents> latest =
        result.entries.empty() ? std::nullopt : std::optional(result.entries.front().balance_after);
    json out = account_json(account, latest);
    out["entries"] = json::array();
    for (const JournalEntry& entry : result.entries)
        out["entries"].push_back(entry_json(entry));
    return report(inv, outcome_of(result.status), {.account = account}, std::move(out),
                  history_table(result.entries));
}

int verify(const Invocation& inv, const LedgerCommandOptions& opts) {
    const LedgerOptions options = ledger_options(inv.global, opts);

    const VerifyReport checked = open(inv, options)->verify();
    if (checked.status != LedgerStatus::ok)
        return report(inv, outcome_of(checked.status), {}, json::object(), "");

    const Reporter reporter(inv.global);
    if (checked.clean())
        return reporter.ok(verify_json(checked),
                           "ok: every balance matches its journal; integrity ok");
    // The findings are the result: on stdout as text, or in the JSON object with the error.
    if (!inv.global.json)
        write_stdout(mismatch_lines(checked));
    return reporter.refuse(
        verify_json(checked),
        "the ledger does not balance: " + std::to_string(checked.mismatches.size()) +
            " account(s) differ from their journal" +
            (checked.integrity == "ok" ? "" : ", and the integrity check failed"),
        exit_code::refused);
}

int create_invoice(const Invocation& inv, const LedgerCommandOptions& opts) {
    const AccountId account = parse_id("account", opts.account);
    const Cents amount = parse_amount(opts.amount);
    const LedgerOptions options = ledger_options(inv.global, opts);

    const InvoiceResult result = open(inv, options)->create_invoice(account, amount);
    json out = result.invoice ? invoice_json(result.invoice->id, result.invoice, result.balance)
                              : account_json(account, std::nullopt);
    return report(inv, outcome_of(result.status), {.account = account, .amount = amount},
                  std::move(out), result.invoice ? std::to_string(result.invoice->id) : "");
}

// The lesson's ProcessInvoice: one attempt at the invoice's lock; if another server holds it,
// say so and answer "processing" instead of failing.
int process_invoice(const Invocation& inv, const LedgerCommandOptions& opts) {
    const InvoiceId id = parse_id("invoice", opts.invoice);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const Millis hold = parse_duration(opts.hold);
    const LedgerOptions options = ledger_options(inv.global, opts);

    const std::unique_ptr<LockService> locks =
        open_locks(inv.global, this_process("dlock invoice process " + std::to_string(id)));
    const std::unique_ptr<Ledger> ledger = open(inv, options);
    const InvoiceProcessing result =
        process_invoice_once(*locks, *ledger, id, ttl, hold, Reporter(inv.global).notice());
    json out = invoice_json(id, result.details, result.balance);
    Subject subject{.invoice = id, .balance = result.balance, .lock_key = result.lock_key};
    if (result.details) {
        subject.account = result.details->account;
        subject.amount = result.details->amount;
    }
    if (result.fence) {
        subject.fence = result.fence->token;
        put_lock(out, result.lock_key, result.fence->token);
    } else {
        out["key"] = result.lock_key;
    }
    const std::string text = result.outcome == Outcome::processing
                                 ? std::string(to_string(Outcome::processing))
                                 : "paid " + amount_text(result.balance);
    return report(inv, result.outcome, subject, std::move(out), text);
}

namespace {

// A ledger subcommand, with the ledger backends' advanced options.
std::pair<CLI::App*, LedgerCommandOptions*>
add_ledger_command(CLI::App& parent, Invocation& inv, const std::string& name,
                   const std::string& help,
                   int (*run)(const Invocation&, const LedgerCommandOptions&)) {
    const auto [command, opts] = add_command(parent, inv, name, help, run);
    opts->ttl = inv.settings.value("ttl");
    opts->wait = inv.settings.value("wait");
    opts->busy_timeout = inv.settings.value("db_busy_timeout");
    opts->retry = inv.settings.value("db_retry");
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
    return {command, opts};
}

CLI::Option* add_account(CLI::App& command, LedgerCommandOptions& opts) {
    return command.add_option("--account", opts.account, "Account id (a positive whole number)")
        ->type_name("ID")
        ->required();
}

CLI::Option* add_amount(CLI::App& command, LedgerCommandOptions& opts, const std::string& help) {
    return command.add_option("--amount", opts.amount, help)->type_name("AMT")->required();
}

CLI::Option* add_idempotency_key(CLI::App& command, LedgerCommandOptions& opts) {
    return command
        .add_option("--idempotency-key", opts.idempotency_key,
                    "A repeat with the same key moves no money (answers 'duplicate')")
        ->type_name("K")
        ->check(non_empty);
}

CLI::Option* add_hold(CLI::App& command, LedgerCommandOptions& opts, const std::string& help) {
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

void setup_ledger_commands(CLI::App& app, Invocation& inv, std::string_view only) {
    if (builds(only, "deposit")) {
        auto [cmd, opts] = add_ledger_command(
            app, inv, "deposit", "Credit an account, opening it if new; prints the new balance",
            deposit);
        add_account(*cmd, *opts);
        add_amount(*cmd, *opts, amount_help);
        add_idempotency_key(*cmd, *opts);
        add_hold(*cmd, *opts, "Sleep inside the ledger transaction (DUR): simulated work");
    }
    if (builds(only, "withdraw"))
        setup_withdraw(app, inv);
    if (builds(only, "balance")) {
        auto [cmd, opts] =
            add_ledger_command(app, inv, "balance", "Print an account's balance", balance);
        add_account(*cmd, *opts);
    }
    if (builds(only, "history")) {
        auto [cmd, opts] = add_ledger_command(
            app, inv, "history", "List an account's latest journal entries, newest first", history);
        add_account(*cmd, *opts);
        cmd->add_option("--limit", opts->limit, "How many entries")
            ->type_name("N")
            ->check(CLI::Range(std::int64_t{1}, std::int64_t{1'000'000}))
            ->capture_default_str();
    }
    if (builds(only, "verify"))
        add_ledger_command(app, inv, "verify",
                           "Check every balance against its journal, and the file's integrity "
                           "(exit 1 if anything is wrong)",
                           verify);
    if (builds(only, "invoice"))
        setup_invoice_commands(app, inv);
}

} // namespace dlock::cli
