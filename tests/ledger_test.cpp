#include "dlock/backends.hpp"
#include "dlock/error.hpp"
#include "dlock/race_demo.hpp"
#include "dlock/sqlite_ledger.hpp"
#include "support/ledger_file.hpp"
#include "support/postgres_server.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <SQLiteCpp/Database.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <doctest/doctest.h>
#include <fstream>
#include <limits>
#include <signal.h>
#include <sqlite3.h>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

using namespace dlock;
using namespace std::chrono_literals;

namespace {

constexpr AccountId alice = 1;
constexpr AccountId bob = 2;

// A ledger path in a fresh temp folder, removed with everything in it afterwards.
struct TempLedger {
    TempLedger() = default;
    TempLedger(const TempLedger&) = delete;
    TempLedger& operator=(const TempLedger&) = delete;
    ~TempLedger() { test::remove_tree(dir); }

    std::string dir = test::make_temp_dir();
    std::string path = dir + "/ledger.db";
};

WriteOptions keyed(std::string key) {
    return {.idempotency_key = std::move(key)};
}

WriteOptions fenced(std::string resource, std::int64_t token) {
    return {.fence = Fence{std::move(resource), token}};
}

// Runs SQL on the ledger file behind the library's back.
void tamper(const std::string& path, const std::string& sql) {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec(sql);
}

std::int64_t journal_rows(const std::string& path) {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    return db.execAndGet("SELECT COUNT(*) FROM journal").getInt64();
}

// Sets the process umask for one scope.
class UmaskScope {
public:
    explicit UmaskScope(mode_t mask) : saved_(::umask(mask)) {}
    ~UmaskScope() { ::umask(saved_); }
    UmaskScope(const UmaskScope&) = delete;
    UmaskScope& operator=(const UmaskScope&) = delete;

private:
    mode_t saved_;
};

unsigned permissions(const std::string& path) {
    struct stat info {};
    REQUIRE(::stat(path.c_str(), &info) == 0);
    return info.st_mode & 0777;
}

// Forks `count` children that run `work` together (released at once, for the most contention)
// and returns their exit codes. A child that throws exits with 2 after printing why.
template <typename Work>
std::vector<int> run_in_children(int count, Work work) {
    int gate[2];
    REQUIRE(::pipe(gate) == 0);
    std::vector<pid_t> children;
    for (int i = 0; i < count; ++i) {
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(gate[1]);
            char ignored;
            (void)!::read(gate[0], &ignored, 1); // returns at EOF: when the parent closes the gate
            int code = 2;
            try {
                code = work();
            } catch (const std::exception& e) {
                std::fprintf(stderr, "child %d: %s\n", i, e.what());
            }
            ::_exit(code);
        }
        children.push_back(pid);
    }
    ::close(gate[0]);
    ::close(gate[1]);
    std::vector<int> codes;
    for (const pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    }
    return codes;
}

// A ledger backend for the contract suite: a private, empty store; open() gives a client of it
// (in a child process too), and the rest looks at the store behind the ledger's back.
struct SqliteFile {
    TempLedger temp;
    std::unique_ptr<Ledger> open(SqliteLedgerOptions options = {}) const {
        return open_ledger(temp.path, {.sqlite = options});
    }
    // A client that gives up on a locked store at once and retries: most contention.
    std::unique_ptr<Ledger> open_contended() const { return open({.busy_timeout = 1ms}); }
    std::int64_t journal_rows() const { return ::journal_rows(temp.path); }
    void overwrite_balance(AccountId account, Cents balance) const {
        tamper(temp.path, "UPDATE accounts SET balance = " + std::to_string(balance) +
                              " WHERE id = " + std::to_string(account));
    }
};

// The same for PostgreSQL: a fresh database on the test executable's own server.
struct PostgresDatabase {
    std::string name = test::postgres_server().create_database();
    std::string uri = test::postgres_server().socket_uri(name);
    std::unique_ptr<Ledger> open(PostgresLedgerOptions options = {}) const {
        return open_ledger(uri, {.postgres = options});
    }
    // Row locks queue fairly in PostgreSQL; contention is whatever the writers make of it.
    std::unique_ptr<Ledger> open_contended() const { return open({.retry_deadline = 30s}); }
    std::int64_t journal_rows() const {
        return std::stoll(test::postgres_server().sql(name, "SELECT COUNT(*) FROM journal"));
    }
    void overwrite_balance(AccountId account, Cents balance) const {
        test::postgres_server().sql(name,
                                    "UPDATE accounts SET balance = " + std::to_string(balance) +
                                        " WHERE id = " + std::to_string(account));
    }
};

} // namespace

#define ledger_backends SqliteFile, PostgresDatabase

TEST_CASE("every ledger status has its documented word") {
    const std::pair<LedgerStatus, const char*> words[] = {
        {LedgerStatus::ok, "ok"},
        {LedgerStatus::insufficient_funds, "insufficient_funds"},
        {LedgerStatus::duplicate, "duplicate"},
        {LedgerStatus::idempotency_conflict, "idempotency_conflict"},
        {LedgerStatus::stale_fence, "stale_fence"},
        {LedgerStatus::busy, "busy"},
        {LedgerStatus::paid, "paid"},
        {LedgerStatus::unknown_account, "unknown_account"},
        {LedgerStatus::unknown_invoice, "unknown_invoice"},
    };
    for (const auto& [status, word] : words)
        CHECK(to_string(status) == word);
    CHECK(to_string(EntryKind::deposit) == "deposit");
    CHECK(to_string(EntryKind::withdraw) == "withdraw");
    CHECK(to_string(EntryKind::invoice) == "invoice");
}

TEST_SUITE("sqlite: opening") {
    TEST_CASE("a new ledger file and its write-ahead log are private to their owner") {
        TempLedger temp;
        const UmaskScope usual_umask(022);
        SqliteLedger ledger(temp.path);
        CHECK(ledger.deposit(alice, 100, {}).status == LedgerStatus::ok);
        CHECK(permissions(temp.path) == 0600);
        CHECK(permissions(temp.path + "-wal") == 0600);
    }

    TEST_CASE("an empty file is migrated to the current schema") {
        TempLedger temp;
        std::ofstream{temp.path};
        SqliteLedger ledger(temp.path);
        CHECK(ledger.deposit(alice, 100, {}).status == LedgerStatus::ok);
        SQLite::Database db(temp.path, SQLite::OPEN_READONLY);
        CHECK(db.execAndGet("PRAGMA user_version").getInt() >= 1);
        CHECK(db.execAndGet("PRAGMA journal_mode").getString() == "wal");
    }

    TEST_CASE("reopening a ledger keeps its data") {
        TempLedger temp;
        SqliteLedger(temp.path).deposit(alice, 250, {});
        SqliteLedger reopened(temp.path);
        CHECK(reopened.balance(alice).balance == 250);
    }

    TEST_CASE("a ledger from a newer dlock is refused as a data error") {
        TempLedger temp;
        { SqliteLedger created(temp.path); }
        tamper(temp.path, "PRAGMA user_version = 999");
        CHECK_THROWS_WITH_AS(
            SqliteLedger(temp.path),
            doctest::Contains("ledger schema version 999 is newer than this dlock"), DataError);
    }

    TEST_CASE("a file that is not a SQLite database is a data error") {
        TempLedger temp;
        std::ofstream{temp.path} << "balance,alice,100\nthis is a spreadsheet, not a ledger\n";
        CHECK_THROWS_WITH_AS(SqliteLedger(temp.path), doctest::Contains("not a SQLite database"),
                             DataError);
    }

    TEST_CASE("a ledger in a missing folder is unavailable and creates nothing") {
        TempLedger temp;
        const std::string path = temp.dir + "/missing/ledger.db";
        CHECK_THROWS_WITH_AS(SqliteLedger{path}, doctest::Contains(path.c_str()), UnavailableError);
        CHECK(::access((temp.dir + "/missing").c_str(), F_OK) != 0);
    }

    TEST_CASE("a ledger under a path that is a file, not a folder, is unavailable") {
        TempLedger temp;
        std::ofstream{temp.dir + "/plain"};
        CHECK_THROWS_AS(SqliteLedger(temp.dir + "/plain/ledger.db"), UnavailableError);
    }

    TEST_CASE("a ledger that stays locked while it needs migrating is unavailable") {
        TempLedger temp;
        std::ofstream{temp.path};
        SQLite::Database other(temp.path, SQLite::OPEN_READWRITE);
        other.exec("BEGIN IMMEDIATE");
        CHECK_THROWS_WITH_AS(
            SqliteLedger(temp.path, {.busy_timeout = 1ms, .retry_deadline = 100ms}),
            doctest::Contains("stayed locked"), UnavailableError);
    }
}

TEST_SUITE("sqlite: opening") {
    TEST_CASE("fence rows of an older ledger are renamed to the lock's full name") {
        TempLedger temp;
        {
            SqliteLedger created(temp.path);
            created.deposit(alice, 100, fenced("dlock:{withdraw_funds_user_1}", 1));
        }
        // Back to schema 1, whose fence rows held the bare lock key.
        tamper(temp.path, "DELETE FROM fences; INSERT INTO fences VALUES "
                          "('withdraw_funds_user_1', 7), ('a{b}%', 3); PRAGMA user_version = 1");
        SqliteLedger upgraded(temp.path);
        SQLite::Database db(temp.path, SQLite::OPEN_READONLY);
        CHECK(db.execAndGet("SELECT group_concat(resource || '=' || token, ' ') FROM "
                            "(SELECT * FROM fences ORDER BY resource)")
                  .getString() == "dlock:{a%7Bb%7D%25}=3 dlock:{withdraw_funds_user_1}=7");
        // The renamed row still guards the account: a stale token under the full name is refused.
        CHECK(upgraded.withdraw(alice, 1, fenced("dlock:{withdraw_funds_user_1}", 6)).status ==
              LedgerStatus::stale_fence);
        CHECK(upgraded.withdraw(alice, 1, fenced("dlock:{withdraw_funds_user_1}", 7)).status ==
              LedgerStatus::ok);
    }

    TEST_CASE("only plain file paths open as SQLite ledgers") {
        TempLedger temp;
        for (const std::string& location : {std::string(), std::string(":memory:"),
                                            "file:" + temp.path, std::string("ftp://x/y")})
            CHECK_THROWS_AS(open_ledger(location, {}), UsageError);
        CHECK(open_ledger(temp.path, {})->deposit(alice, 1, {}).status == LedgerStatus::ok);
    }
}

TEST_SUITE("postgres: opening") {
    TEST_CASE("a new database gets the current schema, and reopening keeps its data") {
        const PostgresDatabase database;
        database.open()->deposit(alice, 250, {});
        CHECK(database.open()->balance(alice).balance == 250);
        CHECK(test::postgres_server().sql(database.name, "SELECT max(version) FROM dlock_schema") ==
              "1");
    }

    TEST_CASE("a PostgreSQL ledger from a newer dlock is refused as a data error") {
        const PostgresDatabase database;
        database.open();
        test::postgres_server().sql(database.name, "INSERT INTO dlock_schema VALUES (999)");
        CHECK_THROWS_WITH_AS(
            database.open(),
            doctest::Contains("ledger schema version 999 is newer than this dlock"), DataError);
    }

    TEST_CASE("many processes creating the same new PostgreSQL ledger at once all succeed") {
        constexpr int children = 8;
        const PostgresDatabase database;
        const std::vector<int> codes = run_in_children(children, [&] {
            return database.open()->deposit(alice, 100, {}).status == LedgerStatus::ok ? 0 : 1;
        });
        for (const int code : codes)
            CHECK(code == 0);
        CHECK(database.open()->balance(alice).balance == children * 100);
        CHECK(test::postgres_server().sql(database.name, "SELECT COUNT(*) FROM dlock_schema") ==
              "1");
    }

    TEST_CASE("a URI libpq cannot read is a usage error, an unreachable server unavailable; "
              "neither shows the password") {
        try {
            open_ledger("postgresql://u:sekrit@[::1/db", {});
            FAIL("opened");
        } catch (const UsageError& e) {
            CHECK(std::string(e.what()).find("sekrit") == std::string::npos);
            CHECK(std::string(e.what()).find("postgresql://u:***@") != std::string::npos);
        }
        const std::string closed =
            "postgresql://u:sekrit@127.0.0.1:" + std::to_string(test::free_tcp_port()) + "/db";
        try {
            open_ledger(closed, {.postgres = {.connect_timeout = 1s}});
            FAIL("opened");
        } catch (const UnavailableError& e) {
            CHECK(std::string(e.what()).find("sekrit") == std::string::npos);
        }
        CHECK(masked_postgres_uri("postgres://a:b@h/d?password=c&x=1") ==
              "postgres://a:***@h/d?password=***&x=1");
        CHECK(masked_postgres_uri("postgresql:///d?host=/run/pg") ==
              "postgresql:///d?host=/run/pg");
    }
}

TEST_SUITE("deposits and withdrawals") {
    TEST_CASE_TEMPLATE("work that fails before the commit leaves no trace of the write", Backend,
                       ledger_backends) {
        Backend backend;
        const auto ledger = backend.open();
        ledger->deposit(alice, 1000, {});
        const auto failing = [] {
            throw std::runtime_error("the caller's work failed");
        };
        CHECK_THROWS_AS(
            ledger->withdraw(
                alice, 100,
                {.idempotency_key = "w", .fence = Fence{"r", 5}, .before_commit = failing}),
            std::runtime_error);
        CHECK_THROWS_AS(ledger->deposit(alice, 100, {.before_commit = failing}),
                        std::runtime_error);
        const InvoiceId invoice = ledger->create_invoice(alice, 300).invoice.value().id;
        CHECK_THROWS_AS(ledger->process_invoice(invoice, {.before_commit = failing}),
                        std::runtime_error);
        CHECK(ledger->balance(alice).balance == 1000);
        CHECK(backend.journal_rows() == 1);
        // The fence, the key and the invoice were not used up either.
        CHECK(
            ledger->withdraw(alice, 100, {.idempotency_key = "w", .fence = Fence{"r", 1}}).status ==
            LedgerStatus::ok);
        CHECK(ledger->process_invoice(invoice, {}).status == LedgerStatus::ok);
    }

    TEST_CASE_TEMPLATE("a stored withdrawal writes the caller's balance and journals the debit",
                       Backend, ledger_backends) {
        Backend backend;
        const auto ledger = backend.open();
        CHECK(ledger->store_withdrawal(bob, 10, 0).status == LedgerStatus::unknown_account);
        ledger->deposit(alice, 1000, {});
        const BalanceResult stored = ledger->store_withdrawal(alice, 100, 900);
        CHECK(stored.status == LedgerStatus::ok);
        CHECK(stored.balance == 900);
        CHECK(ledger->verify().clean());
        // Computed from a stale read: the balance says 850, the journal says 800.
        ledger->store_withdrawal(alice, 100, 850);
        CHECK(ledger->balance(alice).balance == 850);
        CHECK(ledger->verify().mismatches.size() == 1);
        CHECK_THROWS_AS(ledger->store_withdrawal(alice, 100, -1), UsageError);
    }

    TEST_CASE_TEMPLATE("a deposit opens the account and returns the new balance", Backend,
                       ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        const BalanceResult first = ledger.deposit(alice, 8000, {});
        CHECK(first.status == LedgerStatus::ok);
        CHECK(first.account == alice);
        CHECK(first.balance == 8000);
        CHECK(ledger.deposit(alice, 50, {}).balance == 8050);
        CHECK(ledger.balance(alice).balance == 8050);
    }

    TEST_CASE_TEMPLATE("a withdrawal the balance covers debits it", Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, {});
        const BalanceResult result = ledger.withdraw(alice, 1000, {});
        CHECK(result.status == LedgerStatus::ok);
        CHECK(result.balance == 0);
        CHECK(ledger.balance(alice).balance == 0);
    }

    TEST_CASE_TEMPLATE("a withdrawal the balance cannot cover is refused and writes nothing",
                       Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, {});
        const BalanceResult result = ledger.withdraw(alice, 1001, {});
        CHECK(result.status == LedgerStatus::insufficient_funds);
        CHECK(result.balance == 1000);
        CHECK(ledger.balance(alice).balance == 1000);
        CHECK(backend.journal_rows() == 1);
    }

    TEST_CASE_TEMPLATE("requests for an unknown account report unknown_account and open nothing",
                       Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        const BalanceResult read = ledger.balance(bob);
        CHECK(read.status == LedgerStatus::unknown_account);
        CHECK_FALSE(read.balance.has_value());
        CHECK(ledger.history(bob, 10).status == LedgerStatus::unknown_account);
        CHECK(ledger.withdraw(bob, 100, {}).status == LedgerStatus::unknown_account);
        CHECK(withdraw_without_lock(ledger, bob, 100, 0ms).status == LedgerStatus::unknown_account);
        CHECK(ledger.create_invoice(bob, 100).status == LedgerStatus::unknown_account);
        // None of them opened the account.
        CHECK(ledger.balance(bob).status == LedgerStatus::unknown_account);
        CHECK(backend.journal_rows() == 0);
    }

    TEST_CASE_TEMPLATE("amounts that are not positive are usage errors", Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        CHECK_THROWS_AS(ledger.deposit(alice, 0, {}), UsageError);
        CHECK_THROWS_AS(ledger.deposit(alice, -500, {}), UsageError);
        CHECK_THROWS_AS(ledger.withdraw(alice, -500, {}), UsageError);
        CHECK_THROWS_AS(withdraw_without_lock(ledger, alice, 0, 0ms), UsageError);
        CHECK_THROWS_AS(ledger.create_invoice(alice, 0), UsageError);
        CHECK(ledger.balance(alice).status == LedgerStatus::unknown_account);
    }

    TEST_CASE_TEMPLATE("a deposit that would overflow the balance is refused and writes nothing",
                       Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, std::numeric_limits<Cents>::max() - 10, {});
        CHECK_THROWS_AS(ledger.deposit(alice, 11, {}), UsageError);
        CHECK(ledger.balance(alice).balance == std::numeric_limits<Cents>::max() - 10);
        CHECK(ledger.deposit(alice, 10, {}).balance == std::numeric_limits<Cents>::max());
    }

    TEST_CASE_TEMPLATE("the unsafe withdrawal still refuses what the balance it read cannot cover",
                       Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 100, {});
        const BalanceResult refused = withdraw_without_lock(ledger, alice, 101, 0ms);
        CHECK(refused.status == LedgerStatus::insufficient_funds);
        CHECK(refused.balance == 100);
        const BalanceResult done = withdraw_without_lock(ledger, alice, 40, 0ms);
        CHECK(done.status == LedgerStatus::ok);
        CHECK(done.balance == 60);
        CHECK(ledger.verify().clean());
    }
}

TEST_SUITE("idempotency") {
    TEST_CASE_TEMPLATE(
        "a repeated deposit with the same key moves no money and answers the first balance",
        Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        CHECK(ledger.deposit(alice, 100, keyed("d-1")).balance == 100);
        ledger.deposit(alice, 50, {});
        const BalanceResult repeat = ledger.deposit(alice, 100, keyed("d-1"));
        CHECK(repeat.status == LedgerStatus::duplicate);
        CHECK(repeat.balance == 100);
        CHECK(ledger.balance(alice).balance == 150);
    }

    TEST_CASE_TEMPLATE("a repeated withdrawal with the same key moves no money", Backend,
                       ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, {});
        CHECK(ledger.withdraw(alice, 300, keyed("w-1")).status == LedgerStatus::ok);
        const BalanceResult repeat = ledger.withdraw(alice, 300, keyed("w-1"));
        CHECK(repeat.status == LedgerStatus::duplicate);
        CHECK(repeat.balance == 700);
        CHECK(ledger.balance(alice).balance == 700);
        CHECK(backend.journal_rows() == 2);
    }

    TEST_CASE_TEMPLATE("a key reused for a different amount, account or kind is a conflict",
                       Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 100, keyed("k"));
        ledger.deposit(bob, 500, {});
        const BalanceResult other_amount = ledger.deposit(alice, 200, keyed("k"));
        const BalanceResult other_account = ledger.deposit(bob, 100, keyed("k"));
        const BalanceResult other_kind = ledger.withdraw(alice, 100, keyed("k"));
        for (const BalanceResult& result : {other_amount, other_account, other_kind}) {
            CHECK(result.status == LedgerStatus::idempotency_conflict);
            CHECK_FALSE(result.balance.has_value());
        }
        CHECK(ledger.balance(alice).balance == 100);
        CHECK(ledger.balance(bob).balance == 500);
        CHECK(backend.journal_rows() == 2);
    }

    TEST_CASE_TEMPLATE("a key refused for insufficient funds stays free for a later attempt",
                       Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 100, {});
        CHECK(ledger.withdraw(alice, 500, keyed("w")).status == LedgerStatus::insufficient_funds);
        ledger.deposit(alice, 400, {});
        CHECK(ledger.withdraw(alice, 500, keyed("w")).status == LedgerStatus::ok);
    }
}

TEST_SUITE("fencing") {
    TEST_CASE_TEMPLATE("a write with a lower fencing token is refused and writes nothing", Backend,
                       ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        CHECK(ledger.deposit(alice, 1000, fenced("account:1", 5)).status == LedgerStatus::ok);
        const BalanceResult stale = ledger.withdraw(alice, 100, fenced("account:1", 4));
        CHECK(stale.status == LedgerStatus::stale_fence);
        CHECK(ledger.deposit(alice, 100, fenced("account:1", 1)).status ==
              LedgerStatus::stale_fence);
        CHECK(ledger.balance(alice).balance == 1000);
        CHECK(backend.journal_rows() == 1);
    }

    TEST_CASE_TEMPLATE("an equal or higher fencing token is accepted and the highest is recorded",
                       Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, fenced("account:1", 5));
        CHECK(ledger.withdraw(alice, 100, fenced("account:1", 5)).status == LedgerStatus::ok);
        CHECK(ledger.withdraw(alice, 100, fenced("account:1", 7)).status == LedgerStatus::ok);
        CHECK(ledger.withdraw(alice, 100, fenced("account:1", 6)).status ==
              LedgerStatus::stale_fence);
        CHECK(ledger.balance(alice).balance == 800);
        CHECK(ledger.history(alice, 1).entries.at(0).fence_token == 7);
    }

    TEST_CASE_TEMPLATE("fencing tokens are tracked per resource", Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, fenced("account:1", 50));
        CHECK(ledger.deposit(alice, 100, fenced("account:2", 1)).status == LedgerStatus::ok);
        CHECK(ledger.deposit(alice, 100, {}).status == LedgerStatus::ok);
    }
}

TEST_SUITE("precedence") {
    TEST_CASE_TEMPLATE("an idempotent repeat wins over a stale fence", Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        WriteOptions first = fenced("r", 5);
        first.idempotency_key = "k";
        ledger.deposit(alice, 100, first);
        ledger.deposit(alice, 100, fenced("r", 9));
        CHECK(ledger.deposit(alice, 100, first).status == LedgerStatus::duplicate);
    }

    TEST_CASE_TEMPLATE("an unknown account wins over a stale fence", Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 100, fenced("r", 9));
        CHECK(ledger.withdraw(bob, 100, fenced("r", 1)).status == LedgerStatus::unknown_account);
    }

    TEST_CASE_TEMPLATE("a stale fence wins over insufficient funds", Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 100, fenced("r", 9));
        CHECK(ledger.withdraw(alice, 5000, fenced("r", 1)).status == LedgerStatus::stale_fence);
    }
}

TEST_CASE_TEMPLATE("history lists journal entries newest first with their details", Backend,
                   ledger_backends) {
    Backend backend;
    const auto opened = backend.open();
    Ledger& ledger = *opened;
    const auto before = std::chrono::system_clock::now();
    WriteOptions deposit_options = fenced("r", 3);
    deposit_options.idempotency_key = "salary";
    ledger.deposit(alice, 1000, deposit_options);
    ledger.withdraw(alice, 250, {});
    const InvoiceId invoice = ledger.create_invoice(alice, 100).invoice.value().id;
    ledger.process_invoice(invoice, {});

    const HistoryResult all = ledger.history(alice, 10);
    REQUIRE(all.status == LedgerStatus::ok);
    REQUIRE(all.entries.size() == 3);
    const JournalEntry& paid = all.entries[0];
    const JournalEntry& withdrawn = all.entries[1];
    const JournalEntry& deposited = all.entries[2];
    CHECK(paid.kind == EntryKind::invoice);
    CHECK(paid.amount == -100);
    CHECK(paid.balance_after == 650);
    CHECK(paid.invoice == invoice);
    CHECK(withdrawn.kind == EntryKind::withdraw);
    CHECK(withdrawn.amount == -250);
    CHECK(withdrawn.balance_after == 750);
    CHECK_FALSE(withdrawn.idempotency_key.has_value());
    CHECK_FALSE(withdrawn.fence_token.has_value());
    CHECK(deposited.kind == EntryKind::deposit);
    CHECK(deposited.amount == 1000);
    CHECK(deposited.idempotency_key == "salary");
    CHECK(deposited.fence_token == 3);
    CHECK(deposited.id < withdrawn.id);
    const auto before_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(before.time_since_epoch()).count();
    CHECK(deposited.time_ms >= before_ms);
    CHECK(paid.time_ms >= deposited.time_ms);

    const HistoryResult latest = ledger.history(alice, 2);
    REQUIRE(latest.entries.size() == 2);
    CHECK(latest.entries[0].id == paid.id);
    CHECK(latest.entries[1].id == withdrawn.id);
}

TEST_SUITE("invoices") {
    TEST_CASE_TEMPLATE("an invoice for an unknown account is not created", Backend,
                       ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        const InvoiceResult result = ledger.create_invoice(alice, 100);
        CHECK(result.status == LedgerStatus::unknown_account);
        CHECK_FALSE(result.invoice.has_value());
    }

    TEST_CASE_TEMPLATE("processing an unknown invoice reports unknown_invoice", Backend,
                       ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        CHECK(ledger.process_invoice(42, {}).status == LedgerStatus::unknown_invoice);
    }

    TEST_CASE_TEMPLATE("creating an invoice charges nothing until it is processed", Backend,
                       ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, {});
        const InvoiceResult created = ledger.create_invoice(alice, 300);
        CHECK(created.status == LedgerStatus::ok);
        REQUIRE(created.invoice.has_value());
        CHECK(created.invoice->account == alice);
        CHECK(created.invoice->amount == 300);
        CHECK_FALSE(created.invoice->paid);
        CHECK(ledger.balance(alice).balance == 1000);

        const InvoiceResult processed = ledger.process_invoice(created.invoice->id, {});
        CHECK(processed.status == LedgerStatus::ok);
        CHECK(processed.invoice->paid);
        CHECK(processed.balance == 700);
        CHECK(ledger.balance(alice).balance == 700);
    }

    TEST_CASE_TEMPLATE("a paid invoice is never charged twice", Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, {});
        const InvoiceId id = ledger.create_invoice(alice, 300).invoice.value().id;
        ledger.process_invoice(id, {});
        const InvoiceResult again = ledger.process_invoice(id, {});
        CHECK(again.status == LedgerStatus::paid);
        CHECK(again.balance == 700);
        CHECK(ledger.balance(alice).balance == 700);
        CHECK(backend.journal_rows() == 2);
    }

    TEST_CASE_TEMPLATE("an invoice the balance cannot cover stays open and can be paid later",
                       Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 100, {});
        const InvoiceId id = ledger.create_invoice(alice, 300).invoice.value().id;
        const InvoiceResult refused = ledger.process_invoice(id, {});
        CHECK(refused.status == LedgerStatus::insufficient_funds);
        CHECK(refused.balance == 100);
        CHECK_FALSE(refused.invoice.value().paid);
        CHECK(backend.journal_rows() == 1);

        ledger.deposit(alice, 200, {});
        const InvoiceResult paid = ledger.process_invoice(id, {});
        CHECK(paid.status == LedgerStatus::ok);
        CHECK(paid.balance == 0);
    }

    TEST_CASE_TEMPLATE("an invoice processed under a stale fence is not charged", Backend,
                       ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, fenced("invoice:1", 8));
        const InvoiceId id = ledger.create_invoice(alice, 300).invoice.value().id;
        const InvoiceResult stale = ledger.process_invoice(id, fenced("invoice:1", 7));
        CHECK(stale.status == LedgerStatus::stale_fence);
        CHECK_FALSE(stale.invoice.value().paid);
        CHECK(ledger.balance(alice).balance == 1000);
        CHECK(ledger.process_invoice(id, fenced("invoice:1", 8)).status == LedgerStatus::ok);
    }
}

TEST_SUITE("verify") {
    TEST_CASE_TEMPLATE("verify is clean after ordinary traffic", Backend, ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, {});
        ledger.deposit(bob, 10, {});
        ledger.withdraw(alice, 300, {});
        ledger.process_invoice(ledger.create_invoice(alice, 200).invoice.value().id, {});
        const VerifyReport report = ledger.verify();
        CHECK(report.status == LedgerStatus::ok);
        CHECK(report.mismatches.empty());
        CHECK(report.integrity == "ok");
        CHECK(report.clean());
    }

    TEST_CASE_TEMPLATE("verify reports a balance changed behind the ledger's back", Backend,
                       ledger_backends) {
        Backend backend;
        const auto opened = backend.open();
        Ledger& ledger = *opened;
        ledger.deposit(alice, 1000, {});
        ledger.deposit(bob, 500, {});
        backend.overwrite_balance(alice, 1234);
        const VerifyReport report = ledger.verify();
        CHECK_FALSE(report.clean());
        REQUIRE(report.mismatches.size() == 1);
        CHECK(report.mismatches[0].account == alice);
        CHECK(report.mismatches[0].expected == 1000);
        CHECK(report.mismatches[0].actual == 1234);
        CHECK(report.mismatches[0].difference == 234);
    }
}

TEST_SUITE("locking and faults") {
    TEST_CASE("a write locked out past the retry deadline answers busy, then succeeds") {
        TempLedger temp;
        SqliteLedger ledger(temp.path, {.busy_timeout = 1ms, .retry_deadline = 200ms});
        ledger.deposit(alice, 1000, {});
        {
            SQLite::Database other(temp.path, SQLite::OPEN_READWRITE);
            other.exec("BEGIN IMMEDIATE");
            const auto start = std::chrono::steady_clock::now();
            CHECK(ledger.withdraw(alice, 100, {}).status == LedgerStatus::busy);
            CHECK(std::chrono::steady_clock::now() - start >= 200ms);
            CHECK(ledger.deposit(alice, 100, {}).status == LedgerStatus::busy);
            CHECK(ledger.create_invoice(alice, 100).status == LedgerStatus::busy);
            // Readers do not wait for writers.
            CHECK(ledger.balance(alice).balance == 1000);
            other.exec("ROLLBACK");
        }
        CHECK(ledger.withdraw(alice, 100, {}).balance == 900);
    }

    TEST_CASE("a writer killed in the middle of a transaction leaves nothing behind") {
        TempLedger temp;
        SqliteLedger(temp.path).deposit(alice, 1000, {});

        const pid_t writer = ::fork();
        REQUIRE(writer >= 0);
        if (writer == 0) {
            SqliteLedger(temp.path).withdraw(alice, 600, {.before_commit = [] {
                                                 std::this_thread::sleep_for(30s);
                                             }});
            ::_exit(0);
        }
        const auto give_up = std::chrono::steady_clock::now() + 10s;
        bool in_transaction = false;
        while (!(in_transaction = dlock::test::ledger_write_locked(temp.path)) &&
               std::chrono::steady_clock::now() < give_up)
            std::this_thread::sleep_for(5ms);
        ::kill(writer, SIGKILL);
        int status = 0;
        ::waitpid(writer, &status, 0);
        REQUIRE(in_transaction);
        REQUIRE(WIFSIGNALED(status));

        SqliteLedger ledger(temp.path);
        CHECK(ledger.balance(alice).balance == 1000);
        CHECK(journal_rows(temp.path) == 1);
        CHECK(ledger.verify().clean());
        CHECK(ledger.withdraw(alice, 600, {}).balance == 400);
    }

    TEST_CASE_TEMPLATE("concurrent withdrawals from many processes lose no update", Backend,
                       ledger_backends) {
        constexpr int children = 8;
        constexpr int withdrawals_each = 25;
        constexpr Cents amount = 100;
        Backend backend;
        backend.open()->deposit(alice, children * withdrawals_each * amount, {});

        const std::vector<int> codes = run_in_children(children, [&] {
            const auto ledger = backend.open_contended();
            for (int i = 0; i < withdrawals_each; ++i)
                if (ledger->withdraw(alice, amount, {}).status != LedgerStatus::ok)
                    return 1;
            return 0;
        });

        for (const int code : codes)
            CHECK(code == 0);
        const auto ledger = backend.open();
        CHECK(ledger->balance(alice).balance == 0);
        CHECK(backend.journal_rows() == 1 + children * withdrawals_each);
        CHECK(ledger->verify().clean());
    }

    TEST_CASE_TEMPLATE("concurrent processors of one invoice, with no lock, charge it once",
                       Backend, ledger_backends) {
        constexpr int children = 8;
        Backend backend;
        const auto setup = backend.open();
        setup->deposit(alice, 1000, {});
        const InvoiceId invoice = setup->create_invoice(alice, 300).invoice.value().id;

        const std::vector<int> codes = run_in_children(children, [&] {
            const LedgerStatus status =
                backend.open_contended()->process_invoice(invoice, {}).status;
            return status == LedgerStatus::ok ? 0 : status == LedgerStatus::paid ? 1 : 2;
        });

        CHECK(std::count(codes.begin(), codes.end(), 0) == 1);
        CHECK(std::count(codes.begin(), codes.end(), 1) == children - 1);
        CHECK(backend.open()->balance(alice).balance == 700);
        CHECK(backend.journal_rows() == 2);
    }

    TEST_CASE_TEMPLATE("concurrent deposits with one idempotency key move money once", Backend,
                       ledger_backends) {
        constexpr int children = 8;
        Backend backend;
        backend.open()->deposit(alice, 1, {});

        const std::vector<int> codes = run_in_children(children, [&] {
            // Each holds its transaction open a while, so that all of them are past the key's
            // lookup before the first commits: the unique key has to catch the rest.
            const LedgerStatus status = backend.open_contended()
                                            ->deposit(alice, 500,
                                                      {.idempotency_key = "once",
                                                       .before_commit =
                                                           [] {
                                                               std::this_thread::sleep_for(50ms);
                                                           }})
                                            .status;
            return status == LedgerStatus::ok ? 0 : status == LedgerStatus::duplicate ? 1 : 2;
        });

        CHECK(std::count(codes.begin(), codes.end(), 0) == 1);
        CHECK(std::count(codes.begin(), codes.end(), 1) == children - 1);
        CHECK(backend.open()->balance(alice).balance == 501);
        CHECK(backend.journal_rows() == 2);
    }

    TEST_CASE("many processes creating the same new ledger at once all succeed") {
        constexpr int children = 8;
        TempLedger temp;
        const std::vector<int> codes = run_in_children(children, [&] {
            SqliteLedger ledger(temp.path, {.busy_timeout = 1ms});
            return ledger.deposit(alice, 100, {}).status == LedgerStatus::ok ? 0 : 1;
        });

        for (const int code : codes)
            CHECK(code == 0);
        SqliteLedger ledger(temp.path);
        CHECK(ledger.balance(alice).balance == children * 100);
        CHECK(ledger.verify().clean());
    }

    TEST_CASE_TEMPLATE("concurrent unsafe withdrawals lose updates and verify detects it", Backend,
                       ledger_backends) {
        constexpr int children = 8;
        constexpr int withdrawals_each = 25;
        constexpr Cents start_balance = 100'000;
        Backend backend;
        backend.open()->deposit(alice, start_balance, {});

        const std::vector<int> codes = run_in_children(children, [&] {
            const auto ledger = backend.open_contended();
            for (int i = 0; i < withdrawals_each; ++i)
                if (withdraw_without_lock(*ledger, alice, 1, 20ms).status != LedgerStatus::ok)
                    return 1;
            return 0;
        });

        for (const int code : codes)
            CHECK(code == 0);
        const VerifyReport report = backend.open()->verify();
        CHECK_FALSE(report.clean());
        REQUIRE(report.mismatches.size() == 1);
        CHECK(report.mismatches[0].account == alice);
        // The journal kept every withdrawal; the stored balance lost some of them.
        CHECK(report.mismatches[0].expected == start_balance - children * withdrawals_each);
        CHECK(report.mismatches[0].difference > 0);
    }
}
