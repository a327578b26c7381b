#include "support/fake_server.hpp"

#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace dlock::test {

LoopbackListener listen_on_loopback(int backlog) {
    LoopbackListener listener;
    listener.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listener.fd < 0 ||
        bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listener.fd, backlog) != 0) {
        const int saved = errno;
        if (listener.fd >= 0)
            close(listener.fd);
        throw std::runtime_error(std::string("loopback listener: ") + std::strerror(saved));
    }
    socklen_t len = sizeof addr;
    getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len);
    listener.port = ntohs(addr.sin_port);
    return listener;
}

FakeServer::FakeServer(Behaviour behaviour, std::string answer, std::string socket_path)
    : behaviour_(behaviour), answer_(std::move(answer)), socket_path_(std::move(socket_path)) {
    if (socket_path_.empty()) {
        const LoopbackListener listener = listen_on_loopback(64);
        fd_ = listener.fd;
        port_ = listener.port;
    } else {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (socket_path_.size() >= sizeof addr.sun_path)
            throw std::runtime_error("fake server: socket path too long");
        std::memcpy(addr.sun_path, socket_path_.c_str(), socket_path_.size() + 1);
        unlink(socket_path_.c_str());
        if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw std::runtime_error("fake server: bind failed");
        if (listen(fd_, 64) != 0)
            throw std::runtime_error("fake server: listen failed");
    }
    thread_ = std::thread([this] { serve(); });
}

FakeServer::~FakeServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
    for (const int client : clients_)
        close(client);
    if (!socket_path_.empty())
        unlink(socket_path_.c_str());
}

std::string FakeServer::url() const {
    return socket_path_.empty() ? "redis://127.0.0.1:" + std::to_string(port_)
                                : "unix://" + socket_path_;
}

void FakeServer::serve() {
    for (;;) {
        const int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0)
            return;
        if (behaviour_ == Behaviour::hang_up) {
            close(client);
            continue;
        }
        if (behaviour_ == Behaviour::answer || behaviour_ == Behaviour::answer_then_hang_up) {
            char buffer[4096];
            (void)!read(client, buffer, sizeof buffer);
            (void)!write(client, answer_.data(), answer_.size());
        }
        if (behaviour_ == Behaviour::answer_then_hang_up) {
            close(client);
            continue;
        }
        clients_.push_back(client); // kept open: a silent server must stay silent
    }
}

} // namespace dlock::test
