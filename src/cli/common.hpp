// What every subcommand shares: global options, opening the backends, reporting outcomes.
#pragma once

#include "cli/settings.hpp"
#include "dlock/backends.hpp"
#include "dlock/scoped_lease.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace dlock::cli {

struct GlobalOptions {
    std::string redis_url{redis::default_url};
    std::string timeout = duration_text(redis::default_timeout);
    std::string prefix{default_prefix};
    std::string layout = "dlock";
    bool json = false;
    bool verbose = false; // -v: say what dlock does and whom it waits for, on stderr
    bool quiet = false;   // -q: nothing on stderr but errors
    int conflict_exit_code = exit_code::conflict;
    std::string db = "dlock-ledger.db"; // the ledger; only ledger commands open it
    std::string config_file;            // --config: read before parsing (settings.hpp)
    std::string tls_ca;                 // rediss:// only: --tls-ca, --tls-cert, ...
    std::string tls_cert;
    std::string tls_key;
    std::string tls_server_name;
    int replicas = 0; // --replicas: acquisitions and renewals wait for N replicas' WAIT
    // Settings without a flag of their own.
    std::string redis_password;
    std::string sentinel_password;
    std::string db_password;
    std::string fence_idle = duration_text(default_fence_idle);
};

// The parsed command line and the exit code the subcommand that ran decided on.
struct Invocation {
    Settings settings; // the defaults every option starts from
    GlobalOptions global;
    int exit_code = exit_code::ok;
};

// Which global options to declare. Declaring all 17 cost a short command about a third of its
// instructions, and most commands name none (their settings come from the environment or a
// config file): main() declares those its arguments may name, never missing one (a name is
// matched by its exact word, `--name=`, or a short flag among a cluster of them), and the whole
// set for help and for arguments that name no subcommand.
class GlobalOptionFilter {
public:
    static GlobalOptionFilter all() { return GlobalOptionFilter(); }
    // The options the words of argv before `--` may name.
    static GlobalOptionFilter named_in(int argc, const char* const* argv);
    // The options this filter leaves out.
    GlobalOptionFilter rest() const;
    // Whether to declare the option with these CLI11 names ("-v,--verbose").
    bool wants(std::string_view names) const;
    bool wants_all() const { return everything_ && !inverted_; }

private:
    GlobalOptionFilter() = default;
    bool named(std::string_view name) const;
    bool everything_ = true;
    bool inverted_ = false;
    std::vector<std::string_view> words_;
};

// The global options `filter` wants, their defaults from inv.settings.
void add_global_options(CLI::App& app, Invocation& inv,
                        const GlobalOptionFilter& filter = GlobalOptionFilter::all());

// Where locks live, from --redis, --timeout, --prefix and DLOCK_REDIS_PASSWORD; acquisitions
// record `identity` as their holder.
LockConfig lock_config(const GlobalOptions& global, Identity identity = {});
std::unique_ptr<LockService> open_locks(const GlobalOptions& global, Identity identity = {});

// The required KEY positional.
CLI::Option* add_key_argument(CLI::App& command, std::string& key);

// Whether a group's setup adds the subcommand `name` when main() asked for `only` (empty: all).
inline bool builds(std::string_view only, std::string_view name) {
    return only.empty() || only == name;
}

// A subcommand whose callback owns the options CLI11 parses into and runs `run` on them,
// recording its exit code in `inv`.
template <typename Options>
std::pair<CLI::App*, Options*> add_command(CLI::App& parent, Invocation& inv,
                                           const std::string& name, const std::string& help,
                                           int (*run)(const Invocation&, const Options&)) {
    auto opts = std::make_shared<Options>();
    auto* command = parent.add_subcommand(name, help);
    command->callback([&inv, opts, run] { inv.exit_code = run(inv, *opts); });
    return {command, opts.get()};
}

// The options of every command that takes a lock by KEY.
struct KeyedLockOptions {
    std::string key;
    std::string ttl = duration_text(default_ttl);
    std::string wait = duration_text(default_wait);
};
// Their defaults as the settings say (DLOCK_TTL, DLOCK_WAIT, config files).
void apply_settings(KeyedLockOptions& opts, const Settings& settings);

// Refuses an empty value: CLI11 would otherwise take the next word for `--option=`.
extern const CLI::Validator non_empty;

// Prints outcomes: results on stdout (text or one JSON object), messages on stderr
// prefixed "dlock: ". Every method returns the exit code it was given, for `return`.
class Reporter {
public:
    explicit Reporter(const GlobalOptions& global) : json_(global.json), quiet_(global.quiet) {}

    // Success: `text` (if any) on stdout, or `result` as JSON.
    int ok(const nlohmann::json& result, const std::string& text) const;
    // An expected refusal (busy, not owner, ...): `message` on stderr; with --json, `result`
    // plus "error" and "code" on stdout.
    int refuse(nlohmann::json result, const std::string& message, int code) const;
    // A warning on stderr that changes nothing else; none with --quiet.
    void warn(const std::string& message) const;
    // warn() as a Notice for the library.
    Notice notice() const;

private:
    bool json_;
    bool quiet_;
};

// A message as dlock prints it: one line, whatever it quotes. Control characters and bytes
// that are not UTF-8 show as \xNN (\n, \t), and the password of anything shaped like
// scheme://user:password@host as ***. Every message on stderr and in JSON "error" goes
// through it.
std::string printable(std::string_view message);

// JSON as dlock prints it: whatever bytes the values hold, never a throw (bad UTF-8 replaced).
std::string json_text(const nlohmann::json& value);

// Reports a failure that ended the command (an exception or a parse error).
int report_error(const std::string& message, int code, bool json);

std::string in_quotes(std::string_view text);

// Rows of cells as columns, two spaces apart: the columns flagged in `right` (numbers) aligned
// right, the rest left; no trailing spaces.
std::string text_table(const std::vector<std::vector<std::string>>& rows,
                       const std::vector<bool>& right);

// Writes `text` to stdout at once, never by SIGPIPE. Throws OutputError when it cannot be
// written (a full disk, a reader that went away, stdout closed): the result reached nobody.
void write_stdout(std::string_view text);
// dlock started with stdout closed (main put /dev/null there): results cannot be delivered.
void stdout_is_closed();

} // namespace dlock::cli
