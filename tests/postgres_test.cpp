// The ledger commands on a PostgreSQL ledger, end to end: the real binary, a private
// redis-server, a fresh database on the test executable's own PostgreSQL cluster. The same
// answers as on SQLite, the concurrency the lesson is about, and the faults of a database
// server: a writer killed inside its transaction, a server restarted under a run of
// withdrawals, wrong passwords, missing databases, a server that never answers.
//
// Synchronization is by observation (pg_stat_activity, a process's state, rows in the journal),
// never by sleeping and hoping.
#include "support/fake_server.hpp"
#include "support/fleet.hpp"
#include "support/observe.hpp"
#include "support/postgres_server.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <doctest/doctest.h>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using dlock::test::Child;
using dlock::test::contains;
using dlock::test::count_exits;
using dlock::test::eventually;
using dlock::test::FakeServer;
using dlock::test::finish;
using dlock::test::line_count;
using dlock::test::postgres_server;
using dlock::test::PostgresServer;
using dlock::test::process_state;
using dlock::test::ProcessResult;
using dlock::test::RedisServer;
using dlock::test::run_concurrently;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// A private redis-server and a fresh PostgreSQL database; dlock (and scripts that call it as
// "$DLOCK_BIN") find both through the environment.
struct Fleet : dlock::test::FleetCommands<Fleet> {
    RedisServer server;
    std::string dir = dlock::test::make_temp_dir();
    std::string database = postgres_server().create_database();
    std::string uri = postgres_server().socket_uri(database);
    std::vector<std::string> env{"DLOCK_REDIS_URL=" + server.url(), "DLOCK_DB=" + uri,
                                 std::string("DLOCK_BIN=") + DLOCK_BINARY};

    Fleet() = default;
    Fleet(const Fleet&) = delete;
    Fleet& operator=(const Fleet&) = delete;
    ~Fleet() { dlock::test::remove_tree(dir); }

    std::string sql(const std::string& statement) const {
        return postgres_server().sql(database, statement);
    }
    std::int64_t sql_int(const std::string& statement) const { return std::stoll(sql(statement)); }
    // Every row of every ledger table: equal strings, equal ledgers.
    std::string contents() const {
        return sql("SELECT string_agg(r, E'\\n' ORDER BY r) FROM ("
                   "SELECT 'a' || a::text AS r FROM accounts a UNION ALL "
                   "SELECT 'j' || j::text FROM journal j UNION ALL "
                   "SELECT 'i' || i::text FROM invoices i UNION ALL "
                   "SELECT 'f' || f::text FROM fences f) rows");
    }
    // dlock sessions of this database inside a transaction right now.
    std::int64_t open_transactions() const {
        return sql_int("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                       " AND application_name = 'dlock' AND state = 'idle in transaction'");
    }
    void check_sound() const {
        const ProcessResult verify = dlock({"verify"});
        CAPTURE(verify.out);
        CAPTURE(verify.err);
        CHECK(verify.exit_code == 0);
    }
};

// What a command answered, without what differs by nature between two runs: times, and the
// fencing tokens two Redis servers hand out.
json comparable(json value) {
    if (value.is_object()) {
        for (const char* varying : {"time", "time_ms", "fence"})
            value.erase(varying);
        for (auto& [key, member] : value.items())
            member = comparable(member);
    } else if (value.is_array()) {
        for (auto& element : value)
            element = comparable(element);
    }
    return value;
}

} // namespace

TEST_CASE("every ledger command answers on PostgreSQL exactly as on SQLite") {
    Fleet pg;
    RedisServer sqlite_redis;
    const std::string sqlite_dir = dlock::test::make_temp_dir();
    const std::vector<std::string> sqlite_env{"DLOCK_REDIS_URL=" + sqlite_redis.url(),
                                              "DLOCK_DB=" + sqlite_dir + "/ledger.db"};
    const std::vector<std::vector<std::string>> script{
        {"balance", "--account", "7"},
        {"withdraw", "--account", "7", "--amount", "1"},
        {"deposit", "--account", "7", "--amount", "100", "--idempotency-key", "pay-1"},
        {"deposit", "--account", "7", "--amount", "100", "--idempotency-key", "pay-1"},
        {"deposit", "--account", "7", "--amount", "5", "--idempotency-key", "pay-1"},
        {"withdraw", "--account", "7", "--amount", "30.50"},
        {"withdraw", "--account", "7", "--amount", "1000"},
        {"withdraw", "--account", "7", "--amount", "1", "--no-lock"},
        {"withdraw", "--account", "7", "--amount", "1", "--idempotency-key", "w-1"},
        {"withdraw", "--account", "7", "--amount", "1", "--idempotency-key", "w-1"},
        {"withdraw", "--account", "7", "--amount", "1", "--fence", "9", "--lock-key", "k"},
        {"withdraw", "--account", "7", "--amount", "1", "--fence", "8", "--lock-key", "k"},
        {"withdraw", "--account", "8", "--amount", "1", "--fence", "8", "--lock-key", "k"},
        {"invoice", "create", "--account", "7", "--amount", "25"},
        {"invoice", "create", "--account", "9", "--amount", "25"},
        {"invoice", "process", "1"},
        {"invoice", "process", "1"},
        {"invoice", "process", "2"},
        {"invoice", "create", "--account", "7", "--amount", "5000"},
        {"invoice", "process", "2"},
        {"balance", "--account", "7"},
        {"history", "--account", "7", "--limit", "3"},
        {"verify"},
    };
    for (const auto& args : script) {
        CAPTURE(args);
        for (const bool as_json : {false, true}) {
            std::vector<std::string> line = args;
            if (as_json)
                line.push_back("--json");
            const ProcessResult on_sqlite = dlock::test::run_dlock(line, sqlite_env);
            const ProcessResult on_postgres = pg.dlock(line);
            CHECK(on_postgres.exit_code == on_sqlite.exit_code);
            CHECK(on_postgres.err == on_sqlite.err);
            if (as_json)
                CHECK(comparable(json::parse(on_postgres.out)) ==
                      comparable(json::parse(on_sqlite.out)));
            else if (args[0] != "history") // history's text shows times
                CHECK(on_postgres.out == on_sqlite.out);
        }
    }
    dlock::test::remove_tree(sqlite_dir);
}

TEST_CASE("postgres: 8 processes x 50 locked withdrawals on one account lose no update") {
    Fleet fleet;
    fleet.deposit(7, "350");
    const auto results = run_concurrently(
        8, 50, fleet.argv({"withdraw", "--account", "7", "--amount", "1", "--wait", "30s"}),
        fleet.env);
    REQUIRE(results.size() == 400);
    CHECK(count_exits(results, 75) == 0);
    CHECK(count_exits(results, 0) == 350);
    CHECK(count_exits(results, 1) == 50);
    CHECK(fleet.balance_cents(7) == 0);
    CHECK(fleet.sql_int("SELECT COUNT(*) FROM journal") == 351);
    fleet.check_sound();
}

TEST_CASE("postgres: 8 processes x 50 --no-lock withdrawals lose updates and verify detects it") {
    Fleet fleet;
    fleet.deposit(7, "350");
    const auto results = run_concurrently(
        8, 50,
        fleet.argv({"withdraw", "--account", "7", "--amount", "1", "--no-lock", "--hold", "20ms"}),
        fleet.env);
    REQUIRE(results.size() == 400);
    const int succeeded = count_exits(results, 0);
    CHECK(succeeded + count_exits(results, 1) == 400);
    CHECK(fleet.balance_cents(7) > 35000 - succeeded * 100);
    const auto verify = fleet.dlock({"verify", "--json"});
    CHECK(verify.exit_code == 1);
    CHECK_FALSE(json::parse(verify.out)["mismatches"].empty());
}

TEST_CASE("postgres: two processors of one invoice at once charge it once") {
    Fleet fleet;
    fleet.deposit(7, "100");
    REQUIRE(fleet.dlock({"invoice", "create", "--account", "7", "--amount", "25"}).out == "1\n");
    auto first = fleet.start({"invoice", "process", "1", "--hold", "500ms"});
    REQUIRE(eventually([&] { return fleet.open_transactions() == 1; }, 20s));
    const auto second = fleet.dlock({"invoice", "process", "1"});
    CHECK(second.exit_code == 0);
    CHECK(second.out == "processing\n");
    const auto charged = finish(*first, 20s);
    CHECK(charged.exit_code == 0);
    CHECK(charged.out == "paid 75.00\n");
    CHECK(fleet.dlock({"invoice", "process", "1"}).out == "paid 75.00\n");
    CHECK(fleet.balance_cents(7) == 7500);
    CHECK(fleet.sql_int("SELECT COUNT(*) FROM journal WHERE invoice = 1") == 1);
    fleet.check_sound();
}

TEST_CASE(
    "postgres: a holder paused past its TTL is refused by the fence when it wakes: 5 rounds") {
    Fleet fleet;
    fleet.deposit(1, "1000");
    const std::string server_a = R"sh(
"$DLOCK_BIN" acquire withdraw_funds_user_1 --ttl 300ms --json >"$1" || exit 3
kill -STOP $$
fence=$(sed -n 's/.*"fence":\([0-9]*\).*/\1/p' "$1")
exec "$DLOCK_BIN" withdraw --account 1 --amount 10 --fence "$fence" \
    --lock-key withdraw_funds_user_1 --json
)sh";
    for (int round = 0; round < 5; ++round) {
        CAPTURE(round);
        const std::string lease_file = fleet.dir + "/lease-" + std::to_string(round);
        auto a = fleet.start_shell(server_a, {lease_file});
        REQUIRE(eventually([&] { return process_state(a->pid()) == 'T'; }, 20s));
        const json b =
            fleet.dlock_json({"withdraw", "--account", "1", "--amount", "10", "--wait", "20s"});
        REQUIRE(b["status"] == "ok");
        a->signal(SIGCONT);
        const ProcessResult late = finish(*a, 20s);
        CAPTURE(late.err);
        CHECK(late.exit_code == 1);
        CHECK(line_count(late.err) == 1);
        CHECK(json::parse(late.out)["status"] == "stale_fence");
    }
    CHECK(fleet.balance_cents(1) == 100000 - 5 * 1000);
    CHECK(fleet.sql_int("SELECT COUNT(*) FROM journal") == 6);
    fleet.check_sound();
}

TEST_CASE("postgres: a writer killed with SIGKILL inside its transaction leaves nothing behind") {
    Fleet fleet;
    fleet.deposit(3, "100");
    for (int round = 0; round < 9; ++round) {
        CAPTURE(round);
        std::vector<std::string> args;
        switch (round % 3) {
        case 0:
            args = {"withdraw", "--account",  "3",
                    "--amount", "7",          "--fence",
                    "5",        "--lock-key", "withdraw_funds_user_3",
                    "--hold",   "30s"};
            break;
        case 1:
            args = {"withdraw", "--account", "3",      "--amount", "7",
                    "--ttl",    "300ms",     "--hold", "30s"};
            break;
        default:
            args = {"deposit",
                    "--account",
                    "3",
                    "--amount",
                    "7",
                    "--idempotency-key",
                    "killed-" + std::to_string(round),
                    "--hold",
                    "30s"};
        }
        const std::string before = fleet.contents();
        auto writer = fleet.start(args);
        // Inside the transaction: its changes made, its commit not yet sent.
        REQUIRE(eventually([&] { return fleet.open_transactions() == 1 || writer->wait_for(0ms); },
                           20s));
        REQUIRE_MESSAGE(!writer->wait_for(0ms), writer->err_so_far());
        writer->signal(SIGKILL);
        CHECK(writer->wait().signal == SIGKILL);
        // The server notices the closed connection and rolls back; the row locks go with it.
        REQUIRE(eventually([&] { return fleet.open_transactions() == 0; }, 20s));
        CHECK(fleet.contents() == before);
    }
    CHECK(
        fleet.dlock({"deposit", "--account", "3", "--amount", "7", "--idempotency-key", "killed-2"})
            .exit_code == 0);
    CHECK(fleet.balance_cents(3) == 10700);
    fleet.check_sound();
}

TEST_CASE("postgres: a server restarted under a run of withdrawals gives 69s, one line each, and "
          "loses nothing") {
    Fleet fleet;
    fleet.deposit(5, "1000");
    // 4 servers, 40 withdrawals each, one after another; each result on a line of its own file.
    const std::string worker = R"sh(
i=0
while [ $i -lt 40 ]; do
    "$DLOCK_BIN" withdraw --account 5 --amount 1 --timeout 2s >/dev/null 2>>"$1.err"
    echo $? >>"$1"
    i=$((i + 1))
done
)sh";
    std::vector<std::unique_ptr<Child>> workers;
    for (int w = 0; w < 4; ++w)
        workers.push_back(fleet.start_shell(worker, {fleet.dir + "/w" + std::to_string(w)}));
    REQUIRE(eventually([&] { return fleet.sql_int("SELECT COUNT(*) FROM journal") >= 20; }, 60s));
    postgres_server().restart();
    for (auto& w : workers)
        CHECK(finish(*w, 120s).exit_code == 0);

    int ok = 0;
    int unavailable = 0;
    int other = 0;
    std::string errors;
    for (int w = 0; w < 4; ++w) {
        std::ifstream codes(fleet.dir + "/w" + std::to_string(w));
        for (int code; codes >> code;)
            (code == 0 ? ok : code == 69 ? unavailable : other) += 1;
        errors += dlock::test::read_file(fleet.dir + "/w" + std::to_string(w) + ".err");
    }
    MESSAGE(ok << " withdrawals succeeded, " << unavailable << " answered 69");
    CHECK(ok + unavailable == 160);
    CHECK(other == 0);
    CHECK(unavailable > 0);
    CHECK(line_count(errors) == unavailable);
    CHECK_FALSE(contains(errors, "FATAL"));
    const std::int64_t journaled =
        fleet.sql_int("SELECT COUNT(*) FROM journal WHERE kind = 'withdraw'");
    // Every acknowledged withdrawal is there; one that was cut off after its COMMIT was sent
    // may be there too (69 says "unknown": repeat it with an idempotency key).
    CHECK(journaled >= ok);
    CHECK(journaled <= ok + unavailable);
    CHECK(fleet.balance_cents(5) == 100000 - journaled * 100);
    fleet.check_sound();
}

TEST_CASE("postgres: a row locked past --db-retry answers 'ledger busy' (75), never a raw error") {
    Fleet fleet;
    fleet.deposit(7, "100");
    auto holder = fleet.start({"deposit", "--account", "7", "--amount", "1", "--hold", "3s"});
    REQUIRE(eventually([&] { return fleet.open_transactions() == 1; }, 20s));
    const auto start = Clock::now();
    const ProcessResult busy =
        fleet.dlock({"withdraw", "--account", "7", "--amount", "1", "--db-retry", "300ms"});
    CHECK(busy.exit_code == 75);
    CHECK(busy.err == "dlock: ledger busy, please try again.\n");
    CHECK(Clock::now() - start < 2500ms);
    CHECK(finish(*holder, 20s).exit_code == 0);
    CHECK(fleet.balance_cents(7) == 10100);
}

TEST_CASE("postgres: verify reports a balance changed behind its back and an invoice marked paid "
          "but never charged") {
    Fleet fleet;
    fleet.deposit(7, "100");
    REQUIRE(fleet.dlock({"invoice", "create", "--account", "7", "--amount", "5"}).exit_code == 0);
    fleet.check_sound();
    fleet.sql("UPDATE accounts SET balance = 12345 WHERE id = 7");
    fleet.sql("UPDATE invoices SET status = 'paid' WHERE id = 1");
    const ProcessResult verify = fleet.dlock({"verify"});
    CHECK(verify.exit_code == 1);
    CHECK(contains(verify.out, "account 7: expected 100.00, actual 123.45, difference +23.45"));
    CHECK(contains(verify.out, "invoice 1 is paid but was charged 0 times"));
}

TEST_CASE("postgres: a newer schema is refused with 65") {
    Fleet fleet;
    fleet.deposit(7, "1");
    fleet.sql("INSERT INTO dlock_schema VALUES (999)");
    const ProcessResult refused = fleet.dlock({"balance", "--account", "7"});
    CHECK(refused.exit_code == 65);
    CHECK(line_count(refused.err) == 1);
    CHECK(contains(refused.err, "ledger schema version 999 is newer than this dlock"));
}

TEST_CASE("postgres: passwords come from the URI, DLOCK_DB_PASSWORD or PGPASSWORD, and no message "
          "shows one") {
    const std::string database = postgres_server().create_database();
    const std::string tcp = postgres_server().tcp_uri(database);
    const std::string with_password =
        "postgresql://dlock:" + std::string(PostgresServer::password) +
        "@127.0.0.1:" + std::to_string(postgres_server().port()) + "/" + database;
    const std::vector<std::string> deposit{"deposit", "--account", "1", "--amount", "1"};
    auto at = [&](const std::string& uri) {
        std::vector<std::string> args{"--db", uri};
        args.insert(args.end(), deposit.begin(), deposit.end());
        return args;
    };
    CHECK(dlock::test::run_dlock(at(with_password)).exit_code == 0);
    CHECK(dlock::test::run_dlock(at(tcp),
                                 {std::string("DLOCK_DB_PASSWORD=") + PostgresServer::password})
              .exit_code == 0);
    CHECK(dlock::test::run_dlock(at(tcp), {std::string("PGPASSWORD=") + PostgresServer::password})
              .exit_code == 0);

    const std::string wrong = "postgresql://dlock:not-the-pass-word@127.0.0.1:" +
                              std::to_string(postgres_server().port()) + "/" + database;
    for (const auto& [args, env] :
         std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>>{
             {at(wrong), {}},
             {at(tcp), {"DLOCK_DB_PASSWORD=not-the-pass-word"}},
             {at(wrong + "?sslmode=disable"), {}},
             {at("postgresql://dlock@127.0.0.1:" + std::to_string(postgres_server().port()) + "/" +
                 database + "?password=not-the-pass-word"),
              {}}}) {
        for (const bool as_json : {false, true}) {
            auto line = args;
            if (as_json)
                line.push_back("--json");
            const ProcessResult refused = dlock::test::run_dlock(line, env);
            CAPTURE(refused.err);
            CHECK(refused.exit_code == 69);
            CHECK(line_count(refused.err) == 1);
            CHECK(contains(refused.err, "password authentication failed"));
            CHECK_FALSE(contains(refused.err + refused.out, "not-the-pass-word"));
        }
    }
}

TEST_CASE("postgres: a missing database, a closed port and a silent server give 69 within "
          "--timeout, one line") {
    const std::string missing = postgres_server().socket_uri("no_such_database");
    const ProcessResult no_database =
        dlock::test::run_dlock({"--db", missing, "balance", "--account", "1"});
    CHECK(no_database.exit_code == 69);
    CHECK(line_count(no_database.err) == 1);
    CHECK(contains(no_database.err, "database \"no_such_database\" does not exist"));

    const ProcessResult closed = dlock::test::run_dlock(
        {"--db",
         "postgresql://dlock@127.0.0.1:" + std::to_string(dlock::test::free_tcp_port()) + "/x",
         "balance", "--account", "1"});
    CHECK(closed.exit_code == 69);
    CHECK(line_count(closed.err) == 1);
    CHECK(contains(closed.err, "cannot connect to ledger postgresql://dlock@127.0.0.1:"));

    FakeServer silent(FakeServer::Behaviour::silent);
    const auto start = Clock::now();
    const ProcessResult hung = dlock::test::run_dlock(
        {"--timeout", "500ms", "--db",
         "postgresql://dlock@127.0.0.1:" + std::to_string(silent.port()) + "/x?sslmode=disable",
         "deposit", "--account", "1", "--amount", "1"});
    CHECK(hung.exit_code == 69);
    CHECK(line_count(hung.err) == 1);
    CHECK(contains(hung.err, "no answer within 500ms"));
    CHECK(Clock::now() - start < 2s);

    const ProcessResult bad_uri = dlock::test::run_dlock(
        {"--db", "postgresql://u:sekrit@host:notaport/db", "balance", "--account", "1"});
    CHECK((bad_uri.exit_code == 64 || bad_uri.exit_code == 69));
    CHECK(line_count(bad_uri.err) == 1);
    CHECK_FALSE(contains(bad_uri.err, "sekrit"));
}
