// Locks on one Redis server: every operation is one script, one round trip.
//
// Each lock owns these names in Redis, all sharing one cluster hash tag, and none outlives its
// use: each has a TTL.
//   PREFIX{KEY}           the owner token, with the lease as its TTL (SET NX PX)
//   PREFIX{KEY}:holder    a hash: who holds it (host, pid, user, command, since, renewals);
//                         the lease as its TTL
//   PREFIX{KEY}:fence     the fencing counter; expires after the fence idle period
//   PREFIX{KEY}:waiting   set by an attempt that found the lock held: someone may wait (60s)
//   PREFIX{KEY}:wake      a list a release pushes one wake-up onto when someone may wait;
//                         waiters BLPOP it (60s)
//   PREFIX{KEY}:events    the pub/sub channel every change is announced on (acquired,
//                         extended, released, force-released), for watchers
#pragma once

#include "dlock/lock.hpp"
#include "dlock/redis.hpp"

#include <string>
#include <string_view>

namespace dlock {

struct LockKeys {
    std::string lock;
    std::string holder;
    std::string fence;
    std::string waiting;
    std::string wake;
    std::string channel;
};
// Braces and '%' in KEY are percent-encoded, so the hash tag is always exactly {KEY}.
LockKeys lock_keys(std::string_view prefix, std::string_view key);

class RedisLock final : public LockService {
public:
    // Connects at once; throws UsageError for a bad prefix, a RedisError when unreachable.
    // Acquisitions record `identity` as their holder.
    RedisLock(const redis::Options& options, std::string prefix, Identity identity = {},
              Millis fence_idle = default_fence_idle);

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
    // KEY from a lock's Redis name, PREFIX{ENCODED}.
    std::string key_of(std::string_view lock_name) const;

    redis::Options options_;
    std::string prefix_;
    Identity identity_;
    Millis fence_idle_;
    redis::Connection connection_;
};

} // namespace dlock
