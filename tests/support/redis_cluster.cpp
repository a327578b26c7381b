#include "support/redis_cluster.hpp"

#include "support/process.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace dlock::test {

RedisCluster::RedisCluster() {
    std::vector<std::string> create{"/usr/bin/redis-cli", "--cluster", "create"};
    for (int i = 0; i < 3; ++i) {
        // The cluster bus gets a port of its own: PORT+10000, its default, may be taken.
        nodes_.push_back(std::make_unique<RedisServer>(
            RedisServer::Options{{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                  "--cluster-port", std::to_string(free_tcp_port())},
                                 true}));
        create.push_back("127.0.0.1:" + std::to_string(nodes_.back()->port()));
    }
    create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
    const ProcessResult created = run(create);
    if (created.exit_code != 0)
        throw std::runtime_error("redis-cli --cluster create failed: " + created.out + created.err);
    wait_until_ok();
}

// Every node has heard of every slot's owner: the cluster serves all keys.
void RedisCluster::wait_until_ok() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (const auto& server : nodes_) {
        while (server->command({"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) {
            if (std::chrono::steady_clock::now() >= deadline)
                throw std::runtime_error("the test cluster did not reach cluster_state:ok");
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
}

int RedisCluster::slot_of(const std::string& redis_key) const {
    return std::stoi(node(0).command({"CLUSTER", "KEYSLOT", redis_key}));
}

// A node that does not serve the slot answers MOVED (or ASK, mid-migration) instead.
std::size_t RedisCluster::owner_of(const std::string& redis_key) const {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        const std::string answer = node(i).command({"TYPE", redis_key});
        if (answer.rfind("MOVED", 0) != 0 && answer.rfind("ASK", 0) != 0)
            return i;
    }
    throw std::runtime_error("no node serves " + redis_key);
}

std::string RedisCluster::id_of(std::size_t index) const {
    return node(index).command({"CLUSTER", "MYID"});
}

void RedisCluster::begin_migration(int slot, std::size_t from, std::size_t to) const {
    const std::string s = std::to_string(slot);
    if (node(to).command({"CLUSTER", "SETSLOT", s, "IMPORTING", id_of(from)}) != "OK" ||
        node(from).command({"CLUSTER", "SETSLOT", s, "MIGRATING", id_of(to)}) != "OK")
        throw std::runtime_error("CLUSTER SETSLOT IMPORTING/MIGRATING failed");
}

void RedisCluster::migrate_keys(int slot, std::size_t from, std::size_t to) const {
    const std::string keys =
        node(from).command({"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "1000"});
    if (keys.empty())
        return;
    std::vector<std::string> migrate{
        "MIGRATE", "127.0.0.1", std::to_string(node(to).port()), "", "0", "5000", "KEYS"};
    for (std::size_t start = 0; start < keys.size();) {
        const std::size_t end = std::min(keys.find('\n', start), keys.size());
        migrate.push_back(keys.substr(start, end - start));
        start = end + 1;
    }
    const std::string answer = node(from).command(migrate);
    if (answer != "OK")
        throw std::runtime_error("MIGRATE failed: " + answer);
}

// The new owner first, as redis-cli does: until it knows, it sends askers back to the old one.
void RedisCluster::finish_migration(int slot, std::size_t to) const {
    tell(to, slot, to);
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (i != to)
            tell(i, slot, to);
}

void RedisCluster::tell(std::size_t node_index, int slot, std::size_t owner) const {
    if (node(node_index)
            .command({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", id_of(owner)}) != "OK")
        throw std::runtime_error("CLUSTER SETSLOT NODE failed");
}

RedisCluster& shared_cluster() {
    static RedisCluster cluster;
    return cluster;
}

} // namespace dlock::test
