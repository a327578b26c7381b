// Named locks as the rest of dlock sees them, wherever they live: the LockService interface,
// what its operations answer, and the rules for lock names and owner tokens.
//
// A backend (one Redis server: redis_lock.hpp; a quorum of them: quorum_lock.hpp) implements
// LockService and passes the contract suite in tests/lock_test.cpp; backends.hpp is the only place
// that picks one.
#pragma once

#include "dlock/duration.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dlock {

inline constexpr std::string_view default_prefix = "dlock:";
inline constexpr Millis default_ttl{10'000};
inline constexpr Millis default_wait{5'000};
inline constexpr std::size_t max_key_bytes = 256;
inline constexpr std::size_t max_prefix_bytes = 64;
// After its last acquisition (or renewal), how long a lock name's fencing counter is kept; then
// it goes, and the next acquisition restarts it from the store's clock.
inline constexpr Millis default_fence_idle{7 * 24 * 3'600'000LL};
// The longest command line a holder record keeps.
inline constexpr std::size_t max_command_bytes = 256;

// Where a lock lives in the store, and what its value is.
//   dlock: PREFIX{KEY} (a hash tag, braces in KEY encoded), dlock's own owner tokens.
//   plain: exactly PREFIX + KEY, as Laravel's Cache::lock, redis-py's Lock and most Redis lock
//          libraries write it; the owner may be any 1-256 printable bytes (an app's own).
enum class KeyLayout { dlock, plain };
// "dlock" or "plain"; anything else is a UsageError.
KeyLayout parse_layout(std::string_view text);

// Throws UsageError unless KEY is 1 to 256 bytes of valid UTF-8 without control characters.
void validate_key(std::string_view key);
// Throws UsageError unless PREFIX is at most 64 printable bytes without braces.
void validate_prefix(std::string_view prefix);
// As the layout takes it: dlock's rule above, or for plain any 0 to 256 bytes of UTF-8
// without control characters (an app's prefix, braces and all; empty for the bare key).
void validate_prefix(std::string_view prefix, KeyLayout layout);
// Throws UsageError unless TOKEN looks like one new_owner_token() made.
void validate_token(std::string_view token);
// As the layout takes an owner: dlock's tokens, or for plain any 1 to 256 bytes of UTF-8
// without control characters.
void validate_owner(std::string_view owner, KeyLayout layout);

// 128 bits from the kernel's CSPRNG (getrandom), as 32 lowercase hex digits.
std::string new_owner_token();

// Who takes a lock: recorded next to it, with the same TTL, so operators can see which host and
// job holds it. Nothing secret: never a password, a URL or the environment.
struct Identity {
    std::string host;
    std::int64_t pid = 0;
    std::string user;
    std::string command; // at most max_command_bytes
};

// This process, with `command` as what it runs (truncated to max_command_bytes).
Identity this_process(std::string command);
// The process that started this one (the shell script that runs `dlock acquire`), with its own
// command line from /proc when readable.
Identity parent_process();

// What a holder recorded when it took the lock, as the store keeps it.
struct HolderDetails {
    Identity who;
    std::int64_t since_ms = 0;              // when it was acquired, store clock, ms since the epoch
    std::optional<std::int64_t> renewed_ms; // when last renewed (extend), if ever
    std::int64_t renewals = 0;
};

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
    std::optional<Lease> lease;          // set when acquired
    Remaining holder_ttl;                // when busy: what is left of the current holder's lease
    std::optional<HolderDetails> holder; // when busy: who holds it, if it said
    // When the attempt that gave this answer was sent. A lease taken by it counts its TTL from
    // some later moment, so `sent + ttl` never overstates it.
    std::chrono::steady_clock::time_point sent{};
    bool acquired() const { return lease.has_value(); }
};

// How a wait is going, for progress reports: told when it starts and about once a second.
struct WaitProgress {
    // How a release by another client is noticed: "release wake-ups" (only dlock's own clients
    // release), "keyspace notifications", or "a poll every 50 ms".
    std::string_view noticed_by;
    Millis waited{0};
    Millis wait{0};                      // the longest wait; wait_forever when unbounded
    Remaining holder_ttl;                // what is left of the holder's lease
    std::optional<HolderDetails> holder; // who holds it, if it said
};
using WaitObserver = std::function<void(const WaitProgress&)>;

// Why an owner-checked release or extend did (not) happen.
enum class OwnerCheck { done, not_held, not_owner };

// One server's own view of a lock, when locks live on a quorum of servers (quorum_lock.hpp).
struct ServerLockStatus {
    std::string server;               // its URL, without the password
    std::optional<std::string> error; // why it did not answer; then nothing else is known
    std::optional<std::string> holder;
    Remaining ttl;
    std::optional<std::int64_t> fence; // its fencing counter
};

struct LockStatus {
    std::optional<std::string> holder;     // the owner token, when held
    Remaining ttl;                         // when held: what is left of the lease
    std::optional<std::int64_t> fence;     // the last fencing token issued, if any
    std::optional<HolderDetails> details;  // when held: who holds it, if it said
    std::int64_t now_ms = 0;               // the store's clock when it answered, for ages
    std::vector<ServerLockStatus> servers; // a quorum: each server's view; empty otherwise
    // Read from a replica: what it has heard from its master, which may be behind.
    bool stale = false;
};

struct ForceReleaseResult {
    // False when nothing was held, or (with an expected owner) someone else holds it: then
    // nothing changed, and the fields say who holds it now.
    bool released = false;
    std::optional<std::string> holder;    // the owner token it had, if held
    Remaining ttl;                        // what was left of that lease
    std::optional<HolderDetails> details; // who that was, if it said
    std::int64_t now_ms = 0;              // the store's clock when it answered
};

// One held lock, as list() finds it.
struct LockListing {
    std::string key;
    LockStatus status;
};

// Something that happened to a lock, as watch() reports it.
struct LockEvent {
    std::string key;
    std::string kind;                 // acquired, extended, released, force-released, expired
    bool inferred = false;            // expired: concluded from the TTL, not told by the store
    std::optional<LockStatus> status; // acquired, extended: the lock as it stood right after
};

// What watch() reports to, and how it is stopped.
struct LockWatcher {
    // Once subscribed: whether expiries come from the store's own notifications (else they
    // are inferred from TTLs).
    std::function<void(bool notified_expiries)> started;
    std::function<void(const LockEvent&)> event;
    // Asked at least twice a second, and after a signal interrupts the wait; false ends it.
    std::function<bool()> keep_going;
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
    AcquireResult block(std::string_view key, Millis ttl, Millis wait) {
        return block(key, ttl, wait, WaitObserver{});
    }
    // The same, telling `observer` how the wait goes (when it starts, then about every second;
    // the store is then asked at least that often).
    virtual AcquireResult block(std::string_view key, Millis ttl, Millis wait,
                                const WaitObserver& observer) = 0;
    virtual OwnerCheck release(std::string_view key, std::string_view token) = 0;
    virtual OwnerCheck extend(std::string_view key, std::string_view token, Millis ttl) = 0;
    // Frees the lock whoever holds it; with `only_owner`, only while that owner still holds it
    // (so an operator never frees the next holder by mistake).
    virtual ForceReleaseResult force_release(std::string_view key,
                                             std::optional<std::string_view> only_owner) = 0;
    virtual LockStatus status(std::string_view key) = 0;
    // Every held lock in this namespace whose KEY matches the glob `pattern` (* ? [..] as in
    // Redis MATCH), sorted by KEY. Scans incrementally; never blocks the store.
    virtual std::vector<LockListing> list(std::string_view pattern) = 0;
    // Follows the locks whose KEY matches `pattern` and reports each event as it happens, until
    // watcher.keep_going() says to stop. Locks already held count as known, for expiries.
    virtual void watch(std::string_view pattern, const LockWatcher& watcher) = 0;
    // The name under which this lock's fencing tokens are known to the resources it guards
    // (the ledger's fence rows): unique per lock store namespace, so two namespaces sharing one
    // ledger never share fences.
    virtual std::string fence_resource(std::string_view key) const = 0;
    // Whether this service's connections are still open, as far as this host can tell, so that
    // it may release a lock it took a short while ago (dlock run) instead of a new connection
    // doing it. Services that cannot tell say no.
    virtual bool still_connected() const { return false; }
};

} // namespace dlock
