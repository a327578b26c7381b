// The Redis connection: URL parsing, connect and calls with deadlines, AUTH and SELECT, typed
// errors. dlock owns the socket; hiredis only parses replies. Nothing here knows about locks.
#pragma once

#include "dlock/duration.hpp"
#include "dlock/error.hpp"

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct redisReader;
struct redisReply;

namespace dlock::redis {

namespace detail {
class Transport;
struct Deadline;
} // namespace detail

// redis://[user[:password]@]host[:port][/db], rediss://... (the same over TLS),
// unix://[user[:password]@]/path/to/sock[?db=N], or a Redis Cluster's seed nodes:
// redis+cluster://[user[:password]@]host[:port][,host[:port]...][/] (rediss+cluster:// over TLS)
struct Url {
    enum class Transport { tcp, tls, unix_socket };
    Transport transport = Transport::tcp;
    std::string host = "127.0.0.1";
    int port = 6379;
    std::string socket_path;
    std::string user;
    std::optional<std::string> password;
    int db = 0;
    // redis+cluster://: the seed nodes in the order given (host and port are the first one's).
    struct Node {
        std::string host;
        int port = 6379;
    };
    std::vector<Node> cluster_seeds;

    // The URL without its password, safe for messages and logs.
    std::string redacted() const;
};

inline constexpr std::string_view default_url = "redis://127.0.0.1:6379";
inline constexpr Millis default_timeout{3000};

// The forms a Redis URL takes, as usage messages show them. Its "[user[:password]@]" is a
// placeholder, not a password: messages mask every other "user:password@".
inline constexpr std::string_view url_forms =
    "redis://[user[:password]@]host[:port][/db], rediss://... (TLS), "
    "unix://[user[:password]@]/path/to/socket[?db=N] or "
    "redis+cluster://[user[:password]@]host[:port],host[:port]... (rediss+cluster:// for TLS)";

// Throws UsageError for a malformed URL, and for a unix socket path longer than a socket
// address holds (107 bytes). The password is never part of the message.
Url parse_url(std::string_view text);

// How a rediss:// connection proves whom it talks to. The server's certificate is always
// verified: against the system's CA store, or `ca_file` when given.
struct TlsOptions {
    std::string ca_file;     // PEM: the CA (or CAs) that signed the server's certificate
    std::string cert_file;   // PEM: a client certificate, for servers with tls-auth-clients
    std::string key_file;    // PEM: its private key
    std::string server_name; // the name the certificate must carry, when not the URL's host

    bool empty() const {
        return ca_file.empty() && cert_file.empty() && key_file.empty() && server_name.empty();
    }
};

struct Options {
    Url url;
    TlsOptions tls; // for rediss:// only
    // Bounds the connect, and each call (a command or a pipeline, with its reply) as a whole:
    // a peer that trickles its answer cannot stretch a call past it.
    Millis timeout = default_timeout;
    // Asks ROLE when connecting (after AUTH and SELECT, one round trip before any command) and
    // throws NotMasterError unless the server is a master: a server a Sentinel named may have
    // been demoted since.
    bool require_master = false;
};

// Base of every Redis failure: the server is unreachable, slow, refusing or not Redis at all.
class RedisError : public UnavailableError {
public:
    using UnavailableError::UnavailableError;
};
class IoError : public RedisError {
public:
    using RedisError::RedisError;
};
class TimeoutError : public RedisError {
public:
    using RedisError::RedisError;
};
class AuthError : public RedisError {
public:
    using RedisError::RedisError;
};
class ProtocolError : public RedisError {
public:
    using RedisError::RedisError;
};
// The server answered a command with an error reply (OOM, NOPERM, LOADING, ...).
class ReplyError : public RedisError {
public:
    using RedisError::RedisError;
};
// Options::require_master, and the server is a replica (or not a data server at all).
class NotMasterError : public RedisError {
public:
    using RedisError::RedisError;
};

// A Redis Cluster node's answer that a command's keys are served elsewhere or later: MOVED (the
// slot lives at `host`:`port` now), ASK (ask that node, this once, with ASKING ahead), TRYAGAIN
// (a multi-key command while its slot is being migrated) or CROSSSLOT (its keys hash to
// different slots). The command did not run.
class ClusterError : public ReplyError {
public:
    enum class Kind { moved, ask, try_again, cross_slot };
    ClusterError(const std::string& message, Kind kind, int slot, std::string host, int port)
        : ReplyError(message), kind(kind), slot(slot), host(std::move(host)), port(port) {}
    Kind kind;
    int slot;         // moved, ask: the key's slot; otherwise -1
    std::string host; // moved, ask: the node to go to; empty when it is the one asked
    int port;
};

// The words of EVAL script numkeys keys... args...; they point into `key_count`, the text of
// keys.size(), which must outlive them.
std::vector<std::string_view> eval_words(std::string_view script, const std::string& key_count,
                                         const std::vector<std::string_view>& keys,
                                         const std::vector<std::string_view>& args);

// A read-only view of one reply (or one element of an array reply).
class ReplyView {
public:
    explicit ReplyView(const redisReply* reply) : reply_(reply) {}
    bool is_nil() const;
    bool is_array() const;
    std::int64_t integer() const; // throws ProtocolError unless an integer reply
    std::string string() const;   // bulk or status string; throws ProtocolError otherwise
    std::size_t size() const;     // array length
    std::optional<std::string> error() const; // the text of an error reply, else nullopt
    ReplyView operator[](std::size_t index) const;

private:
    const redisReply* reply_;
};

// Owns a reply tree.
class Reply {
public:
    explicit Reply(redisReply* reply);
    ReplyView view() const { return ReplyView(reply_.get()); }

private:
    struct Deleter {
        void operator()(redisReply* reply) const;
    };
    std::unique_ptr<redisReply, Deleter> reply_;
};

// One connection. AUTH and SELECT are pipelined with the first command, so a fresh
// process pays one round trip for its first command, not three. Every call has one deadline,
// whatever the peer sends meanwhile; a call that failed half-way (timed out, hung up, not
// Redis) leaves the connection unusable, and later calls throw IoError.
class Connection {
public:
    explicit Connection(const Options& options);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    Reply command(const std::vector<std::string_view>& args);
    Reply command(std::initializer_list<std::string_view> args) {
        return command(std::vector<std::string_view>(args));
    }
    // EVAL of a script with its keys and arguments: one round trip.
    Reply eval(std::string_view script, const std::vector<std::string_view>& keys,
               const std::vector<std::string_view>& args);

    // Sends `commands` in one write and returns their replies in order: one round trip. Some
    // may be blocking commands (BLPOP, WAIT) that the server holds for up to `blocks_for` in
    // all; the whole call may take that much longer than the timeout. Redis runs the commands
    // queued behind a blocked one the moment it returns. An error reply throws, as in
    // command(), once every reply has been read.
    std::vector<Reply> pipeline(const std::vector<std::vector<std::string_view>>& commands,
                                Millis blocks_for = Millis{0});

    // pipeline() in two halves, so that several servers can be asked at once: start() sends
    // `commands` on each, then finish() on each reads their replies, as pipeline() would have,
    // within the timeout counted from start(). In between, the connection takes no other call.
    void start(const std::vector<std::vector<std::string_view>>& commands);
    std::vector<Reply> finish();

    // For a connection that subscribes (SUBSCRIBE, PSUBSCRIBE): sends `args` and returns;
    // their replies and the messages pushed later come through receive().
    void send(const std::vector<std::string_view>& args);
    // The next reply or pushed message, or nullopt when none came within `wait`.
    std::optional<Reply> receive(Millis wait);
    // The socket, to poll for POLLIN when waiting on several connections at once (send() on
    // each, then receive(Millis{0}) on those that poll says are readable, and on every one
    // before the first poll: a TLS connection may hold decrypted bytes already).
    int descriptor() const;
    // Whether the connection is still open as far as this host can tell: no call failed on it,
    // and the server has neither hung up nor sent anything unasked (which it does only to say
    // goodbye, as when its idle `timeout` closes the connection). A connection that passes may
    // still have died silently on the way (a NAT that forgot it).
    bool open() const;

private:
    void append(const std::vector<std::string_view>& args);
    // Sends what was appended, reads the pending set-up replies and then `count` replies, all
    // by `deadline`. An error reply to a set-up command throws at once; error replies to the
    // commands throw once all of them are read, the first one first.
    std::vector<Reply> exchange(std::size_t count, const detail::Deadline& deadline);
    // exchange()'s halves: sending what was appended, and reading the replies.
    void write_out(const detail::Deadline& deadline);
    std::vector<Reply> read_replies(std::size_t count, const detail::Deadline& deadline);
    // Rethrows `e`, which a call failed with, or what it means when the server speaks TLS.
    [[noreturn]] void rethrow_plainly(const RedisError& e, const detail::Deadline& deadline);
    Reply next_reply(const detail::Deadline& deadline);
    void check_answer(const Reply& reply) const;
    std::string master_of_replica();
    // Throws, naming the redis+sentinel:// URL to use, when the server is a Sentinel.
    void refuse_sentinel();

    struct ReaderDeleter {
        void operator()(redisReader* reader) const;
    };
    std::unique_ptr<detail::Transport> transport_;
    std::unique_ptr<redisReader, ReaderDeleter> reader_;
    std::string output_; // commands appended, not sent yet
    std::string where_;  // redacted URL, for messages
    Url url_;
    Millis timeout_;
    bool answered_ = false; // the server has sent a reply: it speaks RESP
    int pending_setup_replies_ = 0;
    std::size_t started_ = 0; // commands start() sent, their replies not read yet
    std::chrono::steady_clock::time_point started_until_; // their deadline
    bool broken_ = false; // a call failed half-way: replies may be out of step with commands
};

} // namespace dlock::redis
