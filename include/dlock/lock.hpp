// Named locks as the rest of dlock sees them, wherever they live: the LockService interface,
// what its operations answer, and the rules for lock names and owner tokens.
//
// A backend (one Redis server today: redis_lock.hpp) implements LockService and passes the
// contract suite in tests/lock_test.cpp; backends.hpp is the only place that picks one.
#pragma once

#include "dlock/duration.hpp"

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

// Throws UsageError unless KEY is 1 to 256 bytes of valid UTF-8 without control characters.
void validate_key(std::string_view key);
// Throws UsageError unless PREFIX is at most 64 printable bytes without braces.
void validate_prefix(std::string_view prefix);
// Throws UsageError unless TOKEN looks like one new_owner_token() made.
void validate_token(std::string_view token);

// 128 bits from the kernel's CSPRNG (getrandom), as 32 lowercase hex digits.
std::string new_owner_token();

// A lock this process holds.
struct Lease {
    std::string token;
    std::int64_t fence = 0; // strictly greater than every earlier fence of this KEY
    Millis ttl{0};
};

// What is left of a holder's lease. nullopt: the key has no TTL (something other than dlock
// wrote it), so it never frees by itself; only force-release ends it.
using Remaining = std::optional<Millis>;

struct AcquireResult {
    std::optional<Lease> lease; // set when acquired
    Remaining holder_ttl;       // when busy: what is left of the current holder's lease
    // When the attempt that gave this answer was sent. A lease taken by it counts its TTL from
    // some later moment, so `sent + ttl` never overstates it.
    std::chrono::steady_clock::time_point sent{};
    bool acquired() const { return lease.has_value(); }
};

// Why an owner-checked release or extend did (not) happen.
enum class OwnerCheck { done, not_held, not_owner };

struct LockStatus {
    std::optional<std::string> holder; // set when held
    Remaining ttl;                     // when held: what is left of the lease
    std::optional<std::int64_t> fence; // the last fencing token issued, if any
};

struct ForceReleaseResult {
    std::optional<std::string> holder; // who held it, if anyone
    Remaining ttl;                     // what was left of their lease
};

// The lock operations, independent of where locks live. Every operation validates KEY (and a
// TOKEN it is given) first and throws UsageError for a bad one, before any I/O. Infrastructure
// failures throw (error.hpp); every expected answer is a value.
class LockService {
public:
    virtual ~LockService() = default;
    // One attempt (Laravel's get()).
    virtual AcquireResult try_acquire(std::string_view key, Millis ttl) = 0;
    // Waits until the lock is free or `wait` runs out (Laravel's block()); wait_forever waits.
    // Waiting is pushed by the store (a release wakes a waiter), never a fixed poll.
    virtual AcquireResult block(std::string_view key, Millis ttl, Millis wait) = 0;
    virtual OwnerCheck release(std::string_view key, std::string_view token) = 0;
    virtual OwnerCheck extend(std::string_view key, std::string_view token, Millis ttl) = 0;
    virtual ForceReleaseResult force_release(std::string_view key) = 0;
    virtual LockStatus status(std::string_view key) = 0;
    // The name under which this lock's fencing tokens are known to the resources it guards
    // (the ledger's fence rows): unique per lock store namespace, so two namespaces sharing one
    // ledger never share fences.
    virtual std::string fence_resource(std::string_view key) const = 0;
};

} // namespace dlock
