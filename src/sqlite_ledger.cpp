// SqliteLedger: the ledger in one SQLite file (WAL mode), shared by many processes on one host.
//
// Every write is one BEGIN IMMEDIATE transaction: the write lock is taken before anything is
// read, so checks and writes see the same state and a transaction never has to upgrade a read
// lock (which in WAL mode fails with SQLITE_BUSY without waiting). A request that still finds
// the ledger locked after SQLite's own busy timeout is retried whole, after a short random
// pause, until the retry deadline; then it answers LedgerStatus::busy.
#include "dlock/sqlite_ledger.hpp"

#include "dlock/error.hpp"
#include "ledger_backend.hpp"
#include "random_seed.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <SQLiteCpp/VariadicBind.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <random>
#include <sqlite3.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace dlock {
namespace {

// The single place where SQLite's errors become dlock's.
[[noreturn]] void throw_translated(const SQLite::Exception& e, const std::string& path) {
    const std::string ledger = "ledger '" + path + "'";
    switch (e.getErrorCode()) {
    case SQLITE_NOTADB:
        throw DataError(ledger + " is not a SQLite database");
    case SQLITE_CORRUPT:
        throw DataError(ledger + " is corrupt: " + e.what());
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_PERM:
    case SQLITE_READONLY:
        throw UnavailableError("cannot use " + ledger + ": " + e.what());
    default:
        throw InternalError(ledger + ": " + e.what());
    }
}

[[noreturn]] void not_a_regular_file(const std::string& path) {
    throw UsageError("ledger '" + path +
                     "' is not a regular file (a device, folder, FIFO or socket); give the path "
                     "of a ledger file, or of one to create");
}

// SQLite would create a missing file with mode 0644 less the umask; a ledger is nobody else's.
// Only a regular file (or none yet) may be a ledger: SQLite would put its journal beside
// anything else, such as /dev/null-journal.
void create_private_file(const std::string& path) {
    struct stat before {};
    if (::stat(path.c_str(), &before) == 0 && !S_ISREG(before.st_mode))
        not_a_regular_file(path);
    // O_NONBLOCK and O_NOCTTY: whatever appeared at the path meanwhile, opening it must not
    // block (a FIFO) or take a terminal.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600);
    if (fd < 0) {
        const int error = errno;
        if (error == EISDIR)
            not_a_regular_file(path);
        if (error == EMFILE || error == ENFILE)
            throw ResourceError("cannot open ledger '" + path + "': " + std::strerror(error));
        throw UnavailableError("cannot open ledger '" + path + "': " + std::strerror(error));
    }
    struct stat opened {};
    const bool regular = ::fstat(fd, &opened) == 0 && S_ISREG(opened.st_mode);
    ::close(fd);
    if (!regular)
        not_a_regular_file(path);
}

SQLite::Database open_database(const std::string& path, Millis busy_timeout) {
    create_private_file(path);
    try {
        SQLite::Database db(path, SQLite::OPEN_READWRITE,
                            static_cast<int>(std::min<Millis::rep>(busy_timeout.count(), INT_MAX)));
        // The last connection to close would checkpoint the WAL into the database file and
        // delete it: three fsyncs and an unlink, half the time of a one-shot command. SQLite's
        // automatic checkpoints (at a commit that finds 1000 pages in the WAL) do that work
        // instead, so the -wal and -shm files stay beside the ledger between commands.
        sqlite3_db_config(db.getHandle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
        return db;
    } catch (const SQLite::Exception& e) {
        throw_translated(e, path);
    }
}

} // namespace

namespace detail {

struct SqliteConnection {
    SqliteConnection(const std::string& ledger_path, const SqliteLedgerOptions& ledger_options)
        : path(ledger_path), options(ledger_options),
          db(open_database(ledger_path, ledger_options.busy_timeout)) {}

    std::string path;
    SqliteLedgerOptions options;
    SQLite::Database db;
    std::minstd_rand rng{detail::random_seed()}; // for retry pauses only
};

} // namespace detail

namespace {

using detail::entry_kind_from;
using detail::NewEntry;
using detail::next_retry_pause;
using detail::pause_before_retry;
using detail::refuse_overflow;
using detail::require_positive;
using detail::require_storable_balance;
using detail::SqliteConnection;
using detail::token_of;
using SQLite::TransactionBehavior;

// The schema, one migration per version: a database's PRAGMA user_version counts the migrations
// applied to it. Append only; a released migration never changes.
constexpr std::array<const char*, 2> migrations{
    R"sql(
CREATE TABLE accounts (
    id      INTEGER PRIMARY KEY CHECK (id > 0),
    balance INTEGER NOT NULL CHECK (balance >= 0)
) STRICT;

CREATE TABLE invoices (
    id         INTEGER PRIMARY KEY,
    account    INTEGER NOT NULL REFERENCES accounts (id),
    amount     INTEGER NOT NULL CHECK (amount > 0),
    status     TEXT NOT NULL CHECK (status IN ('open', 'paid')),
    created_ms INTEGER NOT NULL,
    paid_ms    INTEGER
) STRICT;

CREATE TABLE journal (
    id              INTEGER PRIMARY KEY,
    account         INTEGER NOT NULL REFERENCES accounts (id),
    kind            TEXT NOT NULL CHECK (kind IN ('deposit', 'withdraw', 'invoice')),
    amount          INTEGER NOT NULL CHECK (amount != 0),
    balance_after   INTEGER NOT NULL,
    time_ms         INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    fence_token     INTEGER,
    invoice         INTEGER REFERENCES invoices (id)
) STRICT;
CREATE INDEX journal_by_account ON journal (account, id);

-- The highest fencing token accepted so far for each protected resource (a lock key).
CREATE TABLE fences (
    resource TEXT PRIMARY KEY,
    token    INTEGER NOT NULL
) STRICT;
)sql",
    // Fence rows are keyed by the lock's full Redis name, prefix included, so two --prefix
    // namespaces sharing one ledger never share fences. Rows written before were keyed by the
    // bare lock key; they were taken under the default prefix "dlock:", whose full name percent-
    // encodes '%', '{' and '}' inside the hash tag (redis_lock.cpp, lock_keys).
    R"sql(
UPDATE fences SET resource = 'dlock:{' ||
    replace(replace(replace(resource, '%', '%25'), '{', '%7B'), '}', '%7D') || '}';
)sql",
};
constexpr int schema_version = static_cast<int>(migrations.size());

// Runs `op(db)`, a unit of work that leaves nothing behind when it throws (one transaction, or
// one statement), again and again while SQLite reports the ledger busy, until the retry
// deadline. nullopt: still busy at the deadline.
template <typename Op>
auto retry_while_busy(SqliteConnection& c, Op op) -> std::optional<decltype(op(c.db))> {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point deadline = Clock::now() + c.options.retry_deadline;
    // Random pauses that grow: processes that collided once should not collide again in step.
    for (Millis longest{1};; longest = next_retry_pause(longest)) {
        try {
            return op(c.db);
        } catch (const SQLite::Exception& e) {
            if (e.getErrorCode() != SQLITE_BUSY)
                throw_translated(e, c.path);
        }
        const Clock::duration left = deadline - Clock::now();
        if (left <= Clock::duration::zero())
            return std::nullopt;
        pause_before_retry(longest, left, c.rng);
    }
}

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

template <typename T>
void bind_optional(SQLite::Statement& statement, int index, const std::optional<T>& value) {
    if (value)
        statement.bind(index, *value);
    else
        statement.bind(index);
}

std::optional<std::int64_t> optional_int(const SQLite::Column& column) {
    return column.isNull() ? std::nullopt : std::optional(column.getInt64());
}

std::optional<std::string> optional_text(const SQLite::Column& column) {
    return column.isNull() ? std::nullopt : std::optional(column.getString());
}

// ----- schema -----

int checked_schema_version(SQLite::Database& db, const std::string& path) {
    const int version = db.execAndGet("PRAGMA user_version").getInt();
    if (version > schema_version)
        throw DataError("ledger '" + path + "': ledger schema version " + std::to_string(version) +
                        " is newer than this dlock supports (" + std::to_string(schema_version) +
                        ")");
    return version;
}

void prepare_schema(SQLite::Database& db, const std::string& path) {
    db.exec("PRAGMA foreign_keys = ON");
    // SQLite's default, stated: every commit is on disk (the WAL fsynced) before it returns.
    db.exec("PRAGMA synchronous = FULL");
    // WAL lets readers work while a writer holds the lock. The mode is stored in the file.
    const std::string mode = db.execAndGet("PRAGMA journal_mode = WAL").getString();
    if (mode != "wal")
        throw UnavailableError("ledger '" + path + "' cannot use WAL mode (SQLite kept '" + mode +
                               "')");
    // Checked before taking the write lock, so opening an up-to-date ledger never waits for it.
    if (checked_schema_version(db, path) == schema_version)
        return;
    SQLite::Transaction tx(db, TransactionBehavior::IMMEDIATE);
    // Another process may have migrated meanwhile: count again under the lock.
    for (int version = checked_schema_version(db, path); version < schema_version; ++version)
        db.exec(migrations[static_cast<std::size_t>(version)]);
    db.exec("PRAGMA user_version = " + std::to_string(schema_version));
    tx.commit();
}

// ----- reading -----

std::optional<Cents> stored_balance(SQLite::Database& db, AccountId account) {
    SQLite::Statement query(db, "SELECT balance FROM accounts WHERE id = ?");
    query.bind(1, account);
    if (!query.executeStep())
        return std::nullopt;
    return query.getColumn(0).getInt64();
}

std::optional<Invoice> find_invoice(SQLite::Database& db, InvoiceId id) {
    SQLite::Statement query(db, "SELECT account, amount, status FROM invoices WHERE id = ?");
    query.bind(1, id);
    if (!query.executeStep())
        return std::nullopt;
    return Invoice{id, query.getColumn(0).getInt64(), query.getColumn(1).getInt64(),
                   query.getColumn(2).getString() == "paid"};
}

// What an earlier write with the same idempotency key says about this one; nullopt when the key
// is new.
std::optional<BalanceResult> replay(SQLite::Database& db, const std::string& key, EntryKind kind,
                                    AccountId account, Cents signed_amount) {
    SQLite::Statement query(
        db, "SELECT kind, account, amount, balance_after FROM journal WHERE idempotency_key = ?");
    query.bind(1, key);
    if (!query.executeStep())
        return std::nullopt;
    const bool same_request = query.getColumn(0).getString() == to_string(kind) &&
                              query.getColumn(1).getInt64() == account &&
                              query.getColumn(2).getInt64() == signed_amount;
    if (!same_request)
        return BalanceResult{LedgerStatus::idempotency_conflict, account, std::nullopt};
    return BalanceResult{LedgerStatus::duplicate, account, query.getColumn(3).getInt64()};
}

bool is_stale(SQLite::Database& db, const std::optional<Fence>& fence) {
    if (!fence)
        return false;
    SQLite::Statement query(db, "SELECT token FROM fences WHERE resource = ?");
    query.bind(1, fence->resource);
    return query.executeStep() && fence->token < query.getColumn(0).getInt64();
}

// ----- writing -----

// The balance check and the debit in one statement, so that no other write can come between
// them. nullopt: the balance does not cover it (or the account does not exist).
std::optional<Cents> debit(SQLite::Database& db, AccountId account, Cents amount) {
    SQLite::Statement update(db, "UPDATE accounts SET balance = balance - ?1"
                                 " WHERE id = ?2 AND balance >= ?1 RETURNING balance");
    SQLite::bind(update, amount, account);
    if (!update.executeStep())
        return std::nullopt;
    return update.getColumn(0).getInt64();
}

// Opens the account if needed. SQLite would turn an overflowing sum into a float, so the
// statement refuses to add past the largest balance instead.
Cents credit(SQLite::Database& db, AccountId account, Cents amount) {
    SQLite::Statement upsert(db, "INSERT INTO accounts (id, balance) VALUES (?1, ?2)"
                                 " ON CONFLICT (id) DO UPDATE SET balance = balance + ?2"
                                 " WHERE balance <= ?3 - ?2 RETURNING balance");
    SQLite::bind(upsert, account, amount, std::numeric_limits<Cents>::max());
    if (!upsert.executeStep())
        refuse_overflow(account, amount);
    return upsert.getColumn(0).getInt64();
}

void append_journal(SQLite::Database& db, const NewEntry& entry) {
    SQLite::Statement insert(db, "INSERT INTO journal (account, kind, amount, balance_after,"
                                 " time_ms, idempotency_key, fence_token, invoice)"
                                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    SQLite::bind(insert, entry.account, std::string(to_string(entry.kind)), entry.amount,
                 entry.balance_after, now_ms());
    bind_optional(insert, 6, entry.idempotency_key);
    bind_optional(insert, 7, entry.fence_token);
    bind_optional(insert, 8, entry.invoice);
    insert.exec();
}

void record_fence(SQLite::Database& db, const std::optional<Fence>& fence) {
    if (!fence)
        return;
    // is_stale() ran in the same transaction, so the token is at least the recorded one.
    SQLite::Statement upsert(db, "INSERT INTO fences (resource, token) VALUES (?1, ?2)"
                                 " ON CONFLICT (resource) DO UPDATE SET token = ?2");
    SQLite::bind(upsert, fence->resource, fence->token);
    upsert.exec();
}

// deposit and withdraw: the checks in the documented precedence, then the money, in one
// transaction.
BalanceResult move_money(SQLite::Database& db, EntryKind kind, AccountId account, Cents amount,
                         const WriteOptions& options) {
    const Cents signed_amount = kind == EntryKind::deposit ? amount : -amount;
    SQLite::Transaction tx(db, TransactionBehavior::IMMEDIATE);
    if (options.idempotency_key)
        if (auto earlier = replay(db, *options.idempotency_key, kind, account, signed_amount))
            return *earlier;
    if (kind == EntryKind::withdraw && !stored_balance(db, account))
        return {LedgerStatus::unknown_account, account, std::nullopt};
    if (is_stale(db, options.fence))
        return {LedgerStatus::stale_fence, account, std::nullopt};

    std::optional<Cents> balance;
    if (kind == EntryKind::deposit)
        balance = credit(db, account, amount);
    else if (!(balance = debit(db, account, amount)))
        return {LedgerStatus::insufficient_funds, account, stored_balance(db, account)};

    append_journal(db, {account, kind, signed_amount, *balance, options.idempotency_key,
                        token_of(options.fence), std::nullopt});
    record_fence(db, options.fence);
    if (options.before_commit)
        options.before_commit();
    tx.commit();
    return {LedgerStatus::ok, account, balance};
}

// Stores a balance the caller computed earlier, whatever happened since.
BalanceResult overwrite_balance(SQLite::Database& db, AccountId account, Cents amount,
                                Cents written) {
    SQLite::Transaction tx(db, TransactionBehavior::IMMEDIATE);
    SQLite::Statement update(db, "UPDATE accounts SET balance = ? WHERE id = ?");
    SQLite::bind(update, written, account);
    if (update.exec() == 0)
        return {LedgerStatus::unknown_account, account, std::nullopt};
    append_journal(db, {account, EntryKind::withdraw, -amount, written, std::nullopt, std::nullopt,
                        std::nullopt});
    tx.commit();
    return {LedgerStatus::ok, account, written};
}

HistoryResult read_history(SQLite::Database& db, AccountId account, std::size_t limit) {
    if (!stored_balance(db, account))
        return {LedgerStatus::unknown_account, {}};
    SQLite::Statement query(db, "SELECT id, time_ms, kind, amount, balance_after, idempotency_key,"
                                " fence_token, invoice FROM journal WHERE account = ?"
                                " ORDER BY id DESC LIMIT ?");
    const auto max_limit = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
    SQLite::bind(query, account, static_cast<std::int64_t>(std::min(limit, max_limit)));
    HistoryResult result{LedgerStatus::ok, {}};
    while (query.executeStep())
        result.entries.push_back(
            {query.getColumn(0).getInt64(), query.getColumn(1).getInt64(),
             entry_kind_from(query.getColumn(2).getString()), query.getColumn(3).getInt64(),
             query.getColumn(4).getInt64(), optional_text(query.getColumn(5)),
             optional_int(query.getColumn(6)), optional_int(query.getColumn(7))});
    return result;
}

VerifyReport check_balances(SQLite::Database& db) {
    VerifyReport report{LedgerStatus::ok, {}, {}};
    SQLite::Statement sums(db, "SELECT accounts.id, accounts.balance,"
                               " COALESCE(SUM(journal.amount), 0) AS expected"
                               " FROM accounts LEFT JOIN journal ON journal.account = accounts.id"
                               " GROUP BY accounts.id HAVING accounts.balance != expected"
                               " ORDER BY accounts.id");
    while (sums.executeStep()) {
        const Cents actual = sums.getColumn(1).getInt64();
        const Cents expected = sums.getColumn(2).getInt64();
        report.mismatches.push_back(
            {sums.getColumn(0).getInt64(), expected, actual, actual - expected});
    }
    SQLite::Statement integrity(db, "PRAGMA integrity_check");
    while (integrity.executeStep())
        report.integrity +=
            (report.integrity.empty() ? "" : "\n") + integrity.getColumn(0).getString();
    return report;
}

InvoiceResult open_invoice(SQLite::Database& db, AccountId account, Cents amount) {
    SQLite::Transaction tx(db, TransactionBehavior::IMMEDIATE);
    if (!stored_balance(db, account))
        return {LedgerStatus::unknown_account, std::nullopt, std::nullopt};
    SQLite::Statement insert(
        db, "INSERT INTO invoices (account, amount, status, created_ms) VALUES (?, ?, 'open', ?)");
    SQLite::bind(insert, account, amount, now_ms());
    insert.exec();
    const Invoice invoice{db.getLastInsertRowid(), account, amount, false};
    tx.commit();
    return {LedgerStatus::ok, invoice, std::nullopt};
}

// process_invoice: the checks in the documented precedence, then the charge, in one transaction.
InvoiceResult charge_invoice(SQLite::Database& db, InvoiceId id, const WriteOptions& options) {
    const std::optional<Fence>& fence = options.fence;
    SQLite::Transaction tx(db, TransactionBehavior::IMMEDIATE);
    std::optional<Invoice> invoice = find_invoice(db, id);
    if (!invoice)
        return {LedgerStatus::unknown_invoice, std::nullopt, std::nullopt};
    if (invoice->paid)
        return {LedgerStatus::paid, invoice, stored_balance(db, invoice->account)};
    if (is_stale(db, fence))
        return {LedgerStatus::stale_fence, invoice, std::nullopt};
    const std::optional<Cents> balance = debit(db, invoice->account, invoice->amount);
    if (!balance)
        return {LedgerStatus::insufficient_funds, invoice, stored_balance(db, invoice->account)};

    append_journal(db, {invoice->account, EntryKind::invoice, -invoice->amount, *balance,
                        std::nullopt, token_of(fence), id});
    SQLite::Statement mark(db, "UPDATE invoices SET status = 'paid', paid_ms = ? WHERE id = ?");
    SQLite::bind(mark, now_ms(), id);
    mark.exec();
    record_fence(db, fence);
    if (options.before_commit)
        options.before_commit();
    tx.commit();
    invoice->paid = true;
    return {LedgerStatus::ok, invoice, balance};
}

} // namespace

SqliteLedger::SqliteLedger(const std::string& path, SqliteLedgerOptions options)
    : connection_(std::make_unique<SqliteConnection>(path, options)) {
    const auto prepared = retry_while_busy(*connection_, [&](SQLite::Database& db) {
        prepare_schema(db, path);
        return true;
    });
    if (!prepared)
        throw UnavailableError("ledger '" + path + "' stayed locked for " +
                               format_duration(options.retry_deadline) + " while opening");
}

SqliteLedger::~SqliteLedger() = default;

BalanceResult SqliteLedger::deposit(AccountId account, Cents amount, const WriteOptions& options) {
    require_positive(amount);
    return retry_while_busy(*connection_,
                            [&](SQLite::Database& db) {
                                return move_money(db, EntryKind::deposit, account, amount, options);
                            })
        .value_or(busy_balance(account));
}

BalanceResult SqliteLedger::withdraw(AccountId account, Cents amount, const WriteOptions& options) {
    require_positive(amount);
    return retry_while_busy(*connection_,
                            [&](SQLite::Database& db) {
                                return move_money(db, EntryKind::withdraw, account, amount,
                                                  options);
                            })
        .value_or(busy_balance(account));
}

BalanceResult SqliteLedger::store_withdrawal(AccountId account, Cents amount, Cents new_balance) {
    require_positive(amount);
    require_storable_balance(new_balance);
    return retry_while_busy(*connection_,
                            [&](SQLite::Database& db) {
                                return overwrite_balance(db, account, amount, new_balance);
                            })
        .value_or(busy_balance(account));
}

BalanceResult SqliteLedger::balance(AccountId account) {
    const auto read = retry_while_busy(
        *connection_, [&](SQLite::Database& db) { return stored_balance(db, account); });
    if (!read)
        return busy_balance(account);
    return {*read ? LedgerStatus::ok : LedgerStatus::unknown_account, account, *read};
}

HistoryResult SqliteLedger::history(AccountId account, std::size_t limit) {
    return retry_while_busy(*connection_,
                            [&](SQLite::Database& db) { return read_history(db, account, limit); })
        .value_or(HistoryResult{LedgerStatus::busy, {}});
}

VerifyReport SqliteLedger::verify() {
    return retry_while_busy(*connection_, check_balances)
        .value_or(VerifyReport{LedgerStatus::busy, {}, {}});
}

InvoiceResult SqliteLedger::create_invoice(AccountId account, Cents amount) {
    require_positive(amount);
    return retry_while_busy(*connection_,
                            [&](SQLite::Database& db) { return open_invoice(db, account, amount); })
        .value_or(busy_invoice());
}

InvoiceResult SqliteLedger::process_invoice(InvoiceId invoice, const WriteOptions& options) {
    return retry_while_busy(
               *connection_,
               [&](SQLite::Database& db) { return charge_invoice(db, invoice, options); })
        .value_or(busy_invoice());
}

} // namespace dlock
