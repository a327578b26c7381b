// One master, one replica and three redis-sentinel processes (quorum 2) on private loopback
// ports: the topology Sentinel failover tests need. Sentinel timings are short (a master is
// taken for down after 1 s), so failovers take a few seconds.
#pragma once

#include "support/redis_server.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace dlock::test {

class SentinelSetup {
public:
    static constexpr const char* master_name = "dlockmaster";

    // Starts the five servers and waits until the sentinels know each other and the replica.
    SentinelSetup();

    // redis+sentinel://127.0.0.1:A,127.0.0.1:B,127.0.0.1:C/dlockmaster
    std::string url() const;
    RedisServer& sentinel(std::size_t i) { return *sentinels_.at(i); }
    // The server the first sentinel names now, and the other one.
    RedisServer& master();
    RedisServer& replica();

    // Waits until the failover is over: every sentinel names the same server, it says ROLE
    // master, the other (if running) replicates from it with its link up, and every sentinel
    // sees the replica and the two other sentinels. Throws after `limit`.
    void wait_settled(std::chrono::seconds limit = std::chrono::seconds(60));
    // Waits until every sentinel names `server`; false after `limit`.
    bool wait_named(const RedisServer& server, std::chrono::seconds limit);
    // SENTINEL FAILOVER on the first sentinel: the replica is promoted, the master demoted.
    void failover();
    // kill -9 of the master; restore() starts it again as the new master's replica.
    void kill_master();
    void restore();

private:
    RedisServer& server_on(int port);

    std::vector<std::unique_ptr<RedisServer>> servers_; // the first starts as master
    std::vector<std::unique_ptr<RedisServer>> sentinels_;
    RedisServer* killed_ = nullptr;
};

} // namespace dlock::test
