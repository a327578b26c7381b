// What every subcommand shares: global options, connecting, and reporting outcomes.
#pragma once

#include "dlock/lock.hpp"
#include "dlock/redis.hpp"

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace dlock::cli {

struct GlobalOptions {
    std::string redis_url{redis::default_url};
    std::string timeout = "3s";
    std::string prefix{default_prefix};
    bool json = false;
    int conflict_exit_code = exit_code::conflict;
    std::string db = "dlock-ledger.db"; // the ledger file; only ledger commands open it
};

// The parsed command line and the exit code the subcommand that ran decided on.
struct Invocation {
    GlobalOptions global;
    int exit_code = exit_code::ok;
};

void add_global_options(CLI::App& app, GlobalOptions& global);

// Parses --redis and --timeout; the password may also come from DLOCK_REDIS_PASSWORD.
redis::Options redis_options(const GlobalOptions& global);
std::unique_ptr<LockService> connect_lock_service(const GlobalOptions& global);

// The required KEY positional; commands validate it with validate_key before any Redis call.
CLI::Option* add_key_argument(CLI::App& command, std::string& key);

// Prints outcomes: results on stdout (text or one JSON object), messages on stderr
// prefixed "dlock: ". Every method returns the exit code it was given, for `return`.
class Reporter {
public:
    explicit Reporter(bool json) : json_(json) {}

    // Success: `text` (if any) on stdout, or `result` as JSON.
    int ok(const nlohmann::json& result, const std::string& text) const;
    // An expected refusal (busy, not owner, ...): `message` on stderr; with --json, `result`
    // plus "error" and "code" on stdout.
    int refuse(nlohmann::json result, const std::string& message, int code) const;
    // A warning on stderr that changes nothing else.
    void warn(const std::string& message) const;

private:
    bool json_;
};

// A message as dlock prints it: one line, whatever it quotes. Control characters and bytes
// that are not UTF-8 show as \xNN (\n, \t), and the password of anything shaped like
// scheme://user:password@host as ***. Every message on stderr and in JSON "error" goes
// through it.
std::string printable(std::string_view message);

// Reports a failure that ended the command (an exception or a parse error).
int report_error(const std::string& message, int code, bool json);

// Writes `text` to stdout at once, never by SIGPIPE. Throws OutputError when it cannot be
// written (a full disk, a reader that went away, stdout closed): the result reached nobody.
void write_stdout(std::string_view text);
// dlock started with stdout closed (main put /dev/null there): results cannot be delivered.
void stdout_is_closed();

} // namespace dlock::cli
