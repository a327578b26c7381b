// Locks on one Redis server: every operation is one script, one round trip.
//
// Each lock owns four names in Redis, all sharing one cluster hash tag:
//   PREFIX{KEY}           the owner token, with a TTL (SET NX PX)
//   PREFIX{KEY}:fence     the fencing counter, never expires
//   PREFIX{KEY}:wake      a list a release pushes one wake-up onto; waiters BLPOP it
//   PREFIX{KEY}:released  the pub/sub channel a release is announced on, for observers
#pragma once

#include "dlock/lock.hpp"
#include "dlock/redis.hpp"

#include <string>
#include <string_view>

namespace dlock {

struct LockKeys {
    std::string lock;
    std::string fence;
    std::string wake;
    std::string channel;
};
// Braces and '%' in KEY are percent-encoded, so the hash tag is always exactly {KEY}.
LockKeys lock_keys(std::string_view prefix, std::string_view key);

class RedisLock final : public LockService {
public:
    // Connects at once; throws UsageError for a bad prefix, a RedisError when unreachable.
    RedisLock(const redis::Options& options, std::string prefix);

    AcquireResult try_acquire(std::string_view key, Millis ttl) override;
    AcquireResult block(std::string_view key, Millis ttl, Millis wait) override;
    OwnerCheck release(std::string_view key, std::string_view token) override;
    OwnerCheck extend(std::string_view key, std::string_view token, Millis ttl) override;
    ForceReleaseResult force_release(std::string_view key) override;
    LockStatus status(std::string_view key) override;
    std::string fence_resource(std::string_view key) const override;

private:
    std::string prefix_;
    redis::Connection connection_;
};

} // namespace dlock
