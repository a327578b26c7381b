#include "redis_transport.hpp"

#include "os_error.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <utility>

namespace dlock::redis::detail {

using Clock = std::chrono::steady_clock;

void UniqueFd::reset() {
    if (fd_ >= 0)
        close(fd_);
    fd_ = -1;
}

[[noreturn]] void timed_out(const std::string& message, const Deadline& deadline) {
    throw TimeoutError(message + ": timed out (no complete answer within " +
                       format_duration(deadline.budget) + ")");
}

bool wait_ready(int fd, short events, const Deadline& deadline) {
    for (;;) {
        const auto left = std::chrono::ceil<Millis>(deadline.at - Clock::now());
        if (left.count() <= 0)
            return false;
        pollfd pfd{fd, events, 0};
        const int ready = poll(&pfd, 1, static_cast<int>(std::min(left, Millis{60'000}).count()));
        if (ready > 0)
            return true;
        if (ready < 0 && errno != EINTR && errno != EAGAIN)
            throw IoError(std::string("poll: ") + std::strerror(errno));
    }
}

namespace {

// A new non-blocking, close-on-exec socket that is never 0, 1 or 2: a process started with
// those closed must not get a Redis connection as its stdin, nor hand it to its children.
UniqueFd new_socket(int family) {
    UniqueFd fd(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0)
        dlock::detail::throw_os_error("socket", errno);
    if (fd.get() <= STDERR_FILENO) {
        UniqueFd high(fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1));
        if (high.get() < 0)
            dlock::detail::throw_os_error("fcntl", errno);
        fd = std::move(high);
    }
    return fd;
}

class SocketTransport final : public Transport {
public:
    SocketTransport(UniqueFd fd, std::string where)
        : fd_(std::move(fd)), where_(std::move(where)) {}
    int descriptor() const override { return fd_.get(); }

    std::size_t write_some(std::string_view bytes, const Deadline& deadline) override {
        // MSG_NOSIGNAL: a peer that hung up is an EPIPE here, never a SIGPIPE that kills dlock.
        return transfer([&] { return send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL); },
                        POLLOUT, "sending to Redis at ", deadline);
    }

    std::size_t read_some(char* buffer, std::size_t size, const Deadline& deadline) override {
        return transfer([&] { return recv(fd_.get(), buffer, size, 0); }, POLLIN,
                        "waiting on Redis at ", deadline);
    }

private:
    // Runs `io` (one send or recv) until it moves bytes, waiting for `events` between tries
    // while the socket would block; `doing` names the wait in a timeout.
    template <typename Io>
    std::size_t transfer(Io io, short events, const char* doing, const Deadline& deadline) {
        for (;;) {
            const ssize_t n = io();
            if (n >= 0)
                return static_cast<std::size_t>(n);
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                throw IoError("lost Redis at " + where_ + ": " + std::strerror(errno));
            if (!wait_ready(fd_.get(), events, deadline))
                timed_out(doing + where_, deadline);
        }
    }

    UniqueFd fd_;
    std::string where_;
};

// Connects `fd` to `address` by the deadline; returns 0 or the errno of the failure.
int connect_by(int fd, const sockaddr* address, socklen_t length, const Deadline& deadline,
               const std::string& where) {
    for (;;) {
        if (connect(fd, address, length) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && address->sa_family == AF_UNIX) {
            // The server's backlog is full: it has not accepted anyone for a while.
            if (Clock::now() >= deadline.at)
                timed_out("cannot connect to Redis at " + where, deadline);
            poll(nullptr, 0, 10);
            continue;
        }
        if (errno != EINPROGRESS)
            return errno;
        break;
    }
    if (!wait_ready(fd, POLLOUT, deadline))
        timed_out("cannot connect to Redis at " + where, deadline);
    int error = 0;
    socklen_t size = sizeof error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0)
        return errno;
    return error;
}

std::unique_ptr<Transport> connect_unix(const Url& url, const Deadline& deadline,
                                        const std::string& where) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (url.socket_path.size() >= sizeof address.sun_path)
        throw UsageError("unix socket path too long: at most " +
                         std::to_string(sizeof address.sun_path - 1) + " bytes");
    std::memcpy(address.sun_path, url.socket_path.c_str(), url.socket_path.size() + 1);
    UniqueFd fd = new_socket(AF_UNIX);
    if (const int error = connect_by(fd.get(), reinterpret_cast<const sockaddr*>(&address),
                                     sizeof address, deadline, where))
        throw IoError("cannot connect to Redis at " + where + ": " + std::strerror(error));
    return std::make_unique<SocketTransport>(std::move(fd), where);
}

struct AddrinfoDeleter {
    void operator()(addrinfo* list) const { freeaddrinfo(list); }
};
using Addresses = std::unique_ptr<addrinfo, AddrinfoDeleter>;

// A name lookup that may take as long as the resolver likes runs in glibc's resolver thread
// (getaddrinfo_a), so the deadline holds for DNS too.
struct Lookup {
    std::string host;
    std::string port;
    addrinfo hints{};
    gaicb request{};
};

Addresses resolve(const Url& url, const Deadline& deadline, const std::string& where) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    const std::string port = std::to_string(url.port);
    addrinfo* found = nullptr;
    if (getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found) == 0)
        return Addresses(found); // an address: nothing to look up

    auto lookup = std::make_unique<Lookup>();
    lookup->host = url.host;
    lookup->port = port;
    lookup->hints.ai_family = AF_UNSPEC;
    lookup->hints.ai_socktype = SOCK_STREAM;
    lookup->hints.ai_flags = AI_NUMERICSERV;
    lookup->request.ar_name = lookup->host.c_str();
    lookup->request.ar_service = lookup->port.c_str();
    lookup->request.ar_request = &lookup->hints;
    gaicb* requests[] = {&lookup->request};
    if (const int error = getaddrinfo_a(GAI_NOWAIT, requests, 1, nullptr); error != 0) {
        if (error == EAI_MEMORY || error == EAI_AGAIN)
            throw ResourceError("cannot look up Redis host: " + std::string(gai_strerror(error)));
        throw IoError("cannot look up Redis at " + where + ": " + gai_strerror(error));
    }
    for (;;) {
        const int status = gai_error(&lookup->request);
        if (status == 0)
            return Addresses(lookup->request.ar_result);
        if (status != EAI_INPROGRESS)
            throw IoError("cannot look up Redis at " + where + ": " + gai_strerror(status));
        const auto left = std::chrono::ceil<std::chrono::nanoseconds>(deadline.at - Clock::now());
        if (left.count() <= 0) {
            if (gai_cancel(&lookup->request) == EAI_NOTCANCELED)
                lookup.release(); // the resolver thread still writes into it: left to it
            timed_out("cannot look up Redis at " + where, deadline);
        }
        const timespec wait{static_cast<time_t>(left.count() / 1'000'000'000),
                            static_cast<long>(left.count() % 1'000'000'000)};
        gai_suspend(requests, 1, &wait);
    }
}

} // namespace

UniqueFd connect_tcp_socket(const Url& url, const Deadline& deadline, const std::string& where) {
    const Addresses addresses = resolve(url, deadline, where);
    int last_error = EADDRNOTAVAIL;
    for (const addrinfo* a = addresses.get(); a != nullptr; a = a->ai_next) {
        UniqueFd fd = new_socket(a->ai_family);
        last_error = connect_by(fd.get(), a->ai_addr, a->ai_addrlen, deadline, where);
        if (last_error != 0)
            continue;
        const int on = 1; // a command is one small write: send it now
        setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        return fd;
    }
    throw IoError("cannot connect to Redis at " + where + ": " + std::strerror(last_error));
}

std::unique_ptr<Transport> connect_plain(const Url& url, const Deadline& deadline,
                                         const std::string& where) {
    if (url.transport == Url::Transport::unix_socket)
        return connect_unix(url, deadline, where);
    return std::make_unique<SocketTransport>(connect_tcp_socket(url, deadline, where), where);
}

} // namespace dlock::redis::detail
