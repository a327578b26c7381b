// The dlock binary run as a shell script would run it: stdout, stderr, exit codes.
#include "dlock/backends.hpp"
#include "support/observe.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <doctest/doctest.h>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <signal.h>
#include <thread>
#include <unistd.h>

using dlock::test::Child;
using dlock::test::contains;
using dlock::test::eventually;
using dlock::test::line_count;
using dlock::test::ProcessResult;
using dlock::test::RedisServer;
using dlock::test::run_dlock;
using dlock::test::run_dlock_at;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::string first_line(const std::string& text) {
    return text.substr(0, text.find('\n'));
}

} // namespace

TEST_CASE("acquire prints the owner token alone and a second acquire exits 75") {
    RedisServer server;
    const auto first = run_dlock_at(server.url(), {"acquire", "job"});
    CHECK(first.exit_code == 0);
    CHECK(first.out.size() == 33); // 32 hex digits and a newline
    CHECK(first.err.empty());

    const auto second = run_dlock_at(server.url(), {"acquire", "job"});
    CHECK(second.exit_code == 75);
    CHECK(second.out.empty());
    CHECK(second.err.find("held by another owner") != std::string::npos);
    CHECK(line_count(second.err) == 1);
}

TEST_CASE("-E sets the conflict exit code, before or after the subcommand") {
    RedisServer server;
    REQUIRE(run_dlock_at(server.url(), {"acquire", "job"}).exit_code == 0);
    CHECK(run_dlock_at(server.url(), {"-E", "3", "acquire", "job"}).exit_code == 3);
    CHECK(run_dlock_at(server.url(), {"acquire", "job", "--conflict-exit-code", "0"}).exit_code ==
          0);
    CHECK(run_dlock_at(server.url(), {"block", "job", "--wait", "50ms", "-E", "9"}).exit_code == 9);
}

TEST_CASE("--json prints exactly one object with key, token, fence and ttl_ms") {
    RedisServer server;
    const auto acquired = run_dlock_at(server.url(), {"acquire", "job", "--ttl", "2m", "--json"});
    REQUIRE(acquired.exit_code == 0);
    const json result = json::parse(acquired.out);
    CHECK(result["status"] == "acquired");
    CHECK(result["key"] == "job");
    CHECK(result["token"].get<std::string>().size() == 32);
    CHECK(result["fence"].get<std::int64_t>() > 0);
    CHECK(result["ttl_ms"] == 120000);

    const auto busy = run_dlock_at(server.url(), {"--json", "acquire", "job"});
    CHECK(busy.exit_code == 75);
    const json refusal = json::parse(busy.out);
    CHECK(refusal["status"] == "busy");
    CHECK(refusal["code"] == 75);
    CHECK(refusal["error"].get<std::string>() == first_line(busy.err).substr(7));
}

TEST_CASE("block times out with 'lock busy, try again later' and the conflict code") {
    RedisServer server;
    REQUIRE(run_dlock_at(server.url(), {"acquire", "job", "--ttl", "1m"}).exit_code == 0);
    const auto result = run_dlock_at(server.url(), {"block", "job", "--wait", "200ms"});
    CHECK(result.exit_code == 75);
    CHECK(result.err.find("lock busy, try again later") != std::string::npos);
}

TEST_CASE("block returns as soon as another process releases the lock") {
    RedisServer server;
    const std::string token =
        first_line(run_dlock_at(server.url(), {"acquire", "job", "--ttl", "1m"}).out);
    Child waiter(
        dlock::test::dlock_argv({"--redis", server.url(), "block", "job", "--wait", "30s"}));
    // The waiter is waiting once Redis holds it blocked on the lock's wake list.
    REQUIRE(server.wait_for_blocked_clients(1, std::chrono::seconds(20)));
    REQUIRE(run_dlock_at(server.url(), {"release", "job", "--owner", token}).exit_code == 0);
    REQUIRE(waiter.wait_for(std::chrono::seconds(10)));
    const auto result = waiter.wait();
    CHECK(result.exit_code == 0);
    CHECK(first_line(result.out).size() == 32);
    CHECK(server.command({"GET", "dlock:{job}"}) == first_line(result.out));
}

TEST_CASE("release needs the owner's token, also from DLOCK_OWNER") {
    RedisServer server;
    const std::string token = first_line(run_dlock_at(server.url(), {"acquire", "job"}).out);
    const auto foreign =
        run_dlock_at(server.url(), {"release", "job", "--owner", std::string(32, 'a')});
    CHECK(foreign.exit_code == 1);
    CHECK(foreign.err.find("held by another owner") != std::string::npos);
    CHECK(server.command({"GET", "dlock:{job}"}) == token);

    const auto released = run_dlock_at(server.url(), {"release", "job"}, {"DLOCK_OWNER=" + token});
    CHECK(released.exit_code == 0);
    CHECK(server.command({"EXISTS", "dlock:{job}"}) == "0");

    const auto again = run_dlock_at(server.url(), {"release", "job", "--owner", token});
    CHECK(again.exit_code == 1);
    CHECK(again.err.find("not held") != std::string::npos);
}

TEST_CASE("extend resets the TTL for the owner and refuses anyone else") {
    RedisServer server;
    const std::string token =
        first_line(run_dlock_at(server.url(), {"acquire", "job", "--ttl", "5s"}).out);
    CHECK(run_dlock_at(server.url(),
                       {"extend", "job", "--owner", std::string(32, 'b'), "--ttl", "1h"})
              .exit_code == 1);
    CHECK(std::stoll(server.command({"PTTL", "dlock:{job}"})) <= 5000);
    const auto extended =
        run_dlock_at(server.url(), {"extend", "job", "--owner", token, "--ttl", "1h", "--json"});
    CHECK(extended.exit_code == 0);
    CHECK(json::parse(extended.out)["status"] == "extended");
    CHECK(std::stoll(server.command({"PTTL", "dlock:{job}"})) > 3'500'000);
}

TEST_CASE("force-release says what it removed, or that nothing was held, and exits 0") {
    RedisServer server;
    const std::string token = first_line(run_dlock_at(server.url(), {"acquire", "job"}).out);
    const auto removed = run_dlock_at(server.url(), {"force-release", "job"});
    CHECK(removed.exit_code == 0);
    CHECK(removed.out.find(token) != std::string::npos);
    const auto nothing = run_dlock_at(server.url(), {"force-release", "job", "--json"});
    CHECK(nothing.exit_code == 0);
    CHECK(json::parse(nothing.out)["status"] == "free");
}

TEST_CASE("status exits 0 while held and 1 when free, showing holder, TTL and fence") {
    RedisServer server;
    CHECK(run_dlock_at(server.url(), {"status", "job"}).exit_code == 1);
    const json lease = json::parse(run_dlock_at(server.url(), {"acquire", "job", "--json"}).out);
    const auto held = run_dlock_at(server.url(), {"status", "job", "--json"});
    CHECK(held.exit_code == 0);
    const json state = json::parse(held.out);
    CHECK(state["status"] == "held");
    CHECK(state["holder"] == lease["token"]);
    CHECK(state["fence"] == lease["fence"]);
    CHECK(state["ttl_ms"].get<int>() > 0);
    const auto text = run_dlock_at(server.url(), {"status", "job"});
    CHECK(text.out.find(lease["token"].get<std::string>()) != std::string::npos);
}

TEST_CASE("usage errors exit 64 with one line on stderr and never touch Redis") {
    RedisServer server;
    const std::vector<std::vector<std::string>> cases = {
        {},
        {"frobnicate"},
        {"acquire"},
        {"acquire", "job", "--ttl", "0"},
        {"acquire", "job", "--ttl", "-1"},
        {"acquire", "job", "--ttl", "abc"},
        {"acquire", "job", "--ttl", "10x"},
        {"acquire", "job", "--ttl", "1e9999"},
        {"acquire", "job", "--bogus"},
        {"acquire", ""},
        {"acquire", std::string(257, 'k')},
        {"acquire", "bad\nkey"},
        {"acquire", "bad\xFFkey"},
        {"block", "job", "--wait", "soon"},
        {"release", "job"},
        {"release", "job", "--owner", "short"},
        {"extend", "job", "--owner", std::string(32, 'a')},
        {"status"},
        {"acquire", "job", "-E", "256"},
        {"acquire", "job", "--timeout", "0"},
        {"--prefix", "a{b", "acquire", "job"},
        {"--prefix=", "-n", "acquire", "job"},
        {"--prefix", "-n", "acquire", "job"},
        {"--prefix", "", "acquire", "job"},
        {"acquire", "job", "--ttl="},
    };
    for (const auto& args : cases) {
        CAPTURE(args);
        const auto result = run_dlock_at(server.url(), args);
        CHECK(result.exit_code == 64);
        CHECK(line_count(result.err) == 1);
        CHECK(result.err.rfind("dlock: ", 0) == 0);
    }
    CHECK(server.command({"DBSIZE"}) == "0");
}

TEST_CASE("with --json a usage error is a JSON object too") {
    RedisServer server;
    const auto result = run_dlock_at(server.url(), {"acquire", "job", "--ttl", "zero", "--json"});
    CHECK(result.exit_code == 64);
    const json error = json::parse(result.out);
    CHECK(error["code"] == 64);
    CHECK(error["error"].get<std::string>().find("zero") != std::string::npos);
}

TEST_CASE("an unreachable Redis exits 69 with one clear line") {
    const std::string closed = "redis://127.0.0.1:" + std::to_string(dlock::test::free_tcp_port());
    const auto result = run_dlock({"--redis", closed, "acquire", "job"});
    CHECK(result.exit_code == 69);
    CHECK(line_count(result.err) == 1);
    CHECK(result.err.find("cannot connect") != std::string::npos);
    const auto json_result = run_dlock({"--redis", closed, "status", "job", "--json"});
    CHECK(json_result.exit_code == 69);
    CHECK(json::parse(json_result.out)["code"] == 69);
}

TEST_CASE("the password can come from DLOCK_REDIS_PASSWORD and never shows in errors") {
    RedisServer server({{"--requirepass", "hunter2-secret"}});
    CHECK(run_dlock_at(server.url(), {"acquire", "job"}, {"DLOCK_REDIS_PASSWORD=hunter2-secret"})
              .exit_code == 0);
    const auto wrong =
        run_dlock_at(server.url(), {"acquire", "job"}, {"DLOCK_REDIS_PASSWORD=nope-nope"});
    CHECK(wrong.exit_code == 69);
    CHECK(wrong.err.find("nope-nope") == std::string::npos);
    const auto in_url = run_dlock(
        {"--redis",
         "redis://:wrong-in-url@127.0.0.1:" + std::to_string(dlock::test::free_tcp_port()),
         "status", "job"});
    CHECK(in_url.exit_code == 69);
    CHECK(in_url.err.find("wrong-in-url") == std::string::npos);
}

TEST_CASE("DLOCK_REDIS_URL and DLOCK_PREFIX configure the connection and the key space") {
    RedisServer server;
    const auto result =
        run_dlock({"acquire", "job"}, {"DLOCK_REDIS_URL=" + server.url(), "DLOCK_PREFIX=team-a:"});
    CHECK(result.exit_code == 0);
    CHECK(server.command({"EXISTS", "team-a:{job}"}) == "1");
}

TEST_CASE("--help, --version and -V answer and exit 0") {
    const auto help = run_dlock({"--help"});
    CHECK(help.exit_code == 0);
    for (const char* word : {"acquire", "block", "release", "force-release", "status", "extend",
                             "--redis", "--json", "Exit codes"}) {
        CAPTURE(word);
        CHECK(help.out.find(word) != std::string::npos);
    }
    CHECK(run_dlock({"block", "--help"}).out.find("--wait") != std::string::npos);
    const auto version = run_dlock({"--version"});
    CHECK(version.exit_code == 0);
    CHECK(version.out.rfind("dlock " DLOCK_PROJECT_VERSION, 0) == 0);
    CHECK(run_dlock({"-V"}).out == version.out);
}

TEST_CASE("a key another client wrote without a TTL is shown as never freeing by itself") {
    RedisServer server;
    server.command({"SET", "dlock:{job}", "written-by-hand"});
    const auto busy = run_dlock_at(server.url(), {"acquire", "job", "--json"});
    CHECK(busy.exit_code == 75);
    CHECK(busy.err.find("-1") == std::string::npos);
    CHECK(busy.err.find("never frees by itself") != std::string::npos);
    CHECK(json::parse(busy.out)["ttl_ms"].is_null());

    const auto shown = run_dlock_at(server.url(), {"status", "job"});
    CAPTURE(shown.err);
    CHECK(shown.exit_code == 0);
    CHECK(shown.out.find("never frees by itself") != std::string::npos);
    CHECK(shown.out.find("-1") == std::string::npos);
    CHECK(json::parse(run_dlock_at(server.url(), {"status", "job", "--json"}).out)["ttl_ms"]
              .is_null());

    const auto freed = run_dlock_at(server.url(), {"force-release", "job"});
    CHECK(freed.exit_code == 0);
    CHECK(freed.out.find("without a TTL") != std::string::npos);
}

TEST_CASE("a fence counter someone overwrote is bad data (65) naming the key") {
    RedisServer server;
    server.command({"SET", "dlock:{job}:fence", "hello"});
    for (const char* command : {"acquire", "status", "block"}) {
        CAPTURE(command);
        const auto result = run_dlock_at(server.url(), {command, "job"});
        CHECK(result.exit_code == 65);
        CHECK(line_count(result.err) == 1);
        CHECK(result.err.find("dlock:{job}:fence") != std::string::npos);
        CHECK(result.err.find("redis.call") == std::string::npos); // no script source
    }
    CHECK(server.command({"EXISTS", "dlock:{job}"}) == "0");
}

TEST_CASE("the holder record names the effective user as NSS does, or its number when no user "
          "has it") {
    RedisServer::Options options;
    options.tcp = true; // reachable by another user, unlike the server's private socket dir
    RedisServer server(options);
    const auto user_of = [&](const std::string& key) {
        const auto shown = run_dlock_at(server.tcp_url(), {"status", key, "--json"});
        REQUIRE(shown.exit_code == 0);
        return json::parse(shown.out)["user"].get<std::string>();
    };

    REQUIRE(run_dlock_at(server.tcp_url(), {"acquire", "mine", "--ttl", "60s"}).exit_code == 0);
    const passwd* const me = getpwuid(geteuid());
    REQUIRE(me != nullptr);
    CHECK(user_of("mine") == me->pw_name);

    if (geteuid() != 0) {
        MESSAGE("not root: the half with a user nobody knows needs setpriv");
        return;
    }
    uid_t unknown = 54321;
    while (getpwuid(unknown) != nullptr)
        ++unknown;
    // A copy of dlock that the other uid can reach, whatever the build dir's permissions.
    const std::string dir = dlock::test::make_temp_dir();
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all |
                                          std::filesystem::perms::group_exec |
                                          std::filesystem::perms::others_exec);
    const std::string binary = dir + "/dlock";
    std::filesystem::copy_file(dlock::test::dlock_argv({}).front(), binary);
    const std::string id = std::to_string(unknown);
    const auto taken =
        dlock::test::run({"/usr/bin/setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups",
                          binary, "--redis", server.tcp_url(), "acquire", "theirs", "--ttl", "60s"},
                         {"HOME=" + dir});
    dlock::test::remove_tree(dir);
    REQUIRE_MESSAGE(taken.exit_code == 0, taken.err);
    CHECK(user_of("theirs") == id);
}

TEST_CASE("status names the host, pid and command of a run and counts its renewals") {
    RedisServer server;
    // The command tells us it runs, and then waits for two renewals (TTL 1.5s: every 0.5s).
    Child job(dlock::test::dlock_argv(
        {"--redis", server.url(), "run", "backup", "--ttl", "1500ms", "--", "sleep", "30"}));
    json state;
    for (int i = 0; i < 200; ++i) {
        const auto shown = run_dlock_at(server.url(), {"status", "backup", "--json"});
        if (shown.exit_code == 0) {
            state = json::parse(shown.out);
            if (state["renewals"].get<int>() >= 2)
                break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(state["renewals"].get<int>() >= 2);
    CHECK(state["command"] == "sleep 30");
    CHECK(state["pid"] == job.pid()); // dlock's own: it holds the lock for the command
    CHECK(!state["host"].get<std::string>().empty());
    CHECK(!state["user"].get<std::string>().empty());
    CHECK(state["age_ms"].get<std::int64_t>() >= 900);
    CHECK(state["renewed_ms"].is_number());
    const auto text = run_dlock_at(server.url(), {"status", "backup"});
    CHECK(text.out.find("pid " + std::to_string(job.pid()) + " (sleep 30) since ") !=
          std::string::npos);
    CHECK(text.out.find(" ago, renewed ") != std::string::npos);
    CHECK(text.out.find("unless renewed") != std::string::npos);

    // force-release says whom it removed; the run then loses its lock and stops.
    const auto removed = run_dlock_at(server.url(), {"force-release", "backup"});
    CHECK(removed.exit_code == 0);
    CHECK(removed.out.find("(sleep 30)") != std::string::npos);
    REQUIRE(job.wait_for(std::chrono::seconds(20)));
    CHECK(job.wait().exit_code == 79);
}

TEST_CASE("force-release --owner leaves a newer holder alone and says who holds it") {
    RedisServer server;
    const std::string seen = first_line(run_dlock_at(server.url(), {"acquire", "job"}).out);
    REQUIRE(run_dlock_at(server.url(), {"release", "job", "--owner", seen}).exit_code == 0);
    const std::string newer = first_line(run_dlock_at(server.url(), {"acquire", "job"}).out);

    const auto refused = run_dlock_at(server.url(), {"force-release", "job", "--owner", seen});
    CHECK(refused.exit_code == 1);
    CHECK(line_count(refused.err) == 1);
    CHECK(refused.err.find(newer) != std::string::npos);
    CHECK(server.command({"GET", "dlock:{job}"}) == newer);

    const auto removed =
        run_dlock_at(server.url(), {"force-release", "job", "--owner", newer, "--json"});
    CHECK(removed.exit_code == 0);
    CHECK(json::parse(removed.out)["status"] == "released");
    CHECK(server.command({"EXISTS", "dlock:{job}"}) == "0");
}

TEST_CASE("list shows 1,000 held locks, or those a pattern picks, sorted, and no side keys") {
    RedisServer server;
    dlock::LockConfig config;
    config.url = server.url();
    config.identity = dlock::Identity{"web-9", 99, "ops", "seed"};
    const auto locks = dlock::open_lock_service(config);
    for (int i = 0; i < 1000; ++i)
        REQUIRE(
            locks->try_acquire("user-" + std::to_string(i), std::chrono::seconds(60)).acquired());

    const auto all = run_dlock_at(server.url(), {"list", "--json"});
    CHECK(all.exit_code == 0);
    const json listed = json::parse(all.out);
    REQUIRE(listed.size() == 1000);
    CHECK(listed[0]["key"] == "user-0");
    CHECK(listed[1]["key"] == "user-1");
    CHECK(listed[0]["host"] == "web-9");
    for (std::size_t i = 1; i < listed.size(); ++i)
        CHECK(listed[i - 1]["key"].get<std::string>() < listed[i]["key"].get<std::string>());

    const auto some = run_dlock_at(server.url(), {"list", "user-99*"});
    CHECK(some.exit_code == 0);
    CHECK(line_count(some.out) == 1 + 11); // a header, user-99 and user-990..999
    CHECK(some.out.rfind("KEY", 0) == 0);
    CHECK(some.out.find("web-9 pid 99 (seed)") != std::string::npos);
    CHECK(some.out.find(":fence") == std::string::npos);
    CHECK(run_dlock_at(server.url(), {"list", "nobody*"}).out.empty());
}

TEST_CASE("a wait shows a status line on a terminal, erased when done, and nothing elsewhere") {
    RedisServer server;
    const auto hold = [&](const std::string& key) {
        REQUIRE(run_dlock_at(server.url(), {"acquire", key, "--ttl", "2500ms"}).exit_code == 0);
    };
    const std::string binary = dlock::test::dlock_argv({}).front();
    const auto on_terminal = [&](const std::string& args) {
        // script(1) gives dlock a pseudo-terminal for stdin, stdout and stderr.
        return dlock::test::run({"/usr/bin/script", "-q", "-e", "-c",
                                 binary + " --redis " + server.url() + " " + args, "/dev/null"});
    };

    hold("a");
    const auto shown = on_terminal("block a --wait 10s");
    CAPTURE(shown.out);
    CHECK(shown.exit_code == 0);
    CHECK(shown.out.find("\r\033[Kwaiting for 'a' 2.") != std::string::npos);
    CHECK(shown.out.find("held by ") != std::string::npos);
    // Erased before the token is printed: the token stands alone on its line.
    const auto erased = shown.out.rfind("\r\033[K");
    REQUIRE(erased != std::string::npos);
    CHECK(shown.out.substr(erased + 4, 33).find_first_not_of("0123456789abcdef") == 32);

    hold("b");
    const auto quiet = on_terminal("block b --wait 10s -q");
    CHECK(quiet.exit_code == 0);
    CHECK(quiet.out.find("waiting") == std::string::npos);

    hold("c");
    const auto logged = run_dlock_at(server.url(), {"block", "c", "--wait", "10s"});
    CHECK(logged.exit_code == 0);
    CHECK(logged.err.empty()); // not a terminal, no -v: silent

    hold("d");
    const auto verbose = run_dlock_at(server.url(), {"block", "d", "--wait", "10s", "-v"});
    CHECK(verbose.exit_code == 0);
    CHECK(line_count(verbose.err) == 2);
    CHECK(verbose.err.rfind("dlock: waiting for 'd': held by ", 0) == 0);
    CHECK(verbose.err.find("dlock: acquired lock 'd' after ") != std::string::npos);
    CHECK(line_count(verbose.out) == 1); // stdout has the token, nothing else
}

TEST_CASE("watch prints every kind of event as it happens, expiries inferred or notified") {
    for (const bool notifications : {false, true}) {
        CAPTURE(notifications);
        RedisServer server;
        if (notifications)
            server.command({"CONFIG", "SET", "notify-keyspace-events", "Kx"});
        Child watcher(dlock::test::dlock_argv({"--redis", server.url(), "watch", "job*"}));
        REQUIRE(eventually([&] { return contains(watcher.err_so_far(), "watching 'job*'"); }, 10s));
        CHECK(watcher.err_so_far().find(notifications ? "keyspace notifications" : "inferred") !=
              std::string::npos);

        const std::string token =
            first_line(run_dlock_at(server.url(), {"acquire", "job-a", "--ttl", "400ms"}).out);
        REQUIRE(run_dlock_at(server.url(), {"extend", "job-a", "--owner", token, "--ttl", "400ms"})
                    .exit_code == 0);
        const std::string other = first_line(run_dlock_at(server.url(), {"acquire", "job-b"}).out);
        REQUIRE(run_dlock_at(server.url(), {"release", "job-b", "--owner", other}).exit_code == 0);
        REQUIRE(run_dlock_at(server.url(), {"acquire", "job-c"}).exit_code == 0);
        REQUIRE(run_dlock_at(server.url(), {"force-release", "job-c"}).exit_code == 0);
        REQUIRE(run_dlock_at(server.url(), {"acquire", "other"}).exit_code == 0); // not matched

        REQUIRE(eventually([&] { return contains(watcher.out_so_far(), "expired  job-a"); }, 10s));
        watcher.signal(SIGINT);
        const auto result = watcher.wait();
        CHECK(result.exit_code == 0);
        for (const char* line : {"acquired  job-a  by ", "extended  job-a", "released  job-b",
                                 "force-released  job-c", "expired  job-a"})
            CHECK(result.out.find(line) != std::string::npos);
        CHECK(result.out.find("other") == std::string::npos);
        CHECK((result.out.find("(inferred") != std::string::npos) == !notifications);
        // In order: the acquisition before the extension before the expiry.
        CHECK(result.out.find("acquired  job-a") < result.out.find("extended  job-a"));
        CHECK(result.out.find("extended  job-a") < result.out.find("expired  job-a"));
    }
}

TEST_CASE("watch --json prints one object per event") {
    RedisServer server;
    Child watcher(dlock::test::dlock_argv({"--redis", server.url(), "watch", "job", "--json"}));
    REQUIRE(eventually([&] { return contains(watcher.err_so_far(), "watching"); }, 10s));
    const std::string token = first_line(run_dlock_at(server.url(), {"acquire", "job"}).out);
    REQUIRE(run_dlock_at(server.url(), {"release", "job", "--owner", token}).exit_code == 0);
    REQUIRE(eventually([&] { return contains(watcher.out_so_far(), "\"released\""); }, 10s));
    watcher.signal(SIGTERM);
    const auto result = watcher.wait();
    CHECK(result.exit_code == 0);
    REQUIRE(line_count(result.out) == 2);
    const json acquired = json::parse(first_line(result.out));
    CHECK(acquired["event"] == "acquired");
    CHECK(acquired["key"] == "job");
    CHECK(acquired["holder"] == token);
    CHECK(acquired["fence"].is_number());
}

TEST_CASE("--layout plain shares an app's lock: status, acquire, release with the app's owner") {
    RedisServer server;
    REQUIRE(server.command({"SET", "laravel_cache:job", "Xk2hB7qLm0pR9sTz", "PX", "30000", "NX"}) ==
            "OK");
    const auto plain = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"--layout", "plain", "--prefix", "laravel_cache:"});
        return run_dlock_at(server.url(), args);
    };
    const auto shown = plain({"status", "job", "--json"});
    CHECK(shown.exit_code == 0);
    CHECK(json::parse(shown.out)["holder"] == "Xk2hB7qLm0pR9sTz");
    CHECK(plain({"acquire", "job"}).exit_code == 75);
    CHECK(plain({"run", "job", "-n", "--", "true"}).exit_code == 75);
    CHECK(plain({"release", "job", "--owner", "not-the-owner"}).exit_code == 1);
    CHECK(plain({"release", "job", "--owner", "Xk2hB7qLm0pR9sTz"}).exit_code == 0);
    CHECK(server.command({"EXISTS", "laravel_cache:job"}) == "0");
    // The default layout never sees it: a different key.
    REQUIRE(server.command({"SET", "laravel_cache:job", "app", "PX", "30000"}) == "OK");
    CHECK(run_dlock_at(server.url(), {"--prefix", "laravel_cache:", "status", "job"}).exit_code ==
          1);
    // An empty prefix is the bare key in the plain layout, and a usage error in dlock's.
    CHECK(run_dlock_at(server.url(), {"--layout", "plain", "--prefix", "", "acquire", "bare"})
              .exit_code == 0);
    CHECK(server.command({"EXISTS", "bare"}) == "1");
    CHECK(run_dlock_at(server.url(), {"--prefix", "", "acquire", "bare"}).exit_code == 64);
    CHECK(run_dlock_at(server.url(), {"--layout", "flat", "acquire", "bare"}).exit_code == 64);
}
