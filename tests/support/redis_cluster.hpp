// A private Redis Cluster for the tests of one executable: three redis-server masters in cluster
// mode on free loopback ports, each in its own temp dir, slots spread by
// `redis-cli --cluster create`. Never the machine's own Redis, never port 6379.
#pragma once

#include "support/redis_server.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace dlock::test {

class RedisCluster {
public:
    RedisCluster();
    RedisCluster(const RedisCluster&) = delete;
    RedisCluster& operator=(const RedisCluster&) = delete;

    std::size_t size() const { return nodes_.size(); }
    RedisServer& node(std::size_t index) const { return *nodes_.at(index); }

    // The hash slot of a Redis key, as the cluster computes it (CLUSTER KEYSLOT).
    int slot_of(const std::string& redis_key) const;
    // The node that serves the slot of `redis_key` now.
    std::size_t owner_of(const std::string& redis_key) const;

    // Moving a slot by hand, the steps `redis-cli --cluster reshard` takes: mark it importing on
    // `to` and migrating on `from`; move its keys (MIGRATE); give it to `to` on every node.
    void begin_migration(int slot, std::size_t from, std::size_t to) const;
    void migrate_keys(int slot, std::size_t from, std::size_t to) const;
    void finish_migration(int slot, std::size_t to) const;
    // Tells one node that `owner` serves `slot` (CLUSTER SETSLOT NODE), whatever the others think.
    void tell(std::size_t node_index, int slot, std::size_t owner) const;

private:
    std::string id_of(std::size_t index) const;
    void wait_until_ok() const;

    std::vector<std::unique_ptr<RedisServer>> nodes_;
};

// The one cluster of this test executable, started on first use.
RedisCluster& shared_cluster();

} // namespace dlock::test
