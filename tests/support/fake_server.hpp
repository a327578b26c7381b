// A server that is not Redis, for the tests of what dlock does when its peer misbehaves.
#pragma once

#include <string>
#include <thread>
#include <vector>

namespace dlock::test {

// A TCP socket listening on 127.0.0.1 at a port the kernel picked: where every peer the tests
// play (fake servers, proxies, trickling peers) starts. The caller owns and closes `fd`.
struct LoopbackListener {
    int fd = -1;
    int port = 0;
};
LoopbackListener listen_on_loopback(int backlog);

class FakeServer {
public:
    enum class Behaviour {
        answer,             // reads once, writes the canned answer, keeps the connection open
        silent,             // accepts, never answers, keeps the connection open
        hang_up,            // closes every connection as soon as it is accepted
        answer_then_hang_up // reads once, writes the canned answer, closes the connection
    };
    // On a loopback TCP port, or on a unix socket at `socket_path` when it is not empty.
    explicit FakeServer(Behaviour behaviour, std::string answer = {}, std::string socket_path = {});
    ~FakeServer();
    FakeServer(const FakeServer&) = delete;
    FakeServer& operator=(const FakeServer&) = delete;

    // redis://127.0.0.1:PORT or unix:///path
    std::string url() const;
    // The TCP port (0 on a unix socket).
    int port() const { return port_; }

private:
    void serve();

    Behaviour behaviour_;
    std::string answer_;
    std::string socket_path_;
    int fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::vector<int> clients_;
};

} // namespace dlock::test
