#include "dlock/redis_cluster.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

namespace dlock::redis {
namespace {

using Clock = std::chrono::steady_clock;

// The commands dlock sends whose first argument is not a key.
bool keyless(std::string_view command) {
    return command == "CONFIG" || command == "SCAN" || command == "CLUSTER";
}

// The key that picks a command's node: EVAL's first key, or the first argument.
std::optional<std::string_view> key_of(const std::vector<std::string_view>& args) {
    if (args.size() < 2 || keyless(args[0]))
        return std::nullopt;
    if (args[0] == "EVAL" || args[0] == "EVALSHA")
        return args.size() > 3 && args[2] != "0" ? std::optional(args[3]) : std::nullopt;
    return args[1];
}

std::string address_of(const std::string& host, int port) {
    return host + ":" + std::to_string(port);
}

// A single node's options: the seed's credentials, timeout and TLS settings, its own address.
// A node named by the cluster is reached over TCP (over TLS for rediss:// seeds).
Options node_options(const Options& seed, const std::string& host, int port) {
    Options options = seed;
    options.url.cluster_seeds.clear();
    if (options.url.transport == Url::Transport::unix_socket)
        options.url.transport = Url::Transport::tcp;
    options.url.socket_path.clear();
    options.url.host = host;
    options.url.port = port;
    return options;
}

} // namespace

int key_slot(std::string_view key) {
    if (const auto open = key.find('{'); open != std::string_view::npos) {
        const auto close = key.find('}', open + 1);
        if (close != std::string_view::npos && close > open + 1)
            key = key.substr(open + 1, close - open - 1);
    }
    std::uint16_t crc = 0; // CRC16-CCITT (XMODEM), as Redis Cluster hashes keys
    for (const char c : key) {
        crc ^= static_cast<std::uint16_t>(static_cast<unsigned char>(c) << 8);
        for (int bit = 0; bit < 8; ++bit)
            crc = static_cast<std::uint16_t>((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc % cluster_slots;
}

Router::Router(const Options& options, std::string cross_slot_hint)
    : cross_slot_hint_(std::move(cross_slot_hint)), cluster_(!options.url.cluster_seeds.empty()) {
    if (!cluster_) {
        home_ = options;
        home_address_ = options.url.transport == Url::Transport::unix_socket
                            ? "unix:" + options.url.socket_path
                            : address_of(options.url.host, options.url.port);
        nodes_[home_address_] = std::make_unique<Connection>(home_);
        return;
    }
    // The first seed that takes the connection; a seed that is down is passed over.
    std::string failures;
    for (const Url::Node& seed : options.url.cluster_seeds) {
        Options candidate = node_options(options, seed.host, seed.port);
        try {
            auto connection = std::make_unique<Connection>(candidate);
            home_ = std::move(candidate);
            home_address_ = address_of(seed.host, seed.port);
            nodes_[home_address_] = std::move(connection);
            return;
        } catch (const RedisError& e) {
            failures += (failures.empty() ? "" : "; ") + std::string(e.what());
        }
    }
    throw IoError("no seed of the Redis Cluster " + options.url.redacted() +
                  " could be reached: " + failures);
}

Router::~Router() = default;

bool Router::open() const {
    return !cluster_ && nodes_.size() == 1 && nodes_.begin()->second->open();
}

Connection& Router::node(const std::string& host, int port) {
    std::unique_ptr<Connection>& connection = nodes_[address_of(host, port)];
    if (!connection)
        connection = std::make_unique<Connection>(node_options(home_, host, port));
    return *connection;
}

Reply Router::command(const std::vector<std::string_view>& args) {
    return std::move(routed({args}, Millis{0}).front());
}

Reply Router::eval(std::string_view script, const std::vector<std::string_view>& keys,
                   const std::vector<std::string_view>& args) {
    const std::string key_count = std::to_string(keys.size());
    return command(eval_words(script, key_count, keys, args));
}

std::vector<Reply> Router::pipeline(const std::vector<std::vector<std::string_view>>& commands,
                                    Millis first_blocks_for) {
    return routed(commands, first_blocks_for);
}

// A redirected command did not run, so sending it again is safe, whatever it does.
std::vector<Reply> Router::routed(const std::vector<std::vector<std::string_view>>& commands,
                                  Millis first_blocks_for) {
    const std::optional<std::string_view> key = key_of(commands.front());
    const int slot = key ? key_slot(*key) : -1;
    std::string target_host; // the host of the node asked, for a redirection that omits it
    const auto owner = [&]() -> Connection& {
        const auto known = slot_owners_.find(slot);
        if (known == slot_owners_.end()) {
            target_host = home_.url.host;
            return *nodes_.at(home_address_);
        }
        target_host = known->second.first;
        return node(known->second.first, known->second.second);
    };
    Connection* target = &owner();
    bool asking = false;
    int redirections = 0;
    // TRYAGAIN is waited out for a timeout past what the call itself may block.
    const auto give_up = Clock::now() + home_.timeout + first_blocks_for;
    Millis pause{5};
    for (;;) {
        try {
            if (!asking)
                return target->pipeline(commands, first_blocks_for);
            // ASKING lets the importing node serve the next command only: one ahead of each.
            std::vector<std::vector<std::string_view>> asked;
            for (const auto& args : commands) {
                asked.push_back({"ASKING"});
                asked.push_back(args);
            }
            std::vector<Reply> replies = target->pipeline(asked, first_blocks_for);
            std::vector<Reply> answers;
            for (std::size_t i = 1; i < replies.size(); i += 2)
                answers.push_back(std::move(replies[i]));
            return answers;
        } catch (const ClusterError& e) {
            switch (e.kind) {
            case ClusterError::Kind::cross_slot:
                throw UsageError(std::string(e.what()) +
                                 (cross_slot_hint_.empty() ? "" : "; " + cross_slot_hint_));
            case ClusterError::Kind::try_again:
                // The slot's keys are split between two nodes for now; the migration moves
                // them on in moments.
                if (Clock::now() + pause > give_up)
                    throw ReplyError(std::string(e.what()) + " (slot " + std::to_string(slot) +
                                     " was still being migrated after " +
                                     format_duration(home_.timeout) + ")");
                break;
            case ClusterError::Kind::moved:
            case ClusterError::Kind::ask:
                cluster_ = true;
                if (++redirections <= max_redirections) {
                    if (!e.host.empty())
                        target_host = e.host;
                    asking = e.kind == ClusterError::Kind::ask;
                    if (!asking)
                        slot_owners_[e.slot] = {target_host, e.port};
                    target = &node(target_host, e.port);
                    continue;
                }
                // Nodes that disagree on who serves the slot: for a moment while a finished
                // migration reaches them all, or for good in a broken cluster. Start again from
                // the first node.
                slot_owners_.erase(e.slot);
                if (Clock::now() + pause > give_up)
                    throw ReplyError(std::string(e.what()) + " (the Redis Cluster kept " +
                                     "redirecting slot " + std::to_string(e.slot) + " for " +
                                     format_duration(home_.timeout) +
                                     "; its nodes disagree on who serves it)");
                break;
            }
            std::this_thread::sleep_for(pause);
            pause = std::min(pause * 2, Millis{100});
            target = &owner();
            asking = false;
            redirections = 0;
        }
    }
}

std::vector<Connection*> Router::masters() {
    if (!masters_) {
        try {
            const Reply reply = nodes_.at(home_address_)->command({"CLUSTER", "SLOTS"});
            cluster_ = true;
            // Each element: start slot, end slot, the master [host, port, id, ...], replicas.
            std::vector<std::pair<std::string, int>> found;
            const ReplyView ranges = reply.view();
            for (std::size_t i = 0; i < ranges.size(); ++i) {
                const ReplyView master = ranges[i][2];
                const std::string host = master[0].string();
                const std::pair<std::string, int> address{host.empty() ? home_.url.host : host,
                                                          static_cast<int>(master[1].integer())};
                if (std::find(found.begin(), found.end(), address) == found.end())
                    found.push_back(address);
            }
            masters_ = std::move(found);
        } catch (const ReplyError&) { // "cluster support disabled": a single server
            if (cluster_)
                throw;
            masters_.emplace();
        } catch (const AuthError&) { // a user without +cluster|slots, where nothing said cluster
            if (cluster_)
                throw;
            masters_.emplace();
        }
    }
    if (masters_->empty())
        return {nodes_.at(home_address_).get()};
    std::vector<Connection*> connections;
    for (const auto& [host, port] : *masters_)
        connections.push_back(&node(host, port));
    return connections;
}

} // namespace dlock::redis
