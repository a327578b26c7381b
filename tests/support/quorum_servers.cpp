#include "support/quorum_servers.hpp"

#include <csignal>

namespace dlock::test {

QuorumServers& QuorumServers::shared() {
    static QuorumServers servers;
    return servers;
}

QuorumServers::QuorumServers() {
    for (std::size_t i = 0; i < count; ++i)
        servers_.push_back(std::make_unique<RedisServer>(RedisServer::Options{{}, true}));
}

std::vector<std::string> QuorumServers::urls(std::size_t n) const {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < n; ++i)
        out.push_back(servers_.at(i)->tcp_url());
    return out;
}

std::string QuorumServers::url_list(std::size_t n) const {
    std::string out;
    for (const std::string& url : urls(n))
        out += (out.empty() ? "" : " ") + url;
    return out;
}

std::vector<std::string> QuorumServers::redis_args(std::size_t n) const {
    std::vector<std::string> out;
    for (const std::string& url : urls(n)) {
        out.push_back("--redis");
        out.push_back(url);
    }
    return out;
}

void QuorumServers::reset() {
    for (const auto& server : servers_) {
        if (server->pid() <= 0)
            server->start();
        kill(server->pid(), SIGCONT);
        server->command({"CLIENT", "UNPAUSE"});
        server->command({"FLUSHALL"});
    }
}

} // namespace dlock::test
