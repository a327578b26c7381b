#include "dlock/backends.hpp"

#include "dlock/quorum_lock.hpp"
#include "dlock/redis_lock.hpp"
#include "dlock/redis_sentinel.hpp"

#include <array>

namespace dlock {
namespace {

std::string_view scheme_of(std::string_view location) {
    const std::size_t end = location.find("://");
    return end == std::string_view::npos ? std::string_view{} : location.substr(0, end);
}

// ----- lock stores -----

redis::Options redis_options(const LockConfig& config, std::string_view url) {
    redis::Options options;
    options.url = redis::parse_url(url);
    options.timeout = config.timeout;
    options.tls = config.tls;
    if (!options.tls.empty() && options.url.transport != redis::Url::Transport::tls)
        throw UsageError("the --tls-* options are for rediss:// URLs; " + options.url.redacted() +
                         " is not one");
    if (!options.url.password)
        options.url.password = config.password;
    return options;
}

RedisLockSettings redis_lock_settings(const LockConfig& config) {
    return {config.prefix, config.layout, config.identity, config.fence_idle, config.replicas};
}

std::unique_ptr<LockService> open_redis_lock(const LockConfig& config) {
    return std::make_unique<RedisLock>(redis_options(config, config.url),
                                       redis_lock_settings(config));
}

redis::SentinelOptions sentinel_options(const LockConfig& config, std::string_view url) {
    redis::SentinelOptions options;
    options.url = redis::parse_sentinel_url(url);
    options.timeout = config.timeout;
    options.tls = config.tls;
    if (!options.tls.empty() && options.url.master.transport != redis::Url::Transport::tls)
        throw UsageError("the --tls-* options are for rediss:// and rediss+sentinel:// URLs; " +
                         options.url.redacted() + " is not one");
    if (!options.url.master.password)
        options.url.master.password = config.password;
    options.sentinel_password = config.sentinel_password;
    return options;
}

std::unique_ptr<LockService> open_sentinel_lock(const LockConfig& config) {
    return std::make_unique<SentinelLock>(sentinel_options(config, config.url),
                                          redis_lock_settings(config));
}

std::string redis_fence_resource(const LockConfig& config, std::string_view key) {
    validate_prefix(config.prefix, config.layout);
    validate_key(key);
    return lock_keys(config.layout, config.prefix, key).lock;
}

// Several URLs: a quorum of independent servers, each reached as one would be alone.
std::unique_ptr<LockService> open_quorum_lock(const LockConfig& config,
                                              const std::vector<std::string>& urls) {
    validate_quorum_size(urls.size());
    if (config.replicas > 0)
        throw UsageError("--replicas waits for the replicas of one Redis server; a quorum's "
                         "servers are independent masters (leave --replicas out)");
    std::vector<QuorumMember> servers;
    for (const std::string& url : urls) {
        QuorumMember& member = servers.emplace_back();
        if (redis::is_sentinel_url(url)) {
            member.sentinel = sentinel_options(config, url);
            member.server.timeout = config.timeout;
            continue;
        }
        member.server = redis_options(config, url);
        if (!member.server.url.cluster_seeds.empty())
            throw UsageError("a quorum takes independent servers; " + member.server.url.redacted() +
                             " is a Redis Cluster (give it alone)");
    }
    return std::make_unique<QuorumLock>(
        std::move(servers),
        RedisLockSettings{config.prefix, config.layout, config.identity, config.fence_idle});
}

struct LockBackend {
    std::string_view scheme;
    std::unique_ptr<LockService> (*open)(const LockConfig&);
    std::string (*fence_resource)(const LockConfig&, std::string_view key);
};

constexpr std::array lock_backends{
    LockBackend{"redis", open_redis_lock, redis_fence_resource},
    LockBackend{"rediss", open_redis_lock, redis_fence_resource},
    LockBackend{"unix", open_redis_lock, redis_fence_resource},
    LockBackend{"redis+cluster", open_redis_lock, redis_fence_resource},
    LockBackend{"rediss+cluster", open_redis_lock, redis_fence_resource},
    LockBackend{"redis+sentinel", open_sentinel_lock, redis_fence_resource},
    LockBackend{"rediss+sentinel", open_sentinel_lock, redis_fence_resource},
};

const LockBackend& lock_backend(const LockConfig& config) {
    const std::string_view scheme = scheme_of(config.url);
    for (const LockBackend& backend : lock_backends)
        if (backend.scheme == scheme)
            return backend;
    // parse_url refuses it with the usual message, naming the URL forms it accepts.
    redis::parse_url(config.url);
    throw InternalError("no lock backend for URL scheme '" + std::string(scheme) + "'");
}

// ----- ledgers -----

std::unique_ptr<Ledger> open_sqlite_ledger(const std::string& path, const LedgerOptions& options) {
    if (path.empty())
        throw UsageError("--db needs a file path");
    // This SQLite understands URIs and ':memory:'; a ledger is always a plain file.
    if (path == ":memory:" || path.rfind("file:", 0) == 0)
        throw UsageError("--db '" + path + "' is not a plain file path (write ./" + path +
                         " for a file of that name)");
    return std::make_unique<SqliteLedger>(path, options.sqlite);
}

std::unique_ptr<Ledger> open_postgres_ledger(const std::string& uri, const LedgerOptions& options) {
    return std::make_unique<PostgresLedger>(uri, options.postgres);
}

struct LedgerBackend {
    std::string_view scheme; // empty: a plain path
    std::unique_ptr<Ledger> (*open)(const std::string& location, const LedgerOptions&);
};

constexpr std::array ledger_backends{
    LedgerBackend{"", open_sqlite_ledger},
    LedgerBackend{"postgresql", open_postgres_ledger},
    LedgerBackend{"postgres", open_postgres_ledger},
};

} // namespace

std::vector<std::string> lock_store_urls(std::string_view text) {
    std::vector<std::string> urls;
    std::size_t at = 0;
    while ((at = text.find_first_not_of(" \t\n", at)) != std::string_view::npos) {
        const std::size_t end = std::min(text.find_first_of(" \t\n", at), text.size());
        urls.emplace_back(text.substr(at, end - at));
        at = end;
    }
    return urls;
}

std::unique_ptr<LockService> open_lock_service(const LockConfig& config) {
    if (const std::vector<std::string> urls = lock_store_urls(config.url); urls.size() > 1)
        return open_quorum_lock(config, urls);
    return lock_backend(config).open(config);
}

std::string fence_resource(const LockConfig& config, std::string_view key) {
    if (const std::vector<std::string> urls = lock_store_urls(config.url); urls.size() > 1) {
        LockConfig first = config;
        first.url = urls.front();
        return lock_backend(first).fence_resource(first, key);
    }
    return lock_backend(config).fence_resource(config, key);
}

std::unique_ptr<Ledger> open_ledger(const std::string& location, const LedgerOptions& options) {
    const std::string_view scheme = scheme_of(location);
    for (const LedgerBackend& backend : ledger_backends)
        if (backend.scheme == scheme)
            return backend.open(location, options);
    throw UsageError("--db '" + std::string(scheme) +
                     "://...' is not a ledger dlock can open (give a file path for SQLite, or a "
                     "postgresql:// URI)");
}

} // namespace dlock
