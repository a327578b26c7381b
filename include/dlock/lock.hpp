// Named locks: acquire, block, release, extend, force-release, status.
//
// Each lock owns four names in Redis, all sharing one cluster hash tag:
//   PREFIX{KEY}           the owner token, with a TTL (SET NX PX)
//   PREFIX{KEY}:fence     the fencing counter, never expires
//   PREFIX{KEY}:wake      a list a release pushes one wake-up onto; waiters BLPOP it
//   PREFIX{KEY}:released  the pub/sub channel a release is announced on, for observers
#pragma once

#include "dlock/duration.hpp"
#include "dlock/redis.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dlock {

inline constexpr std::string_view default_prefix = "dlock:";
inline constexpr Millis default_ttl{10'000};
inline constexpr Millis default_wait{5'000};
inline constexpr std::size_t max_key_bytes = 256;
inline constexpr std::size_t max_prefix_bytes = 64;
inline constexpr Millis wait_forever = Millis::max();

// Throws UsageError unless KEY is 1 to 256 bytes of valid UTF-8 without control characters.
void validate_key(std::string_view key);
// Throws UsageError unless PREFIX is at most 64 printable bytes without braces.
void validate_prefix(std::string_view prefix);
// Throws UsageError unless TOKEN looks like one new_owner_token() made.
void validate_token(std::string_view token);

// 128 bits from the kernel's CSPRNG (getrandom), as 32 lowercase hex digits.
std::string new_owner_token();

struct LockKeys {
    std::string lock;
    std::string fence;
    std::string wake;
    std::string channel;
};
// Braces and '%' in KEY are percent-encoded, so the hash tag is always exactly {KEY}.
LockKeys lock_keys(std::string_view prefix, std::string_view key);

// A lock this process holds.
struct Lease {
    std::string token;
    std::int64_t fence = 0; // strictly greater than every earlier fence of this KEY
    Millis ttl{0};
};

struct AcquireResult {
    std::optional<Lease> lease; // set when acquired
    Millis holder_ttl{0};       // when busy: the current holder's remaining time
    // When the attempt that gave this answer was sent. A lease taken by it counts its TTL from
    // some later moment, so `sent + ttl` never overstates it.
    std::chrono::steady_clock::time_point sent{};
    bool acquired() const { return lease.has_value(); }
};

// Why an owner-checked release or extend did (not) happen.
enum class OwnerCheck { done, not_held, not_owner };

struct LockStatus {
    std::optional<std::string> holder; // set when held
    Millis ttl{0};                     // remaining time when held
    std::optional<std::int64_t> fence; // the last fencing token issued, if any
};

struct ForceReleaseResult {
    std::optional<std::string> holder; // who held it, if anyone
    Millis ttl{0};                     // what was left of their lease
};

// The lock operations, independent of where locks live (one Redis today, a quorum later).
class LockService {
public:
    virtual ~LockService() = default;
    // One attempt (Laravel's get()).
    virtual AcquireResult try_acquire(std::string_view key, Millis ttl) = 0;
    // Waits until the lock is free or `wait` runs out (Laravel's block()); wait_forever waits.
    virtual AcquireResult block(std::string_view key, Millis ttl, Millis wait) = 0;
    virtual OwnerCheck release(std::string_view key, std::string_view token) = 0;
    virtual OwnerCheck extend(std::string_view key, std::string_view token, Millis ttl) = 0;
    virtual ForceReleaseResult force_release(std::string_view key) = 0;
    virtual LockStatus status(std::string_view key) = 0;
};

// Locks on one Redis server. Every operation is one script: one round trip.
class RedisLock final : public LockService {
public:
    RedisLock(const redis::Options& options, std::string prefix);

    AcquireResult try_acquire(std::string_view key, Millis ttl) override;
    AcquireResult block(std::string_view key, Millis ttl, Millis wait) override;
    OwnerCheck release(std::string_view key, std::string_view token) override;
    OwnerCheck extend(std::string_view key, std::string_view token, Millis ttl) override;
    ForceReleaseResult force_release(std::string_view key) override;
    LockStatus status(std::string_view key) override;

private:
    AcquireResult try_acquire_with_token(const LockKeys& keys, const std::string& token,
                                         Millis ttl);

    std::string prefix_;
    redis::Connection connection_;
};

} // namespace dlock
