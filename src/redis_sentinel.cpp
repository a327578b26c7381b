#include "dlock/redis_sentinel.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

namespace dlock {
namespace redis {
namespace {

constexpr std::string_view tcp_scheme = "redis+sentinel://";
constexpr std::string_view tls_scheme = "rediss+sentinel://";
constexpr std::string_view sentinel_url_form =
    "redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/MASTER_NAME[/db] or "
    "rediss+sentinel://... (TLS)";

bool starts_with(std::string_view text, std::string_view prefix) {
    return text.substr(0, prefix.size()) == prefix;
}

[[noreturn]] void bad_url(std::string_view why) {
    throw UsageError("invalid Redis Sentinel URL: " + std::string(why) + " (use " +
                     std::string(sentinel_url_form) + ")");
}

// parse_url on a part of the URL, its complaint told in this URL's terms.
Url parse_part(const std::string& text) {
    try {
        return parse_url(text);
    } catch (const UsageError& e) {
        std::string why = e.what();
        why = why.substr(0, why.find(" (use "));
        constexpr std::string_view prefix = "invalid Redis URL: ";
        bad_url(starts_with(why, prefix) ? why.substr(prefix.size()) : why);
    }
}

std::string host_port(const std::string& host, int port) {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
           std::to_string(port);
}

} // namespace

bool is_sentinel_url(std::string_view text) {
    return starts_with(text, tcp_scheme) || starts_with(text, tls_scheme);
}

SentinelUrl parse_sentinel_url(std::string_view text) {
    if (!is_sentinel_url(text))
        bad_url("it must start with redis+sentinel:// or rediss+sentinel://");
    const bool tls = starts_with(text, tls_scheme);
    const std::string scheme = tls ? "rediss://" : "redis://";
    std::string_view rest = text.substr((tls ? tls_scheme : tcp_scheme).size());
    std::string userinfo;
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        userinfo = std::string(rest.substr(0, at + 1));
        rest = rest.substr(at + 1);
    }
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash + 1 >= rest.size())
        bad_url("missing /MASTER_NAME after the sentinels");
    const std::string_view hosts = rest.substr(0, slash);
    const std::string_view path = rest.substr(slash + 1);
    const auto db_slash = path.find('/');

    SentinelUrl url;
    url.master_name = std::string(path.substr(0, db_slash));
    if (url.master_name.empty())
        bad_url("missing MASTER_NAME");
    const std::string db =
        db_slash == std::string_view::npos ? "" : std::string(path.substr(db_slash + 1));
    url.master = parse_part(scheme + userinfo + "master/" + db);
    for (std::size_t start = 0; start <= hosts.size();) {
        const auto comma = std::min(hosts.find(',', start), hosts.size());
        const std::string_view one = hosts.substr(start, comma - start);
        if (one.empty())
            bad_url("an empty sentinel address");
        Url sentinel = parse_part(scheme + std::string(one));
        const bool has_port = one.front() == '[' ? one.find("]:") != std::string_view::npos
                                                 : one.find(':') != std::string_view::npos;
        if (!has_port)
            sentinel.port = default_sentinel_port;
        url.sentinels.push_back(std::move(sentinel));
        start = comma + 1;
    }
    return url;
}

std::string SentinelUrl::redacted() const {
    const bool tls = master.transport == Url::Transport::tls;
    std::string out(tls ? tls_scheme : tcp_scheme);
    if (!master.user.empty() || master.password)
        out += master.user + (master.password ? ":***" : "") + "@";
    for (std::size_t i = 0; i < sentinels.size(); ++i)
        out += (i == 0 ? "" : ",") + host_port(sentinels[i].host, sentinels[i].port);
    out += "/" + master_name;
    if (master.db != 0)
        out += "/" + std::to_string(master.db);
    return out;
}

std::string NamedMaster::address() const {
    return host_port(host, port);
}

Sentinels::Sentinels(SentinelOptions options)
    : options_(std::move(options)), connections_(options_.url.sentinels.size()) {}

Sentinels::~Sentinels() = default;

NamedMaster Sentinels::ask() {
    const std::string& name = options_.url.master_name;
    // What each sentinel said, in the URL's order; empty while it is still to answer.
    std::vector<std::string> said(connections_.size());
    const auto failed = [&](std::size_t i, const std::string& why) {
        connections_[i].reset();
        said[i] = why;
    };
    for (std::size_t i = 0; i < connections_.size(); ++i) {
        try {
            if (!connections_[i]) {
                Options sentinel;
                sentinel.url = options_.url.sentinels[i];
                sentinel.url.password = options_.sentinel_password;
                sentinel.tls = options_.tls;
                sentinel.timeout = options_.timeout;
                connections_[i] = std::make_unique<Connection>(sentinel);
            }
            // The address, and the configuration epoch it belongs to: a sentinel that led a
            // failover names the new master under a higher epoch than those not told yet.
            connections_[i]->start(
                {{"SENTINEL", "get-master-addr-by-name", name}, {"SENTINEL", "MASTER", name}});
        } catch (const RedisError& e) {
            failed(i, e.what());
        }
    }
    std::optional<NamedMaster> best;
    for (std::size_t i = 0; i < connections_.size(); ++i) {
        if (!connections_[i])
            continue;
        const Url& url = options_.url.sentinels[i];
        try {
            const std::vector<Reply> replies = connections_[i]->finish();
            const ReplyView address = replies[0].view();
            if (address.size() != 2) {
                said[i] = host_port(url.host, url.port) + " knows no master '" + name + "'";
                continue;
            }
            NamedMaster named{address[0].string(), std::stoi(address[1].string()), 0};
            const ReplyView fields = replies[1].view();
            for (std::size_t f = 0; f + 1 < fields.size(); f += 2)
                if (fields[f].string() == "config-epoch")
                    named.epoch = std::stoll(fields[f + 1].string());
            said[i] = host_port(url.host, url.port) + " names " + named.address();
            if (!best || named.epoch > best->epoch)
                best = std::move(named);
        } catch (const RedisError& e) {
            failed(i, e.what());
        } catch (const std::logic_error&) { // stoi, stoll: not a sentinel's answer
            failed(i, host_port(url.host, url.port) + " gave an answer that is not an address");
        }
    }
    if (!best) {
        std::string all;
        for (const std::string& one : said)
            all += (all.empty() ? "" : "; ") + one;
        throw UnavailableError("no sentinel names a master '" + name + "' (" + all + ")");
    }
    return *best;
}

Options Sentinels::master_options(const NamedMaster& master) const {
    Options options;
    options.url = options_.url.master;
    options.url.host = master.host;
    options.url.port = master.port;
    options.tls = options_.tls;
    options.timeout = options_.timeout;
    options.require_master = true;
    return options;
}

} // namespace redis

namespace {

using Clock = std::chrono::steady_clock;

// Rounds of asking the sentinels and connecting before giving up, all within the timeout.
constexpr int discovery_rounds = 3;
constexpr Millis discovery_pause{100};
// Between rounds while a wait outlasts a failover (or an outage).
constexpr Millis rediscovery_pause{1'000};

} // namespace

SentinelLock::SentinelLock(redis::SentinelOptions options, RedisLockSettings settings)
    : sentinels_(std::move(options)), settings_(std::move(settings)) {
    validate_prefix(settings_.prefix, settings_.layout);
    connect();
}

void SentinelLock::connect() {
    const redis::SentinelOptions& options = sentinels_.options();
    const auto start = Clock::now();
    std::string last;
    for (int round = 1;; ++round) {
        try {
            const redis::NamedMaster named = sentinels_.ask();
            try {
                lock_ = std::make_unique<RedisLock>(sentinels_.master_options(named), settings_);
                master_ = named.address();
                return;
            } catch (const redis::AuthError&) {
                throw; // a wrong password does not mend by asking again
            } catch (const redis::RedisError& e) {
                last = "the sentinels name " + named.address() + ": " + e.what();
            }
        } catch (const redis::AuthError&) {
            throw;
        } catch (const UnavailableError& e) {
            last = e.what();
        }
        const auto spent = std::chrono::ceil<Millis>(Clock::now() - start);
        if (round == discovery_rounds || spent >= options.timeout)
            throw UnavailableError("cannot find the master '" + options.url.master_name +
                                   "' through " + options.url.redacted() + ": " + last);
        std::this_thread::sleep_for(std::min(discovery_pause * round, options.timeout - spent));
    }
}

void SentinelLock::reconnect_until(Clock::time_point deadline) {
    for (;;) {
        try {
            connect();
            return;
        } catch (const redis::AuthError&) {
            throw;
        } catch (const UnavailableError&) {
            const auto now = Clock::now();
            if (now >= deadline)
                throw;
            std::this_thread::sleep_for(
                std::min<Clock::duration>(rediscovery_pause, deadline - now));
        }
    }
}

bool SentinelLock::still_named(std::string_view key, const AcquireResult& result) {
    const auto release_there = [&] {
        try {
            lock_->release(key, result.lease->token);
        } catch (const redis::RedisError&) {
            // It goes with its TTL.
        }
    };
    bool named = false;
    try {
        named = sentinels_.ask().address() == master_;
    } catch (const UnavailableError&) {
        release_there();
        throw;
    }
    if (!named)
        release_there();
    return named;
}

AcquireResult SentinelLock::try_acquire(std::string_view key, Millis ttl) {
    const AcquireResult result = lock_->try_acquire(key, ttl);
    if (!result.acquired() || still_named(key, result))
        return result;
    connect(); // a failover named a new master since: one attempt there
    return lock_->try_acquire(key, ttl);
}

AcquireResult SentinelLock::block(std::string_view key, Millis ttl, Millis wait,
                                  const WaitObserver& observer) {
    const auto start = Clock::now();
    const auto deadline = wait == wait_forever ? Clock::time_point::max() : start + wait;
    for (;;) {
        const Millis left =
            wait == wait_forever
                ? wait_forever
                : std::max(Millis{0}, std::chrono::ceil<Millis>(deadline - Clock::now()));
        AcquireResult result;
        try {
            result = lock_->block(key, ttl, left, observer);
        } catch (const redis::AuthError&) {
            throw;
        } catch (const NotReplicatedError&) {
            throw; // the lock was released again: --replicas asked for more than there is
        } catch (const redis::RedisError&) {
            // The server went away under the wait (a failover demotes it and drops its
            // clients): find the master again and go on waiting there.
            if (wait.count() <= 0 || Clock::now() >= deadline)
                throw;
            reconnect_until(deadline);
            continue;
        }
        if (!result.acquired() || still_named(key, result))
            return result;
        reconnect_until(deadline);
    }
}

OwnerCheck SentinelLock::release(std::string_view key, std::string_view token) {
    return lock_->release(key, token);
}

OwnerCheck SentinelLock::extend(std::string_view key, std::string_view token, Millis ttl) {
    return lock_->extend(key, token, ttl);
}

ForceReleaseResult SentinelLock::force_release(std::string_view key,
                                               std::optional<std::string_view> only_owner) {
    return lock_->force_release(key, only_owner);
}

LockStatus SentinelLock::status(std::string_view key) {
    return lock_->status(key);
}

std::vector<LockListing> SentinelLock::list(std::string_view pattern) {
    return lock_->list(pattern);
}

void SentinelLock::watch(std::string_view pattern, const LockWatcher& watcher) {
    lock_->watch(pattern, watcher);
}

std::string SentinelLock::fence_resource(std::string_view key) const {
    return lock_->fence_resource(key);
}

} // namespace dlock
