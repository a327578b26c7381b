// A private redis-server for one test: its own temp dir and unix socket, no persistence.
// Never the machine's own Redis, never port 6379.
#pragma once

#include <chrono>
#include <string>
#include <sys/types.h>
#include <vector>

namespace dlock::test {

class RedisServer {
public:
    struct Options {
        std::vector<std::string> extra_args; // e.g. {"--requirepass", "secret"}
        bool tcp = false;                    // also listen on a free loopback port
        // Not empty: a redis-sentinel with these lines as its config file ("sentinel monitor
        // ..."); it rewrites the file as it learns, and keeps it across restart().
        std::vector<std::string> sentinel_config = {};
    };

    RedisServer();
    explicit RedisServer(Options options);
    ~RedisServer();
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    // unix:///tmp/.../redis.sock
    std::string url() const;
    // redis://127.0.0.1:PORT (only with Options::tcp)
    std::string tcp_url() const;
    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    const std::string& dir() const { return dir_; }

    // Kill the server (all data is lost: there is no persistence) and start it again.
    void restart();
    void stop();
    void start();
    // Runs a command on the server, for tests that set up or inspect state. The answer as
    // text; array elements one per line.
    std::string command(const std::vector<std::string>& args) const;
    // Clients blocked in a command such as BLPOP right now: dlock waiters inside block().
    int blocked_clients() const;
    // Waits until exactly `count` clients are blocked: that many waiters are inside block().
    // False if that has not happened within `limit`.
    bool wait_for_blocked_clients(int count, std::chrono::milliseconds limit) const;

private:
    void wait_until_ready() const;

    Options options_;
    std::string dir_;
    std::string socket_;
    int port_ = 0;
    pid_t pid_ = -1;
};

// A loopback TCP port that nothing listens on right now.
int free_tcp_port();

// The documented ACL line ("ACL SETUSER dlock ..." in docs/connecting.md) as the words of a
// command, with `password` for its placeholder: read from the docs themselves so that the two
// cannot drift apart.
std::vector<std::string> documented_acl_setuser(const std::string& password);

} // namespace dlock::test
