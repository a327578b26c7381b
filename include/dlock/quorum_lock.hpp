// Locks on a quorum of independent Redis servers (3, 5 or 7 masters, no replication between
// them): the Redlock rules, with fencing tokens that stay strictly increasing whichever majority
// answers.
//
// Every operation goes to all servers at once from the calling thread: the command is written to
// each server's connection, then the replies are read as they come (poll over all sockets), under
// one shared deadline (the timeout). A server that is down, refuses or hangs costs at most the
// timeout and never delays the others' answers; an acquire is settled as soon as a majority took
// it, a release once a majority answered. A reply that comes too late is dropped when it comes.
// Only a wait uses threads: one subscriber per server, kept for the lock's next wait.
//
// On each server a lock uses the dlock layout's names (redis_lock.hpp): PREFIX{KEY} (the owner
// token, the lease as its TTL), PREFIX{KEY}:holder (who holds it), PREFIX{KEY}:fence (that
// server's fencing counter, a max-register) and the PREFIX{KEY}:events channel, on which
// releases are announced to waiters. There is no queue: waiters are not served in strict order.
//
// Acquire: each server takes the lock when it is free (or already this owner's) and increments
// its counter, answering the new value. The acquisition holds when a majority took it within the
// validity (TTL minus the time since the first send minus the drift allowance, TTL x 1% + 2 ms);
// its fence F is the highest value answered. Before the holder is told, F is stored on a majority:
// the servers that answered less get F written back as a max-register (one more round trip, only
// when the counters disagree). Any later majority shares a server with that one, whose counter is
// already at least F, so the next fence is greater. Otherwise what was taken is released, on every
// server.
#pragma once

#include "dlock/lock.hpp"
#include "dlock/redis.hpp"
#include "dlock/redis_lock.hpp"
#include "dlock/redis_sentinel.hpp"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dlock {

// The largest number of servers a quorum takes; an odd count of at least 3.
inline constexpr std::size_t max_quorum_servers = 7;

// What a quorum subtracts from a lease for the drift between the servers' clocks: TTL x 1% + 2 ms.
Millis clock_drift_allowance(Millis ttl);

// Throws UsageError unless `count` servers make a quorum: 3, 5 or 7.
void validate_quorum_size(std::size_t count);

// One server of a quorum: reached at its address, or the master a group of sentinels names (a
// redis+sentinel:// member: asked again for each new connection, so a failover is followed).
struct QuorumMember {
    redis::Options server; // the address; for a sentinel member only its timeout counts
    std::optional<redis::SentinelOptions> sentinel;
};

class QuorumLock final : public LockService {
public:
    // Connects lazily: a server that cannot be reached now is tried again at each operation.
    // Throws UsageError for a server count other than 3, 5 or 7, a bad prefix, or the plain
    // layout (an app's own lock lives on one server).
    QuorumLock(std::vector<QuorumMember> servers, RedisLockSettings settings);
    ~QuorumLock() override;

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

    struct Server;
    struct Wakeups;

private:
    struct Attempt;
    Attempt attempt(const LockKeys& keys, const std::string& token, Millis ttl);

    std::vector<std::shared_ptr<Server>> servers_;
    std::map<std::string, std::shared_ptr<Wakeups>> listening_; // by events channel
    RedisLockSettings settings_;
    Millis timeout_;
};

} // namespace dlock
