// PostgresLedger: the ledger in a PostgreSQL database, for a fleet of hosts.
//
// libpq's C API, wrapped in RAII, and loaded with dlopen() when a PostgreSQL ledger is first
// opened: linked in, libpq and the 20-odd libraries it needs (TLS, Kerberos, LDAP) would be
// loaded and relocated at the start of every dlock command, lock commands included, for a
// slower start and three times the memory. One connection per ledger, statements sent with bound
// parameters (never spliced into the SQL) and their answers awaited with poll() against a
// deadline, so no server that stops answering can hang a command.
//
// Isolation: every statement runs under PostgreSQL's default, READ COMMITTED. It is enough
// because each decision that matters is made by the statement that writes:
//   - the debit is one UPDATE ... WHERE balance >= amount: an UPDATE that finds its row locked
//     waits, then re-checks its WHERE against the row as committed (EvalPlanQual), so two
//     debits can never both pass a balance that covers only one;
//   - the fence is checked and raised by one INSERT ... ON CONFLICT DO UPDATE ... WHERE
//     token <= new token, which locks the fence row until the commit whether or not it raised
//     it: a lower token that comes later waits, then finds the higher one and is refused;
//   - an invoice is charged after SELECT ... FOR UPDATE on its row: a second processor waits,
//     then reads it paid;
//   - an idempotency key is UNIQUE: of two writes racing with one key the second fails on the
//     index once the first commits, and its retry answers duplicate.
// Row locks are always taken in one order (invoice, fence, account), so deadlocks need a
// foreign writer; a deadlock, a serialization failure or a lock wait past lock_timeout (set
// per transaction to what is left of the retry deadline) rolls back and is retried whole, after
// a short random pause, until the retry deadline; then the request answers busy.
#include "dlock/postgres_ledger.hpp"

#include "dlock/error.hpp"
#include "ledger_backend.hpp"
#include "random_seed.hpp"
#include "run_time_library.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <libpq-fe.h>
#include <limits>
#include <poll.h>
#include <random>
#include <thread>
#include <vector>

namespace dlock {

using Clock = std::chrono::steady_clock;

namespace {

// The libpq functions dlock calls, as pointers into the library loaded at run time. decltype on
// the header's declarations keeps every signature checked by the compiler.
#define DLOCK_LIBPQ_FUNCTIONS(X)                                                                   \
    X(PQclear)                                                                                     \
    X(PQconnectPoll)                                                                               \
    X(PQconnectStartParams)                                                                        \
    X(PQconninfoFree)                                                                              \
    X(PQconninfoParse)                                                                             \
    X(PQconsumeInput)                                                                              \
    X(PQerrorMessage)                                                                              \
    X(PQfinish)                                                                                    \
    X(PQfreemem)                                                                                   \
    X(PQgetResult)                                                                                 \
    X(PQgetisnull)                                                                                 \
    X(PQgetvalue)                                                                                  \
    X(PQisBusy)                                                                                    \
    X(PQntuples)                                                                                   \
    X(PQresultErrorField)                                                                          \
    X(PQresultErrorMessage)                                                                        \
    X(PQresultStatus)                                                                              \
    X(PQsendQuery)                                                                                 \
    X(PQsendQueryParams)                                                                           \
    X(PQsetNoticeProcessor)                                                                        \
    X(PQsocket)                                                                                    \
    X(PQstatus)

struct Libpq {
#define DLOCK_LIBPQ_POINTER(name) decltype(&::name) name = nullptr;
    DLOCK_LIBPQ_FUNCTIONS(DLOCK_LIBPQ_POINTER)
#undef DLOCK_LIBPQ_POINTER
};

Libpq load_libpq() {
    const std::string soname = "libpq.so.5";
    void* const library = detail::load_library(soname, "a PostgreSQL ledger", "libpq5");
    Libpq lib;
#define DLOCK_LIBPQ_LOAD(name)                                                                     \
    lib.name = detail::library_function<decltype(lib.name)>(library, #name, soname);
    DLOCK_LIBPQ_FUNCTIONS(DLOCK_LIBPQ_LOAD)
#undef DLOCK_LIBPQ_LOAD
    return lib;
}

// Loaded at the first call; a failed load is tried again at the next.
const Libpq& libpq() {
    static const Libpq lib = load_libpq();
    return lib;
}

struct ConnDeleter {
    void operator()(PGconn* conn) const { libpq().PQfinish(conn); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;

struct ResultDeleter {
    void operator()(PGresult* result) const { libpq().PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

struct OptionsDeleter {
    void operator()(PQconninfoOption* options) const { libpq().PQconninfoFree(options); }
};

// A failure that a fresh attempt of the whole request can cure: the transaction was rolled
// back (deadlock, serialization failure, lock wait past lock_timeout, a racing idempotency key).
class RetryableError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The name PostgreSQL gives the idempotency key's unique index (journal.idempotency_key).
constexpr std::string_view idempotency_constraint = "journal_idempotency_key_key";

// Any advisory lock number will do, as long as it is this one: migrations take it.
constexpr std::string_view migration_lock = "7106290473163542301";

constexpr int max_attempts = 200;

// The schema, one migration per version: dlock_schema holds a row for each one applied.
// Append only; a released migration never changes.
constexpr std::array<const char*, 1> migrations{
    R"sql(
CREATE TABLE accounts (
    id      bigint PRIMARY KEY CHECK (id > 0),
    balance bigint NOT NULL CHECK (balance >= 0)
);

CREATE TABLE invoices (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account    bigint NOT NULL REFERENCES accounts (id),
    amount     bigint NOT NULL CHECK (amount > 0),
    status     text NOT NULL CHECK (status IN ('open', 'paid')),
    created_ms bigint NOT NULL,
    paid_ms    bigint
);

CREATE TABLE journal (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         bigint NOT NULL REFERENCES accounts (id),
    kind            text NOT NULL CHECK (kind IN ('deposit', 'withdraw', 'invoice')),
    amount          bigint NOT NULL CHECK (amount <> 0),
    balance_after   bigint NOT NULL,
    time_ms         bigint NOT NULL,
    idempotency_key text CONSTRAINT journal_idempotency_key_key UNIQUE,
    fence_token     bigint,
    invoice         bigint REFERENCES invoices (id)
);
CREATE INDEX journal_by_account ON journal (account, id);

-- The highest fencing token accepted so far for each protected resource: the lock's full name.
CREATE TABLE fences (
    resource text PRIMARY KEY,
    token    bigint NOT NULL
);
)sql",
};
constexpr int schema_version = static_cast<int>(migrations.size());

// The server's clock, so that the journal of a fleet reads in one time.
constexpr std::string_view server_ms = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

std::int64_t to_int(const char* text) {
    return std::strtoll(text, nullptr, 10);
}

// libpq's text as one line: its first (later ones are hints such as "Is the server running
// ...?"), without the severity words the server puts in ("FATAL:  ").
std::string first_line(std::string_view message) {
    std::string text(message.substr(0, message.find('\n')));
    for (const std::string_view severity : {"FATAL:  ", "ERROR:  "})
        for (std::size_t at = text.find(severity); at != std::string::npos;
             at = text.find(severity, at))
            text.erase(at, severity.size());
    while (!text.empty() && (text.back() == ' ' || text.back() == '\r'))
        text.pop_back();
    return text;
}

std::string percent_decoded(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            const std::string hex(text.substr(i + 1, 2));
            char* end = nullptr;
            const long value = std::strtol(hex.c_str(), &end, 16);
            if (end == hex.c_str() + 2) {
                out += static_cast<char>(value);
                i += 2;
                continue;
            }
        }
        out += text[i];
    }
    return out;
}

// The password parts of a URI: [begin, end) of user:PASSWORD@ and of each password=VALUE.
std::vector<std::pair<std::size_t, std::size_t>> password_spans(std::string_view uri) {
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    const std::size_t scheme = uri.find("://");
    if (scheme != std::string_view::npos) {
        const std::size_t start = scheme + 3;
        const std::size_t authority_end = std::min(uri.find_first_of("/?", start), uri.size());
        const std::size_t at = uri.rfind('@', authority_end);
        if (at != std::string_view::npos && at >= start) {
            const std::size_t colon = uri.find(':', start);
            if (colon < at)
                spans.emplace_back(colon + 1, at);
        }
    }
    for (std::size_t at = uri.find("password="); at != std::string_view::npos;
         at = uri.find("password=", at + 1)) {
        if (at > 0 && uri[at - 1] != '?' && uri[at - 1] != '&' && uri[at - 1] != ' ')
            continue;
        const std::size_t begin = at + 9;
        spans.emplace_back(begin, std::min(uri.find_first_of("& ", begin), uri.size()));
    }
    return spans;
}

} // namespace

std::string masked_postgres_uri(const std::string& uri) {
    std::string out = uri;
    auto spans = password_spans(uri);
    std::sort(spans.rbegin(), spans.rend()); // from the end, so earlier offsets stay valid
    for (const auto& [begin, end] : spans)
        out.replace(begin, end - begin, "***");
    return out;
}

namespace detail {

struct PostgresConnection {
    PostgresConnection(const std::string& uri, PostgresLedgerOptions ledger_options);

    std::string location; // the URI, password masked: for messages
    PostgresLedgerOptions options;
    std::vector<std::string> secrets; // never shown, whatever libpq says
    ConnPtr conn;
    Clock::time_point attempt_deadline;          // the retry deadline of the request under way
    std::minstd_rand rng{detail::random_seed()}; // for retry pauses only

    // libpq's own text, one line, with every password replaced.
    std::string scrubbed(std::string_view message) const {
        std::string text = first_line(message);
        for (const std::string& secret : secrets)
            for (std::size_t at = text.find(secret); !secret.empty() && at != std::string::npos;
                 at = text.find(secret, at + 3))
                text.replace(at, secret.size(), "***");
        return text;
    }

    [[noreturn]] void lost(const std::string& why) {
        const std::string message = "lost the connection to ledger " + location + ": " + why;
        conn.reset(); // its state is unknown: never used again
        throw UnavailableError(message);
    }

    PGconn* live() {
        if (!conn)
            throw UnavailableError("lost the connection to ledger " + location);
        return conn.get();
    }

    // Waits until the socket is ready for `events`; false at the deadline.
    bool wait_socket(short events, Clock::time_point deadline) {
        for (;;) {
            const int fd = libpq().PQsocket(live());
            if (fd < 0)
                lost(scrubbed(libpq().PQerrorMessage(conn.get())));
            const auto left =
                std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
            if (left <= 0)
                return false;
            pollfd watched{fd, events, 0};
            const int ready =
                ::poll(&watched, 1, static_cast<int>(std::min<long long>(left, 60'000)));
            if (ready > 0)
                return true;
            if (ready < 0 && errno != EINTR)
                lost(std::strerror(errno));
        }
    }

    // The answer to what was sent: the first error, or the last result.
    Result await(const char* what) {
        const Clock::time_point deadline =
            std::max(attempt_deadline, Clock::now()) + options.connect_timeout;
        Result error;
        Result last;
        for (;;) {
            while (libpq().PQisBusy(live())) {
                if (!wait_socket(POLLIN, deadline))
                    lost("no answer to " + std::string(what) + " within " +
                         format_duration(options.retry_deadline + options.connect_timeout));
                if (libpq().PQconsumeInput(conn.get()) == 0)
                    lost(scrubbed(libpq().PQerrorMessage(conn.get())));
            }
            Result result(libpq().PQgetResult(conn.get()));
            if (!result)
                break;
            if (libpq().PQresultStatus(result.get()) == PGRES_FATAL_ERROR && !error)
                error = std::move(result);
            else
                last = std::move(result);
        }
        if (error)
            fail(*error);
        if (libpq().PQstatus(conn.get()) == CONNECTION_BAD)
            lost(scrubbed(libpq().PQerrorMessage(conn.get())));
        return last;
    }

    // The single place where PostgreSQL's errors become dlock's.
    [[noreturn]] void fail(const PGresult& result) {
        const char* state = libpq().PQresultErrorField(&result, PG_DIAG_SQLSTATE);
        const std::string sqlstate = state ? state : "";
        const std::string message = scrubbed(libpq().PQresultErrorMessage(&result));
        if (sqlstate.empty() || libpq().PQstatus(conn.get()) == CONNECTION_BAD)
            lost(message);
        const char* constraint = libpq().PQresultErrorField(&result, PG_DIAG_CONSTRAINT_NAME);
        if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03" ||
            (sqlstate == "23505" && constraint && constraint == idempotency_constraint))
            throw RetryableError(message);
        // Connection exceptions, the server shutting down, out of resources, no privilege.
        if (sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0 ||
            sqlstate.rfind("53", 0) == 0 || sqlstate == "42501" || sqlstate == "25006")
            lost(message);
        throw InternalError("ledger " + location + ": " + message);
    }

    // One statement, its parameters bound as text (NULL for nullopt).
    Result query(const char* sql, const std::vector<std::optional<std::string>>& params = {}) {
        std::vector<const char*> values;
        values.reserve(params.size());
        for (const auto& param : params)
            values.push_back(param ? param->c_str() : nullptr);
        if (libpq().PQsendQueryParams(live(), sql, static_cast<int>(values.size()), nullptr,
                                      values.data(), nullptr, nullptr, 0) == 0)
            lost(scrubbed(libpq().PQerrorMessage(conn.get())));
        return await("a statement");
    }

    // Statements without parameters, any number, in one round trip.
    void script(const std::string& sql) {
        if (libpq().PQsendQuery(live(), sql.c_str()) == 0)
            lost(scrubbed(libpq().PQerrorMessage(conn.get())));
        await("a statement");
    }
};

} // namespace detail

namespace {

using detail::entry_kind_from;
using detail::NewEntry;
using detail::next_retry_pause;
using detail::pause_before_retry;
using detail::PostgresConnection;
using detail::refuse_overflow;
using detail::require_positive;
using detail::require_storable_balance;
using detail::token_of;

std::optional<std::string> text(std::int64_t value) {
    return std::to_string(value);
}

std::optional<std::string> text(const std::optional<std::int64_t>& value) {
    return value ? text(*value) : std::nullopt;
}

bool has_row(const Result& result) {
    return result && libpq().PQntuples(result.get()) > 0;
}

std::int64_t int_at(const Result& result, int column, int row = 0) {
    return to_int(libpq().PQgetvalue(result.get(), row, column));
}

std::optional<std::int64_t> optional_int_at(const Result& result, int column, int row) {
    if (libpq().PQgetisnull(result.get(), row, column))
        return std::nullopt;
    return int_at(result, column, row);
}

std::string text_at(const Result& result, int column, int row = 0) {
    return libpq().PQgetvalue(result.get(), row, column);
}

// One transaction: BEGIN ... COMMIT, or ROLLBACK when it is left any other way.
class Transaction {
public:
    explicit Transaction(PostgresConnection& c) : c_(c) {
        // SET cannot take bound parameters; the value is a number dlock computed.
        const auto left = std::max<Millis::rep>(
            1, std::chrono::ceil<Millis>(c.attempt_deadline - Clock::now()).count());
        c.script("BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = " +
                 std::to_string(left));
    }
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction() {
        if (done_ || !c_.conn)
            return;
        try {
            c_.script("ROLLBACK");
        } catch (...) { // the server rolls back a transaction whose connection is gone
        }
    }
    void commit() {
        c_.script("COMMIT");
        done_ = true;
    }

private:
    PostgresConnection& c_;
    bool done_ = false;
};

// Runs `op(c)`, a unit of work that leaves nothing behind when it throws (one transaction, or
// one statement), again while PostgreSQL asks for a retry, until the retry deadline. nullopt:
// still failing at the deadline.
template <typename Op>
auto retrying(PostgresConnection& c, Op op) -> std::optional<decltype(op(c))> {
    c.attempt_deadline = Clock::now() + c.options.retry_deadline;
    // Random pauses that grow: writers that collided once should not collide again in step.
    Millis longest{1};
    for (int attempt = 1;; ++attempt, longest = next_retry_pause(longest)) {
        try {
            return op(c);
        } catch (const RetryableError&) {
        }
        const Clock::duration left = c.attempt_deadline - Clock::now();
        if (left <= Clock::duration::zero() || attempt >= max_attempts)
            return std::nullopt;
        pause_before_retry(longest, left, c.rng);
    }
}

// ----- connecting and the schema -----

ConnPtr connect(PostgresConnection& c, const std::string& uri) {
    std::vector<const char*> keys{"dbname", "fallback_application_name"};
    std::vector<const char*> values{uri.c_str(), "dlock"};
    if (c.options.password) {
        keys.push_back("password");
        values.push_back(c.options.password->c_str());
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    ConnPtr conn(libpq().PQconnectStartParams(keys.data(), values.data(), 1));
    if (!conn)
        throw std::bad_alloc();
    libpq().PQsetNoticeProcessor(
        conn.get(), [](void*, const char*) {}, nullptr); // never on our stderr
    const std::string cannot = "cannot connect to ledger " + c.location + ": ";
    if (libpq().PQstatus(conn.get()) == CONNECTION_BAD)
        throw UnavailableError(cannot + c.scrubbed(libpq().PQerrorMessage(conn.get())));
    const Clock::time_point deadline = Clock::now() + c.options.connect_timeout;
    PostgresPollingStatusType polled = PGRES_POLLING_WRITING;
    c.conn = std::move(conn);
    for (;;) {
        if (polled == PGRES_POLLING_OK)
            return std::move(c.conn);
        if (polled == PGRES_POLLING_FAILED)
            throw UnavailableError(cannot + c.scrubbed(libpq().PQerrorMessage(c.conn.get())));
        if (!c.wait_socket(polled == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline))
            throw UnavailableError(cannot + "no answer within " +
                                   format_duration(c.options.connect_timeout));
        polled = libpq().PQconnectPoll(c.conn.get());
    }
}

// The schema version the database holds: 0 for a database without dlock's tables.
int stored_version(PostgresConnection& c) {
    const Result found = c.query("SELECT to_regclass('dlock_schema') IS NOT NULL");
    if (text_at(found, 0) != "t")
        return 0;
    const Result version = c.query("SELECT COALESCE(max(version), 0) FROM dlock_schema");
    return static_cast<int>(int_at(version, 0));
}

int checked_version(PostgresConnection& c) {
    const int version = stored_version(c);
    if (version > schema_version)
        throw DataError("ledger " + c.location + ": ledger schema version " +
                        std::to_string(version) + " is newer than this dlock supports (" +
                        std::to_string(schema_version) + ")");
    return version;
}

bool prepare_schema(PostgresConnection& c) {
    // Checked before taking the migration lock, so opening an up-to-date ledger never waits.
    if (checked_version(c) == schema_version)
        return true;
    Transaction tx(c);
    // DDL is transactional in PostgreSQL: a migration is applied whole or not at all. The
    // advisory lock makes concurrent first users take turns; the version is read again under it.
    c.query("SELECT pg_advisory_xact_lock($1)", {std::string(migration_lock)});
    c.script("CREATE TABLE IF NOT EXISTS dlock_schema (version integer PRIMARY KEY)");
    for (int version = checked_version(c); version < schema_version; ++version) {
        c.script(migrations[static_cast<std::size_t>(version)]);
        c.query("INSERT INTO dlock_schema (version) VALUES ($1)", {text(version + 1)});
    }
    tx.commit();
    return true;
}

// ----- reading -----

std::optional<Cents> stored_balance(PostgresConnection& c, AccountId account) {
    const Result row = c.query("SELECT balance FROM accounts WHERE id = $1", {text(account)});
    return has_row(row) ? std::optional(int_at(row, 0)) : std::nullopt;
}

// What an earlier write with the same idempotency key says about this one; nullopt when the
// key is new.
std::optional<BalanceResult> replay(PostgresConnection& c, const std::string& key, EntryKind kind,
                                    AccountId account, Cents signed_amount) {
    const Result row = c.query("SELECT kind, account, amount, balance_after FROM journal"
                               " WHERE idempotency_key = $1",
                               {key});
    if (!has_row(row))
        return std::nullopt;
    const bool same_request = text_at(row, 0) == to_string(kind) && int_at(row, 1) == account &&
                              int_at(row, 2) == signed_amount;
    if (!same_request)
        return BalanceResult{LedgerStatus::idempotency_conflict, account, std::nullopt};
    return BalanceResult{LedgerStatus::duplicate, account, int_at(row, 3)};
}

// ----- writing -----

// The fence checked and raised in one statement. The row stays locked until the transaction
// ends, raised or not, so no write with a lower token can slip in before the commit. False:
// a higher token was accepted before (nothing raised; the caller rolls back).
bool raise_fence(PostgresConnection& c, const std::optional<Fence>& fence) {
    if (!fence)
        return true;
    const Result row = c.query("INSERT INTO fences AS f (resource, token) VALUES ($1, $2)"
                               " ON CONFLICT (resource) DO UPDATE SET token = excluded.token"
                               " WHERE f.token <= excluded.token RETURNING token",
                               {fence->resource, text(fence->token)});
    return has_row(row);
}

// The balance check and the debit in one statement (see the top of this file). nullopt: the
// balance does not cover it (or the account does not exist).
std::optional<Cents> debit(PostgresConnection& c, AccountId account, Cents amount) {
    const Result row = c.query("UPDATE accounts SET balance = balance - $1::bigint"
                               " WHERE id = $2 AND balance >= $1::bigint RETURNING balance",
                               {text(amount), text(account)});
    return has_row(row) ? std::optional(int_at(row, 0)) : std::nullopt;
}

// Opens the account if needed; refuses to add past the largest balance.
Cents credit(PostgresConnection& c, AccountId account, Cents amount) {
    const Result row =
        c.query("INSERT INTO accounts AS a (id, balance) VALUES ($1, $2)"
                " ON CONFLICT (id) DO UPDATE SET balance = a.balance + excluded.balance"
                " WHERE a.balance <= $3::bigint - excluded.balance RETURNING balance",
                {text(account), text(amount), text(std::numeric_limits<Cents>::max())});
    if (!has_row(row))
        refuse_overflow(account, amount);
    return int_at(row, 0);
}

void append_journal(PostgresConnection& c, const NewEntry& entry) {
    static const std::string sql = "INSERT INTO journal (account, kind, amount, balance_after,"
                                   " time_ms, idempotency_key, fence_token, invoice)"
                                   " VALUES ($1, $2, $3, $4, " +
                                   std::string(server_ms) + ", $5, $6, $7)";
    c.query(sql.c_str(), {text(entry.account), std::string(to_string(entry.kind)),
                          text(entry.amount), text(entry.balance_after), entry.idempotency_key,
                          text(entry.fence_token), text(entry.invoice)});
}

// deposit and withdraw: the checks in the documented precedence, then the money, in one
// transaction.
BalanceResult move_money(PostgresConnection& c, EntryKind kind, AccountId account, Cents amount,
                         const WriteOptions& options) {
    const Cents signed_amount = kind == EntryKind::deposit ? amount : -amount;
    Transaction tx(c);
    if (options.idempotency_key)
        if (auto earlier = replay(c, *options.idempotency_key, kind, account, signed_amount))
            return *earlier;
    if (kind == EntryKind::withdraw && !stored_balance(c, account))
        return {LedgerStatus::unknown_account, account, std::nullopt};
    if (!raise_fence(c, options.fence))
        return {LedgerStatus::stale_fence, account, std::nullopt};

    std::optional<Cents> balance;
    if (kind == EntryKind::deposit)
        balance = credit(c, account, amount);
    else if (!(balance = debit(c, account, amount)))
        return {LedgerStatus::insufficient_funds, account, stored_balance(c, account)};

    append_journal(c, {account, kind, signed_amount, *balance, options.idempotency_key,
                       token_of(options.fence), std::nullopt});
    if (options.before_commit)
        options.before_commit();
    tx.commit();
    return {LedgerStatus::ok, account, balance};
}

// Stores a balance the caller computed earlier, whatever happened since: one statement, so the
// balance and its journal entry are written together or not at all.
BalanceResult overwrite_balance(PostgresConnection& c, AccountId account, Cents amount,
                                Cents written) {
    static const std::string sql =
        "WITH stored AS (UPDATE accounts SET balance = $1 WHERE id = $2 RETURNING id)"
        " INSERT INTO journal (account, kind, amount, balance_after, time_ms)"
        " SELECT id, 'withdraw', $3, $1, " +
        std::string(server_ms) + " FROM stored RETURNING id";
    const Result row = c.query(sql.c_str(), {text(written), text(account), text(-amount)});
    if (!has_row(row))
        return {LedgerStatus::unknown_account, account, std::nullopt};
    return {LedgerStatus::ok, account, written};
}

HistoryResult read_history(PostgresConnection& c, AccountId account, std::size_t limit) {
    if (!stored_balance(c, account))
        return {LedgerStatus::unknown_account, {}};
    const auto max_limit = static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max());
    const Result rows =
        c.query("SELECT id, time_ms, kind, amount, balance_after, idempotency_key, fence_token,"
                " invoice FROM journal WHERE account = $1 ORDER BY id DESC LIMIT $2",
                {text(account), text(static_cast<std::int64_t>(std::min(limit, max_limit)))});
    HistoryResult result{LedgerStatus::ok, {}};
    for (int row = 0; row < libpq().PQntuples(rows.get()); ++row) {
        std::optional<std::string> key;
        if (!libpq().PQgetisnull(rows.get(), row, 5))
            key = text_at(rows, 5, row);
        result.entries.push_back({int_at(rows, 0, row), int_at(rows, 1, row),
                                  entry_kind_from(text_at(rows, 2, row)), int_at(rows, 3, row),
                                  int_at(rows, 4, row), std::move(key),
                                  optional_int_at(rows, 6, row), optional_int_at(rows, 7, row)});
    }
    return result;
}

VerifyReport check_balances(PostgresConnection& c) {
    VerifyReport report{LedgerStatus::ok, {}, {}};
    // One statement: one snapshot of balances and journal, even under READ COMMITTED.
    const Result sums = c.query(
        "SELECT a.id, a.balance, COALESCE(j.total, 0) AS expected FROM accounts a"
        " LEFT JOIN (SELECT account, SUM(amount)::bigint AS total FROM journal GROUP BY account)"
        " j ON j.account = a.id WHERE a.balance <> COALESCE(j.total, 0) ORDER BY a.id");
    for (int row = 0; row < libpq().PQntuples(sums.get()); ++row) {
        const Cents actual = int_at(sums, 1, row);
        const Cents expected = int_at(sums, 2, row);
        report.mismatches.push_back({int_at(sums, 0, row), expected, actual, actual - expected});
    }
    // PostgreSQL guards its own pages; what it cannot know is the ledger's own rule that a paid
    // invoice was charged exactly once and an open one never.
    const Result charges =
        c.query("SELECT 'invoice ' || i.id || ' is ' || i.status || ' but was charged ' ||"
                " count(j.id) || ' times' FROM invoices i LEFT JOIN journal j ON j.invoice = i.id"
                " GROUP BY i.id HAVING count(j.id) <> CASE WHEN i.status = 'paid' THEN 1 ELSE 0 END"
                " ORDER BY i.id");
    for (int row = 0; row < libpq().PQntuples(charges.get()); ++row)
        report.integrity += (report.integrity.empty() ? "" : "\n") + text_at(charges, 0, row);
    if (report.integrity.empty())
        report.integrity = "ok";
    return report;
}

InvoiceResult open_invoice(PostgresConnection& c, AccountId account, Cents amount) {
    static const std::string sql = "INSERT INTO invoices (account, amount, status, created_ms)"
                                   " SELECT id, $2, 'open', " +
                                   std::string(server_ms) +
                                   " FROM accounts WHERE id = $1 RETURNING id";
    const Result row = c.query(sql.c_str(), {text(account), text(amount)});
    if (!has_row(row))
        return {LedgerStatus::unknown_account, std::nullopt, std::nullopt};
    return {LedgerStatus::ok, Invoice{int_at(row, 0), account, amount, false}, std::nullopt};
}

// process_invoice: the checks in the documented precedence, then the charge, in one transaction.
InvoiceResult charge_invoice(PostgresConnection& c, InvoiceId id, const WriteOptions& options) {
    Transaction tx(c);
    // Locked first: a second processor waits here, then reads the invoice as the first left it.
    const Result row = c.query(
        "SELECT account, amount, status FROM invoices WHERE id = $1 FOR UPDATE", {text(id)});
    if (!has_row(row))
        return {LedgerStatus::unknown_invoice, std::nullopt, std::nullopt};
    Invoice invoice{id, int_at(row, 0), int_at(row, 1), text_at(row, 2) == "paid"};
    if (invoice.paid)
        return {LedgerStatus::paid, invoice, stored_balance(c, invoice.account)};
    if (!raise_fence(c, options.fence))
        return {LedgerStatus::stale_fence, invoice, std::nullopt};
    const std::optional<Cents> balance = debit(c, invoice.account, invoice.amount);
    if (!balance)
        return {LedgerStatus::insufficient_funds, invoice, stored_balance(c, invoice.account)};

    append_journal(c, {invoice.account, EntryKind::invoice, -invoice.amount, *balance, std::nullopt,
                       token_of(options.fence), id});
    static const std::string mark =
        "UPDATE invoices SET status = 'paid', paid_ms = " + std::string(server_ms) +
        " WHERE id = $1";
    c.query(mark.c_str(), {text(id)});
    if (options.before_commit)
        options.before_commit();
    tx.commit();
    invoice.paid = true;
    return {LedgerStatus::ok, invoice, balance};
}

} // namespace

namespace detail {

PostgresConnection::PostgresConnection(const std::string& uri, PostgresLedgerOptions ledger_options)
    : location(masked_postgres_uri(uri)), options(std::move(ledger_options)) {
    for (const auto& [begin, end] : password_spans(uri)) {
        secrets.push_back(uri.substr(begin, end - begin));
        secrets.push_back(percent_decoded(secrets.back()));
    }
    if (options.password)
        secrets.push_back(*options.password);
    std::erase_if(secrets, [](const std::string& secret) { return secret.empty(); });
    // Longest first, so that a password containing another is replaced whole.
    std::sort(secrets.begin(), secrets.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });

    char* error = nullptr;
    std::unique_ptr<PQconninfoOption, OptionsDeleter> parsed(
        libpq().PQconninfoParse(uri.c_str(), &error));
    if (!parsed) {
        const std::string why = error ? scrubbed(error) : std::string("out of memory");
        libpq().PQfreemem(error);
        throw UsageError("--db '" + location + "' is not a PostgreSQL URI: " + why);
    }
    for (const PQconninfoOption* option = parsed.get(); option->keyword; ++option)
        if (option->val && std::strcmp(option->keyword, "password") == 0 && *option->val) {
            secrets.insert(secrets.begin(), option->val);
            options.password.reset(); // the URI's own password wins
        }
    conn = connect(*this, uri);
}

} // namespace detail

PostgresLedger::PostgresLedger(const std::string& uri, PostgresLedgerOptions options)
    : connection_(std::make_unique<detail::PostgresConnection>(uri, std::move(options))) {
    if (!retrying(*connection_, prepare_schema))
        throw UnavailableError("ledger " + connection_->location + " stayed locked for " +
                               format_duration(connection_->options.retry_deadline) +
                               " while opening");
}

PostgresLedger::~PostgresLedger() = default;

BalanceResult PostgresLedger::deposit(AccountId account, Cents amount,
                                      const WriteOptions& options) {
    require_positive(amount);
    return retrying(*connection_,
                    [&](PostgresConnection& c) {
                        return move_money(c, EntryKind::deposit, account, amount, options);
                    })
        .value_or(busy_balance(account));
}

BalanceResult PostgresLedger::withdraw(AccountId account, Cents amount,
                                       const WriteOptions& options) {
    require_positive(amount);
    return retrying(*connection_,
                    [&](PostgresConnection& c) {
                        return move_money(c, EntryKind::withdraw, account, amount, options);
                    })
        .value_or(busy_balance(account));
}

BalanceResult PostgresLedger::store_withdrawal(AccountId account, Cents amount, Cents new_balance) {
    require_positive(amount);
    require_storable_balance(new_balance);
    return retrying(*connection_,
                    [&](PostgresConnection& c) {
                        return overwrite_balance(c, account, amount, new_balance);
                    })
        .value_or(busy_balance(account));
}

BalanceResult PostgresLedger::balance(AccountId account) {
    const auto read =
        retrying(*connection_, [&](PostgresConnection& c) { return stored_balance(c, account); });
    if (!read)
        return busy_balance(account);
    return {*read ? LedgerStatus::ok : LedgerStatus::unknown_account, account, *read};
}

HistoryResult PostgresLedger::history(AccountId account, std::size_t limit) {
    return retrying(*connection_,
                    [&](PostgresConnection& c) { return read_history(c, account, limit); })
        .value_or(HistoryResult{LedgerStatus::busy, {}});
}

VerifyReport PostgresLedger::verify() {
    return retrying(*connection_, check_balances)
        .value_or(VerifyReport{LedgerStatus::busy, {}, {}});
}

InvoiceResult PostgresLedger::create_invoice(AccountId account, Cents amount) {
    require_positive(amount);
    return retrying(*connection_,
                    [&](PostgresConnection& c) { return open_invoice(c, account, amount); })
        .value_or(busy_invoice());
}

InvoiceResult PostgresLedger::process_invoice(InvoiceId invoice, const WriteOptions& options) {
    return retrying(*connection_,
                    [&](PostgresConnection& c) { return charge_invoice(c, invoice, options); })
        .value_or(busy_invoice());
}

} // namespace dlock
