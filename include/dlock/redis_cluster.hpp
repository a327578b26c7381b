// Redis Cluster: each command goes to the node that serves its key's hash slot. Nothing is asked
// up front: a server is taken for a single node until a reply says otherwise (MOVED or ASK), so
// a lone Redis costs no extra round trip. A MOVED is remembered for its slot; an ASK is followed
// once, with ASKING pipelined ahead of the command; a TRYAGAIN (a multi-key command while its
// slot is being migrated), and nodes that send a command back and forth, are waited out until
// the call's timeout. Nothing here knows about locks.
#pragma once

#include "dlock/redis.hpp"

#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dlock::redis {

inline constexpr int cluster_slots = 16384;
// Redirections one call follows in a row: a slot moved twice while a command chases it is rare;
// more is nodes that disagree on who serves it, and the call pauses before it starts again.
inline constexpr int max_redirections = 5;

// The hash slot of a Redis key: CRC16 of the key, or of its hash tag ({...}) when it has one.
int key_slot(std::string_view key);

// A connection to a single Redis server, or to whichever node of a Redis Cluster serves each
// command's key. It calls as Connection does; the key of a command is its first argument, or for
// EVAL the first of its keys (every key of one command must share a slot). A command without a
// key (SCAN, CONFIG) goes to the first node connected.
class Router {
public:
    // Connects to the URL's server, or to the first of a redis+cluster:// URL's seeds that
    // answers (each within the timeout). `cross_slot_hint` ends the usage error a CROSSSLOT
    // refusal becomes.
    explicit Router(const Options& options, std::string cross_slot_hint = {});
    ~Router();
    Router(const Router&) = delete;
    Router& operator=(const Router&) = delete;

    Reply command(const std::vector<std::string_view>& args);
    Reply command(std::initializer_list<std::string_view> args) {
        return command(std::vector<std::string_view>(args));
    }
    Reply eval(std::string_view script, const std::vector<std::string_view>& keys,
               const std::vector<std::string_view>& args);
    // As Connection::pipeline; every command's key must share the first one's slot.
    std::vector<Reply> pipeline(const std::vector<std::vector<std::string_view>>& commands,
                                Millis first_blocks_for = Millis{0});

    // Whether the server is known to be a cluster node: a redis+cluster:// URL, a redirection,
    // or masters() found it so.
    bool cluster() const { return cluster_; }
    // Every master's connection: asks CLUSTER SLOTS (once), which a single server (or a user
    // without +cluster|slots, when no redirection said it is a cluster) refuses: then the one
    // server.
    std::vector<Connection*> masters();
    // How to reach the first node connected, for a connection of one's own (a subscriber).
    const Options& home() const { return home_; }
    // One server, whose connection is open (Connection::open). Never for a cluster, whose
    // next command may go to another node.
    bool open() const;

private:
    std::vector<Reply> routed(const std::vector<std::vector<std::string_view>>& commands,
                              Millis first_blocks_for);
    Connection& node(const std::string& host, int port);

    Options home_;
    std::string cross_slot_hint_;
    std::map<std::string, std::unique_ptr<Connection>> nodes_; // by "host:port"
    std::string home_address_;
    std::map<int, std::pair<std::string, int>> slot_owners_; // host and port, learned from MOVED
    std::optional<std::vector<std::pair<std::string, int>>> masters_; // once asked; empty: one
                                                                      // server
    bool cluster_ = false;
};

} // namespace dlock::redis
