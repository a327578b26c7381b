// acquire, block, release, force-release, extend, status.
#include "cli/commands.hpp"
#include "cli/common.hpp"

namespace dlock::cli {
namespace {

using nlohmann::json;

std::string in_quotes(std::string_view key) {
    return "'" + std::string(key) + "'";
}

struct LockOptions {
    std::string key;
    std::string ttl = "10s";
    std::string wait = "5s";
    std::string owner;
};

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

json busy_json(std::string_view key, Millis holder_ttl) {
    return {{"status", "busy"}, {"key", key}, {"ttl_ms", holder_ttl.count()}};
}

int acquire(const Invocation& inv, const LockOptions& opts) {
    const Reporter reporter(inv.global.json);
    validate_key(opts.key);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const std::unique_ptr<LockService> locks = connect_lock_service(inv.global);
    const AcquireResult result = locks->try_acquire(opts.key, ttl);
    if (result.acquired())
        return report_acquired(reporter, *locks, opts.key, *result.lease);
    return reporter.refuse(busy_json(opts.key, result.holder_ttl),
                           "lock " + in_quotes(opts.key) + " is held by another owner (free in " +
                               format_duration(result.holder_ttl) + " at the latest)",
                           inv.global.conflict_exit_code);
}

int block(const Invocation& inv, const LockOptions& opts) {
    const Reporter reporter(inv.global.json);
    validate_key(opts.key);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const Millis wait = parse_wait(opts.wait);
    const std::unique_ptr<LockService> locks = connect_lock_service(inv.global);
    const AcquireResult result = locks->block(opts.key, ttl, wait);
    if (result.acquired())
        return report_acquired(reporter, *locks, opts.key, *result.lease);
    return reporter.refuse(busy_json(opts.key, result.holder_ttl),
                           "lock busy, try again later (" + in_quotes(opts.key) +
                               " still held after waiting " + format_duration(wait) + ")",
                           inv.global.conflict_exit_code);
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

int release(const Invocation& inv, const LockOptions& opts) {
    validate_key(opts.key);
    validate_token(opts.owner);
    const OwnerCheck check = connect_lock_service(inv.global)->release(opts.key, opts.owner);
    return report_owner_check(Reporter(inv.global.json), opts.key, check, "released", "released");
}

int extend(const Invocation& inv, const LockOptions& opts) {
    validate_key(opts.key);
    validate_token(opts.owner);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const OwnerCheck check = connect_lock_service(inv.global)->extend(opts.key, opts.owner, ttl);
    return report_owner_check(Reporter(inv.global.json), opts.key, check, "extended", "extended");
}

int force_release(const Invocation& inv, const LockOptions& opts) {
    const Reporter reporter(inv.global.json);
    validate_key(opts.key);
    const ForceReleaseResult result = connect_lock_service(inv.global)->force_release(opts.key);
    if (!result.holder)
        return reporter.ok({{"status", "free"}, {"key", opts.key}},
                           "lock " + in_quotes(opts.key) + " was not held");
    return reporter.ok({{"status", "released"},
                        {"key", opts.key},
                        {"holder", *result.holder},
                        {"ttl_ms", result.ttl.count()}},
                       "released lock " + in_quotes(opts.key) + " (held by " + *result.holder +
                           ", " + format_duration(result.ttl) + " left)");
}

int status(const Invocation& inv, const LockOptions& opts) {
    const Reporter reporter(inv.global.json);
    validate_key(opts.key);
    const LockStatus state = connect_lock_service(inv.global)->status(opts.key);
    json result{{"status", state.holder ? "held" : "free"}, {"key", opts.key}};
    std::string text = "key:    " + opts.key + "\nstate:  " + (state.holder ? "held" : "free");
    if (state.holder) {
        result["holder"] = *state.holder;
        result["ttl_ms"] = state.ttl.count();
        text += "\nholder: " + *state.holder + "\nttl_ms: " + std::to_string(state.ttl.count());
    }
    result["fence"] = state.fence ? json(*state.fence) : json(nullptr);
    text += "\nfence:  " + (state.fence ? std::to_string(*state.fence) : std::string("none"));
    reporter.ok(result, text);
    return state.holder ? exit_code::ok : exit_code::refused;
}

CLI::Option* add_ttl(CLI::App& command, LockOptions& opts, const std::string& what) {
    return command.add_option("--ttl", opts.ttl, what)->type_name("DUR")->capture_default_str();
}

CLI::Option* add_owner(CLI::App& command, LockOptions& opts) {
    return command.add_option("--owner", opts.owner, "Owner token that acquire/block printed")
        ->type_name("TOKEN")
        ->envname("DLOCK_OWNER")
        ->required();
}

using LockCommand = int (*)(const Invocation&, const LockOptions&);

// A subcommand taking KEY; its callback owns the options CLI11 parses into.
std::pair<CLI::App*, LockOptions*> add_lock_command(CLI::App& app, Invocation& inv,
                                                    const std::string& name,
                                                    const std::string& help, LockCommand run) {
    auto opts = std::make_shared<LockOptions>();
    auto* command = app.add_subcommand(name, help);
    add_key_argument(*command, opts->key);
    command->callback([&inv, opts, run] { inv.exit_code = run(inv, *opts); });
    return {command, opts.get()};
}

constexpr const char* lease_help = "Lease length (DUR); the lock frees itself after it";

} // namespace

Millis parse_wait(std::string_view text) {
    if (text == "inf" || text == "forever")
        return wait_forever;
    return parse_duration(text);
}

void setup_lock_commands(CLI::App& app, Invocation& inv) {
    auto [cmd, opts] = add_lock_command(
        app, inv, "acquire",
        "Take KEY once, without waiting; prints the owner token (exit 75 or -E N if held)",
        acquire);
    add_ttl(*cmd, *opts, lease_help);

    std::tie(cmd, opts) = add_lock_command(
        app, inv, "block", "Take KEY, waiting until it is free or --wait runs out", block);
    add_ttl(*cmd, *opts, lease_help);
    cmd->add_option("--wait", opts->wait, "Longest wait (DUR, or 'inf')")
        ->type_name("DUR")
        ->capture_default_str();

    std::tie(cmd, opts) = add_lock_command(
        app, inv, "release", "Release KEY if --owner still owns it (exit 1 if not)", release);
    add_owner(*cmd, *opts);

    add_lock_command(app, inv, "force-release",
                     "Release KEY whoever holds it (operator recovery); exit 0 either way",
                     force_release);

    add_lock_command(
        app, inv, "status",
        "Show KEY's holder, remaining TTL and last fencing token (exit 0 held, 1 free)", status);

    std::tie(cmd, opts) = add_lock_command(
        app, inv, "extend", "Reset KEY's TTL if --owner still owns it (exit 1 if not)", extend);
    add_owner(*cmd, *opts);
    add_ttl(*cmd, *opts, "New lease length, counted from now (DUR)")->required();
}

} // namespace dlock::cli
