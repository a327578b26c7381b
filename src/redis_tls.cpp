// rediss://: the transport of redis_transport.hpp over TLS, with OpenSSL. hiredis 0.14 has no
// TLS; it keeps parsing replies above this seam, and nothing above it knows TLS is in use.
#include "redis_transport.hpp"
#include "run_time_library.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

namespace dlock::redis::detail {
namespace {

// The OpenSSL functions dlock calls, as pointers into libssl (and the libcrypto it loads),
// loaded with dlopen() at the first rediss:// connection. Linked in, even from the static
// archives, OpenSSL cost every command, plaintext ones too, an eighth of its start: its
// constructor probes the CPU (CPUID, a trap to the hypervisor on a VM) and its tables add page
// faults (`dlock status`: 1.73 -> 1.52 ms, 128 -> 110 faults). decltype on the header's
// declarations keeps every signature checked by the compiler; the headers' macros over
// SSL_ctrl, SSL_CTX_ctrl and the BIO flags are spelled out where they are used.
#define DLOCK_OPENSSL_FUNCTIONS(X)                                                                 \
    X(BIO_clear_flags)                                                                             \
    X(BIO_get_data)                                                                                \
    X(BIO_get_new_index)                                                                           \
    X(BIO_meth_new)                                                                                \
    X(BIO_meth_set_create)                                                                         \
    X(BIO_meth_set_ctrl)                                                                           \
    X(BIO_meth_set_read)                                                                           \
    X(BIO_meth_set_write)                                                                          \
    X(BIO_new)                                                                                     \
    X(BIO_set_data)                                                                                \
    X(BIO_set_flags)                                                                               \
    X(BIO_set_init)                                                                                \
    X(ERR_clear_error)                                                                             \
    X(ERR_error_string_n)                                                                          \
    X(ERR_get_error)                                                                               \
    X(ERR_reason_error_string)                                                                     \
    X(SSL_CTX_check_private_key)                                                                   \
    X(SSL_CTX_ctrl)                                                                                \
    X(SSL_CTX_free)                                                                                \
    X(SSL_CTX_load_verify_locations)                                                               \
    X(SSL_CTX_new)                                                                                 \
    X(SSL_CTX_set_client_cert_cb)                                                                  \
    X(SSL_CTX_set_default_verify_paths)                                                            \
    X(SSL_CTX_set_options)                                                                         \
    X(SSL_CTX_set_verify)                                                                          \
    X(SSL_CTX_use_PrivateKey_file)                                                                 \
    X(SSL_CTX_use_certificate_chain_file)                                                          \
    X(SSL_connect)                                                                                 \
    X(SSL_ctrl)                                                                                    \
    X(SSL_free)                                                                                    \
    X(SSL_get0_param)                                                                              \
    X(SSL_get_error)                                                                               \
    X(SSL_get_rbio)                                                                                \
    X(SSL_get_verify_result)                                                                       \
    X(SSL_new)                                                                                     \
    X(SSL_read_ex)                                                                                 \
    X(SSL_set1_host)                                                                               \
    X(SSL_set_bio)                                                                                 \
    X(SSL_write_ex)                                                                                \
    X(TLS_client_method)                                                                           \
    X(X509_VERIFY_PARAM_set1_ip_asc)                                                               \
    X(X509_verify_cert_error_string)

struct OpenSsl {
#define DLOCK_OPENSSL_POINTER(name) decltype(&::name) name = nullptr;
    DLOCK_OPENSSL_FUNCTIONS(DLOCK_OPENSSL_POINTER)
#undef DLOCK_OPENSSL_POINTER
};

OpenSsl load_openssl() {
    // The soname of the headers' major version: OpenSSL keeps its ABI within one.
    const std::string soname = "libssl.so." + std::to_string(OPENSSL_VERSION_MAJOR);
    void* const library = dlock::detail::load_library(soname, "rediss://", "libssl3");
    OpenSsl lib;
#define DLOCK_OPENSSL_LOAD(name)                                                                   \
    lib.name = dlock::detail::library_function<decltype(lib.name)>(library, #name, soname);
    DLOCK_OPENSSL_FUNCTIONS(DLOCK_OPENSSL_LOAD)
#undef DLOCK_OPENSSL_LOAD
    return lib;
}

// Loaded at the first call; a failed load is tried again at the next.
const OpenSsl& openssl() {
    static const OpenSsl lib = load_openssl();
    return lib;
}

struct SslContextFree {
    void operator()(SSL_CTX* context) const { openssl().SSL_CTX_free(context); }
};
struct SslFree {
    void operator()(SSL* ssl) const { openssl().SSL_free(ssl); }
};
using SslContextPtr = std::unique_ptr<SSL_CTX, SslContextFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// The reason OpenSSL gave for its latest failure ("tlsv1 alert unknown ca"), and the queue
// emptied for the next call.
std::string openssl_reason() {
    const unsigned long code = openssl().ERR_get_error();
    openssl().ERR_clear_error();
    if (code == 0)
        return "unknown TLS error";
    if (const char* reason = openssl().ERR_reason_error_string(code))
        return reason;
    char text[256];
    openssl().ERR_error_string_n(code, text, sizeof text);
    return text;
}

// What the BIO below needs: the descriptor, the errno of a failed send or recv, and the first
// bytes the server sent, which tell a plaintext Redis from a TLS one.
struct SocketState {
    int fd = -1;
    int error = 0;
    std::string first_bytes;
    bool certificate_requested = false; // and dlock had none to give
};

constexpr std::size_t first_bytes_kept = 8;

// OpenSSL's own socket BIO writes with write(2): a peer that hung up would raise SIGPIPE and
// kill dlock. This one sends with MSG_NOSIGNAL, as the plain transport does.
int bio_write(BIO* bio, const char* data, int size) {
    auto* state = static_cast<SocketState*>(openssl().BIO_get_data(bio));
    openssl().BIO_clear_flags(bio, BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY);
    for (;;) {
        const ssize_t n = send(state->fd, data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
        if (n >= 0)
            return static_cast<int>(n);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            openssl().BIO_set_flags(bio, BIO_FLAGS_WRITE | BIO_FLAGS_SHOULD_RETRY);
        else
            state->error = errno;
        return -1;
    }
}

int bio_read(BIO* bio, char* data, int size) {
    auto* state = static_cast<SocketState*>(openssl().BIO_get_data(bio));
    openssl().BIO_clear_flags(bio, BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY);
    for (;;) {
        const ssize_t n = recv(state->fd, data, static_cast<std::size_t>(size), 0);
        if (n > 0 && state->first_bytes.size() < first_bytes_kept)
            state->first_bytes.append(data, std::min(static_cast<std::size_t>(n),
                                                     first_bytes_kept - state->first_bytes.size()));
        if (n >= 0)
            return static_cast<int>(n);
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            openssl().BIO_set_flags(bio, BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY);
        else
            state->error = errno;
        return -1;
    }
}

long bio_ctrl(BIO*, int command, long, void*) {
    return command == BIO_CTRL_FLUSH ? 1 : 0; // sends are unbuffered
}

int bio_create(BIO* bio) {
    openssl().BIO_set_init(bio, 1);
    return 1;
}

const BIO_METHOD* socket_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m = openssl().BIO_meth_new(openssl().BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                                               "dlock socket");
        if (m == nullptr)
            throw ResourceError("cannot set up TLS: " + openssl_reason());
        openssl().BIO_meth_set_write(m, bio_write);
        openssl().BIO_meth_set_read(m, bio_read);
        openssl().BIO_meth_set_ctrl(m, bio_ctrl);
        openssl().BIO_meth_set_create(m, bio_create);
        return m;
    }();
    return method;
}

// Called when the server asks for a client certificate and dlock has none: the handshake goes
// on without (tls-auth-clients optional is content), but a server that requires one hangs up
// later, and then this is why.
int no_client_certificate(SSL* ssl, X509**, EVP_PKEY**) {
    static_cast<SocketState*>(openssl().BIO_get_data(openssl().SSL_get_rbio(ssl)))
        ->certificate_requested = true;
    return 0;
}

SslContextPtr make_context(const TlsOptions& tls) {
    SslContextPtr context(openssl().SSL_CTX_new(openssl().TLS_client_method()));
    if (!context)
        throw ResourceError("cannot set up TLS: " + openssl_reason());
    SSL_CTX* ctx = context.get();
    openssl().SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, nullptr);
    openssl().SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // A peer that closes without close_notify ends the stream like one that sends it: RESP
    // replies carry their own lengths, so a cut-off one is never taken for a whole one.
    openssl().SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    openssl().SSL_CTX_ctrl(ctx, SSL_CTRL_MODE,
                           SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER,
                           nullptr);
    // A record's header and body in one recv, not two; what it reads beyond is kept in OpenSSL,
    // which read_some asks before it polls.
    openssl().SSL_CTX_ctrl(ctx, SSL_CTRL_SET_READ_AHEAD, 1, nullptr);
    if (!tls.ca_file.empty()) {
        if (openssl().SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1)
            throw UsageError("cannot use --tls-ca '" + tls.ca_file + "': " + openssl_reason());
    } else if (openssl().SSL_CTX_set_default_verify_paths(ctx) != 1) {
        throw UsageError("cannot load the system's CA certificates: " + openssl_reason());
    }
    if (tls.cert_file.empty())
        openssl().SSL_CTX_set_client_cert_cb(ctx, no_client_certificate);
    if (tls.cert_file.empty() != tls.key_file.empty())
        throw UsageError("--tls-cert and --tls-key go together: give both or neither");
    if (!tls.cert_file.empty()) {
        if (openssl().SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
            throw UsageError("cannot use --tls-cert '" + tls.cert_file + "': " + openssl_reason());
        if (openssl().SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            throw UsageError("cannot use --tls-key '" + tls.key_file + "': " + openssl_reason());
        if (openssl().SSL_CTX_check_private_key(ctx) != 1)
            throw UsageError("--tls-key '" + tls.key_file + "' is not the key of --tls-cert '" +
                             tls.cert_file + "'");
    }
    return context;
}

bool is_ip_address(const std::string& name) {
    unsigned char address[sizeof(in6_addr)];
    return inet_pton(AF_INET, name.c_str(), address) == 1 ||
           inet_pton(AF_INET6, name.c_str(), address) == 1;
}

// RESP's first bytes: a plaintext Redis answered the ClientHello with an error reply.
bool looks_like_resp(const std::string& bytes) {
    return !bytes.empty() && std::strchr("+-:$*", bytes.front()) != nullptr;
}

// How long a TLS server may stay silent after the ClientHello before dlock asks, on a second
// connection, whether it is a plaintext Redis.
constexpr std::chrono::milliseconds probe_after{100};

// Whether the server at `url` answers a plaintext PING in RESP. Never throws.
bool answers_plaintext(const Url& url, const Deadline& deadline, const std::string& where) {
    try {
        UniqueFd fd = connect_tcp_socket(url, deadline, where);
        constexpr std::string_view ping = "PING\r\n";
        if (send(fd.get(), ping.data(), ping.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(ping.size()))
            return false;
        char first = 0;
        while (wait_ready(fd.get(), POLLIN, deadline)) {
            const ssize_t n = recv(fd.get(), &first, 1, 0);
            if (n == 1)
                return first == '+' || first == '-'; // +PONG, or -NOAUTH
            if (n == 0 || (errno != EINTR && errno != EAGAIN))
                return false;
        }
    } catch (const Error&) {
    }
    return false;
}

class TlsTransport final : public Transport {
public:
    int descriptor() const override { return fd_.get(); }
    TlsTransport(UniqueFd fd, SslContextPtr context, std::string where)
        : fd_(std::move(fd)), context_(std::move(context)), where_(std::move(where)) {
        state_.fd = fd_.get();
        ssl_.reset(openssl().SSL_new(context_.get()));
        BIO* bio = ssl_ ? openssl().BIO_new(socket_method()) : nullptr;
        if (bio == nullptr)
            throw ResourceError("cannot set up TLS: " + openssl_reason());
        openssl().BIO_set_data(bio, &state_);
        openssl().SSL_set_bio(ssl_.get(), bio, bio); // the SSL owns it now
    }

    // Checks the certificate against `name` (a host name or an IP address); sends it as SNI.
    void expect_name(const std::string& name) {
        if (is_ip_address(name)) {
            openssl().X509_VERIFY_PARAM_set1_ip_asc(openssl().SSL_get0_param(ssl_.get()),
                                                    name.c_str());
            return;
        }
        openssl().SSL_ctrl(ssl_.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                           const_cast<char*>(name.c_str()));
        openssl().SSL_set1_host(ssl_.get(), name.c_str());
    }

    void handshake(const Url& url, const Deadline& deadline, const std::string& name) {
        url_ = url;
        for (;;) {
            openssl().ERR_clear_error();
            const int result = openssl().SSL_connect(ssl_.get());
            if (result == 1)
                return;
            const int error = openssl().SSL_get_error(ssl_.get(), result);
            if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
                const short events = error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
                // A plaintext Redis reads a ClientHello as the start of an inline command and
                // waits for its newline, silent. When the server is silent for a moment, one
                // PING on a second connection tells whether that is what it is.
                if (!probed_ && state_.first_bytes.empty() && events == POLLIN) {
                    probed_ = true;
                    const Deadline moment{
                        std::min(deadline.at, std::chrono::steady_clock::now() + probe_after),
                        deadline.budget};
                    if (!wait_ready(fd_.get(), events, moment) &&
                        answers_plaintext(url_, deadline, where_))
                        throw IoError("cannot connect to Redis at " + where_ +
                                      ": server speaks plaintext, not TLS; use redis://");
                }
                if (!wait_ready(fd_.get(), events, deadline))
                    timed_out("TLS handshake with Redis at " + where_, deadline);
                continue;
            }
            throw IoError("cannot connect to Redis at " + where_ + ": " +
                          handshake_failure(error, name));
        }
    }

    // Whether the peer answers a ClientHello in TLS, whatever its certificate: a probe, after
    // plaintext RESP got no answer from it.
    bool answers_in_tls(const Deadline& deadline) {
        for (;;) {
            openssl().ERR_clear_error();
            const int result = openssl().SSL_connect(ssl_.get());
            const int error = openssl().SSL_get_error(ssl_.get(), result);
            if (result == 1 || !state_.first_bytes.empty() ||
                (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) ||
                !wait_ready(fd_.get(), error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))
                break;
        }
        openssl().ERR_clear_error();
        constexpr char alert = 0x15, handshake = 0x16; // TLS record types
        return !state_.first_bytes.empty() &&
               (state_.first_bytes.front() == handshake || state_.first_bytes.front() == alert);
    }

    std::size_t write_some(std::string_view bytes, const Deadline& deadline) override {
        for (;;) {
            openssl().ERR_clear_error();
            std::size_t written = 0;
            const int result =
                openssl().SSL_write_ex(ssl_.get(), bytes.data(), bytes.size(), &written);
            if (result == 1)
                return written;
            wait_or_throw(result, deadline, "sending to Redis at " + where_);
        }
    }

    // SSL_read comes before every poll: bytes OpenSSL has already decrypted (SSL_pending) are
    // invisible to poll(), which would wait on the socket for data that arrived long ago.
    std::size_t read_some(char* buffer, std::size_t size, const Deadline& deadline) override {
        for (;;) {
            openssl().ERR_clear_error();
            std::size_t got = 0;
            const int result = openssl().SSL_read_ex(ssl_.get(), buffer, size, &got);
            if (result == 1)
                return got;
            if (openssl().SSL_get_error(ssl_.get(), result) == SSL_ERROR_ZERO_RETURN)
                return 0;
            wait_or_throw(result, deadline, "waiting on Redis at " + where_);
        }
    }

private:
    void wait_or_throw(int result, const Deadline& deadline, const std::string& doing) {
        const int error = openssl().SSL_get_error(ssl_.get(), result);
        if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
            if (!wait_ready(fd_.get(), error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline))
                timed_out(doing, deadline);
            return;
        }
        const std::string hint =
            state_.certificate_requested
                ? " (the server wants a client certificate: --tls-cert and --tls-key)"
                : "";
        if (error == SSL_ERROR_SYSCALL) {
            openssl().ERR_clear_error();
            throw IoError("lost Redis at " + where_ + ": " +
                          (state_.error != 0 ? std::strerror(state_.error)
                                             : "connection closed by the server") +
                          hint);
        }
        throw IoError("lost Redis at " + where_ + ": " + openssl_reason() + hint);
    }

    std::string handshake_failure(int error, const std::string& name) {
        const long verified = openssl().SSL_get_verify_result(ssl_.get());
        if (verified != X509_V_OK) {
            openssl().ERR_clear_error();
            std::string why = std::string("certificate verify failed: ") +
                              openssl().X509_verify_cert_error_string(verified);
            if (verified == X509_V_ERR_HOSTNAME_MISMATCH ||
                verified == X509_V_ERR_IP_ADDRESS_MISMATCH)
                why += " (the certificate is not for '" + name +
                       "'; --tls-server-name NAME sets the name it must carry)";
            return why;
        }
        if (looks_like_resp(state_.first_bytes)) {
            openssl().ERR_clear_error();
            return "server speaks plaintext, not TLS; use redis://";
        }
        if (error == SSL_ERROR_SYSCALL) {
            openssl().ERR_clear_error();
            return state_.error != 0 ? std::strerror(state_.error)
                                     : "the server closed the connection during the TLS "
                                       "handshake";
        }
        return openssl_reason();
    }

    UniqueFd fd_;
    SslContextPtr context_;
    SocketState state_; // the BIO points at it: it outlives ssl_
    SslPtr ssl_;
    std::string where_;
    Url url_;
    bool probed_ = false;
};

} // namespace

bool speaks_tls(const Url& url, const Deadline& deadline, const std::string& where) {
    try {
        SslContextPtr context(openssl().SSL_CTX_new(openssl().TLS_client_method()));
        if (!context)
            return false;
        openssl().SSL_CTX_set_verify(context.get(), SSL_VERIFY_NONE, nullptr); // nothing is sent
        TlsTransport probe(connect_tcp_socket(url, deadline, where), std::move(context), where);
        return probe.answers_in_tls(deadline);
    } catch (const Error&) {
        return false;
    }
}

std::unique_ptr<Transport> connect_tls(const Url& url, const TlsOptions& tls,
                                       const Deadline& deadline, const std::string& where) {
    SslContextPtr context = make_context(tls);
    auto transport = std::make_unique<TlsTransport>(connect_tcp_socket(url, deadline, where),
                                                    std::move(context), where);
    const std::string& name = tls.server_name.empty() ? url.host : tls.server_name;
    transport->expect_name(name);
    transport->handshake(url, deadline, name);
    return transport;
}

} // namespace dlock::redis::detail
