// Hostile and mistaken input to every subcommand, as one table: missing and unknown flags,
// empty, oversized, control-character and invalid UTF-8 keys, bad durations, amounts, ids and
// tokens, Redis URLs that are malformed or lead nowhere useful, ledger files that cannot be
// used. Every case, as text and again with --json: the documented exit code, one clear line on
// stderr (and one JSON object on stdout with --json), no crash, and neither the ledger nor Redis
// changed by it.
#include "support/fake_server.hpp"
#include "support/ledger_file.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <SQLiteCpp/Database.h>
#include <algorithm>
#include <doctest/doctest.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <vector>

using dlock::test::FakeServer;
using dlock::test::line_count;
using dlock::test::ProcessResult;
using dlock::test::RedisServer;
using nlohmann::json;

namespace {

struct Case {
    std::vector<std::string> args;
    int code;
    std::vector<std::string> wrapper{}; // runs dlock: e.g. in a mount namespace
};

// Every key and its value: locks, fence counters. Equal strings, unchanged Redis.
std::string redis_snapshot(const RedisServer& server) {
    std::istringstream names(server.command({"KEYS", "*"}));
    std::vector<std::string> keys;
    for (std::string key; std::getline(names, key);)
        keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    std::string out;
    for (const std::string& key : keys)
        out += key + "=" + server.command({"GET", key}) + "\n";
    return out;
}

} // namespace

TEST_CASE("bad input to every subcommand: the documented code, one clear line, nothing changed") {
    RedisServer server;
    RedisServer guarded({{"--requirepass", "the-right-one"}});
    FakeServer http(FakeServer::Behaviour::answer,
                    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    const std::string closed = "redis://127.0.0.1:" + std::to_string(dlock::test::free_tcp_port());
    const std::string wrong_password = "unix://:wrong@" + guarded.url().substr(7);
    const std::string dir = dlock::test::make_temp_dir();
    const std::string db = dir + "/ledger.db";
    const std::vector<std::string> env{"DLOCK_REDIS_URL=" + server.url(), "DLOCK_DB=" + db,
                                       "DLOCK_REDIS_PASSWORD=", "DLOCK_OWNER=", "DLOCK_PREFIX="};
    const auto dlock = [&](const std::vector<std::string>& args) {
        return dlock::test::run_dlock(args, env);
    };

    // A ledger with history: two accounts, a locked withdrawal (a fence), an open invoice.
    REQUIRE(dlock({"deposit", "--account", "1", "--amount", "100"}).exit_code == 0);
    REQUIRE(dlock({"deposit", "--account", "2", "--amount", "50"}).exit_code == 0);
    REQUIRE(dlock({"withdraw", "--account", "1", "--amount", "1"}).exit_code == 0);
    REQUIRE(dlock({"invoice", "create", "--account", "1", "--amount", "5"}).exit_code == 0);
    REQUIRE(dlock({"acquire", "invoice_7", "--ttl", "1ms"}).exit_code == 0); // a fence counter

    // Ledger files dlock must refuse: not SQLite, from a newer dlock, in a missing folder, in a
    // read-only folder (root ignores chmod: a read-only mount in a private mount namespace).
    const std::string not_sqlite = dir + "/notes.txt";
    std::ofstream(not_sqlite) << "my notes, not a ledger\n" << std::string(4096, 'x');
    const std::string newer = dir + "/newer.db";
    REQUIRE(dlock({"--db", newer, "deposit", "--account", "1", "--amount", "1"}).exit_code == 0);
    SQLite::Database(newer, SQLite::OPEN_READWRITE).exec("PRAGMA user_version = 99");
    const std::string newer_before = dlock::test::ledger_contents(newer);
    const std::string ro_empty = dir + "/ro-empty";
    const std::string ro_ledger = dir + "/ro-ledger";
    REQUIRE(mkdir(ro_empty.c_str(), 0700) == 0);
    REQUIRE(mkdir(ro_ledger.c_str(), 0700) == 0);
    REQUIRE(dlock({"--db", ro_ledger + "/ledger.db", "deposit", "--account", "1", "--amount", "1"})
                .exit_code == 0);
    const std::vector<std::string> mount_ro_tmpfs{
        "/usr/bin/unshare",
        "-m",
        "/bin/sh",
        "-c",
        "mount -t tmpfs -o ro tmpfs \"$0\" && exec \"$@\"",
        ro_empty};
    const std::vector<std::string> mount_ro_bind{
        "/usr/bin/unshare",
        "-m",
        "/bin/sh",
        "-c",
        "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" && exec \"$@\"",
        ro_ledger};
    std::vector<std::string> probe = mount_ro_bind;
    probe.push_back("true");
    const bool can_mount = dlock::test::run(probe).exit_code == 0;
    if (!can_mount)
        MESSAGE("skipping the read-only folder cases: cannot mount in a private namespace here");

    const std::string tok = "0123456789abcdef0123456789abcdef";
    const std::string k10 = std::string(10 * 1024, 'k');
    const std::string huge = "99999999999999999999";
    std::vector<Case> cases{
        // The command line itself.
        {{}, 64},
        {{"frobnicate"}, 64},
        {{"--bogus", "status", "job"}, 64},
        {{"-E", "256", "acquire", "job"}, 64},
        {{"-E", "abc", "acquire", "job"}, 64},
        {{"--timeout", "0", "status", "job"}, 64},
        {{"--timeout", "-1", "status", "job"}, 64},
        {{"--timeout", "1e9999", "status", "job"}, 64},
        {{"--prefix", "a b", "acquire", "job"}, 64},
        {{"--prefix", std::string(65, 'p'), "acquire", "job"}, 64},
        // Lock keys.
        {{"acquire"}, 64},
        {{"acquire", ""}, 64},
        {{"acquire", k10}, 64},
        {{"acquire", "bad\nkey"}, 64},
        {{"acquire", "bad\x01key"}, 64},
        {{"acquire", "del\x7Fkey"}, 64},
        {{"acquire", "bad\xFFkey"}, 64},
        {{"acquire", "\xC0\xAF"}, 64},
        {{"acquire", "c1\xC2\x85"}, 64},
        {{"status", "tab\tkey"}, 64},
        {{"status", k10}, 64},
        {{"force-release"}, 64},
        {{"force-release", "\xED\xA0\x80"}, 64},
        {{"block", ""}, 64},
        {{"status", "job", "extra"}, 64},
        {{"acquire", "job", "--bogus"}, 64},
        // Durations.
        {{"acquire", "job", "--ttl", "0"}, 64},
        {{"acquire", "job", "--ttl", "-1"}, 64},
        {{"acquire", "job", "--ttl", "1e9999"}, 64},
        {{"acquire", "job", "--ttl", "abc"}, 64},
        {{"acquire", "job", "--ttl", "10x"}, 64},
        {{"acquire", "job", "--ttl", ""}, 64},
        {{"block", "job", "--wait", "-1"}, 64},
        {{"block", "job", "--wait", "abc"}, 64},
        {{"block", "job", "--wait", "1e9999"}, 64},
        {{"extend", "job", "--owner", tok, "--ttl", "0"}, 64},
        // Owner tokens.
        {{"release", "job"}, 64},
        {{"release", "job", "--owner", "abc"}, 64},
        {{"release", "job", "--owner", tok + "0"}, 64},
        {{"release", "job", "--owner", tok.substr(1)}, 64},
        {{"release", "job", "--owner", "0123456789ABCDEF0123456789ABCDEF"}, 64},
        {{"extend", "job", "--owner", tok}, 64}, // --ttl is required
        {{"extend", "job", "--owner", std::string(32, 'z'), "--ttl", "1s"}, 64},
        // Redis URLs.
        {{"--redis", "http://x", "acquire", "job"}, 64},
        {{"--redis", "redis://", "status", "job"}, 64},
        {{"--redis", "redis://host:99999", "status", "job"}, 64},
        {{"--redis", "redis://host/abc", "status", "job"}, 64},
        {{"--redis", "unix://relative.sock", "status", "job"}, 64},
        {{"--redis", closed, "acquire", "job"}, 69},
        {{"--redis", http.url(), "status", "job"}, 69},
        {{"--redis", wrong_password, "acquire", "job"}, 69},
        {{"--redis", "unix://" + dir + "/no.sock", "release", "job", "--owner", tok}, 69},
        {{"--redis", closed, "withdraw", "--account", "1", "--amount", "1"}, 69},
        {{"--redis", wrong_password, "invoice", "process", "1"}, 69},
        {{"--redis", http.url(), "run", "job", "--", "true"}, 69},
        {{"--redis", "redis://h:0", "withdraw", "--account", "1", "--amount", "1"}, 64},
        // run.
        {{"run", "job"}, 64},
        {{"run", "", "--", "true"}, 64},
        {{"run", "job", "--ttl", "500ms", "--", "true"}, 64},
        {{"run", "job", "--ttl", "abc", "--", "true"}, 64},
        {{"run", "job", "--kill-grace", "-1", "--", "true"}, 64},
        {{"run", "job", "--wait", "10x", "--", "true"}, 64},
        {{"run", "job", "-c", "true", "--", "true"}, 64},
        {{"run", "job", "-n", "--wait", "1s", "--", "true"}, 64},
        {{"run", "job", "--bogus", "--", "true"}, 64},
        // Amounts.
        {{"deposit", "--account", "1"}, 64},
        {{"deposit", "--account", "1", "--amount=-5"}, 64},
        {{"deposit", "--account", "1", "--amount", "0"}, 64},
        {{"deposit", "--account", "1", "--amount", "1.001"}, 64},
        {{"deposit", "--account", "1", "--amount", "1e3"}, 64},
        {{"deposit", "--account", "1", "--amount", " 5"}, 64},
        {{"deposit", "--account", "1", "--amount", huge}, 64},
        {{"deposit", "--account", "1", "--amount", "abc"}, 64},
        {{"deposit", "--account", "1", "--amount", "5\n"}, 64},
        {{"deposit", "--account", "1", "--amount", "\xFF"}, 64},
        {{"withdraw", "--account", "1", "--amount=-5"}, 64},
        {{"withdraw", "--account", "1", "--amount", "0"}, 64},
        {{"withdraw", "--account", "1", "--amount", "1.001", "--no-lock"}, 64},
        {{"invoice", "create", "--account", "1", "--amount", "1e3"}, 64},
        {{"invoice", "create", "--account", "1", "--amount", huge}, 64},
        // Account and invoice ids.
        {{"deposit", "--amount", "5"}, 64},
        {{"deposit", "--account", "0", "--amount", "5"}, 64},
        {{"deposit", "--account=-1", "--amount", "5"}, 64},
        {{"withdraw", "--account", "abc", "--amount", "5"}, 64},
        {{"withdraw", "--account", huge, "--amount", "5"}, 64},
        {{"balance"}, 64},
        {{"balance", "--account", "0"}, 64},
        {{"balance", "--account", "1\x01"}, 64},
        {{"history", "--account", "abc"}, 64},
        {{"history", "--account", "1", "--limit", "0"}, 64},
        {{"history", "--account", "1", "--limit", "abc"}, 64},
        {{"history", "--account", "1", "--limit", huge}, 64},
        {{"invoice"}, 64},
        {{"invoice", "process"}, 64},
        {{"invoice", "process", "abc"}, 64},
        {{"invoice", "process", "0"}, 64},
        {{"invoice", "process", "--", "-1"}, 64},
        {{"invoice", "process", huge}, 64},
        {{"invoice", "frobnicate"}, 64},
        {{"verify", "--bogus"}, 64},
        {{"balance", "--account", "1", "--amount", "5"}, 64},
        // The ledger's other options and their combinations.
        {{"withdraw", "--account", "1", "--amount", "1", "--wait", "abc"}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--ttl", "0"}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--hold", "1e9999"}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--fence", "5"}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--fence", "abc", "--lock-key", "k"}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--fence", "0", "--lock-key", "k"}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--fence", "5", "--lock-key", k10}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--fence", "5", "--lock-key", "a\nb"}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--no-lock", "--fence", "5", "--lock-key",
          "k"},
         64},
        {{"withdraw", "--account", "1", "--amount", "1", "--no-lock", "--wait", "1s"}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--idempotency-key="}, 64},
        {{"withdraw", "--account", "1", "--amount", "1", "--idempotency-key", k10}, 64},
        {{"deposit", "--account", "1", "--amount", "1", "--idempotency-key", "a\nb"}, 64},
        {{"deposit", "--account", "1", "--amount", "1", "--idempotency-key", "\xFF\xFE"}, 64},
        {{"deposit", "--account", "1", "--amount", "1", "--hold", "abc"}, 64},
        {{"deposit", "--account", "1", "--amount", "1", "--db-busy-timeout", "x"}, 64},
        {{"balance", "--account", "1", "--db-retry", "10x"}, 64},
        {{"invoice", "process", "1", "--ttl", "abc"}, 64},
        {{"invoice", "process", "1", "--hold", "-1"}, 64},
        // Ledger files.
        {{"--db", "", "balance", "--account", "1"}, 64},
        {{"--db", ":memory:", "balance", "--account", "1"}, 64},
        {{"--db", "file:x.db?mode=memory", "deposit", "--account", "1", "--amount", "1"}, 64},
        {{"--db", dir + "/missing/ledger.db", "balance", "--account", "1"}, 69},
        {{"--db", dir + "/missing/ledger.db", "deposit", "--account", "1", "--amount", "1"}, 69},
        {{"--db", dir, "balance", "--account", "1"}, 64}, // a folder, not a ledger file
        {{"--db", not_sqlite, "deposit", "--account", "1", "--amount", "1"}, 65},
        {{"--db", not_sqlite, "verify"}, 65},
        {{"--db", newer, "balance", "--account", "1"}, 65},
        {{"--db", newer, "withdraw", "--account", "1", "--amount", "1"}, 65},
        {{"--db", newer, "invoice", "create", "--account", "1", "--amount", "1"}, 65},
    };
    if (can_mount) {
        cases.push_back(
            {{"--db", ro_empty + "/ledger.db", "deposit", "--account", "1", "--amount", "1"},
             69,
             mount_ro_tmpfs});
        cases.push_back(
            {{"--db", ro_ledger + "/ledger.db", "deposit", "--account", "1", "--amount", "1"},
             69,
             mount_ro_bind});
        cases.push_back(
            {{"--db", ro_ledger + "/ledger.db", "balance", "--account", "1"}, 69, mount_ro_bind});
    }
    MESSAGE(cases.size() << " bad-input cases, each as text and as --json");
    CHECK(cases.size() >= 60);

    const std::string ledger_before = dlock::test::ledger_contents(db);
    const std::string balances_before = dlock::test::ledger_balances(db);
    const std::string ro_before = dlock::test::ledger_contents(ro_ledger + "/ledger.db");
    const std::string redis_before = redis_snapshot(server);
    for (const Case& c : cases) {
        for (const bool as_json : {false, true}) {
            CAPTURE(c.args);
            CAPTURE(as_json);
            std::vector<std::string> argv = c.wrapper;
            argv.push_back(DLOCK_BINARY);
            if (as_json)
                argv.push_back("--json");
            argv.insert(argv.end(), c.args.begin(), c.args.end());
            const ProcessResult result = dlock::test::run(argv, env);
            CAPTURE(result.out);
            CAPTURE(result.err);
            REQUIRE(result.signal == 0); // no crash, no core
            CHECK(result.exit_code == c.code);
            CHECK(line_count(result.err) == 1);
            CHECK(result.err.rfind("dlock: ", 0) == 0);
            CHECK(result.err.find("internal error") == std::string::npos);
            if (as_json) {
                REQUIRE(line_count(result.out) == 1);
                const json answer = json::parse(result.out);
                CHECK(answer["code"] == c.code);
                CHECK(answer["error"].is_string());
                CHECK(result.err == "dlock: " + answer["error"].get<std::string>() + "\n");
            } else {
                CHECK(result.out.empty());
            }
            CHECK(dlock::test::ledger_contents(db) == ledger_before);
            CHECK(redis_snapshot(server) == redis_before);
        }
    }
    CHECK(dlock::test::ledger_balances(db) == balances_before);
    CHECK(dlock({"verify"}).exit_code == 0);
    CHECK(dlock::test::ledger_contents(newer) == newer_before);
    CHECK(dlock::test::ledger_contents(ro_ledger + "/ledger.db") == ro_before);
    dlock::test::remove_tree(dir);
}
