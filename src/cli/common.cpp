#include "cli/common.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <poll.h>
#include <unistd.h>

namespace dlock::cli {

GlobalOptionFilter GlobalOptionFilter::named_in(int argc, const char* const* argv) {
    GlobalOptionFilter filter;
    filter.everything_ = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view word = argv[i];
        if (word == "--")
            break;
        if (word == "-h" || word == "--help" || word == "-V" || word == "--version")
            return all();
        if (word.size() > 1 && word.front() == '-')
            filter.words_.push_back(word);
    }
    return filter;
}

GlobalOptionFilter GlobalOptionFilter::rest() const {
    GlobalOptionFilter filter = *this;
    filter.inverted_ = !inverted_;
    return filter;
}

bool GlobalOptionFilter::named(std::string_view name) const {
    for (const std::string_view word : words_) {
        if (name.starts_with("--")) {
            if (word == name || (word.starts_with(name) && word[name.size()] == '='))
                return true;
        } else if (!word.starts_with("--") && word.find(name[1]) != std::string_view::npos) {
            return true; // -X, -XVALUE, or a cluster of flags such as -vq
        }
    }
    return false;
}

bool GlobalOptionFilter::wants(std::string_view names) const {
    bool any = everything_;
    for (std::size_t start = 0; !any && start < names.size();) {
        const std::size_t comma = std::min(names.find(',', start), names.size());
        any = named(names.substr(start, comma - start));
        start = comma + 1;
    }
    return any != inverted_;
}

void add_global_options(CLI::App& app, Invocation& inv, const GlobalOptionFilter& filter) {
    const Settings& settings = inv.settings;
    GlobalOptions& global = inv.global;
    global.redis_url = settings.value("redis_url");
    global.redis_password = settings.value("redis_password");
    global.db_password = settings.value("db_password");
    global.timeout = settings.value("timeout");
    global.prefix = settings.value("prefix");
    global.layout = settings.value("layout");
    global.json = settings.value("json") == "true";
    global.conflict_exit_code = std::stoi(settings.value("conflict_exit_code"));
    global.db = settings.value("db");
    global.fence_idle = settings.value("fence_idle");
    global.tls_ca = settings.value("tls_ca");
    global.tls_cert = settings.value("tls_cert");
    global.tls_key = settings.value("tls_key");
    global.tls_server_name = settings.value("tls_server_name");
    global.sentinel_password = settings.value("sentinel_password");
    global.replicas = std::stoi(settings.value("replicas"));

    if (filter.wants("--redis"))
        app.add_option(
               "--redis", global.redis_url,
               "Redis URL: redis://[user[:password]@]host[:port][/db], rediss://... (TLS), "
               "unix:///path/to/socket[?db=N], a Redis Cluster's seed nodes "
               "redis+cluster://host:port,host:port/ (rediss+cluster:// for TLS), or a master "
               "found through Redis Sentinel "
               "redis+sentinel://host[:port][,host[:port]...]/MASTER_NAME[/db]; given 3, 5 "
               "or 7 times, a quorum of independent servers")
            ->type_name("URL")
            ->multi_option_policy(CLI::MultiOptionPolicy::Join)
            ->delimiter(' ')
            ->capture_default_str();
    if (filter.wants("--tls-ca"))
        app.add_option("--tls-ca", global.tls_ca,
                       "rediss://: verify the server against the CA certificates in FILE (PEM) "
                       "instead of the system's")
            ->type_name("FILE");
    if (filter.wants("--tls-cert"))
        app.add_option("--tls-cert", global.tls_cert,
                       "rediss://: present the client certificate in FILE (PEM; with --tls-key)")
            ->type_name("FILE");
    if (filter.wants("--tls-key"))
        app.add_option("--tls-key", global.tls_key,
                       "rediss://: the private key of --tls-cert (PEM)")
            ->type_name("FILE");
    if (filter.wants("--tls-server-name"))
        app.add_option(
               "--tls-server-name", global.tls_server_name,
               "rediss://: the name the server's certificate must carry, when not the URL's "
               "host")
            ->type_name("NAME");
    if (filter.wants("--replicas"))
        app.add_option("--replicas", global.replicas,
                       "Count a lock taken (acquire, block, run) or extended only once N replicas "
                       "acknowledged it (WAIT, within --timeout); else release it and exit 69")
            ->type_name("N")
            ->check(CLI::Range(0, max_replicas))
            ->capture_default_str();
    if (filter.wants("--timeout"))
        app.add_option("--timeout", global.timeout,
                       "Connect and command timeout; also connecting to a PostgreSQL ledger (DUR)")
            ->type_name("DUR")
            ->capture_default_str();
    if (filter.wants("--prefix"))
        app.add_option("--prefix", global.prefix,
                       "Namespace for every Redis key (--layout plain: any text, '' for none)")
            ->type_name("PREFIX")
            ->check(CLI::Validator(
                [](std::string& value) {
                    return value.rfind('-', 0) == 0
                               ? "'" + value + "' looks like an option, not a prefix"
                               : std::string();
                },
                "", "not-an-option"))
            ->capture_default_str();
    if (filter.wants("--layout"))
        app.add_option(
               "--layout", global.layout,
               "Where a lock lives: dlock (PREFIX{KEY}, the default) or plain (PREFIX+KEY, "
               "shared with Laravel's Cache::lock, redis-py and other Redis lock libraries)")
            ->type_name("LAYOUT")
            ->check(CLI::IsMember({"dlock", "plain"}))
            ->capture_default_str();
    if (filter.wants("--json"))
        app.add_flag("--json", global.json, "Print exactly one JSON object on stdout");
    if (filter.wants("-v,--verbose,-q,--quiet")) { // declared together: they exclude each other
        auto* verbose = app.add_flag("-v,--verbose", global.verbose,
                                     "Say on stderr what dlock does and whom it waits for");
        app.add_flag("-q,--quiet", global.quiet, "Nothing on stderr but errors")->excludes(verbose);
    }
    if (filter.wants("-E,--conflict-exit-code"))
        app.add_option("-E,--conflict-exit-code", global.conflict_exit_code,
                       "Exit code when the lock is busy or the wait runs out")
            ->type_name("N")
            ->check(CLI::Range(0, 255))
            ->capture_default_str();
    if (filter.wants("--db"))
        app.add_option("--db", global.db,
                       "Ledger: a file (SQLite) or postgresql://[user@]host[:port]/dbname "
                       "(ledger commands only)")
            ->type_name("PATH|URI")
            ->capture_default_str();
    if (filter.wants("--config"))
        app.add_option("--config", global.config_file,
                       "Read settings from FILE instead of ~/.config/dlock/dlock.conf (see "
                       "'dlock config')")
            ->type_name("FILE");
}

void apply_settings(KeyedLockOptions& opts, const Settings& settings) {
    opts.ttl = settings.value("ttl");
    opts.wait = settings.value("wait");
}

LockConfig lock_config(const GlobalOptions& global, Identity identity) {
    LockConfig config;
    config.identity = std::move(identity);
    config.url = global.redis_url;
    config.tls = {global.tls_ca, global.tls_cert, global.tls_key, global.tls_server_name};
    config.timeout = parse_positive_duration(global.timeout);
    config.prefix = global.prefix;
    config.layout = parse_layout(global.layout);
    if (config.layout == KeyLayout::dlock && config.prefix.empty())
        throw UsageError("--prefix must not be empty in the dlock layout (--layout plain takes "
                         "an empty prefix: the bare key)");
    validate_prefix(config.prefix, config.layout);
    config.fence_idle = parse_positive_duration(global.fence_idle);
    if (!global.redis_password.empty())
        config.password = global.redis_password;
    if (!global.sentinel_password.empty())
        config.sentinel_password = global.sentinel_password;
    config.replicas = global.replicas;
    return config;
}

std::unique_ptr<LockService> open_locks(const GlobalOptions& global, Identity identity) {
    return open_lock_service(lock_config(global, std::move(identity)));
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

// The placeholder of redis::url_forms, which usage messages quote.
constexpr std::string_view userinfo_placeholder = "[user[:password]@";

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
        if (text.compare(start, userinfo_placeholder.size(), userinfo_placeholder) == 0)
            continue; // the usage hint's own "[user[:password]@", no password in it
        const std::size_t colon = text.find(':', start);
        if (colon < at)
            text.replace(colon + 1, at - colon - 1, "***");
    }
    return text;
}

std::string dump(const nlohmann::json& value) {
    // Input echoed in a message may be any bytes; never let it stop the report.
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

std::string json_text(const nlohmann::json& value) {
    return dump(value);
}

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

namespace {

bool stdout_closed = false;

// For the span of one write to stdout, SIGPIPE is blocked, and one it raised is taken back
// before the mask is restored: a reader that went away is an EPIPE, reported like any failed
// write, and the process-wide disposition stays as it was (commands that `dlock run` starts
// get it untouched).
class SigpipeBlocked {
public:
    SigpipeBlocked() {
        sigemptyset(&sigpipe_);
        sigaddset(&sigpipe_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &sigpipe_, &saved_);
    }
    ~SigpipeBlocked() {
        const int saved_errno = errno;
        sigset_t pending;
        sigpending(&pending);
        if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
            const timespec now{0, 0};
            while (sigtimedwait(&sigpipe_, nullptr, &now) < 0 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
        errno = saved_errno;
    }
    SigpipeBlocked(const SigpipeBlocked&) = delete;
    SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

private:
    sigset_t sigpipe_{};
    sigset_t saved_{};
    bool was_pending_ = false;
};

[[noreturn]] void cannot_write(int error) {
    throw OutputError(std::string("cannot write the result to stdout: ") + std::strerror(error));
}

} // namespace

void stdout_is_closed() {
    stdout_closed = true;
}

void write_stdout(std::string_view text) {
    if (stdout_closed)
        cannot_write(EBADF);
    const SigpipeBlocked quiet;
    while (!text.empty()) {
        const ssize_t n = write(STDOUT_FILENO, text.data(), text.size());
        if (n > 0) {
            text.remove_prefix(static_cast<std::size_t>(n));
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pollfd pfd{STDOUT_FILENO, POLLOUT, 0}; // a non-blocking stdout we inherited
            poll(&pfd, 1, -1);
        } else if (n < 0 && errno != EINTR) {
            cannot_write(errno);
        }
    }
}

int Reporter::ok(const nlohmann::json& result, const std::string& text) const {
    if (json_)
        write_stdout(dump(result) + '\n');
    else if (!text.empty())
        write_stdout(text + '\n');
    return exit_code::ok;
}

int Reporter::refuse(nlohmann::json result, const std::string& message, int code) const {
    const std::string line = printable(message);
    std::cerr << "dlock: " << line << '\n';
    if (json_) {
        result["error"] = line;
        result["code"] = code;
        write_stdout(dump(result) + '\n');
    }
    return code;
}

void Reporter::warn(const std::string& message) const {
    if (!quiet_)
        std::cerr << "dlock: " << printable(message) << '\n';
}

Notice Reporter::notice() const {
    return [reporter = *this](const std::string& message) {
        reporter.warn(message);
    };
}

std::string text_table(const std::vector<std::vector<std::string>>& rows,
                       const std::vector<bool>& right) {
    std::vector<std::size_t> widths(right.size(), 0);
    for (const auto& row : rows)
        for (std::size_t c = 0; c < row.size(); ++c)
            widths[c] = std::max(widths[c], row[c].size());
    std::string text;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < row.size(); ++c) {
            const std::string padding(widths[c] - row[c].size(), ' ');
            line += (c == 0 ? "" : "  ") + (right[c] ? padding + row[c] : row[c] + padding);
        }
        line.erase(line.find_last_not_of(' ') + 1);
        text += (text.empty() ? "" : "\n") + line;
    }
    return text;
}

std::string in_quotes(std::string_view text) {
    return "'" + std::string(text) + "'";
}

int report_error(const std::string& message, int code, bool json) {
    const std::string line = printable(message);
    std::cerr << "dlock: " << line << '\n';
    if (json) {
        try {
            write_stdout(dump(nlohmann::json{{"error", line}, {"code", code}}) + '\n');
        } catch (const OutputError&) {
            // Said on stderr already; stdout is what failed.
        }
    }
    return code;
}

} // namespace dlock::cli
