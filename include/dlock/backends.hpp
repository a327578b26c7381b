// The only place that knows which lock stores and ledgers exist. Everything above speaks to
// LockService and Ledger; a new backend is one class behind one of those interfaces and one
// row in a table in backends.cpp, keyed by the URL scheme of its location.
#pragma once

#include "dlock/ledger.hpp"
#include "dlock/lock.hpp"
#include "dlock/postgres_ledger.hpp"
#include "dlock/redis.hpp"
#include "dlock/sqlite_ledger.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dlock {

// Where locks live and how to reach them.
struct LockConfig {
    // redis://, rediss://, unix://, redis+cluster://..., redis+sentinel://...; or 3, 5 or 7 URLs
    // separated by spaces: a quorum of independent servers (quorum_lock.hpp).
    std::string url{redis::default_url};
    redis::TlsOptions tls; // rediss:// only: CA, client certificate, name
    // Used when the URL carries none (DLOCK_REDIS_PASSWORD); the URL's own password wins.
    std::optional<std::string> password;
    Millis timeout = redis::default_timeout; // connect, and each command
    std::string prefix{default_prefix};      // namespace for every key
    KeyLayout layout = KeyLayout::dlock;     // where a lock lives under the prefix
    Identity identity;                       // what acquisitions record as their holder
    Millis fence_idle = default_fence_idle;  // how long an unused fencing counter is kept
    // redis+sentinel:// only: the sentinels' own password (DLOCK_SENTINEL_PASSWORD).
    std::optional<std::string> sentinel_password;
    int replicas = 0; // --replicas: writes count once this many replicas acknowledged them
};

// The URLs in `text`, separated by whitespace.
std::vector<std::string> lock_store_urls(std::string_view text);

// Connects to the lock store `config` names. Throws UsageError for a bad URL or prefix, an
// UnavailableError when the store cannot be reached.
std::unique_ptr<LockService> open_lock_service(const LockConfig& config);

// LockService::fence_resource without connecting: the name a fence for KEY carries, for writes
// made under a lock some other command holds (--fence N --lock-key KEY).
std::string fence_resource(const LockConfig& config, std::string_view key);

// Each backend's own settings; a backend reads only its part.
struct LedgerOptions {
    SqliteLedgerOptions sqlite{};
    PostgresLedgerOptions postgres{};
};

// Opens (creating or upgrading) the ledger at `location`: a file path is a SQLite ledger, a
// postgresql:// or postgres:// URI a PostgreSQL one.
// Throws UsageError for a location no backend takes, and what the backend throws on opening.
std::unique_ptr<Ledger> open_ledger(const std::string& location, const LedgerOptions& options);

} // namespace dlock
