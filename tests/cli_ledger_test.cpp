// The ledger commands run as a shell script would run them: the real binary, a private
// redis-server, a ledger file in a temp folder; stdout, stderr and exit codes.
#include "support/ledger_file.hpp"
#include "support/observe.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <doctest/doctest.h>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

using dlock::test::Child;
using dlock::test::contains;
using dlock::test::count_exits;
using dlock::test::line_count;
using dlock::test::ProcessResult;
using dlock::test::RedisServer;
using dlock::test::run_concurrently;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// A private redis-server and a ledger path in a fresh temp folder (removed afterwards).
struct Ledger {
    Ledger() = default;
    Ledger(const Ledger&) = delete;
    Ledger& operator=(const Ledger&) = delete;
    ~Ledger() { dlock::test::remove_tree(dir); }

    RedisServer server;
    std::string dir = dlock::test::make_temp_dir();
    std::string db = dir + "/ledger.db";

    // The dlock command line for `args` against this ledger and this Redis.
    std::vector<std::string> argv(const std::vector<std::string>& args) const {
        std::vector<std::string> out{DLOCK_BINARY, "--redis", server.url(), "--db", db};
        out.insert(out.end(), args.begin(), args.end());
        return out;
    }
    ProcessResult dlock(const std::vector<std::string>& args) const {
        return dlock::test::run(argv(args));
    }
    json dlock_json(std::vector<std::string> args) const {
        args.push_back("--json");
        return json::parse(dlock(args).out);
    }
    std::int64_t balance_cents(const std::string& account) const {
        const json answer = dlock_json({"balance", "--account", account});
        REQUIRE(answer["status"] == "ok");
        return answer["balance_cents"].get<std::int64_t>();
    }
    // Every row of every table, to prove a refused request wrote nothing.
    std::string contents() const { return dlock::test::ledger_contents(db); }
    void sql(const std::string& statement) const {
        SQLite::Database file(db, SQLite::OPEN_READWRITE);
        file.exec(statement);
    }
};

} // namespace

TEST_CASE("deposit opens the account and prints the new balance; balance prints it too") {
    Ledger ledger;
    const auto first = ledger.dlock({"deposit", "--account", "7", "--amount", "100"});
    CHECK(first.exit_code == 0);
    CHECK(first.out == "100.00\n");
    CHECK(first.err.empty());
    CHECK(ledger.dlock({"deposit", "--account", "7", "--amount", "0.5"}).out == "100.50\n");
    const auto balance = ledger.dlock({"balance", "--account", "7"});
    CHECK(balance.exit_code == 0);
    CHECK(balance.out == "100.50\n");

    const json answer = ledger.dlock_json({"deposit", "--account", "7", "--amount", "9.50"});
    CHECK(answer["status"] == "ok");
    CHECK(answer["account"] == 7);
    CHECK(answer["balance"] == "110.00");
    CHECK(answer["balance_cents"] == 11000);
    const json read = ledger.dlock_json({"balance", "--account", "7"});
    CHECK(read["status"] == "ok");
    CHECK(read["balance"] == "110.00");
    CHECK(read["balance_cents"] == 11000);
}

TEST_CASE("withdraw takes the account's lock, writes under its fence and releases it") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "100"}).exit_code == 0);
    const auto text = ledger.dlock({"withdraw", "--account", "7", "--amount", "30.25"});
    CHECK(text.exit_code == 0);
    CHECK(text.out == "69.75\n");
    CHECK(text.err.empty());

    const json answer = ledger.dlock_json({"withdraw", "--account", "7", "--amount", "10"});
    CHECK(answer["status"] == "ok");
    CHECK(answer["account"] == 7);
    CHECK(answer["balance"] == "59.75");
    CHECK(answer["balance_cents"] == 5975);
    CHECK(answer["key"] == "withdraw_funds_user_7");
    // The fence is the lock's own: the last token Redis issued for that key.
    CHECK(answer["fence"].get<std::int64_t>() ==
          std::stoll(ledger.server.command({"GET", "dlock:{withdraw_funds_user_7}:fence"})));
    CHECK(ledger.server.command({"EXISTS", "dlock:{withdraw_funds_user_7}"}) == "0");
    const json history = ledger.dlock_json({"history", "--account", "7", "--limit", "1"});
    CHECK(history["entries"][0]["fence"] == answer["fence"]);
}

TEST_CASE("a withdrawal the balance cannot cover exits 1, says the balance, writes nothing") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "50"}).exit_code == 0);
    const std::string before = ledger.contents();
    const auto refused = ledger.dlock({"withdraw", "--account", "7", "--amount", "50.01"});
    CHECK(refused.exit_code == 1);
    CHECK(refused.out.empty());
    CHECK(line_count(refused.err) == 1);
    CHECK(contains(refused.err, "insufficient funds"));
    CHECK(contains(refused.err, "50.00"));
    CHECK(ledger.contents() == before);
    CHECK(ledger.server.command({"EXISTS", "dlock:{withdraw_funds_user_7}"}) == "0");

    const auto as_json = ledger.dlock({"withdraw", "--account", "7", "--amount", "60", "--json"});
    CHECK(as_json.exit_code == 1);
    const json answer = json::parse(as_json.out);
    CHECK(answer["status"] == "insufficient_funds");
    CHECK(answer["balance"] == "50.00");
    CHECK(answer["balance_cents"] == 5000);
    CHECK(answer["code"] == 1);
    CHECK(answer.contains("fence"));
}

TEST_CASE("a withdrawal whose lock wait runs out says 'System busy' and exits 75 or -E") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "50"}).exit_code == 0);
    const auto holder = ledger.dlock({"acquire", "withdraw_funds_user_7", "--ttl", "1m"});
    REQUIRE(holder.exit_code == 0);
    const std::string before = ledger.contents();

    const auto busy =
        ledger.dlock({"withdraw", "--account", "7", "--amount", "1", "--wait", "200ms"});
    CHECK(busy.exit_code == 75);
    CHECK(busy.out.empty());
    CHECK(busy.err == "dlock: System busy, please try again.\n");

    const auto custom = ledger.dlock(
        {"withdraw", "--account", "7", "--amount", "1", "--wait", "0", "-E", "9", "--json"});
    CHECK(custom.exit_code == 9);
    const json answer = json::parse(custom.out);
    CHECK(answer["status"] == "busy");
    CHECK(answer["code"] == 9);
    CHECK(answer["key"] == "withdraw_funds_user_7");

    CHECK(ledger.contents() == before);
    // The holder's lock is untouched.
    CHECK(ledger.server.command({"GET", "dlock:{withdraw_funds_user_7}"}) + "\n" == holder.out);
}

TEST_CASE("the lock is released even when the ledger write fails") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "50"}).exit_code == 0);
    ledger.sql("DROP TABLE fences");
    const auto broken = ledger.dlock({"withdraw", "--account", "7", "--amount", "1"});
    CHECK(broken.exit_code == 70);
    CHECK(ledger.server.command({"EXISTS", "dlock:{withdraw_funds_user_7}"}) == "0");
}

TEST_CASE("unknown accounts exit 1 with a clear message and open nothing") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "1", "--amount", "5"}).exit_code == 0);
    const std::string before = ledger.contents();
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"withdraw", "--account", "9", "--amount", "1"},
          {"withdraw", "--account", "9", "--amount", "1", "--no-lock"},
          {"balance", "--account", "9"},
          {"history", "--account", "9"},
          {"invoice", "create", "--account", "9", "--amount", "1"}}) {
        CAPTURE(args);
        const auto result = ledger.dlock(args);
        CHECK(result.exit_code == 1);
        CHECK(result.out.empty());
        CHECK(result.err == "dlock: refused: account 9 does not exist\n");
    }
    std::vector<std::string> args{"balance", "--account", "9", "--json"};
    const json answer = json::parse(ledger.dlock(args).out);
    CHECK(answer["status"] == "unknown_account");
    CHECK(answer["account"] == 9);
    CHECK(answer["balance"].is_null());
    CHECK(ledger.contents() == before);
}

TEST_CASE("withdraw --no-lock never contacts Redis") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "50"}).exit_code == 0);
    const std::string closed = "redis://127.0.0.1:" + std::to_string(dlock::test::free_tcp_port());
    const auto result =
        dlock::test::run_dlock({"--redis", closed, "--db", ledger.db, "withdraw", "--account", "7",
                                "--amount", "20", "--no-lock", "--hold", "10ms", "--json"});
    CHECK(result.exit_code == 0);
    const json answer = json::parse(result.out);
    CHECK(answer["status"] == "ok");
    CHECK(answer["balance"] == "30.00");
    CHECK_FALSE(answer.contains("fence"));

    // With a lock it needs Redis, and says so before writing anything.
    const std::string before = ledger.contents();
    const auto locked = dlock::test::run_dlock(
        {"--redis", closed, "--db", ledger.db, "withdraw", "--account", "7", "--amount", "1"});
    CHECK(locked.exit_code == 69);
    CHECK(line_count(locked.err) == 1);
    CHECK(ledger.contents() == before);
}

TEST_CASE("--fence and --lock-key write under another command's lock without taking one") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "50"}).exit_code == 0);
    // The lock's holder (e.g. 'dlock run') exported its key and fence; this Redis is not even
    // reachable, so the write cannot have taken a lock of its own.
    const std::string closed = "redis://127.0.0.1:" + std::to_string(dlock::test::free_tcp_port());
    const auto result = dlock::test::run_dlock({"--redis", closed, "--db", ledger.db, "withdraw",
                                                "--account", "7", "--amount", "5", "--fence", "41",
                                                "--lock-key", "withdraw_funds_user_7", "--json"});
    CHECK(result.exit_code == 0);
    const json answer = json::parse(result.out);
    CHECK(answer["status"] == "ok");
    CHECK(answer["balance"] == "45.00");
    CHECK(answer["fence"] == 41);
    CHECK(answer["key"] == "withdraw_funds_user_7");
}

TEST_CASE("--fence and --lock-key go together, never with --no-lock, --wait or --ttl") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "50"}).exit_code == 0);
    const std::string before = ledger.contents();
    const std::string keys = ledger.server.command({"DBSIZE"});
    const std::vector<std::string> withdraw{"withdraw", "--account", "7", "--amount", "1"};
    for (const std::vector<std::string>& extra :
         {std::vector<std::string>{"--fence", "5"},
          {"--lock-key", "withdraw_funds_user_7"},
          {"--fence", "5", "--lock-key", "k", "--no-lock"},
          {"--fence", "5", "--lock-key", "k", "--wait", "1s"},
          {"--fence", "5", "--lock-key", "k", "--ttl", "1s"},
          {"--no-lock", "--idempotency-key", "x"},
          {"--fence", "abc", "--lock-key", "k"},
          {"--fence", "0", "--lock-key", "k"},
          {"--fence=-1", "--lock-key", "k"},
          {"--fence", "", "--lock-key", "k"},
          {"--fence", "5", "--lock-key", ""},
          {"--fence", "5", "--lock-key", std::string(257, 'k')},
          {"--idempotency-key", ""},
          {"--idempotency-key", "a\nb"}}) {
        CAPTURE(extra);
        std::vector<std::string> args = withdraw;
        args.insert(args.end(), extra.begin(), extra.end());
        const auto result = ledger.dlock(args);
        CHECK(result.exit_code == 64);
        CHECK(line_count(result.err) == 1);
    }
    CHECK(ledger.contents() == before);
    CHECK(ledger.server.command({"DBSIZE"}) == keys);
}

TEST_CASE("DLOCK_FENCE and DLOCK_KEY in the environment do not replace the flags") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "50"}).exit_code == 0);
    const auto result =
        dlock::test::run(ledger.argv({"withdraw", "--account", "7", "--amount", "1", "--json"}),
                         {"DLOCK_FENCE=1", "DLOCK_KEY=withdraw_funds_user_7"});
    CHECK(result.exit_code == 0);
    // It took the lock itself: a fence from Redis, not the 1 from the environment.
    CHECK(json::parse(result.out)["fence"].get<std::int64_t>() > 1);
}

TEST_CASE("a write under a stale fence exits 1 with stale_fence and writes nothing") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "50"}).exit_code == 0);
    // An earlier holder of the account's lock, e.g. a 'dlock run' that paused too long...
    const json old_lease = ledger.dlock_json({"acquire", "withdraw_funds_user_7", "--ttl", "1s"});
    const std::int64_t old_fence = old_lease["fence"].get<std::int64_t>();
    REQUIRE(ledger.dlock({"force-release", "withdraw_funds_user_7"}).exit_code == 0);
    // ...meanwhile a plain withdraw took the same lock, with a newer fence, and wrote.
    const json newer = ledger.dlock_json({"withdraw", "--account", "7", "--amount", "10"});
    REQUIRE(newer["status"] == "ok");
    REQUIRE(newer["fence"].get<std::int64_t>() > old_fence);

    const std::string before = ledger.contents();
    const std::string fence = std::to_string(old_fence);
    const std::vector<std::string> stale{"withdraw", "--account",  "7",
                                         "--amount", "5",          "--fence",
                                         fence,      "--lock-key", "withdraw_funds_user_7"};
    const auto result = ledger.dlock(stale);
    CHECK(result.exit_code == 1);
    CHECK(result.out.empty());
    CHECK(result.err == "dlock: refused: a newer lock holder already wrote to "
                        "withdraw_funds_user_7 (fence " +
                            fence + " is stale)\n");
    std::vector<std::string> as_json = stale;
    as_json.push_back("--json");
    const json answer = json::parse(ledger.dlock(as_json).out);
    CHECK(answer["status"] == "stale_fence");
    CHECK(answer["fence"] == old_fence);
    CHECK(answer["code"] == 1);
    CHECK(ledger.contents() == before);
    CHECK(ledger.balance_cents("7") == 4000);
}

TEST_CASE("a repeated idempotency key moves money once; a different amount is refused") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "100"}).exit_code == 0);
    const std::vector<std::string> withdraw{"withdraw", "--account",         "7",      "--amount",
                                            "30",       "--idempotency-key", "order-1"};
    const auto first = ledger.dlock(withdraw);
    CHECK(first.exit_code == 0);
    CHECK(first.out == "70.00\n");
    const auto again = ledger.dlock(withdraw);
    CHECK(again.exit_code == 0);
    CHECK(again.out == "70.00\n");
    CHECK(contains(again.err, "order-1"));
    std::vector<std::string> as_json = withdraw;
    as_json.push_back("--json");
    CHECK(json::parse(ledger.dlock(as_json).out)["status"] == "duplicate");
    CHECK(ledger.balance_cents("7") == 7000);

    const std::string before = ledger.contents();
    const auto conflict = ledger.dlock(
        {"withdraw", "--account", "7", "--amount", "31", "--idempotency-key", "order-1", "--json"});
    CHECK(conflict.exit_code == 1);
    CHECK(json::parse(conflict.out)["status"] == "idempotency_conflict");
    CHECK(contains(conflict.err, "order-1"));
    CHECK(ledger.contents() == before);

    // Deposits honour keys too.
    const std::vector<std::string> deposit{"deposit", "--account",         "7",   "--amount",
                                           "5",       "--idempotency-key", "gift"};
    CHECK(ledger.dlock(deposit).out == "75.00\n");
    CHECK(ledger.dlock(deposit).exit_code == 0);
    CHECK(ledger.balance_cents("7") == 7500);
}

TEST_CASE("history prints an aligned table, newest first, and entries in JSON") {
    Ledger ledger;
    REQUIRE(
        ledger.dlock({"deposit", "--account", "7", "--amount", "100", "--idempotency-key", "first"})
            .exit_code == 0);
    REQUIRE(ledger.dlock({"withdraw", "--account", "7", "--amount", "2.50"}).exit_code == 0);
    for (int i = 0; i < 25; ++i)
        REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "1"}).exit_code == 0);

    const auto text = ledger.dlock({"history", "--account", "7"});
    CHECK(text.exit_code == 0);
    CHECK(line_count(text.out) == 21); // a header and the default 20 entries
    CHECK(text.out.rfind("TIME", 0) == 0);
    for (const char* column : {"KIND", "AMOUNT", "BALANCE", "FENCE", "IDEMPOTENCY KEY"})
        CHECK(contains(text.out.substr(0, text.out.find('\n')), column));
    const std::regex row(
        R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  deposit +\+1\.00 +122\.50 +-  -)");
    const std::string newest = text.out.substr(text.out.find('\n') + 1);
    CHECK(std::regex_search(newest.substr(0, newest.find('\n')), row));

    const json all = ledger.dlock_json({"history", "--account", "7", "--limit", "100"});
    CHECK(all["status"] == "ok");
    CHECK(all["account"] == 7);
    CHECK(all["balance"] == "122.50");
    CHECK(all["balance_cents"] == 12250);
    REQUIRE(all["entries"].size() == 27);
    const json& oldest = all["entries"][26];
    CHECK(oldest["kind"] == "deposit");
    CHECK(oldest["amount"] == "100.00");
    CHECK(oldest["amount_cents"] == 10000);
    CHECK(oldest["balance_after"] == "100.00");
    CHECK(oldest["idempotency_key"] == "first");
    CHECK(oldest["fence"].is_null());
    CHECK(std::regex_match(oldest["time"].get<std::string>(),
                           std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
    const json& withdrawal = all["entries"][25];
    CHECK(withdrawal["kind"] == "withdraw");
    CHECK(withdrawal["amount_cents"] == -250);
    CHECK(withdrawal["fence"].is_number_integer());

    CHECK(ledger.dlock_json({"history", "--account", "7", "--limit", "3"})["entries"].size() == 3);
    CHECK(ledger.dlock({"history", "--account", "7", "--limit", "0"}).exit_code == 64);
}

TEST_CASE("verify exits 0 with one line, or 1 with one line per wrong account") {
    Ledger ledger;
    for (const char* account : {"1", "2", "3"})
        REQUIRE(ledger.dlock({"deposit", "--account", account, "--amount", "10"}).exit_code == 0);
    const auto clean = ledger.dlock({"verify"});
    CHECK(clean.exit_code == 0);
    CHECK(line_count(clean.out) == 1);
    const json clean_json = ledger.dlock_json({"verify"});
    CHECK(clean_json["status"] == "ok");
    CHECK(clean_json["mismatches"].empty());
    CHECK(clean_json["integrity"] == "ok");

    ledger.sql("UPDATE accounts SET balance = 1400 WHERE id = 1");
    ledger.sql("UPDATE accounts SET balance = 900 WHERE id = 3");
    const auto wrong = ledger.dlock({"verify"});
    CHECK(wrong.exit_code == 1);
    CHECK(wrong.out == "account 1: expected 10.00, actual 14.00, difference +4.00\n"
                       "account 3: expected 10.00, actual 9.00, difference -1.00\n");
    CHECK(line_count(wrong.err) == 1);
    const auto wrong_json = ledger.dlock({"verify", "--json"});
    CHECK(wrong_json.exit_code == 1);
    const json report = json::parse(wrong_json.out);
    CHECK(report["status"] == "mismatch");
    CHECK(report["integrity"] == "ok");
    REQUIRE(report["mismatches"].size() == 2);
    CHECK(report["mismatches"][0]["account"] == 1);
    CHECK(report["mismatches"][0]["expected_cents"] == 1000);
    CHECK(report["mismatches"][0]["actual_cents"] == 1400);
    CHECK(report["mismatches"][0]["difference"] == "4.00");
    CHECK(report["mismatches"][0]["difference_cents"] == 400);
    // A refusal like every other: the reason and the exit code in the object too.
    CHECK(report["code"] == 1);
    CHECK(report["error"].get<std::string>().find("does not balance") != std::string::npos);
}

TEST_CASE("invoice create prints the id; process charges once, then answers paid") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "100"}).exit_code == 0);
    const auto created = ledger.dlock({"invoice", "create", "--account", "7", "--amount", "30"});
    CHECK(created.exit_code == 0);
    CHECK(created.out == "1\n");
    const json second =
        ledger.dlock_json({"invoice", "create", "--account", "7", "--amount", "500"});
    CHECK(second["status"] == "ok");
    CHECK(second["invoice"] == 2);
    CHECK(second["account"] == 7);
    CHECK(ledger.balance_cents("7") == 10000); // nothing charged yet

    const auto paid = ledger.dlock({"invoice", "process", "1"});
    CHECK(paid.exit_code == 0);
    CHECK(paid.out == "paid 70.00\n");
    CHECK(paid.err.empty());
    CHECK(ledger.server.command({"EXISTS", "dlock:{invoice_1}"}) == "0");

    const auto again = ledger.dlock({"invoice", "process", "1", "--json"});
    CHECK(again.exit_code == 0);
    const json answer = json::parse(again.out);
    CHECK(answer["status"] == "paid");
    CHECK(answer["invoice"] == 1);
    CHECK(answer["account"] == 7);
    CHECK(answer["balance"] == "70.00");
    CHECK(answer["balance_cents"] == 7000);
    CHECK(answer["key"] == "invoice_1");
    CHECK(answer["fence"].is_number_integer());
    CHECK(contains(again.err, "already paid"));
    CHECK(ledger.balance_cents("7") == 7000);

    // Too little money: the invoice stays open and can be paid later.
    const std::string before = ledger.contents();
    const auto short_of = ledger.dlock({"invoice", "process", "2"});
    CHECK(short_of.exit_code == 1);
    CHECK(contains(short_of.err, "insufficient funds"));
    CHECK(contains(short_of.err, "70.00"));
    CHECK(contains(short_of.err, "stays open"));
    CHECK(ledger.contents() == before);
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "430"}).exit_code == 0);
    const json later = ledger.dlock_json({"invoice", "process", "2"});
    CHECK(later["status"] == "ok");
    CHECK(later["paid"] == true);
    CHECK(later["balance_cents"] == 0);

    const auto unknown = ledger.dlock({"invoice", "process", "99"});
    CHECK(unknown.exit_code == 1);
    CHECK(unknown.err == "dlock: refused: invoice 99 does not exist\n");
}

TEST_CASE("two processors of one invoice at once: one charges, the other answers processing") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "100"}).exit_code == 0);
    REQUIRE(ledger.dlock({"invoice", "create", "--account", "7", "--amount", "25"}).out == "1\n");

    Child first(ledger.argv({"invoice", "process", "1", "--hold", "500ms"}));
    while (ledger.server.command({"EXISTS", "dlock:{invoice_1}"}) != "1")
        REQUIRE_FALSE(first.wait_for(1ms));
    const auto second = ledger.dlock({"invoice", "process", "1"});
    CHECK(second.exit_code == 0);
    CHECK(second.out == "processing\n");
    CHECK(second.err == "dlock: invoice 1 is being processed by another server\n");
    const auto second_json = ledger.dlock({"invoice", "process", "1", "--json"});
    CHECK(second_json.exit_code == 0);
    CHECK(json::parse(second_json.out)["status"] == "processing");

    REQUIRE(first.wait_for(10s));
    const auto charged = first.wait();
    CHECK(charged.exit_code == 0);
    CHECK(charged.out == "paid 75.00\n");

    const auto third = ledger.dlock({"invoice", "process", "1"});
    CHECK(third.exit_code == 0);
    CHECK(third.out == "paid 75.00\n");
    CHECK(ledger.balance_cents("7") == 7500);
    const json history = ledger.dlock_json({"history", "--account", "7"});
    CHECK(history["entries"].size() == 2); // the deposit and one charge
    CHECK(history["entries"][0]["invoice"] == 1);
}

TEST_CASE("bad amounts and ids are usage errors that touch neither the ledger nor Redis") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "1", "--amount", "100"}).exit_code == 0);
    REQUIRE(ledger.dlock({"withdraw", "--account", "1", "--amount", "1"}).exit_code == 0);
    REQUIRE(ledger.dlock({"invoice", "create", "--account", "1", "--amount", "5"}).exit_code == 0);
    const std::string before = ledger.contents();
    const std::string keys = ledger.server.command({"DBSIZE"});
    const std::string fence = ledger.server.command({"GET", "dlock:{withdraw_funds_user_1}:fence"});

    std::vector<std::vector<std::string>> cases;
    for (const std::string amount :
         {"-5", "0", "1.001", "1e3", " 5", "99999999999999999999", "", "0.00", "5.", ".5"}) {
        cases.push_back({"deposit", "--account", "1", "--amount=" + amount});
        cases.push_back({"withdraw", "--account", "1", "--amount=" + amount});
        cases.push_back({"withdraw", "--account", "1", "--amount=" + amount, "--no-lock"});
        cases.push_back({"invoice", "create", "--account", "1", "--amount=" + amount});
    }
    cases.push_back({"deposit", "--account", "1", "--amount", "-5"});
    for (const std::string id : {"0", "-1", "abc", "99999999999999999999", "", "1.5", "+1"}) {
        cases.push_back({"deposit", "--account=" + id, "--amount", "1"});
        cases.push_back({"withdraw", "--account=" + id, "--amount", "1"});
        cases.push_back({"balance", "--account=" + id});
        cases.push_back({"history", "--account=" + id});
        cases.push_back({"invoice", "create", "--account=" + id, "--amount", "1"});
        cases.push_back({"invoice", "process", "--", id});
    }
    cases.push_back({"deposit", "--amount", "1"});
    cases.push_back({"withdraw", "--account", "1"});
    cases.push_back({"invoice"});
    cases.push_back({"invoice", "process"});
    cases.push_back({"withdraw", "--account", "1", "--amount", "1", "--wait", "soon"});
    cases.push_back({"withdraw", "--account", "1", "--amount", "1", "--ttl", "0"});
    cases.push_back({"withdraw", "--account", "1", "--amount", "1", "--hold", "-1s"});
    cases.push_back({"invoice", "process", "1", "--ttl", "0"});
    cases.push_back({"deposit", "--account", "1", "--amount", "1", "--db-busy-timeout", "x"});
    cases.push_back({"balance", "--account", "1", "--db-retry", "forever"});

    for (const auto& args : cases) {
        CAPTURE(args);
        const auto result = ledger.dlock(args);
        CHECK(result.exit_code == 64);
        CHECK(result.out.empty());
        CHECK(line_count(result.err) == 1);
        CHECK(result.err.rfind("dlock: ", 0) == 0);
    }
    CHECK(ledger.contents() == before);
    CHECK(ledger.dlock({"verify"}).exit_code == 0);
    CHECK(ledger.balance_cents("1") == 9900);
    CHECK(ledger.server.command({"DBSIZE"}) == keys);
    CHECK(ledger.server.command({"GET", "dlock:{withdraw_funds_user_1}:fence"}) == fence);

    const auto as_json = ledger.dlock({"deposit", "--account", "1", "--amount", "1e3", "--json"});
    CHECK(as_json.exit_code == 64);
    CHECK(json::parse(as_json.out)["code"] == 64);
}

TEST_CASE("8 processes x 50 locked withdrawals on one account lose no update") {
    Ledger ledger;
    // 400 withdrawals of 1.00 against 350.00: exactly 350 succeed, the rest find no funds.
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "350"}).exit_code == 0);
    const auto results = run_concurrently(
        8, 50, ledger.argv({"withdraw", "--account", "7", "--amount", "1", "--wait", "30s"}));
    REQUIRE(results.size() == 400);
    const int succeeded = count_exits(results, 0);
    const int refused = count_exits(results, 1);
    CHECK(count_exits(results, 75) == 0); // the wait was long enough: nobody was turned away
    CHECK(succeeded + refused == 400);
    for (const auto& result : results)
        if (result.exit_code == 1)
            CHECK(contains(result.err, "insufficient funds"));
    CHECK(succeeded == 350);
    CHECK(ledger.balance_cents("7") == 35000 - succeeded * 100);
    CHECK(ledger.dlock({"verify"}).exit_code == 0);
}

TEST_CASE("8 processes x 50 --no-lock withdrawals lose updates and verify detects it") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "350"}).exit_code == 0);
    const auto results = run_concurrently(8, 50,
                                          ledger.argv({"withdraw", "--account", "7", "--amount",
                                                       "1", "--no-lock", "--hold", "20ms"}));
    REQUIRE(results.size() == 400);
    const int succeeded = count_exits(results, 0);
    CHECK(succeeded + count_exits(results, 1) == 400);
    // Lost debits: more money left than the successful withdrawals allow.
    CHECK(ledger.balance_cents("7") > 35000 - succeeded * 100);
    const auto verify = ledger.dlock({"verify", "--json"});
    CHECK(verify.exit_code == 1);
    CHECK_FALSE(json::parse(verify.out)["mismatches"].empty());
}

TEST_CASE("concurrent writers on a ledger with a tiny busy timeout never see a raw SQLite error") {
    Ledger ledger; // the file does not exist yet: the writers also race to create it
    std::vector<std::unique_ptr<Child>> writers;
    for (int i = 0; i < 8; ++i)
        writers.push_back(
            std::make_unique<Child>(ledger.argv({"deposit", "--account", "7", "--amount", "1",
                                                 "--hold", "20ms", "--db-busy-timeout", "1ms"})));
    int succeeded = 0;
    for (auto& writer : writers) {
        const auto result = writer->wait();
        CAPTURE(result.err);
        CHECK((result.exit_code == 0 || result.exit_code == 75));
        if (result.exit_code == 0)
            ++succeeded;
        else
            CHECK(result.err == "dlock: ledger busy, please try again.\n");
        CHECK_FALSE(contains(result.err, "database is locked"));
        CHECK_FALSE(contains(result.err, "SQLite"));
    }
    CHECK(ledger.balance_cents("7") == succeeded * 100);
    CHECK(ledger.dlock({"verify"}).exit_code == 0);
}

TEST_CASE("a ledger locked past the retry deadline answers 'ledger busy' with the conflict code") {
    Ledger ledger;
    REQUIRE(ledger.dlock({"deposit", "--account", "7", "--amount", "10"}).exit_code == 0);
    const std::string before = ledger.contents();
    {
        SQLite::Database other(ledger.db, SQLite::OPEN_READWRITE);
        SQLite::Transaction writing(other, SQLite::TransactionBehavior::IMMEDIATE);
        const std::vector<std::string> deposit{
            "deposit", "--account",         "7",   "--amount", "1", "--db-retry",
            "200ms",   "--db-busy-timeout", "10ms"};
        const auto busy = ledger.dlock(deposit);
        CHECK(busy.exit_code == 75);
        CHECK(busy.out.empty());
        CHECK(busy.err == "dlock: ledger busy, please try again.\n");
        std::vector<std::string> with_code = deposit;
        with_code.insert(with_code.end(), {"-E", "3", "--json"});
        const auto custom = ledger.dlock(with_code);
        CHECK(custom.exit_code == 3);
        CHECK(json::parse(custom.out)["status"] == "busy");
        // Reads are not blocked by a writer.
        CHECK(ledger.dlock({"balance", "--account", "7"}).exit_code == 0);
    }
    CHECK(ledger.contents() == before);
}

TEST_CASE("bad ledger files: missing folder 69, not SQLite 65, newer schema 65, one line each") {
    Ledger ledger;
    const auto missing = dlock::test::run_dlock(
        {"--db", ledger.dir + "/no/such/folder/ledger.db", "balance", "--account", "1"});
    CHECK(missing.exit_code == 69);
    CHECK(line_count(missing.err) == 1);
    CHECK(missing.out.empty());

    const std::string text_file = ledger.dir + "/notes.txt";
    std::ofstream(text_file) << "these are my notes, not a ledger\n" << std::string(2000, 'x');
    const auto not_sqlite =
        dlock::test::run_dlock({"--db", text_file, "deposit", "--account", "1", "--amount", "1"});
    CHECK(not_sqlite.exit_code == 65);
    CHECK(line_count(not_sqlite.err) == 1);
    CHECK(contains(not_sqlite.err, "not a SQLite database"));

    REQUIRE(ledger.dlock({"deposit", "--account", "1", "--amount", "1"}).exit_code == 0);
    ledger.sql("PRAGMA user_version = 99");
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{"balance", "--account", "1"},
          {"withdraw", "--account", "1", "--amount", "1"},
          {"verify"}}) {
        CAPTURE(args);
        const auto newer = ledger.dlock(args);
        CHECK(newer.exit_code == 65);
        CHECK(line_count(newer.err) == 1);
        CHECK(contains(newer.err, "newer"));
    }
    CHECK(ledger.server.command({"EXISTS", "dlock:{withdraw_funds_user_1}"}) == "0");

    for (const std::string path : {"", ":memory:", "file:ledger.db?mode=memory"}) {
        CAPTURE(path);
        CHECK(dlock::test::run_dlock({"--db", path, "balance", "--account", "1"}).exit_code == 64);
    }
}

TEST_CASE("the ledger is dlock-ledger.db in the current folder unless --db or DLOCK_DB says") {
    Ledger ledger;
    const auto in_cwd = dlock::test::run({"/bin/sh", "-c",
                                          "cd '" + ledger.dir + "' && exec env -u DLOCK_DB '" +
                                              DLOCK_BINARY + "' deposit --account 1 --amount 3"});
    CHECK(in_cwd.exit_code == 0);
    CHECK(std::ifstream(ledger.dir + "/dlock-ledger.db").good());

    const std::string from_env = ledger.dir + "/from-env.db";
    CHECK(dlock::test::run_dlock({"deposit", "--account", "1", "--amount", "4"},
                                 {"DLOCK_DB=" + from_env})
              .out == "4.00\n");
    CHECK(dlock::test::run_dlock({"balance", "--account", "1", "--db", from_env},
                                 {"DLOCK_DB=" + ledger.dir + "/other.db"})
              .out == "4.00\n");
}

TEST_CASE("lock commands never open the ledger") {
    Ledger ledger;
    std::ofstream(ledger.db) << "not a ledger";
    const std::string unused = ledger.dir + "/unused.db";
    CHECK(ledger.dlock({"acquire", "job"}).exit_code == 0);
    CHECK(dlock::test::run_dlock({"--redis", ledger.server.url(), "status", "job"},
                                 {"DLOCK_DB=" + unused})
              .exit_code == 0);
    CHECK_FALSE(std::ifstream(unused).good());
}

TEST_CASE("--help lists the ledger commands and DLOCK_DB") {
    const auto help = dlock::test::run_dlock({"--help"});
    CHECK(help.exit_code == 0);
    for (const char* word :
         {"deposit", "withdraw", "balance", "history", "verify", "invoice", "--db", "DLOCK_DB"}) {
        CAPTURE(word);
        CHECK(contains(help.out, word));
    }
    const auto withdraw = dlock::test::run_dlock({"withdraw", "--help"});
    for (const char* word : {"--no-lock", "--fence", "--lock-key", "--hold", "--db-busy-timeout"}) {
        CAPTURE(word);
        CHECK(contains(withdraw.out, word));
    }
    CHECK(contains(dlock::test::run_dlock({"invoice", "process", "--help"}).out, "--hold"));
}
