// Redis behind Sentinel: the redis+sentinel:// URL, asking the sentinels which server is the
// master, and SentinelLock, which keeps RedisLock on that master through failovers.
//
// Every connection asks every sentinel listed, in order, and follows the address named with
// the highest configuration epoch: the sentinel that led a failover names the new master first,
// before the others hear of it, so a client that asked only one could go on with a demoted
// master that is still writable. The server found is connected to only once ROLE says master.
#pragma once

#include "dlock/lock.hpp"
#include "dlock/redis.hpp"
#include "dlock/redis_lock.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dlock {
namespace redis {

inline constexpr int default_sentinel_port = 26379;

// redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/MASTER_NAME[/db], or
// rediss+sentinel://... to speak TLS to the sentinels and the master. The user and password are
// the master's; the sentinels' own password comes separately (DLOCK_SENTINEL_PASSWORD).
struct SentinelUrl {
    std::vector<Url> sentinels; // host and port of each; transport as the scheme says
    std::string master_name;
    Url master; // transport, user, password and db: host and port come from the sentinels

    // The URL without its password, safe for messages and logs.
    std::string redacted() const;
};

// Whether `text` starts with redis+sentinel:// or rediss+sentinel://.
bool is_sentinel_url(std::string_view text);
// Throws UsageError for a malformed URL; the password is never part of the message.
SentinelUrl parse_sentinel_url(std::string_view text);

struct SentinelOptions {
    SentinelUrl url;
    TlsOptions tls; // rediss+sentinel:// only: for the sentinels and the master alike
    std::optional<std::string> sentinel_password;
    Millis timeout = default_timeout; // each sentinel's connect and answer, and the master's
};

// The master as the sentinels name it.
struct NamedMaster {
    std::string host;
    int port = 0;
    std::int64_t epoch = 0; // the configuration epoch of the sentinel that named it
    std::string address() const;
};

// The sentinels of one master. Connections to them stay open between questions.
class Sentinels {
public:
    explicit Sentinels(SentinelOptions options);
    ~Sentinels();
    Sentinels(const Sentinels&) = delete;
    Sentinels& operator=(const Sentinels&) = delete;

    // Asks every sentinel at once, each within the timeout: the question goes out on every
    // connection before any answer is read, so on open connections the answers take one round
    // trip, however many sentinels there are. Throws UnavailableError saying what each
    // sentinel said when none named one.
    NamedMaster ask();
    // Connection options for `master`, which must be a master when connected to.
    Options master_options(const NamedMaster& master) const;
    const SentinelOptions& options() const { return options_; }

private:
    SentinelOptions options_;
    std::vector<std::unique_ptr<Connection>> connections_; // one per sentinel, null until used
};

} // namespace redis

// Locks on the master a set of sentinels names. Connects at once: asks the sentinels, connects
// to the server named, and checks with ROLE that it is a master; otherwise asks again (up to
// three times within the timeout), then throws UnavailableError with what each said.
//
// An acquisition counts only when the sentinels, asked again after it, still name the server it
// was taken on; otherwise it is released there (best effort) and taken on the new master. A
// wait (block) that loses its server to a failover finds the master again and goes on waiting,
// within its deadline; wait_forever waits through any number of failovers.
class SentinelLock final : public LockService {
public:
    SentinelLock(redis::SentinelOptions options, RedisLockSettings settings);

    using LockService::block;
    AcquireResult try_acquire(std::string_view key, Millis ttl) override;
    AcquireResult block(std::string_view key, Millis ttl, Millis wait,
                        const WaitObserver& observer) override;
    OwnerCheck release(std::string_view key, std::string_view token) override;
    OwnerCheck extend(std::string_view key, std::string_view token, Millis ttl) override;
    ForceReleaseResult force_release(std::string_view key,
                                     std::optional<std::string_view> only_owner) override;
    LockStatus status(std::string_view key) override;
    std::vector<LockListing> list(std::string_view pattern) override;
    void watch(std::string_view pattern, const LockWatcher& watcher) override;
    std::string fence_resource(std::string_view key) const override;

private:
    void connect();
    // connect(), again every second while it fails, until `deadline` (then it throws).
    void reconnect_until(std::chrono::steady_clock::time_point deadline);
    // Whether the sentinels still name the server `result`'s lock was taken on; when they
    // do not, the lock is released there.
    bool still_named(std::string_view key, const AcquireResult& result);

    redis::Sentinels sentinels_;
    RedisLockSettings settings_;
    std::string master_; // HOST:PORT of lock_'s server
    std::unique_ptr<RedisLock> lock_;
};

} // namespace dlock
