#include "cli/common.hpp"

#include <algorithm>
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
    app.add_option("--timeout", global.timeout,
                   "Connect and command timeout; also connecting to a PostgreSQL ledger (DUR)")
        ->type_name("DUR")
        ->capture_default_str();
    app.add_option("--prefix", global.prefix, "Namespace for every Redis key")
        ->type_name("PREFIX")
        ->envname("DLOCK_PREFIX")
        ->check(non_empty)
        ->check(CLI::Validator(
            [](std::string& value) {
                return value.rfind('-', 0) == 0
                           ? "'" + value + "' looks like an option, not a prefix"
                           : std::string();
            },
            "", "not-an-option"))
        ->capture_default_str();
    app.add_flag("--json", global.json, "Print exactly one JSON object on stdout");
    app.add_option("-E,--conflict-exit-code", global.conflict_exit_code,
                   "Exit code when the lock is busy or the wait runs out")
        ->type_name("N")
        ->check(CLI::Range(0, 255))
        ->capture_default_str();
    app.add_option("--db", global.db,
                   "Ledger: a file (SQLite) or postgresql://[user@]host[:port]/dbname "
                   "(ledger commands only)")
        ->type_name("PATH|URI")
        ->envname("DLOCK_DB")
        ->capture_default_str();
}

LockConfig lock_config(const GlobalOptions& global) {
    LockConfig config;
    config.url = global.redis_url;
    config.timeout = parse_positive_duration(global.timeout);
    config.prefix = global.prefix;
    if (const char* password = std::getenv("DLOCK_REDIS_PASSWORD"); password && *password)
        config.password = password;
    return config;
}

std::unique_ptr<LockService> open_locks(const GlobalOptions& global) {
    return open_lock_service(lock_config(global));
}

const CLI::Validator non_empty{[](std::string& value) {
                                   return value.empty() ? std::string("must not be empty")
                                                        : std::string();
                               },
                               "", "non-empty"};

CLI::Option* add_key_argument(CLI::App& command, std::string& key) {
    return command
        .add_option("KEY", key, "Lock name (1-256 bytes of UTF-8, no control characters)")
        ->required();
}

namespace {

// Length of the UTF-8 sequence at text[i] if it is valid and printable (no C1 control), else 0.
std::size_t printable_utf8_length(std::string_view text, std::size_t i) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const std::size_t length = lead >= 0xC2 && lead <= 0xDF   ? 2
                               : lead >= 0xE0 && lead <= 0xEF ? 3
                               : lead >= 0xF0 && lead <= 0xF4 ? 4
                                                              : 0;
    if (length == 0 || i + length > text.size())
        return 0;
    char32_t code_point = lead & (0x7F >> length);
    for (std::size_t k = 1; k < length; ++k) {
        const auto byte = static_cast<unsigned char>(text[i + k]);
        if ((byte & 0xC0) != 0x80)
            return 0;
        code_point = (code_point << 6) | (byte & 0x3F);
    }
    const char32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code_point < smallest[length] || (code_point >= 0xD800 && code_point <= 0xDFFF) ||
        code_point > 0x10FFFF || (code_point >= 0x80 && code_point < 0xA0))
        return 0;
    return length;
}

// scheme://user:password@host anywhere in `text` (a stray argument CLI11 echoes, say) shows
// as scheme://user:***@host.
std::string redact_urls(std::string text) {
    for (std::size_t scheme = text.find("://"); scheme != std::string::npos;
         scheme = text.find("://", scheme + 3)) {
        const std::size_t start = scheme + 3;
        const std::size_t end = std::min(text.find_first_of(" \t\n'\"", start), text.size());
        const std::size_t at = text.rfind('@', end == 0 ? 0 : end - 1);
        if (at == std::string::npos || at < start)
            continue;
        const std::size_t colon = text.find(':', start);
        if (colon < at)
            text.replace(colon + 1, at - colon - 1, "***");
    }
    return text;
}

nlohmann::json::string_t dump(const nlohmann::json& value) {
    // Input echoed in a message may be any bytes; never let it stop the report.
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

std::string printable(std::string_view message) {
    const std::string redacted = redact_urls(std::string(message));
    std::string out;
    out.reserve(redacted.size());
    for (std::size_t i = 0; i < redacted.size();) {
        const auto byte = static_cast<unsigned char>(redacted[i]);
        if (byte >= 0x20 && byte < 0x7F) {
            out += redacted[i++];
            continue;
        }
        if (const std::size_t length = printable_utf8_length(redacted, i); length > 0) {
            out.append(redacted, i, length);
            i += length;
            continue;
        }
        static constexpr char digits[] = "0123456789abcdef";
        out += byte == '\n'   ? std::string("\\n")
               : byte == '\t' ? std::string("\\t")
                              : std::string{'\\', 'x', digits[byte >> 4], digits[byte & 0x0F]};
        ++i;
    }
    return out;
}

int Reporter::ok(const nlohmann::json& result, const std::string& text) const {
    if (json_)
        std::cout << dump(result) << '\n';
    else if (!text.empty())
        std::cout << text << '\n';
    return exit_code::ok;
}

int Reporter::refuse(nlohmann::json result, const std::string& message, int code) const {
    const std::string line = printable(message);
    std::cerr << "dlock: " << line << '\n';
    if (json_) {
        result["error"] = line;
        result["code"] = code;
        std::cout << dump(result) << '\n';
    }
    return code;
}

void Reporter::warn(const std::string& message) const {
    std::cerr << "dlock: " << printable(message) << '\n';
}

Notice Reporter::notice() const {
    return [](const std::string& message) {
        Reporter(false).warn(message);
    };
}

std::string in_quotes(std::string_view text) {
    return "'" + std::string(text) + "'";
}

std::string when_free(const Remaining& ttl) {
    return ttl ? "free in " + format_duration(*ttl) + " at the latest"
               : "held without a TTL: it never frees by itself; see 'dlock force-release'";
}

nlohmann::json ttl_ms_json(const Remaining& ttl) {
    return ttl ? nlohmann::json(ttl->count()) : nlohmann::json(nullptr);
}

int report_error(const std::string& message, int code, bool json) {
    const std::string line = printable(message);
    std::cerr << "dlock: " << line << '\n';
    if (json)
        std::cout << dump(nlohmann::json{{"error", line}, {"code", code}}) << '\n';
    return code;
}

} // namespace dlock::cli
