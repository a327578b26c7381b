#include "support/sentinel_setup.hpp"

#include "support/observe.hpp"

#include <stdexcept>
#include <thread>

namespace dlock::test {
namespace {

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = std::min(text.find('\n', start), text.size());
        out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

// A field of SENTINEL MASTER's flat field/value answer.
std::string field(const std::string& answer, const std::string& name) {
    const std::vector<std::string> parts = lines(answer);
    for (std::size_t i = 0; i + 1 < parts.size(); i += 2)
        if (parts[i] == name)
            return parts[i + 1];
    return "";
}

} // namespace

SentinelSetup::SentinelSetup() {
    servers_.push_back(std::make_unique<RedisServer>(RedisServer::Options{{}, true}));
    const std::string master_port = std::to_string(servers_[0]->port());
    servers_.push_back(std::make_unique<RedisServer>(
        RedisServer::Options{{"--replicaof", "127.0.0.1", master_port}, true}));
    const std::string name = master_name;
    for (int i = 0; i < 3; ++i)
        sentinels_.push_back(std::make_unique<RedisServer>(
            RedisServer::Options{{},
                                 true,
                                 {"sentinel monitor " + name + " 127.0.0.1 " + master_port + " 2",
                                  "sentinel down-after-milliseconds " + name + " 1000",
                                  "sentinel failover-timeout " + name + " 3000"}}));
    wait_settled();
}

std::string SentinelSetup::url() const {
    std::string out = "redis+sentinel://";
    for (std::size_t i = 0; i < sentinels_.size(); ++i)
        out +=
            (i == 0 ? "" : ",") + std::string("127.0.0.1:") + std::to_string(sentinels_[i]->port());
    return out + "/" + master_name;
}

RedisServer& SentinelSetup::server_on(int port) {
    for (auto& server : servers_)
        if (server->port() == port)
            return *server;
    throw std::runtime_error("no test server on port " + std::to_string(port));
}

RedisServer& SentinelSetup::master() {
    const std::vector<std::string> named =
        lines(sentinels_[0]->command({"SENTINEL", "get-master-addr-by-name", master_name}));
    return server_on(std::stoi(named.at(1)));
}

RedisServer& SentinelSetup::replica() {
    RedisServer& current = master();
    return servers_[0].get() == &current ? *servers_[1] : *servers_[0];
}

bool SentinelSetup::wait_named(const RedisServer& server, std::chrono::seconds limit) {
    return eventually(
        [&] {
            for (auto& sentinel : sentinels_) {
                const std::vector<std::string> named =
                    lines(sentinel->command({"SENTINEL", "get-master-addr-by-name", master_name}));
                if (named.size() != 2 || named[1] != std::to_string(server.port()))
                    return false;
            }
            return true;
        },
        limit);
}

void SentinelSetup::wait_settled(std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    std::string why;
    while (Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        try {
            RedisServer& current = master();
            if (!wait_named(current, std::chrono::seconds(0))) {
                why = "the sentinels name different servers";
                continue;
            }
            if (lines(current.command({"ROLE"})).at(0) != "master") {
                why = "the named server is not a master yet";
                continue;
            }
            RedisServer& other = replica();
            const std::vector<std::string> role = lines(other.command({"ROLE"}));
            if (role.size() < 4 || role[0] != "slave" ||
                role[2] != std::to_string(current.port()) || role[3] != "connected") {
                why = "the replica does not replicate from the master yet";
                continue;
            }
            bool known = true;
            for (auto& sentinel : sentinels_) {
                const std::string answer = sentinel->command({"SENTINEL", "MASTER", master_name});
                known = known && field(answer, "num-slaves") == "1" &&
                        field(answer, "num-other-sentinels") == "2" &&
                        field(answer, "flags") == "master" && field(answer, "failover-state") == "";
                const std::string replicas =
                    sentinel->command({"SENTINEL", "REPLICAS", master_name});
                known = known && field(replicas, "flags") == "slave" &&
                        field(replicas, "master-link-status") == "ok";
            }
            if (!known) {
                why = "the sentinels do not see the replica and each other yet";
                continue;
            }
            return;
        } catch (const std::exception& e) {
            why = e.what(); // a server restarting
        }
    }
    throw std::runtime_error("the Sentinel test topology did not settle: " + why);
}

void SentinelSetup::failover() {
    const std::string answer = sentinels_[0]->command({"SENTINEL", "FAILOVER", master_name});
    if (answer != "OK")
        throw std::runtime_error("SENTINEL FAILOVER: " + answer);
}

void SentinelSetup::kill_master() {
    killed_ = &master();
    killed_->stop();
}

void SentinelSetup::restore() {
    if (killed_ == nullptr)
        return;
    RedisServer& current = master();
    killed_->start();
    killed_->command({"REPLICAOF", "127.0.0.1", std::to_string(current.port())});
    killed_ = nullptr;
    wait_settled();
}

} // namespace dlock::test
