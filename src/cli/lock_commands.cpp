// acquire, block, release, force-release, extend, status.
//
// Each command checks its arguments before it connects, so a usage error never touches Redis.
#include "cli/lock_commands.hpp"

#include "cli/lock_output.hpp"
#include "cli/progress.hpp"

#include <array>
#include <chrono>
#include <csignal>
#include <ctime>
#include <iostream>

namespace dlock::cli {
namespace {

using nlohmann::json;

json lease_json(std::string_view key, const Lease& lease) {
    return {{"status", "acquired"},
            {"key", key},
            {"token", lease.token},
            {"fence", lease.fence},
            {"ttl_ms", lease.ttl.count()}};
}

// Prints the new lease. When stdout cannot take it, the token reached nobody, who could then
// release or extend the lock: it is released here, as flock-style tools undo on a failed write.
int report_acquired(const Reporter& reporter, LockService& locks, std::string_view key,
                    const Lease& lease) {
    try {
        return reporter.ok(lease_json(key, lease), lease.token);
    } catch (const OutputError& e) {
        std::string undone = "released the lock it took";
        try {
            locks.release(key, lease.token);
        } catch (const std::exception& release_error) {
            undone = std::string("could not release the lock it took (") + release_error.what() +
                     "); it frees itself within " + format_duration(lease.ttl);
        }
        throw OutputError(std::string(e.what()) + "; " + undone);
    }
}

json busy_json(std::string_view key, const AcquireResult& result) {
    json out{{"status", "busy"}, {"key", key}, {"ttl_ms", ttl_ms_json(result.holder_ttl)}};
    if (result.holder) {
        out["host"] = result.holder->who.host;
        out["pid"] = result.holder->who.pid;
        out["user"] = result.holder->who.user;
        out["command"] = result.holder->who.command;
    }
    return out;
}

// "another owner", and who that is when it left a record.
std::string other_holder(const AcquireResult& result) {
    return result.holder ? "another owner: " + holder_text("", result.holder) : "another owner";
}

// release and extend refuse alike when the token does not own the lock.
int report_owner_check(const Reporter& reporter, std::string_view key, OwnerCheck check,
                       std::string_view done_status, std::string_view verb) {
    switch (check) {
    case OwnerCheck::done:
        return reporter.ok({{"status", done_status}, {"key", key}}, "");
    case OwnerCheck::not_held:
        return reporter.refuse({{"status", "not_held"}, {"key", key}},
                               "not " + std::string(verb) + ": lock " + in_quotes(key) +
                                   " is not held (it expired or was force-released)",
                               exit_code::refused);
    case OwnerCheck::not_owner:
        break;
    }
    return reporter.refuse({{"status", "not_owner"}, {"key", key}},
                           "not " + std::string(verb) + ": lock " + in_quotes(key) +
                               " is held by another owner",
                           exit_code::refused);
}

} // namespace

int acquire(const Invocation& inv, const LockCommandOptions& opts) {
    const Reporter reporter(inv.global);
    validate_key(opts.key);
    const Millis ttl = parse_positive_duration(opts.ttl);
    // The lock is the calling script's: its process is what operators will look for.
    const std::unique_ptr<LockService> locks = open_locks(inv.global, parent_process());
    const AcquireResult result = locks->try_acquire(opts.key, ttl);
    if (result.acquired())
        return report_acquired(reporter, *locks, opts.key, *result.lease);
    return reporter.refuse(busy_json(opts.key, result),
                           "lock " + in_quotes(opts.key) + " is held by " + other_holder(result) +
                               " (" + when_free(result.holder_ttl) + ")",
                           inv.global.conflict_exit_code);
}

int block(const Invocation& inv, const LockCommandOptions& opts) {
    const Reporter reporter(inv.global);
    validate_key(opts.key);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const Millis wait = parse_wait(opts.wait);
    WaitReport report(inv.global, opts.key);
    const std::unique_ptr<LockService> locks = open_locks(inv.global, parent_process());
    const AcquireResult result = locks->block(opts.key, ttl, wait, report.observer());
    report.finished(result.acquired() ? std::optional(result.lease->fence) : std::nullopt);
    if (result.acquired())
        return report_acquired(reporter, *locks, opts.key, *result.lease);
    return reporter.refuse(busy_json(opts.key, result),
                           "lock busy, try again later (" + in_quotes(opts.key) +
                               " still held after waiting " + format_duration(wait) +
                               (result.holder ? ", by " + holder_text("", result.holder) : "") +
                               ")",
                           inv.global.conflict_exit_code);
}

int release(const Invocation& inv, const LockCommandOptions& opts) {
    validate_key(opts.key);
    validate_owner(opts.owner, parse_layout(inv.global.layout));
    const OwnerCheck check = open_locks(inv.global)->release(opts.key, opts.owner);
    return report_owner_check(Reporter(inv.global), opts.key, check, "released", "released");
}

int extend(const Invocation& inv, const LockCommandOptions& opts) {
    validate_key(opts.key);
    validate_owner(opts.owner, parse_layout(inv.global.layout));
    const Millis ttl = parse_positive_duration(opts.ttl);
    const OwnerCheck check = open_locks(inv.global)->extend(opts.key, opts.owner, ttl);
    return report_owner_check(Reporter(inv.global), opts.key, check, "extended", "extended");
}

int force_release(const Invocation& inv, const LockCommandOptions& opts) {
    const Reporter reporter(inv.global);
    validate_key(opts.key);
    std::optional<std::string_view> only_owner;
    if (!opts.owner.empty()) {
        validate_owner(opts.owner, parse_layout(inv.global.layout));
        only_owner = opts.owner;
    }
    const ForceReleaseResult result = open_locks(inv.global)->force_release(opts.key, only_owner);
    if (!result.holder)
        return reporter.ok({{"status", "free"}, {"key", opts.key}},
                           "lock " + in_quotes(opts.key) + " was not held");
    json out{{"status", result.released ? "released" : "not_owner"}, {"key", opts.key}};
    put_holder(out, *result.holder, result.details, result.ttl, result.now_ms);
    const std::string who =
        held_sentence(*result.holder, result.details, result.ttl, result.now_ms);
    if (!result.released)
        return reporter.refuse(std::move(out),
                               "not released: lock " + in_quotes(opts.key) +
                                   " is no longer held by owner " + opts.owner + "; it is now " +
                                   who + " (owner " + *result.holder + ")",
                               exit_code::refused);
    const std::string left = result.ttl ? format_duration(*result.ttl) + " of its lease was left"
                                        : "it was held without a TTL";
    return reporter.ok(out, "released lock " + in_quotes(opts.key) + " (owner " + *result.holder +
                                "), " + held_by(*result.holder, result.details, result.now_ms) +
                                "; " + left);
}

int status(const Invocation& inv, const LockCommandOptions& opts) {
    const Reporter reporter(inv.global);
    validate_key(opts.key);
    const LockStatus state = open_locks(inv.global)->status(opts.key);
    json result{{"status", state.holder ? "held" : "free"}, {"key", opts.key}};
    std::string text = "key:    " + opts.key + "\nstate:  ";
    if (state.holder) {
        put_holder(result, *state.holder, state.details, state.ttl, state.now_ms);
        text += held_sentence(*state.holder, state.details, state.ttl, state.now_ms) +
                "\nholder: " + *state.holder;
        if (state.details)
            text += "\nuser:   " + state.details->who.user;
        text += "\nttl_ms: " + (state.ttl ? std::to_string(state.ttl->count()) : "none");
    } else {
        text += "free";
    }
    result["fence"] = state.fence ? json(*state.fence) : json(nullptr);
    text += "\nfence:  " + (state.fence ? std::to_string(*state.fence) : std::string("none"));
    result["stale"] = state.stale;
    if (state.stale)
        reporter.warn("the server is a read-only replica: this answer may be stale (point dlock "
                      "at the master, or use redis+sentinel://)");
    if (!state.servers.empty()) {
        std::size_t answering = 0;
        json servers = json::array();
        for (const ServerLockStatus& server : state.servers) {
            answering += server.error ? 0 : 1;
            servers.push_back({{"server", server.server},
                               {"error", server.error ? json(*server.error) : json(nullptr)},
                               {"holder", server.holder ? json(*server.holder) : json(nullptr)},
                               {"ttl_ms", ttl_ms_json(server.ttl)},
                               {"fence", server.fence ? json(*server.fence) : json(nullptr)}});
        }
        result["servers"] = std::move(servers);
        text += "\nquorum: " + std::to_string(answering) + " of " +
                std::to_string(state.servers.size()) + " servers answered";
    }
    reporter.ok(result, text);
    return state.holder ? exit_code::ok : exit_code::refused;
}

int list(const Invocation& inv, const LockCommandOptions& opts) {
    const Reporter reporter(inv.global);
    const std::string pattern = opts.key.empty() ? "*" : opts.key;
    if (pattern.size() > max_key_bytes)
        throw UsageError("invalid pattern: at most " + std::to_string(max_key_bytes) + " bytes");
    const std::vector<LockListing> locks = open_locks(inv.global)->list(pattern);
    json out = json::array();
    for (const LockListing& lock : locks) {
        json entry{{"key", lock.key}};
        put_holder(entry, lock.status.holder.value_or(""), lock.status.details, lock.status.ttl,
                   lock.status.now_ms);
        entry["fence"] = lock.status.fence ? json(*lock.status.fence) : json(nullptr);
        out.push_back(std::move(entry));
    }
    return reporter.ok(out, locks.empty() ? "" : listing_table(locks));
}

namespace {

volatile std::sig_atomic_t stop_watching = 0;

// Ctrl-C (or SIGTERM) ends a watch with exit 0: it is how a watch is meant to end. The handler
// only sets a flag; the wait it interrupts returns, and the loop sees the flag.
class StopOnInterrupt {
public:
    StopOnInterrupt() {
        struct sigaction action {};
        action.sa_handler = [](int) {
            stop_watching = 1;
        };
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, &saved_int_);
        sigaction(SIGTERM, &action, &saved_term_);
    }
    ~StopOnInterrupt() {
        sigaction(SIGINT, &saved_int_, nullptr);
        sigaction(SIGTERM, &saved_term_, nullptr);
    }
    StopOnInterrupt(const StopOnInterrupt&) = delete;
    StopOnInterrupt& operator=(const StopOnInterrupt&) = delete;

private:
    struct sigaction saved_int_ {};
    struct sigaction saved_term_ {};
};

std::string event_time() {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const auto seconds = system_clock::to_time_t(now);
    const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm local{};
    localtime_r(&seconds, &local);
    std::array<char, 32> text{};
    const std::size_t length = std::strftime(text.data(), text.size(), "%Y-%m-%d %H:%M:%S", &local);
    return std::string(text.data(), length) + "." + std::to_string(1000 + millis).substr(1);
}

} // namespace

int watch(const Invocation& inv, const LockCommandOptions& opts) {
    const std::string pattern = opts.key.empty() ? "*" : opts.key;
    if (pattern.size() > max_key_bytes)
        throw UsageError("invalid pattern: at most " + std::to_string(max_key_bytes) + " bytes");
    const Reporter reporter(inv.global);
    const StopOnInterrupt interrupt;
    stop_watching = 0;
    LockWatcher watcher;
    watcher.started = [&](bool notified) {
        reporter.warn("watching " + in_quotes(pattern) + "; " +
                      (notified
                           ? std::string("expiries from Redis keyspace notifications")
                           : std::string("expiries are inferred from TTLs (for exact ones, "
                                         "set notify-keyspace-events Kx on a single server)")) +
                      "; Ctrl-C ends");
    };
    watcher.keep_going = [] {
        return stop_watching == 0;
    };
    watcher.event = [&](const LockEvent& event) {
        const std::string time = event_time();
        if (inv.global.json) {
            json line{{"time", time}, {"event", event.kind}, {"key", event.key}};
            if (event.kind == "expired")
                line["inferred"] = event.inferred;
            if (event.status && event.status->holder) {
                put_holder(line, *event.status->holder, event.status->details, event.status->ttl,
                           event.status->now_ms);
                line["fence"] = event.status->fence ? json(*event.status->fence) : json(nullptr);
            }
            write_stdout(json_text(line) + "\n");
            return;
        }
        std::string text = time + "  " + event.kind + "  " + printable(event.key);
        if (event.status && event.status->holder)
            text += "  by " + printable(holder_text(*event.status->holder, event.status->details)) +
                    (event.status->fence ? ", fence " + std::to_string(*event.status->fence) : "") +
                    (event.status->ttl ? ", ttl " + format_duration(*event.status->ttl) : "");
        if (event.inferred)
            text += "  (inferred: gone without a release when its TTL ran out)";
        write_stdout(text + "\n");
    };
    open_locks(inv.global)->watch(pattern, watcher);
    return exit_code::ok;
}

namespace {

CLI::Option* add_ttl(CLI::App& command, LockCommandOptions& opts, const std::string& what) {
    return command.add_option("--ttl", opts.ttl, what)->type_name("DUR")->capture_default_str();
}

CLI::Option* add_owner(CLI::App& command, LockCommandOptions& opts) {
    return command.add_option("--owner", opts.owner, "Owner token that acquire/block printed")
        ->type_name("TOKEN")
        ->envname("DLOCK_OWNER")
        ->required();
}

// A subcommand taking KEY.
std::pair<CLI::App*, LockCommandOptions*>
add_lock_command(CLI::App& app, Invocation& inv, const std::string& name, const std::string& help,
                 int (*run)(const Invocation&, const LockCommandOptions&)) {
    const auto added = add_command(app, inv, name, help, run);
    apply_settings(*added.second, inv.settings);
    add_key_argument(*added.first, added.second->key);
    return added;
}

constexpr const char* lease_help = "Lease length (DUR); the lock frees itself after it";

} // namespace

void setup_lock_commands(CLI::App& app, Invocation& inv, std::string_view only) {
    if (builds(only, "acquire")) {
        auto [cmd, opts] = add_lock_command(
            app, inv, "acquire",
            "Take KEY once, without waiting; prints the owner token (exit 75 or -E N if held)",
            acquire);
        add_ttl(*cmd, *opts, lease_help);
    }
    if (builds(only, "block")) {
        auto [cmd, opts] = add_lock_command(
            app, inv, "block", "Take KEY, waiting until it is free or --wait runs out", block);
        add_ttl(*cmd, *opts, lease_help);
        cmd->add_option("--wait", opts->wait, "Longest wait (DUR, or 'inf')")
            ->type_name("DUR")
            ->capture_default_str();
    }
    if (builds(only, "release")) {
        auto [cmd, opts] = add_lock_command(
            app, inv, "release", "Release KEY if --owner still owns it (exit 1 if not)", release);
        add_owner(*cmd, *opts);
    }
    if (builds(only, "force-release")) {
        auto [cmd, opts] = add_lock_command(
            app, inv, "force-release",
            "Release KEY whoever holds it (operator recovery), or with --owner only while that "
            "owner still holds it; says whom it removed",
            force_release);
        cmd->add_option("--owner", opts->owner,
                        "Only if this owner token (as status showed it) still holds KEY; "
                        "otherwise exit 1 and leave the lock alone")
            ->type_name("TOKEN")
            ->check(non_empty);
    }
    if (builds(only, "watch")) {
        auto [cmd, opts] = add_command(
            app, inv, "watch",
            "Follow the locks matching KEY or PATTERN and print each event as it happens "
            "(acquired, extended, released, force-released, expired); Ctrl-C ends it (exit 0)",
            watch);
        cmd->add_option("PATTERN", opts->key,
                        "A KEY, or a glob on KEYs: * any run, ? one character, [abc] a set")
            ->check(non_empty);
    }
    if (builds(only, "list")) {
        auto [cmd, opts] = add_command(
            app, inv, "list",
            "List the held locks (KEYs matching PATTERN, default all): holder, age, TTL, fence",
            list);
        cmd->add_option("PATTERN", opts->key,
                        "A glob on the lock's KEY: * any run, ? one character, [abc] a set")
            ->check(non_empty);
    }
    if (builds(only, "status"))
        add_lock_command(
            app, inv, "status",
            "Show KEY's holder, remaining TTL and last fencing token (exit 0 held, 1 free)",
            status);
    if (builds(only, "extend")) {
        auto [cmd, opts] = add_lock_command(
            app, inv, "extend", "Reset KEY's TTL if --owner still owns it (exit 1 if not)", extend);
        add_owner(*cmd, *opts);
        add_ttl(*cmd, *opts, "New lease length, counted from now (DUR)")->required();
    }
}

} // namespace dlock::cli
