#include "dlock/redis.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <exception>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>

namespace dlock::redis {
namespace {

[[noreturn]] void bad_url(std::string_view why) {
    throw UsageError("invalid Redis URL: " + std::string(why) +
                     " (use redis://[user[:password]@]host[:port][/db] or "
                     "unix://[user[:password]@]/path/to/socket[?db=N])");
}

int parse_number(std::string_view text, int max, std::string_view what) {
    int value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || value < 0 ||
        value > max)
        bad_url(std::string(what) + " '" + std::string(text) + "' is not a number from 0 to " +
                std::to_string(max));
    return value;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// User names and passwords may carry reserved characters percent-encoded (%40 for '@').
std::string percent_decode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '%') {
            out += text[i];
            continue;
        }
        if (i + 2 >= text.size())
            bad_url("bad percent-encoding in the user or password");
        const int high = hex_value(text[i + 1]);
        const int low = hex_value(text[i + 2]);
        if (high < 0 || low < 0)
            bad_url("bad percent-encoding in the user or password");
        out += static_cast<char>(high * 16 + low);
        i += 2;
    }
    return out;
}

constexpr int max_db = 1'000'000;

// user:password@ ahead of a host or socket path; user and password may be percent-encoded.
void parse_userinfo(std::string_view userinfo, Url& url) {
    const auto colon = userinfo.find(':');
    url.user = percent_decode(userinfo.substr(0, colon));
    if (colon != std::string_view::npos)
        url.password = percent_decode(userinfo.substr(colon + 1));
}

Url parse_unix(std::string_view rest) {
    Url url;
    url.transport = Url::Transport::unix_socket;
    if (const auto at = rest.find("@/");
        !rest.empty() && rest.front() != '/' && at != std::string_view::npos) {
        parse_userinfo(rest.substr(0, at), url);
        rest = rest.substr(at + 1);
    }
    const auto query = rest.find('?');
    url.socket_path = std::string(rest.substr(0, query));
    if (url.socket_path.empty() || url.socket_path.front() != '/')
        bad_url("a unix socket path must be absolute (unix:///path/to/socket)");
    if (query != std::string_view::npos) {
        const std::string_view params = rest.substr(query + 1);
        if (params.substr(0, 3) != "db=")
            bad_url("the only query parameter is db=N");
        url.db = parse_number(params.substr(3), max_db, "database");
    }
    return url;
}

Url parse_tcp(std::string_view rest) {
    Url url;
    const auto at = rest.rfind('@');
    if (at != std::string_view::npos) {
        parse_userinfo(rest.substr(0, at), url);
        rest = rest.substr(at + 1);
    }
    const auto slash = rest.find('/');
    std::string_view hostport = rest.substr(0, slash);
    if (slash != std::string_view::npos && slash + 1 < rest.size())
        url.db = parse_number(rest.substr(slash + 1), max_db, "database");

    std::string_view port = "6379";
    if (!hostport.empty() && hostport.front() == '[') { // [::1]:6379
        const auto close = hostport.find(']');
        if (close == std::string_view::npos)
            bad_url("unclosed '[' in the host");
        url.host = std::string(hostport.substr(1, close - 1));
        const std::string_view after = hostport.substr(close + 1);
        if (!after.empty() && after.front() != ':')
            bad_url("unexpected text after ']'");
        if (!after.empty())
            port = after.substr(1);
    } else {
        const auto colon = hostport.find(':');
        url.host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos)
            port = hostport.substr(colon + 1);
    }
    if (url.host.empty())
        bad_url("missing host");
    url.port = parse_number(port, 65535, "port");
    if (url.port == 0)
        bad_url("port 0 is not a port");
    return url;
}

} // namespace

Url parse_url(std::string_view text) {
    constexpr std::string_view tcp_scheme = "redis://";
    constexpr std::string_view unix_scheme = "unix://";
    if (text.substr(0, tcp_scheme.size()) == tcp_scheme)
        return parse_tcp(text.substr(tcp_scheme.size()));
    if (text.substr(0, unix_scheme.size()) == unix_scheme)
        return parse_unix(text.substr(unix_scheme.size()));
    if (text.substr(0, 9) == "rediss://")
        bad_url("TLS (rediss://) is not supported");
    // Name the scheme only when there clearly is one: a mistyped URL ("redis:/u:pw@host",
    // "u:pw@host") may hold a password anywhere, and error messages end up in logs.
    const std::size_t scheme_end = text.find("://");
    const std::string_view scheme = text.substr(0, scheme_end);
    const bool plain_scheme =
        scheme_end != std::string_view::npos && !scheme.empty() && scheme.size() <= 16 &&
        scheme.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") ==
            std::string_view::npos;
    if (plain_scheme)
        bad_url("unknown scheme '" + std::string(scheme) + "://'");
    bad_url("it must start with redis:// or unix://");
}

std::string Url::redacted() const {
    const std::string userinfo =
        !user.empty() || password ? user + (password ? ":***" : "") + "@" : "";
    if (transport == Transport::unix_socket)
        return "unix://" + userinfo + socket_path + (db != 0 ? "?db=" + std::to_string(db) : "");
    std::string out = "redis://" + userinfo;
    out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    out += ":" + std::to_string(port);
    if (db != 0)
        out += "/" + std::to_string(db);
    return out;
}

// --- replies -------------------------------------------------------------------------------

void Reply::Deleter::operator()(redisReply* reply) const {
    freeReplyObject(reply);
}

Reply::Reply(redisReply* reply) : reply_(reply) {}

bool ReplyView::is_nil() const {
    return reply_->type == REDIS_REPLY_NIL;
}
bool ReplyView::is_array() const {
    return reply_->type == REDIS_REPLY_ARRAY;
}

std::int64_t ReplyView::integer() const {
    if (reply_->type != REDIS_REPLY_INTEGER)
        throw ProtocolError("unexpected reply from Redis: expected an integer");
    return reply_->integer;
}

std::string ReplyView::string() const {
    if (reply_->type != REDIS_REPLY_STRING && reply_->type != REDIS_REPLY_STATUS)
        throw ProtocolError("unexpected reply from Redis: expected a string");
    return std::string(reply_->str, reply_->len);
}

std::size_t ReplyView::size() const {
    return is_array() ? reply_->elements : 0;
}

ReplyView ReplyView::operator[](std::size_t index) const {
    if (index >= size())
        throw ProtocolError("unexpected reply from Redis: array too short");
    return ReplyView(reply_->element[index]);
}

// --- connection ----------------------------------------------------------------------------

namespace {

timeval to_timeval(Millis timeout) {
    return timeval{static_cast<time_t>(timeout.count() / 1000),
                   static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
}

// Redis ends a blocking command that timed out on its next timer tick: up to 100 ms late at the
// default hz 10, a second at hz 1.
constexpr Millis blocking_slack{1'000};

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

// hiredis sends with write(2): a server that closed the connection while a command was being
// sent would raise SIGPIPE, which kills a process that has not ignored it, silently and with no
// exit code a script can act on. For the span of one exchange SIGPIPE is blocked, and one it
// raised is taken back before the mask is restored; the write fails with EPIPE instead, which
// becomes an IoError like any broken connection. The process-wide disposition is left alone,
// so commands that `dlock run` starts, and dlock's own stdout, behave as usual.
class SigpipeBlocked {
public:
    SigpipeBlocked() {
        sigemptyset(&sigpipe_);
        sigaddset(&sigpipe_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &sigpipe_, &saved_);
    }
    ~SigpipeBlocked() {
        const int saved_errno = errno; // the caller reports the failed write by it
        sigset_t pending;
        sigpending(&pending);
        if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
            const timespec now{0, 0};
            while (sigtimedwait(&sigpipe_, nullptr, &now) < 0 && errno == EINTR) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
        errno = saved_errno;
    }
    SigpipeBlocked(const SigpipeBlocked&) = delete;
    SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

private:
    sigset_t sigpipe_{};
    sigset_t saved_{};
    bool was_pending_ = false;
};

} // namespace

void Connection::ContextDeleter::operator()(redisContext* context) const {
    redisFree(context);
}

Connection::Connection(const Options& options)
    : where_(options.url.redacted()), timeout_(options.timeout) {
    const Url& url = options.url;
    const timeval tv = to_timeval(options.timeout);
    context_.reset(url.transport == Url::Transport::unix_socket
                       ? redisConnectUnixWithTimeout(url.socket_path.c_str(), tv)
                       : redisConnectWithTimeout(url.host.c_str(), url.port, tv));
    if (!context_)
        throw InternalError("out of memory creating a Redis connection");
    if (context_->err != 0)
        throw_context_error("cannot connect to");
    if (redisSetTimeout(context_.get(), tv) != REDIS_OK)
        throw_context_error("cannot set a timeout on");

    if (url.password) {
        if (url.user.empty())
            append({"AUTH", *url.password});
        else
            append({"AUTH", url.user, *url.password});
        ++pending_setup_replies_;
    }
    if (url.db != 0) {
        const std::string db = std::to_string(url.db);
        append({"SELECT", db});
        ++pending_setup_replies_;
    }
}

Connection::~Connection() = default;

void Connection::throw_context_error(std::string_view doing) const {
    const int saved_errno = errno;
    const std::string message = std::string(doing) + " Redis at " + where_ + ": ";
    switch (context_->err) {
    case REDIS_ERR_IO:
        if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT ||
            saved_errno == EINPROGRESS)
            throw TimeoutError(message + "timed out");
        throw IoError(message + context_->errstr);
    case REDIS_ERR_EOF:
        throw IoError(message + "connection closed by the server");
    case REDIS_ERR_PROTOCOL:
        throw ProtocolError(message + "the server does not speak the Redis protocol");
    default:
        throw IoError(message + context_->errstr);
    }
}

// Sends what was appended, then waits up to `timeout` for something to read: a blocked command's
// reply may take longer than the socket's own timeout, which stays as it is (a poll costs one
// system call; changing the timeout there and back, four).
void Connection::wait_readable(Millis timeout) {
    if (!readable_within(timeout))
        throw TimeoutError("waiting on Redis at " + where_ + ": timed out");
}

// Sends what was appended; true once something can be read, false if nothing came in `wait`.
// A signal that interrupts the wait ends it early (false), so a caller can act on it.
bool Connection::readable_within(Millis wait) {
    const redisReader* reader = context_->reader;
    if (reader != nullptr && reader->pos < reader->len)
        return true; // an earlier read already brought (part of) the reply
    {
        const SigpipeBlocked sending;
        for (int done = 0; done == 0;)
            if (redisBufferWrite(context_.get(), &done) != REDIS_OK)
                throw_context_error("cannot send a command to");
    }
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + wait;
    for (;;) {
        const auto left = std::chrono::ceil<Millis>(deadline - clock::now());
        if (left.count() <= 0)
            return false;
        pollfd pfd{context_->fd, POLLIN, 0};
        const int ready = poll(&pfd, 1, static_cast<int>(std::min(left, Millis{60'000}).count()));
        if (ready > 0)
            return true;
        if (ready < 0 && errno == EINTR)
            return false;
        if (ready < 0)
            throw IoError("waiting on Redis at " + where_ + " failed: " + std::strerror(errno));
    }
}

void Connection::send(const std::vector<std::string_view>& args) {
    append(args);
    for (; pending_setup_replies_ > 0; --pending_setup_replies_)
        read_reply();
}

std::optional<Reply> Connection::receive(Millis wait) {
    void* buffered = nullptr;
    if (redisGetReplyFromReader(context_.get(), &buffered) == REDIS_OK && buffered != nullptr)
        return Reply(static_cast<redisReply*>(buffered));
    if (!readable_within(wait))
        return std::nullopt;
    return read_reply();
}

void Connection::append(const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    argv.reserve(args.size());
    lengths.reserve(args.size());
    for (const auto arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()), argv.data(),
                               lengths.data()) != REDIS_OK)
        throw_context_error("cannot send a command to");
}

Reply Connection::read_reply() {
    void* raw = nullptr;
    errno = 0;
    bool got = false;
    {
        const SigpipeBlocked sending; // redisGetReply first sends what was appended
        got = redisGetReply(context_.get(), &raw) == REDIS_OK && raw != nullptr;
    }
    if (!got)
        throw_context_error("lost");
    Reply reply(static_cast<redisReply*>(raw));
    const auto* r = static_cast<const redisReply*>(raw);
    if (r->type == REDIS_REPLY_ERROR) {
        const std::string text(r->str, r->len);
        if (starts_with(text, "NOAUTH") || starts_with(text, "WRONGPASS") ||
            starts_with(text, "NOPERM") || text.find("invalid password") != std::string::npos)
            throw AuthError("Redis at " + where_ + " refused access: " + text);
        throw ReplyError("Redis at " + where_ + " answered with an error: " + text);
    }
    return reply;
}

Reply Connection::command(const std::vector<std::string_view>& args) {
    append(args);
    // The set-up commands were pipelined ahead of this one; their answers come first.
    for (; pending_setup_replies_ > 0; --pending_setup_replies_)
        read_reply();
    return read_reply();
}

Reply Connection::eval(std::string_view script, const std::vector<std::string_view>& keys,
                       const std::vector<std::string_view>& args) {
    const std::string key_count = std::to_string(keys.size());
    std::vector<std::string_view> argv{"EVAL", script, key_count};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return command(argv);
}

std::vector<Reply> Connection::pipeline(const std::vector<std::vector<std::string_view>>& commands,
                                        Millis first_blocks_for) {
    for (const auto& args : commands)
        append(args);
    for (; pending_setup_replies_ > 0; --pending_setup_replies_)
        read_reply();
    std::vector<Reply> replies;
    replies.reserve(commands.size());
    std::exception_ptr refused; // an error reply; the replies behind it are still read
    for (std::size_t i = 0; i < commands.size(); ++i) {
        if (i == 0 && first_blocks_for.count() > 0)
            wait_readable(timeout_ + first_blocks_for + blocking_slack);
        try {
            replies.push_back(read_reply());
        } catch (const AuthError&) {
            refused = refused ? refused : std::current_exception();
        } catch (const ReplyError&) {
            refused = refused ? refused : std::current_exception();
        }
    }
    if (refused)
        std::rethrow_exception(refused);
    return replies;
}

} // namespace dlock::redis
