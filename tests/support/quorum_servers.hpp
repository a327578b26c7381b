// Five private redis-servers for the quorum tests, started once per test executable and shared
// by its tests: the first three make a quorum of 3, all five one of 5. They listen on loopback
// TCP, so a stopped one refuses connections as a crashed host's port would.
#pragma once

#include "support/redis_server.hpp"

#include <memory>
#include <string>
#include <vector>

namespace dlock::test {

class QuorumServers {
public:
    static constexpr std::size_t count = 5;

    // The servers of this executable, started at the first call.
    static QuorumServers& shared();

    RedisServer& operator[](std::size_t i) { return *servers_.at(i); }
    // The redis:// URLs of the first `n` servers.
    std::vector<std::string> urls(std::size_t n) const;
    // The same, separated by spaces, as DLOCK_REDIS_URL takes them.
    std::string url_list(std::size_t n) const;
    // --redis URL for each of the first `n` servers, for the command line.
    std::vector<std::string> redis_args(std::size_t n) const;
    // Every server running, continued, unpaused and empty: what each test starts from.
    void reset();

private:
    QuorumServers();
    std::vector<std::unique_ptr<RedisServer>> servers_;
};

} // namespace dlock::test
