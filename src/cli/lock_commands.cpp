// acquire, block, release, force-release, extend, status.
//
// Each command checks its arguments before it connects, so a usage error never touches Redis.
#include "cli/lock_commands.hpp"

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

int report_acquired(const Reporter& reporter, std::string_view key, const Lease& lease) {
    return reporter.ok(lease_json(key, lease), lease.token);
}

json busy_json(std::string_view key, const Remaining& holder_ttl) {
    return {{"status", "busy"}, {"key", key}, {"ttl_ms", ttl_ms_json(holder_ttl)}};
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
    const Reporter reporter(inv.global.json);
    validate_key(opts.key);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const AcquireResult result = open_locks(inv.global)->try_acquire(opts.key, ttl);
    if (result.acquired())
        return report_acquired(reporter, opts.key, *result.lease);
    return reporter.refuse(busy_json(opts.key, result.holder_ttl),
                           "lock " + in_quotes(opts.key) + " is held by another owner (" +
                               when_free(result.holder_ttl) + ")",
                           inv.global.conflict_exit_code);
}

int block(const Invocation& inv, const LockCommandOptions& opts) {
    const Reporter reporter(inv.global.json);
    validate_key(opts.key);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const Millis wait = parse_wait(opts.wait);
    const AcquireResult result = open_locks(inv.global)->block(opts.key, ttl, wait);
    if (result.acquired())
        return report_acquired(reporter, opts.key, *result.lease);
    return reporter.refuse(busy_json(opts.key, result.holder_ttl),
                           "lock busy, try again later (" + in_quotes(opts.key) +
                               " still held after waiting " + format_duration(wait) + ")",
                           inv.global.conflict_exit_code);
}

int release(const Invocation& inv, const LockCommandOptions& opts) {
    validate_key(opts.key);
    validate_token(opts.owner);
    const OwnerCheck check = open_locks(inv.global)->release(opts.key, opts.owner);
    return report_owner_check(Reporter(inv.global.json), opts.key, check, "released", "released");
}

int extend(const Invocation& inv, const LockCommandOptions& opts) {
    validate_key(opts.key);
    validate_token(opts.owner);
    const Millis ttl = parse_positive_duration(opts.ttl);
    const OwnerCheck check = open_locks(inv.global)->extend(opts.key, opts.owner, ttl);
    return report_owner_check(Reporter(inv.global.json), opts.key, check, "extended", "extended");
}

int force_release(const Invocation& inv, const LockCommandOptions& opts) {
    const Reporter reporter(inv.global.json);
    validate_key(opts.key);
    const ForceReleaseResult result = open_locks(inv.global)->force_release(opts.key);
    if (!result.holder)
        return reporter.ok({{"status", "free"}, {"key", opts.key}},
                           "lock " + in_quotes(opts.key) + " was not held");
    return reporter.ok(
        {{"status", "released"},
         {"key", opts.key},
         {"holder", *result.holder},
         {"ttl_ms", ttl_ms_json(result.ttl)}},
        "released lock " + in_quotes(opts.key) + " (held by " + *result.holder + ", " +
            (result.ttl ? format_duration(*result.ttl) + " left" : "without a TTL") + ")");
}

int status(const Invocation& inv, const LockCommandOptions& opts) {
    const Reporter reporter(inv.global.json);
    validate_key(opts.key);
    const LockStatus state = open_locks(inv.global)->status(opts.key);
    json result{{"status", state.holder ? "held" : "free"}, {"key", opts.key}};
    std::string text = "key:    " + opts.key + "\nstate:  " + (state.holder ? "held" : "free");
    if (state.holder) {
        result["holder"] = *state.holder;
        result["ttl_ms"] = ttl_ms_json(state.ttl);
        text += "\nholder: " + *state.holder + "\nttl_ms: " +
                (state.ttl ? std::to_string(state.ttl->count())
                           : "none (" + when_free(state.ttl) + ")");
    }
    result["fence"] = state.fence ? json(*state.fence) : json(nullptr);
    text += "\nfence:  " + (state.fence ? std::to_string(*state.fence) : std::string("none"));
    reporter.ok(result, text);
    return state.holder ? exit_code::ok : exit_code::refused;
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
    add_key_argument(*added.first, added.second->key);
    return added;
}

constexpr const char* lease_help = "Lease length (DUR); the lock frees itself after it";

} // namespace

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
