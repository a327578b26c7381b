// The command line parsed in-process, as CLI11's own tests do: option rules and the parsing of
// options into library requests, without starting dlock or touching Redis or a ledger.
#include "cli/app.hpp"
#include "cli/ledger_commands.hpp"
#include "cli/lock_commands.hpp"
#include "cli/run_command.hpp"

#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace dlock;
using namespace dlock::cli;

namespace {

// Parses `args` (after the program name) with the full command tree. Valid arguments would run
// the subcommand, so only refusals are parsed this way.
void parse(std::vector<std::string> args) {
    CLI::App app{"dlock", "dlock"};
    Invocation inv;
    add_commands(app, inv);
    std::reverse(args.begin(), args.end()); // CLI11 takes them last to first
    app.parse(args);
}

} // namespace

TEST_CASE("--fence and --lock-key need each other and exclude taking the lock or --no-lock") {
    const std::vector<std::string> withdraw{"withdraw", "--account", "1", "--amount", "1"};
    const auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = withdraw;
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    };
    CHECK_THROWS_AS(parse(with({"--fence", "5"})), CLI::RequiresError);
    CHECK_THROWS_AS(parse(with({"--lock-key", "k"})), CLI::RequiresError);
    CHECK_THROWS_AS(parse(with({"--fence", "5", "--lock-key", "k", "--wait", "1s"})),
                    CLI::ExcludesError);
    CHECK_THROWS_AS(parse(with({"--no-lock", "--fence", "5", "--lock-key", "k"})),
                    CLI::ExcludesError);
    CHECK_THROWS_AS(parse(with({"--no-lock", "--idempotency-key", "x"})), CLI::ExcludesError);
    CHECK_THROWS_AS(parse(with({"--fence", "", "--lock-key", "k"})), CLI::ValidationError);
}

TEST_CASE("a fence given on the command line guards the lock's full name in its namespace") {
    GlobalOptions global;
    LedgerCommandOptions opts;
    CHECK_FALSE(external_fence(global, opts).has_value());
    opts.fence = "42";
    opts.lock_key = "withdraw_funds_user_1";
    const auto fence = external_fence(global, opts);
    REQUIRE(fence.has_value());
    CHECK(fence->token == 42);
    CHECK(fence->resource == "dlock:{withdraw_funds_user_1}");
    global.prefix = "app:";
    CHECK(external_fence(global, opts)->resource == "app:{withdraw_funds_user_1}");

    for (const std::string bad : {"0", "-1", "x", "1.5"}) {
        opts.fence = bad;
        CHECK_THROWS_AS(external_fence(global, opts), UsageError);
    }
    opts.fence = "1";
    opts.lock_key = std::string(300, 'k');
    CHECK_THROWS_AS(external_fence(global, opts), UsageError);
    opts.lock_key.clear();
    CHECK_THROWS_AS(external_fence(global, opts), UsageError);
}

TEST_CASE("the command line's defaults are the library's") {
    CHECK(parse_duration(LockCommandOptions{}.ttl) == default_ttl);
    CHECK(parse_wait(LockCommandOptions{}.wait) == default_wait);
    CHECK(parse_duration(LedgerCommandOptions{}.ttl) == default_ttl);
    CHECK(parse_wait(LedgerCommandOptions{}.wait) == default_wait);
    CHECK(parse_duration(RunCommandOptions{}.ttl) == default_ttl);
    CHECK(parse_duration(RunCommandOptions{}.kill_grace) == default_kill_grace);
    CHECK(parse_duration(GlobalOptions{}.timeout) == redis::default_timeout);
    CHECK(GlobalOptions{}.prefix == default_prefix);
    const LedgerOptions ledger = ledger_options(GlobalOptions{}, LedgerCommandOptions{});
    CHECK(ledger.sqlite.busy_timeout == SqliteLedgerOptions{}.busy_timeout);
    CHECK(ledger.sqlite.retry_deadline == SqliteLedgerOptions{}.retry_deadline);
    CHECK(ledger.postgres.connect_timeout == PostgresLedgerOptions{}.connect_timeout);
    CHECK(ledger.postgres.retry_deadline == PostgresLedgerOptions{}.retry_deadline);
}

TEST_CASE("run takes either a command or -c, and -n means one attempt") {
    RunCommandOptions opts;
    opts.key = "job";
    CHECK_THROWS_AS(run_spec(opts), UsageError); // nothing to run
    opts.command = {"true"};
    CHECK(run_spec(opts).argv == std::vector<std::string>{"true"});
    CHECK(run_spec(opts).wait == default_wait);
    opts.shell = true;
    CHECK_THROWS_AS(run_spec(opts), UsageError); // both
    opts.command.clear();
    opts.shell_command = "echo hi";
    CHECK(run_spec(opts).argv == std::vector<std::string>{"/bin/sh", "-c", "echo hi"});
    opts.nonblock = true;
    CHECK(run_spec(opts).wait == Millis{0});
    opts.key = "";
    CHECK_THROWS_AS(run_spec(opts), UsageError);
    CHECK_THROWS_AS(parse({"run", "job", "-n", "--wait", "1s", "--", "true"}), CLI::ExcludesError);
}

TEST_CASE("an empty or option-looking prefix is refused, not taken from the next word") {
    const char* empty_equals[] = {"dlock", "--prefix=", "-n", "acquire", "job"};
    const auto refused = empty_equals_value(5, empty_equals);
    REQUIRE(refused.has_value());
    CHECK(refused->find("--prefix=") != std::string::npos);
    const char* after_dashdash[] = {"dlock", "run", "job", "--", "--x="};
    CHECK_FALSE(empty_equals_value(5, after_dashdash).has_value());
    CHECK_THROWS_AS(parse({"--prefix", "-n", "acquire", "job"}), CLI::ValidationError);
    GlobalOptions empty;
    empty.prefix = "";
    CHECK_THROWS_AS(lock_config(empty), UsageError); // the dlock layout needs one
    empty.layout = "plain";
    CHECK(lock_config(empty).prefix.empty()); // the plain layout's bare key
    CHECK_THROWS_AS(parse({"--layout", "flat", "acquire", "job"}), CLI::ValidationError);
}

TEST_CASE("only the invoked subcommand is declared; help and mistakes get the whole tree") {
    CLI::App globals{"dlock", "dlock"};
    Invocation global_inv;
    add_global_options(globals, global_inv);
    const auto invoked = [&globals](std::vector<const char*> args) {
        args.insert(args.begin(), "dlock");
        return std::string(invoked_subcommand(globals, static_cast<int>(args.size()), args.data()));
    };
    CHECK(invoked({"acquire", "job"}) == "acquire");
    CHECK(invoked({"--redis", "redis://h", "-E", "3", "--json", "status", "job"}) == "status");
    CHECK(invoked({"--prefix=app:", "-v", "withdraw", "--account", "1"}) == "withdraw");
    CHECK(invoked({"--db", "acquire", "balance"}) == "balance"); // --db's value is not a command
    // Every global option that takes a value is known as one, not only those once listed.
    CHECK(invoked({"--tls-ca", "status", "acquire", "job"}) == "acquire");
    CHECK(invoked({"--tls-server-name", "list", "-q", "release", "job"}) == "release");
    CHECK(invoked({"--help"}).empty());
    CHECK(invoked({"acqire", "job"}).empty());
    CHECK(invoked({"--", "acquire"}).empty());

    // A subcommand alone parses its arguments as the whole tree would.
    CLI::App app{"dlock", "dlock"};
    Invocation inv;
    add_commands(app, inv, "acquire");
    CHECK_NOTHROW(app.get_subcommand("acquire"));
    CHECK_THROWS(app.get_subcommand("release"));
    CHECK_THROWS(app.get_subcommand("withdraw"));
    // Refused as the whole tree refuses it (valid arguments would run it).
    const char* args[] = {"dlock", "acquire", "job", "--ttl", "2s", "--owner", "x"};
    CHECK_THROWS_AS(app.parse(7, args), CLI::ExtrasError);
    CHECK_THROWS_AS(parse({"acquire", "job", "--ttl", "2s", "--owner", "x"}), CLI::ExtrasError);
}

TEST_CASE("a global option is declared whenever the arguments name it, in any form") {
    CLI::App full{"dlock", "dlock"};
    Invocation full_inv;
    add_global_options(full, full_inv);
    const auto declared_for = [](std::vector<const char*> args, const std::string& name) {
        args.insert(args.begin(), "dlock");
        CLI::App app{"dlock", "dlock"};
        Invocation inv;
        add_global_options(
            app, inv, GlobalOptionFilter::named_in(static_cast<int>(args.size()), args.data()));
        return app.get_option_no_throw(name) != nullptr;
    };
    int checked = 0;
    for (const CLI::Option* option : full.get_options()) {
        for (const std::string& name : option->get_lnames()) {
            const std::string word = "--" + name;
            const std::string with_value = word + "=x";
            CHECK(declared_for({"status", "job", word.c_str()}, word));
            CHECK(declared_for({with_value.c_str(), "status", "job"}, word));
            ++checked;
        }
        for (const std::string& name : option->get_snames()) {
            const std::string word = "-" + name;
            const std::string attached = word + "5";
            const std::string cluster = "-q" + name;
            CHECK(declared_for({word.c_str(), "status"}, word));
            CHECK(declared_for({"status", attached.c_str()}, word));
            CHECK(declared_for({cluster.c_str(), "status"}, word));
        }
    }
    CHECK(checked >= 15);
    // None named: none declared; help and the version declare them all.
    CHECK_FALSE(declared_for({"acquire", "job", "--ttl", "5s"}, "--redis"));
    CHECK_FALSE(declared_for({"run", "job", "--", "x", "--json"}, "--json"));
    CHECK(declared_for({"acquire", "--help"}, "--redis"));
    CHECK(declared_for({"-V"}, "--db"));
    // -v and -q exclude each other, so either declares both.
    CHECK(declared_for({"-q", "status"}, "--verbose"));
}
