// The byte stream under a Redis connection, internal to the library: connect, write some
// bytes, read some bytes, each by an absolute deadline. Connection speaks RESP over it and
// never touches a socket itself, so another transport (TLS) can slot in behind this seam.
#pragma once

#include "dlock/duration.hpp"
#include "dlock/redis.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace dlock::redis::detail {

// The moment a whole call (a connect, or a command with its reply) must be over, and the
// budget it came from, for the message that says it timed out.
struct Deadline {
    std::chrono::steady_clock::time_point at;
    Millis budget;

    static Deadline after(Millis budget) {
        return {std::chrono::steady_clock::now() + budget, budget};
    }
};

// Owns one descriptor.
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) : fd_(fd) {}
    ~UniqueFd() { reset(); }
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    int get() const { return fd_; }
    void reset();

private:
    int fd_ = -1;
};

// Throws TimeoutError: "<message>: timed out (no complete answer within <budget>)".
[[noreturn]] void timed_out(const std::string& message, const Deadline& deadline);

// Waits until `fd` is ready for `events` (poll's POLLIN, POLLOUT); false once the deadline
// has passed.
bool wait_ready(int fd, short events, const Deadline& deadline);

class Transport {
public:
    virtual ~Transport() = default;
    // Writes at least one byte of `bytes` (not empty); returns how many. Throws IoError when
    // the peer is gone and TimeoutError at the deadline.
    virtual std::size_t write_some(std::string_view bytes, const Deadline& deadline) = 0;
    // Reads at least one byte into `buffer`; returns how many, 0 when the peer closed the
    // connection. Throws IoError and TimeoutError as write_some does.
    virtual std::size_t read_some(char* buffer, std::size_t size, const Deadline& deadline) = 0;
    // The socket, for a caller that waits on several connections at once (poll's POLLIN).
    virtual int descriptor() const = 0;
};

// A plain TCP or unix-socket connection to `url`, connected by `deadline`. Its descriptor is
// non-blocking, close-on-exec and never 0, 1 or 2. `where` names the peer in messages.
// Throws IoError, TimeoutError, UsageError (a unix path that does not fit a socket address)
// or ResourceError (out of descriptors).
std::unique_ptr<Transport> connect_plain(const Url& url, const Deadline& deadline,
                                         const std::string& where);

// The TCP connection under a TLS one: connected by `deadline`, with TCP_NODELAY, as
// connect_plain makes it.
UniqueFd connect_tcp_socket(const Url& url, const Deadline& deadline, const std::string& where);

// A TLS connection (1.2 or newer) to the rediss:// `url`, handshake done and the server's
// certificate verified, by `deadline`. Throws IoError naming the reason a handshake failed
// ("certificate verify failed: ...", "server speaks plaintext"), TimeoutError, and
// UsageError for a certificate, key or CA file it cannot use.
std::unique_ptr<Transport> connect_tls(const Url& url, const TlsOptions& tls,
                                       const Deadline& deadline, const std::string& where);

// Whether the server at the redis:// `url` answers a TLS ClientHello in TLS (by `deadline`):
// why a plaintext command got no answer from it. Never throws.
bool speaks_tls(const Url& url, const Deadline& deadline, const std::string& where);

} // namespace dlock::redis::detail
