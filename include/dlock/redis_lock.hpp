// Locks on one Redis server, or on a Redis Cluster (each lock on the node that serves its slot):
// every operation is one script, one round trip.
//
// In the dlock layout each lock owns these names in Redis, all sharing one cluster hash tag,
// and none outlives its use: each has a TTL.
//   PREFIX{KEY}           the owner token, with the lease as its TTL (SET NX PX)
//   PREFIX{KEY}:holder    a hash: who holds it (host, pid, user, command, since, renewals);
//                         the lease as its TTL
//   PREFIX{KEY}:fence     the fencing counter; expires after the fence idle period
//   PREFIX{KEY}:waiting   set by an attempt that found the lock held: someone may wait (60s)
//   PREFIX{KEY}:wake      a list a release pushes one wake-up onto when someone may wait but
//                         nobody queues (60s)
//   PREFIX{KEY}:queue     the waiters' owner tokens, first come first (65s after the last
//                         waiter's attempt)
//   PREFIX{KEY}:queued    a hash: each waiter's deadline and hand-off window (as the queue)
//   PREFIX{KEY}:wake:TOKEN  a waiter's own wake list, which it BLPOPs: a hand-off pushes onto
//                         it (60s)
//   PREFIX{KEY}:events    the pub/sub channel every change is announced on (acquired,
//                         extended, released, force-released), for watchers
// In the plain layout the lock is PREFIX + KEY exactly, holding the bare owner, and the other
// names are PREFIX + KEY + ":dlock:holder", ":dlock:fence", ":dlock:waiting", ":dlock:wake",
// ":dlock:queue", ":dlock:queued", ":dlock:wake:TOKEN" and ":dlock:events": the app that shares
// the lock reads and writes only the lock itself.
#pragma once

#include "dlock/lock.hpp"
#include "dlock/redis.hpp"
#include "dlock/redis_cluster.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace dlock {

struct LockKeys {
    std::string lock;
    std::string holder;
    std::string fence;
    std::string waiting;
    std::string wake;
    std::string channel;
    std::string queue;
    std::string queued;
};
// Braces and '%' in KEY are percent-encoded, so the hash tag is always exactly {KEY}.
LockKeys lock_keys(std::string_view prefix, std::string_view key);
LockKeys lock_keys(KeyLayout layout, std::string_view prefix, std::string_view key);

// KEY from a lock's Redis name, and the glob that matches the Redis names of the locks whose KEY
// matches `pattern` (* ? [..] as in Redis MATCH).
std::string key_of_lock_name(KeyLayout layout, std::string_view prefix, std::string_view lock_name);
std::string lock_names_matching(KeyLayout layout, std::string_view prefix,
                                std::string_view pattern);

// The holder record (HGETALL's field/value pairs), when it belongs to the owner `token`.
std::optional<HolderDetails> holder_details(redis::ReplyView fields, const std::string& token);

// How long a waiter handed the lock by a release has to take it up before it passes to the next
// waiter: a third of the TTL it asked for, at least 100 ms and at most 1 s.
Millis hand_off_window(Millis ttl);

// What a RedisLock needs besides the connection.
struct RedisLockSettings {
    std::string prefix{default_prefix};
    KeyLayout layout = KeyLayout::dlock;
    Identity identity{};                    // what acquisitions record as their holder
    Millis fence_idle = default_fence_idle; // how long an unused fencing counter is kept
    // --replicas N: a write that takes or extends a lock counts only once N replicas have
    // acknowledged it (WAIT N, within the connection's timeout).
    int replicas = 0;
};

// Fewer replicas than RedisLockSettings::replicas acknowledged a write in time. An acquisition
// is released again before this is thrown; an extension stands on the master.
class NotReplicatedError : public redis::RedisError {
public:
    using redis::RedisError::RedisError;
};

class RedisLock final : public LockService {
public:
    // Connects at once; throws UsageError for a bad prefix, a RedisError when unreachable.
    RedisLock(const redis::Options& options, RedisLockSettings settings);
    RedisLock(const redis::Options& options, std::string prefix)
        : RedisLock(options, RedisLockSettings{std::move(prefix)}) {}

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
    bool still_connected() const override { return connection_.open(); }

private:
    LockKeys keys_of(std::string_view key) const;
    // KEY from a lock's Redis name.
    std::string key_of(std::string_view lock_name) const;
    // The glob that matches the Redis names of the locks whose KEY matches `pattern`.
    std::string names_matching(std::string_view pattern) const;
    // Whether the server sends keyspace notifications of deletions and expiries (asked once).
    bool notifies_releases();
    // Takes a waiter whose wait ran out out of the queue.
    void leave_queue(const LockKeys& keys, const std::string& token);
    // Sends `commands`, an acquire attempt last (one of them may block for `blocks_for`), and
    // with --replicas a WAIT behind them, in one round trip. Throws NotReplicatedError, having
    // released the lock, when it was taken but too few replicas acknowledged it.
    AcquireResult attempt(std::vector<std::vector<std::string_view>> commands, Millis blocks_for,
                          std::string_view key, const LockKeys& keys, const std::string& token,
                          Millis ttl, std::chrono::steady_clock::time_point sent);
    // The WAIT that follows a write with --replicas.
    std::vector<std::string_view> wait_for_replicas() const;
    // What a WAIT answered, as a message: "only 0 of 1 replicas acknowledged ...".
    std::string too_few_replicas(std::int64_t acknowledged) const;
    // Whether the server is a replica (asked once; a user without +role never knows).
    bool is_replica();

    redis::Options options_;
    RedisLockSettings settings_;
    std::optional<bool> notifies_releases_;
    std::optional<bool> replica_;
    std::string replicas_text_;
    std::string wait_timeout_ms_;
    redis::Router connection_; // one server, or each lock's node of a Redis Cluster
};

} // namespace dlock
