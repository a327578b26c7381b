#include "dlock/redis.hpp"

#include "redis_transport.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <hiredis/hiredis.h>
#include <new>
#include <poll.h>
#include <sys/un.h>

namespace dlock::redis {
namespace {

[[noreturn]] void bad_url(std::string_view why) {
    throw UsageError("invalid Redis URL: " + std::string(why) + " (use " + std::string(url_forms) +
                     ")");
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
constexpr std::size_t max_unix_path_bytes = sizeof(sockaddr_un::sun_path) - 1; // and a NUL

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
    // The kernel takes at most this many bytes; a longer path would be cut short, and dlock
    // would talk to whatever listens at the shorter one.
    if (url.socket_path.size() > max_unix_path_bytes)
        bad_url("the unix socket path is " + std::to_string(url.socket_path.size()) +
                " bytes long; a socket address holds at most " +
                std::to_string(max_unix_path_bytes));
    if (query != std::string_view::npos) {
        const std::string_view params = rest.substr(query + 1);
        if (params.substr(0, 3) != "db=")
            bad_url("the only query parameter is db=N");
        url.db = parse_number(params.substr(3), max_db, "database");
    }
    return url;
}

Url parse_tcp(std::string_view rest, Url::Transport transport) {
    Url url;
    url.transport = transport;
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

// [user[:password]@]host[:port][,host[:port]...][/]: a Redis Cluster has only database 0.
Url parse_cluster(std::string_view rest, Url::Transport transport) {
    const auto at = rest.rfind('@');
    const std::string_view userinfo = at == std::string_view::npos ? "" : rest.substr(0, at);
    std::string_view seeds = at == std::string_view::npos ? rest : rest.substr(at + 1);
    if (const auto slash = seeds.find('/'); slash != std::string_view::npos) {
        if (slash + 1 < seeds.size())
            bad_url("a Redis Cluster has only database 0; drop '" +
                    std::string(seeds.substr(slash)) + "'");
        seeds = seeds.substr(0, slash);
    }
    Url url;
    for (std::size_t start = 0;;) {
        const auto comma = seeds.find(',', start);
        const Url seed = parse_tcp(seeds.substr(start, comma - start), transport);
        url.cluster_seeds.push_back({seed.host, seed.port});
        if (comma == std::string_view::npos)
            break;
        start = comma + 1;
    }
    url.transport = transport;
    url.host = url.cluster_seeds.front().host;
    url.port = url.cluster_seeds.front().port;
    if (at != std::string_view::npos)
        parse_userinfo(userinfo, url);
    return url;
}

} // namespace

Url parse_url(std::string_view text) {
    constexpr std::string_view tcp_scheme = "redis://";
    constexpr std::string_view tls_scheme = "rediss://";
    constexpr std::string_view unix_scheme = "unix://";
    constexpr std::string_view cluster_scheme = "redis+cluster://";
    constexpr std::string_view tls_cluster_scheme = "rediss+cluster://";
    if (text.substr(0, cluster_scheme.size()) == cluster_scheme)
        return parse_cluster(text.substr(cluster_scheme.size()), Url::Transport::tcp);
    if (text.substr(0, tls_cluster_scheme.size()) == tls_cluster_scheme)
        return parse_cluster(text.substr(tls_cluster_scheme.size()), Url::Transport::tls);
    if (text.substr(0, tcp_scheme.size()) == tcp_scheme)
        return parse_tcp(text.substr(tcp_scheme.size()), Url::Transport::tcp);
    if (text.substr(0, tls_scheme.size()) == tls_scheme)
        return parse_tcp(text.substr(tls_scheme.size()), Url::Transport::tls);
    if (text.substr(0, unix_scheme.size()) == unix_scheme)
        return parse_unix(text.substr(unix_scheme.size()));
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
    bad_url("it must start with redis://, rediss://, unix:// or redis+cluster://");
}

std::string Url::redacted() const {
    const std::string userinfo =
        !user.empty() || password ? user + (password ? ":***" : "") + "@" : "";
    if (transport == Transport::unix_socket)
        return "unix://" + userinfo + socket_path + (db != 0 ? "?db=" + std::to_string(db) : "");
    const std::string_view scheme = transport == Transport::tls ? "rediss" : "redis";
    const auto address = [](const std::string& node_host, int node_port) {
        return (node_host.find(':') != std::string::npos ? "[" + node_host + "]" : node_host) +
               ":" + std::to_string(node_port);
    };
    if (!cluster_seeds.empty()) {
        std::string out = std::string(scheme) + "+cluster://" + userinfo;
        for (const Node& seed : cluster_seeds)
            out += (&seed == &cluster_seeds.front() ? "" : ",") + address(seed.host, seed.port);
        return out;
    }
    std::string out = std::string(scheme) + "://" + userinfo + address(host, port);
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

std::optional<std::string> ReplyView::error() const {
    if (reply_->type != REDIS_REPLY_ERROR)
        return std::nullopt;
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

// Redis ends a blocking command that timed out on its next timer tick: up to 100 ms late at the
// default hz 10, a second at hz 1.
constexpr Millis blocking_slack{1'000};

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

// One command in RESP, as Redis reads it: an array of bulk strings.
void append_resp(std::string& out, const std::vector<std::string_view>& args) {
    out += '*';
    out += std::to_string(args.size());
    out += "\r\n";
    for (const auto arg : args) {
        out += '$';
        out += std::to_string(arg.size());
        out += "\r\n";
        out += arg;
        out += "\r\n";
    }
}

std::optional<ClusterError::Kind> cluster_error_kind(std::string_view text) {
    if (starts_with(text, "MOVED "))
        return ClusterError::Kind::moved;
    if (starts_with(text, "ASK "))
        return ClusterError::Kind::ask;
    if (starts_with(text, "TRYAGAIN"))
        return ClusterError::Kind::try_again;
    if (starts_with(text, "CROSSSLOT"))
        return ClusterError::Kind::cross_slot;
    return std::nullopt;
}

bool whole_number(std::string_view text, int& out) {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return !text.empty() && ec == std::errc{} && end == text.data() + text.size();
}

// "MOVED 3999 127.0.0.1:6381" and "ASK 3999 127.0.0.1:6381" name the slot and the node; an
// empty host (":6381") is the host already asked.
ClusterError cluster_error(ClusterError::Kind kind, const std::string& text,
                           const std::string& where) {
    const std::string message = "Redis at " + where + " answered with an error: " + text;
    if (kind != ClusterError::Kind::moved && kind != ClusterError::Kind::ask)
        return ClusterError(message, kind, -1, "", 0);
    const std::string_view rest = std::string_view(text).substr(text.find(' ') + 1);
    const auto space = rest.find(' ');
    const std::string_view address =
        space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
    const auto colon = address.rfind(':');
    int slot = -1;
    int port = 0;
    if (colon == std::string_view::npos || !whole_number(rest.substr(0, space), slot) ||
        !whole_number(address.substr(colon + 1), port) || slot < 0 || slot > 16383 || port <= 0 ||
        port > 65535)
        throw ProtocolError("Redis at " + where + " sent a malformed redirection: " + text);
    return ClusterError(message, kind, slot, std::string(address.substr(0, colon)), port);
}

} // namespace

void Connection::ReaderDeleter::operator()(redisReader* reader) const {
    redisReaderFree(reader);
}

Connection::Connection(const Options& options)
    : where_(options.url.redacted()), url_(options.url), timeout_(options.timeout) {
    const Url& url = options.url;
    reader_.reset(redisReaderCreate());
    if (!reader_)
        throw std::bad_alloc();
    const detail::Deadline deadline = detail::Deadline::after(timeout_);
    transport_ = url.transport == Url::Transport::tls
                     ? detail::connect_tls(url, options.tls, deadline, where_)
                     : detail::connect_plain(url, deadline, where_);

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
    if (options.require_master) {
        append({"ROLE"});
        const std::vector<Reply> role = exchange(1, deadline);
        const ReplyView view = role.front().view();
        const std::string name = view.size() > 0 ? view[0].string() : "";
        if (name != "master")
            throw NotMasterError(where_ + " is not a master (ROLE says " + name + ")");
    }
}

Connection::~Connection() = default;

void Connection::append(const std::vector<std::string_view>& args) {
    append_resp(output_, args);
}

// Feeds the reader until it holds a whole reply. The deadline bounds the whole wait, not each
// read: a peer sending one byte every half second runs into it like a silent one.
Reply Connection::next_reply(const detail::Deadline& deadline) {
    for (;;) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
            if (reader_->err == REDIS_ERR_OOM)
                throw std::bad_alloc();
            throw ProtocolError("lost Redis at " + where_ +
                                ": the server does not speak the Redis protocol");
        }
        if (raw != nullptr) {
            answered_ = true;
            return Reply(static_cast<redisReply*>(raw));
        }
        char buffer[16 * 1024];
        const std::size_t n = transport_->read_some(buffer, sizeof buffer, deadline);
        if (n == 0)
            throw IoError("lost Redis at " + where_ + ": connection closed by the server");
        if (redisReaderFeed(reader_.get(), buffer, n) != REDIS_OK)
            throw std::bad_alloc();
    }
}

void Connection::check_answer(const Reply& reply) const {
    const std::optional<std::string> error = reply.view().error();
    if (!error)
        return;
    const std::string& text = *error;
    if (const std::optional<ClusterError::Kind> kind = cluster_error_kind(text))
        throw cluster_error(*kind, text, where_);
    if (text.find("SELECT is not allowed in cluster mode") != std::string::npos)
        throw UsageError("Redis at " + where_ + " is a Redis Cluster node, which has only " +
                         "database 0: SELECT is not allowed in cluster mode (drop the database " +
                         "from the URL)");
    if (starts_with(text, "NOAUTH") || starts_with(text, "WRONGPASS") ||
        starts_with(text, "NOPERM") || text.find("invalid password") != std::string::npos)
        throw AuthError("Redis at " + where_ + " refused access: " + text);
    // "ERR unknown command 'EVAL', with args beginning with: ..." would quote a whole script.
    const std::string said = text.substr(0, text.find(", with args beginning with"));
    throw ReplyError("Redis at " + where_ + " answered with an error: " + said);
}

std::vector<Reply> Connection::exchange(std::size_t count, const detail::Deadline& deadline) {
    write_out(deadline);
    return read_replies(count, deadline);
}

void Connection::write_out(const detail::Deadline& deadline) {
    if (broken_)
        throw IoError("lost Redis at " + where_ + ": an earlier call on this connection failed");
    broken_ = true; // until every reply is read
    try {
        for (std::string_view unsent = output_; !unsent.empty();)
            unsent.remove_prefix(transport_->write_some(unsent, deadline));
        output_.clear();
    } catch (const RedisError& e) {
        rethrow_plainly(e, deadline);
    }
}

std::vector<Reply> Connection::read_replies(std::size_t count, const detail::Deadline& deadline) {
    std::vector<Reply> replies;
    try {
        // The set-up commands were pipelined ahead of these; their answers come first.
        for (; pending_setup_replies_ > 0; --pending_setup_replies_)
            check_answer(next_reply(deadline));
        replies.reserve(count);
        for (std::size_t i = 0; i < count; ++i)
            replies.push_back(next_reply(deadline));
    } catch (const RedisError& e) {
        rethrow_plainly(e, deadline);
    }
    broken_ = false;
    for (const Reply& reply : replies)
        if (const auto error = reply.view().error(); error && starts_with(*error, "READONLY"))
            throw ReplyError(where_ + " is a read-only replica" + master_of_replica() +
                             "; point dlock at the master (or use redis+sentinel://)");
    for (const Reply& reply : replies)
        if (const auto error = reply.view().error();
            error && starts_with(*error, "ERR unknown command") &&
            !starts_with(*error, "ERR unknown command 'ROLE'"))
            refuse_sentinel();
    for (const Reply& reply : replies)
        check_answer(reply); // an error reply leaves the connection in step
    return replies;
}

void Connection::rethrow_plainly(const RedisError& e, const detail::Deadline& deadline) {
    // A TLS server hangs up on plaintext, or answers it with a TLS alert. Said plainly when a
    // TLS handshake with it (the probe) shows that is what it is.
    if (!answered_ && url_.transport == Url::Transport::tcp &&
        (dynamic_cast<const IoError*>(&e) != nullptr ||
         dynamic_cast<const ProtocolError*>(&e) != nullptr) &&
        detail::speaks_tls(url_, deadline, where_))
        throw IoError("lost Redis at " + where_ + ": server speaks TLS; use rediss://");
    throw;
}

void Connection::refuse_sentinel() {
    try {
        append({"ROLE"});
        const std::vector<Reply> role = exchange(1, detail::Deadline::after(timeout_));
        const ReplyView view = role.front().view();
        if (view.size() == 0 || view[0].string() != "sentinel")
            return;
    } catch (const RedisError&) {
        return; // not a Sentinel, or one that will not say: the command's own error follows
    }
    std::string address =
        url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
    address += ":" + std::to_string(url_.port);
    if (url_.transport == Url::Transport::unix_socket)
        throw ReplyError(where_ + " is a Redis Sentinel; use redis+sentinel://HOST:PORT/MASTER");
    throw ReplyError(address + " is a Redis Sentinel; use " +
                     (url_.transport == Url::Transport::tls ? "rediss" : "redis") + "+sentinel://" +
                     address + "/MASTER");
}

// " of HOST:PORT", the master ROLE names, or nothing when the server will not say.
std::string Connection::master_of_replica() {
    try {
        append({"ROLE"});
        const std::vector<Reply> role = exchange(1, detail::Deadline::after(timeout_));
        const ReplyView view = role.front().view();
        if (view.size() >= 3 && (view[0].string() == "slave" || view[0].string() == "replica"))
            return " of " + view[1].string() + ":" + std::to_string(view[2].integer());
    } catch (const RedisError&) {
        // A user without +role: the replica is named without its master.
    }
    return "";
}

Reply Connection::command(const std::vector<std::string_view>& args) {
    append(args);
    return std::move(exchange(1, detail::Deadline::after(timeout_)).front());
}

std::vector<std::string_view> eval_words(std::string_view script, const std::string& key_count,
                                         const std::vector<std::string_view>& keys,
                                         const std::vector<std::string_view>& args) {
    std::vector<std::string_view> words{"EVAL", script, key_count};
    words.insert(words.end(), keys.begin(), keys.end());
    words.insert(words.end(), args.begin(), args.end());
    return words;
}

Reply Connection::eval(std::string_view script, const std::vector<std::string_view>& keys,
                       const std::vector<std::string_view>& args) {
    const std::string key_count = std::to_string(keys.size());
    return command(eval_words(script, key_count, keys, args));
}

std::vector<Reply> Connection::pipeline(const std::vector<std::vector<std::string_view>>& commands,
                                        Millis blocks_for) {
    for (const auto& args : commands)
        append(args);
    // One deadline for the whole pipeline; blocking commands add their own wait.
    const Millis budget =
        timeout_ + (blocks_for.count() > 0 ? blocks_for + blocking_slack : Millis{0});
    return exchange(commands.size(), detail::Deadline::after(budget));
}

void Connection::start(const std::vector<std::vector<std::string_view>>& commands) {
    for (const auto& args : commands)
        append(args);
    started_ = commands.size();
    const detail::Deadline deadline = detail::Deadline::after(timeout_);
    started_until_ = deadline.at;
    write_out(deadline);
}

std::vector<Reply> Connection::finish() {
    return read_replies(std::exchange(started_, 0), detail::Deadline{started_until_, timeout_});
}

void Connection::send(const std::vector<std::string_view>& args) {
    append(args);
    exchange(0, detail::Deadline::after(timeout_));
}

int Connection::descriptor() const {
    return transport_->descriptor();
}

bool Connection::open() const {
    if (broken_)
        return false;
    pollfd peer{transport_->descriptor(), POLLIN | POLLRDHUP, 0};
    return poll(&peer, 1, 0) == 0;
}

// A wait with nothing to read is no failure here: subscribers mostly wait.
std::optional<Reply> Connection::receive(Millis wait) {
    const detail::Deadline deadline = detail::Deadline::after(wait);
    for (;;) {
        void* raw = nullptr;
        if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK)
            throw ProtocolError("lost Redis at " + where_ +
                                ": the server does not speak the Redis protocol");
        if (raw != nullptr)
            return Reply(static_cast<redisReply*>(raw));
        char buffer[16 * 1024];
        std::size_t n = 0;
        try {
            n = transport_->read_some(buffer, sizeof buffer, deadline);
        } catch (const TimeoutError&) {
            return std::nullopt;
        }
        if (n == 0)
            throw IoError("lost Redis at " + where_ + ": connection closed by the server");
        if (redisReaderFeed(reader_.get(), buffer, n) != REDIS_OK)
            throw std::bad_alloc();
    }
}

} // namespace dlock::redis
