#include "cli/common.hpp"

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace dlock::cli {

void add_global_options(CLI::App& app, GlobalOptions& global) {
    app.add_option("--redis", global.redis_url,
                   "Redis URL: redis://[user[:password]@]host[:port][/db] or "
                   "unix:///path/to/socket[?db=N]")
        ->type_name("URL")
        ->envname("DLOCK_REDIS_URL")
        ->capture_default_str();
    app.add_option("--timeout", global.timeout, "Connect and command timeout (DUR)")
        ->type_name("DUR")
        ->capture_default_str();
    app.add_option("--prefix", global.prefix, "Namespace for every Redis key")
        ->type_name("PREFIX")
        ->envname("DLOCK_PREFIX")
        ->capture_default_str();
    app.add_flag("--json", global.json, "Print exactly one JSON object on stdout");
    app.add_option("-E,--conflict-exit-code", global.conflict_exit_code,
                   "Exit code when the lock is busy or the wait runs out")
        ->type_name("N")
        ->check(CLI::Range(0, 255))
        ->capture_default_str();
    app.add_option("--db", global.db, "Ledger file (ledger commands only)")
        ->type_name("PATH")
        ->envname("DLOCK_DB")
        ->capture_default_str();
}

redis::Options redis_options(const GlobalOptions& global) {
    redis::Options options;
    options.url = redis::parse_url(global.redis_url);
    options.timeout = parse_positive_duration(global.timeout);
    if (!options.url.password) {
        if (const char* password = std::getenv("DLOCK_REDIS_PASSWORD"); password && *password)
            options.url.password = password;
    }
    return options;
}

std::unique_ptr<LockService> connect_lock_service(const GlobalOptions& global) {
    validate_prefix(global.prefix);
    return std::make_unique<RedisLock>(redis_options(global), global.prefix);
}

CLI::Option* add_key_argument(CLI::App& command, std::string& key) {
    return command
        .add_option("KEY", key, "Lock name (1-256 bytes of UTF-8, no control characters)")
        ->required();
}

int Reporter::ok(const nlohmann::json& result, const std::string& text) const {
    if (json_)
        std::cout << result.dump() << '\n';
    else if (!text.empty())
        std::cout << text << '\n';
    return exit_code::ok;
}

int Reporter::refuse(nlohmann::json result, const std::string& message, int code) const {
    std::cerr << "dlock: " << message << '\n';
    if (json_) {
        result["error"] = message;
        result["code"] = code;
        std::cout << result.dump() << '\n';
    }
    return code;
}

void Reporter::warn(const std::string& message) const {
    std::cerr << "dlock: " << message << '\n';
}

int report_error(const std::string& message, int code, bool json) {
    std::cerr << "dlock: " << message << '\n';
    if (json)
        std::cout << nlohmann::json{{"error", message}, {"code", code}}.dump() << '\n';
    return code;
}

} // namespace dlock::cli
