#include "dlock/quorum_lock.hpp"

#include "lock_lua.hpp"
#include "random_seed.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <poll.h>
#include <random>
#include <set>
#include <thread>

namespace dlock {
namespace {

using Clock = std::chrono::steady_clock;
using detail::lua_script;
using detail::now_ms_lua;

// Every script gets KEYS 1 the lock, 2 its holder record, 3 the fencing counter.
//
// Takes the lock when it is free or already this owner's, and increments the fencing counter.
// A missing counter (first use, idle past its TTL, a server restarted empty) starts from the
// server's clock in microseconds, as on one server. A counter INCR cannot count is reported
// ({-1, what it holds}) before anything is written. ARGV: 1 token, 2 ttl ms, 3 fence TTL ms,
// 4 host, 5 pid, 6 user, 7 command, 8 the events channel.
// {1, counter}: taken; {0, PTTL, owner, holder record}: held by another owner.
constexpr std::string_view acquire_body = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[1]), holder, redis.call('HGETALL', KEYS[2])}
end
local fence = redis.call('GET', KEYS[3])
if fence and (#fence > 18 or not string.match(fence, '^%d+$')) then return {-1, fence} end
if not fence then
  local now = redis.call('TIME')
  redis.call('SET', KEYS[3], now[1] .. string.format('%06d', tonumber(now[2])))
end
local token = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'host', ARGV[4], 'pid', ARGV[5], 'user', ARGV[6],
           'command', ARGV[7], 'since_ms', now_ms(), 'renewals', 0, 'fence', token)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[8], 'acquired')
return {1, token}
)lua";

// The fence write-back: the counter becomes ARGV[1] unless it is already higher (a
// max-register), and the holder record of owner ARGV[3] carries it. ARGV[2]: the fence TTL ms.
constexpr std::string_view store_fence_body = R"lua(
local current = tonumber(redis.call('GET', KEYS[3]) or '0')
if not current or current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
end
if redis.call('HGET', KEYS[2], 'owner') == ARGV[3] then
  redis.call('HSET', KEYS[2], 'fence', ARGV[1])
end
return 1
)lua";

// release (ARGV[3] empty) and extend (ARGV[3] the new TTL ms, ARGV[4] the fence's), only for
// the owner ARGV[1]; ARGV[2] the events channel. 1: done, 0: not held, -1: another owner's.
constexpr std::string_view owner_checked_body = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[1] then
  if holder then return -1 end
  return 0
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('HGET', KEYS[2], 'owner') == ARGV[1] then
  redis.call('HSET', KEYS[2], 'renewed_ms', now_ms())
  redis.call('HINCRBY', KEYS[2], 'renewals', 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PUBLISH', ARGV[2], 'extended')
return 1
)lua";

// ARGV[1]: the owner that must still hold it, or empty for anyone; ARGV[2] the events channel.
// {0}: not held; {1 or -1 (another owner's, left alone), owner, PTTL, holder record, now}.
constexpr std::string_view force_release_body = R"lua(
local holder = redis.call('GET', KEYS[1])
if not holder then return {0} end
local answer = {1, holder, redis.call('PTTL', KEYS[1]), redis.call('HGETALL', KEYS[2]), now_ms()}
if ARGV[1] ~= '' and holder ~= ARGV[1] then
  answer[1] = -1
  return answer
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[2], 'force-released')
return answer
)lua";

constexpr std::string_view status_body = R"lua(
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[3]),
        redis.call('HGETALL', KEYS[2]), now_ms()}
)lua";

constexpr std::string_view acquire_script = lua_script<now_ms_lua, acquire_body>;
constexpr std::string_view store_fence_script = lua_script<store_fence_body>;
constexpr std::string_view owner_checked_script = lua_script<now_ms_lua, owner_checked_body>;
constexpr std::string_view force_release_script = lua_script<now_ms_lua, force_release_body>;
constexpr std::string_view status_script = lua_script<now_ms_lua, status_body>;

// The longest wait for a release before the lock is looked at again; a watched wait reports
// every second.
constexpr Millis longest_wait_for_release{60'000};
constexpr Millis progress_interval{1'000};
// How often a subscriber that is no longer needed notices it should end.
constexpr Millis subscriber_check{200};
// After an attempt that took the lock on some servers but not a majority (waiters split the
// servers), a random pause of up to this long before the next, as the Redlock spec asks, so
// that one of them wins the next round.
constexpr Millis split_backoff{5};

using Command = std::vector<std::string>;

// One server's answer to a call: a reply, or why there is none.
struct Answer {
    std::optional<redis::Reply> reply;
    std::string error; // empty with a reply
    bool answered() const { return reply.has_value(); }
};

// Runs `work` on a thread of its own, detached, with every signal blocked in it: signals meant
// for the process (SIGCHLD, SIGTERM for `dlock run`) must reach the thread that waits for them.
template <typename Work>
void spawn(Work work) {
    sigset_t all{};
    sigset_t previous{};
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    try {
        std::thread(std::move(work)).detach();
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &previous, nullptr);
        throw;
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

std::int64_t to_int(const std::string& text) {
    try {
        return std::stoll(text);
    } catch (const std::exception&) {
        return 0;
    }
}

Remaining remaining(std::int64_t pttl) {
    return pttl < 0 ? Remaining{} : Remaining{Millis{pttl}};
}

std::string count_text(std::size_t n) {
    return std::to_string(n);
}

} // namespace

// How a waiter hears of releases: a subscriber per server to the lock's events channel, each on
// a thread and a connection of its own, counting the releases announced anywhere. Kept for the
// life of the QuorumLock, for its next wait on the same lock.
struct QuorumLock::Wakeups {
    std::mutex mutex;
    std::condition_variable changed;
    std::uint64_t releases = 0;
    std::size_t settled = 0; // subscribers that are listening, or gave up
    std::size_t ended = 0;   // subscribers that gave up (their server went away)
    bool stop = false;
};

// One server: how to reach it, and its connection. A call that ended without this server's
// reply leaves it `owed`: read and dropped before the next call's reply, so a server that hangs
// never makes a new connection necessary, and never delays a later call beyond its deadline.
struct QuorumLock::Server {
    explicit Server(QuorumMember member_)
        : member(std::move(member_)),
          where(member.sentinel ? member.sentinel->url.redacted() : member.server.url.redacted()) {}
    QuorumMember member;
    std::string where;
    std::optional<redis::Connection> connection;
    std::size_t owed = 0;
};

namespace {

using ServerPtr = std::shared_ptr<QuorumLock::Server>;

// How to connect to `member` now, within `timeout`: its address, or the master its sentinels
// name (which refuses the connection unless ROLE says master).
redis::Options connect_options(const QuorumMember& member, Millis timeout) {
    if (!member.sentinel) {
        redis::Options options = member.server;
        options.timeout = timeout;
        return options;
    }
    redis::SentinelOptions asking = *member.sentinel;
    asking.timeout = timeout;
    redis::Sentinels sentinels(std::move(asking));
    return sentinels.master_options(sentinels.ask());
}

// Sends `commands[i]` to server i (nullopt: nothing for that server), to all of them at once,
// then reads the replies as they come, polling every socket together, until every server has
// answered, `decided` says the answers so far settle the outcome, or `wait` has passed. A
// server without an answer by then has "no answer within" the timeout; its reply is dropped
// when it comes. An error reply is an error. A server not connected yet is connected first,
// within the same deadline: one that refuses answers at once.
std::vector<Answer>
call_all(const std::vector<ServerPtr>& servers, const std::vector<std::optional<Command>>& commands,
         Millis wait, Millis timeout,
         const std::function<bool(const std::vector<std::optional<Answer>>&)>& decided = {}) {
    const auto give_up = Clock::now() + wait;
    const auto left = [&] {
        return std::max(std::chrono::ceil<Millis>(give_up - Clock::now()), Millis{0});
    };
    const std::size_t n = servers.size();
    std::vector<std::optional<Answer>> answers(n);
    std::vector<bool> waiting(n, false);
    const auto fail = [&](std::size_t i, std::string why) {
        servers[i]->connection.reset();
        servers[i]->owed = 0;
        waiting[i] = false;
        answers[i] = Answer{std::nullopt, std::move(why)};
    };
    for (std::size_t i = 0; i < n; ++i) {
        if (!commands[i]) {
            answers[i] = Answer{std::nullopt, "not asked"};
            continue;
        }
        QuorumLock::Server& server = *servers[i];
        try {
            if (!server.connection)
                server.connection.emplace(
                    connect_options(server.member, std::max(left(), Millis{1})));
            server.connection->send(
                std::vector<std::string_view>(commands[i]->begin(), commands[i]->end()));
            waiting[i] = true;
        } catch (const std::exception& e) {
            fail(i, e.what());
        }
    }
    for (;;) {
        std::vector<pollfd> readable;
        std::vector<std::size_t> polled;
        for (std::size_t i = 0; i < n; ++i) {
            if (!waiting[i])
                continue;
            QuorumLock::Server& server = *servers[i];
            try {
                while (waiting[i]) {
                    std::optional<redis::Reply> reply = server.connection->receive(Millis{0});
                    if (!reply)
                        break;
                    if (server.owed > 0) {
                        --server.owed; // an earlier call's, too late for it
                        continue;
                    }
                    waiting[i] = false;
                    if (const auto error = reply->view().error())
                        answers[i] = Answer{std::nullopt, server.where + ": " + *error};
                    else
                        answers[i] = Answer{std::move(reply), ""};
                }
            } catch (const std::exception& e) {
                fail(i, e.what());
            }
            if (waiting[i]) {
                readable.push_back({server.connection->descriptor(), POLLIN, 0});
                polled.push_back(i);
            }
        }
        if (readable.empty() || (decided && decided(answers)) || left().count() <= 0)
            break;
        ::poll(readable.data(), readable.size(), static_cast<int>(left().count()));
    }
    std::vector<Answer> out;
    for (std::size_t i = 0; i < n; ++i) {
        if (waiting[i]) {
            ++servers[i]->owed;
            answers[i] = Answer{std::nullopt, servers[i]->where + ": no answer within " +
                                                  format_duration(timeout)};
        }
        out.push_back(std::move(*answers[i]));
    }
    return out;
}

std::vector<std::optional<Command>> same_for_all(std::size_t servers, const Command& command) {
    return std::vector<std::optional<Command>>(servers, command);
}

Command eval(std::string_view body, const LockKeys& keys, std::vector<std::string> args) {
    Command command{"EVAL", std::string(body), "3", keys.lock, keys.holder, keys.fence};
    command.insert(command.end(), std::make_move_iterator(args.begin()),
                   std::make_move_iterator(args.end()));
    return command;
}

std::size_t majority(std::size_t servers) {
    return servers / 2 + 1;
}

std::size_t answered(const std::vector<Answer>& answers) {
    return static_cast<std::size_t>(std::count_if(answers.begin(), answers.end(),
                                                  [](const Answer& a) { return a.answered(); }));
}

// "2 of 3 Redis servers unavailable: redis://a:6379: ...; redis://b:6379: ..."
[[noreturn]] void too_few_answered(const std::vector<Answer>& answers) {
    std::string reasons;
    std::size_t missing = 0;
    for (const Answer& answer : answers) {
        if (answer.answered())
            continue;
        ++missing;
        reasons += (reasons.empty() ? "" : "; ") + answer.error;
    }
    throw UnavailableError(count_text(missing) + " of " + count_text(answers.size()) +
                           " Redis servers unavailable: " + reasons);
}

void need_majority(const std::vector<Answer>& answers) {
    if (answered(answers) < majority(answers.size()))
        too_few_answered(answers);
}

[[noreturn]] void bad_fence_counter(const std::string& where, const std::string& key,
                                    const std::string& holds) {
    throw DataError("fence counter '" + key + "' on " + where + " holds '" + holds +
                    "', not a fencing token; it was written by something other than dlock "
                    "(delete it to restart the counter from the clock)");
}

void listen_for_releases(const ServerPtr& server, const std::string& channel,
                         const std::shared_ptr<QuorumLock::Wakeups>& wakeups) {
    spawn([member = server->member, channel, wakeups] {
        bool settled = false;
        const auto settle = [&] {
            if (settled)
                return;
            settled = true;
            const std::lock_guard guard(wakeups->mutex);
            ++wakeups->settled;
            wakeups->changed.notify_all();
        };
        try {
            redis::Connection subscriber(connect_options(member, member.server.timeout));
            subscriber.send({"SUBSCRIBE", channel});
            for (;;) {
                {
                    const std::lock_guard guard(wakeups->mutex);
                    if (wakeups->stop)
                        break;
                }
                const std::optional<redis::Reply> message = subscriber.receive(subscriber_check);
                if (!message)
                    continue;
                const redis::ReplyView push = message->view();
                if (push.size() == 3 && push[0].string() == "subscribe")
                    settle();
                if (push.size() != 3 || push[0].string() != "message")
                    continue;
                const std::string event = push[2].string();
                if (event != "released" && event != "force-released")
                    continue;
                const std::lock_guard guard(wakeups->mutex);
                ++wakeups->releases;
                wakeups->changed.notify_all();
            }
        } catch (const std::exception&) {
            // This server's releases go unheard; the holder's TTL still bounds the wait.
        }
        settle();
        const std::lock_guard guard(wakeups->mutex);
        ++wakeups->ended;
    });
}

// The owner-checked release on every server; each answers 1 (released), 0 (not held) or -1
// (another owner's). Settled once a majority answered and one of them released it: the release
// is on its way to the rest (sent before any answer is read), and what they answer changes
// nothing.
std::vector<Answer> release_everywhere(const std::vector<ServerPtr>& servers, const LockKeys& keys,
                                       const std::string& token, Millis timeout) {
    const auto decided = [&](const std::vector<std::optional<Answer>>& answers) {
        std::size_t answered = 0;
        bool released = false;
        for (const auto& a : answers) {
            if (!a || !a->answered())
                continue;
            ++answered;
            released = released || a->reply->view().integer() == 1;
        }
        return released && answered >= majority(servers.size());
    };
    return call_all(servers,
                    same_for_all(servers.size(),
                                 eval(owner_checked_script, keys, {token, keys.channel, "", ""})),
                    timeout, timeout, decided);
}

// The quorum's answer from each server's owner check: done when `done_needed` servers did it;
// else another owner's when one holds it anywhere; else not held. Too few answers throw.
OwnerCheck owner_check(const std::vector<Answer>& answers, std::size_t done_needed) {
    need_majority(answers);
    std::size_t done = 0;
    bool foreign = false;
    for (const Answer& answer : answers) {
        if (!answer.answered())
            continue;
        const std::int64_t code = answer.reply->view().integer();
        done += code == 1 ? 1 : 0;
        foreign = foreign || code == -1;
    }
    if (done >= done_needed)
        return OwnerCheck::done;
    return foreign ? OwnerCheck::not_owner : OwnerCheck::not_held;
}

} // namespace

Millis clock_drift_allowance(Millis ttl) {
    return ttl / 100 + Millis{2};
}

void validate_quorum_size(std::size_t count) {
    if (count < 3 || count % 2 == 0 || count > max_quorum_servers)
        throw UsageError(count_text(count) +
                         " Redis servers given; a quorum takes 3, 5 or 7 independent servers (or "
                         "give one)");
}

QuorumLock::QuorumLock(std::vector<QuorumMember> servers, RedisLockSettings settings)
    : settings_(std::move(settings)),
      timeout_(servers.empty() ? Millis{0} : servers[0].server.timeout) {
    validate_quorum_size(servers.size());
    if (settings_.layout != KeyLayout::dlock)
        throw UsageError("--layout plain takes one Redis server: an app's own lock lives on one");
    validate_prefix(settings_.prefix, settings_.layout);
    for (QuorumMember& member : servers)
        servers_.push_back(std::make_shared<Server>(std::move(member)));
}

QuorumLock::~QuorumLock() {
    for (auto& [channel, wakeups] : listening_) {
        const std::lock_guard guard(wakeups->mutex);
        wakeups->stop = true;
    }
}

std::string QuorumLock::fence_resource(std::string_view key) const {
    validate_key(key);
    return lock_keys(settings_.prefix, key).lock;
}

// One acquisition round: what it answers, and whether it took some servers without a majority.
struct QuorumLock::Attempt {
    AcquireResult result;
    bool split = false;
};

QuorumLock::Attempt QuorumLock::attempt(const LockKeys& keys, const std::string& token,
                                        Millis ttl) {
    const std::size_t n = servers_.size();
    const std::size_t needed = majority(n);
    const Identity& who = settings_.identity;
    const std::string fence_ttl_ms = std::to_string((ttl + settings_.fence_idle).count());
    const auto start = Clock::now();
    const auto valid_until = start + ttl - clock_drift_allowance(ttl);
    const auto took = [](const std::optional<Answer>& a) {
        return a && a->answered() && a->reply->view()[0].integer() == 1;
    };
    // Decided once a majority took it; a refusal waits for every answer (or the timeout), to
    // tell busy from unavailable and to release what was taken.
    const auto decided = [&](const std::vector<std::optional<Answer>>& answers) {
        return static_cast<std::size_t>(std::count_if(answers.begin(), answers.end(), took)) >=
               needed;
    };
    std::vector<Answer> answers = call_all(
        servers_,
        same_for_all(n, eval(acquire_script, keys,
                             {token, std::to_string(ttl.count()), fence_ttl_ms, who.host,
                              std::to_string(who.pid), who.user, who.command, keys.channel})),
        timeout_, timeout_, decided);

    Attempt attempt;
    attempt.result.sent = start - clock_drift_allowance(ttl); // sent + ttl: the validity's end
    std::vector<std::size_t> taken;
    std::int64_t fence = 0;
    std::vector<Millis> free_after; // per answering server: when it could be taken
    for (std::size_t i = 0; i < n; ++i) {
        if (!answers[i].answered())
            continue;
        const redis::ReplyView view = answers[i].reply->view();
        const std::int64_t code = view[0].integer();
        if (code == -1) {
            bad_fence_counter(servers_[i]->where, keys.fence, view[1].string());
        }
        if (code == 1) {
            taken.push_back(i);
            fence = std::max(fence, view[1].integer());
            free_after.push_back(Millis{0});
            continue;
        }
        const Remaining left = remaining(view[1].integer());
        free_after.push_back(left.value_or(Millis::max()));
        if (!attempt.result.holder)
            attempt.result.holder = holder_details(view[3], view[2].string());
    }

    // The servers that took it with a lower counter get the fence written back, until a
    // majority stores it.
    std::size_t stored = 0;
    std::vector<std::optional<Command>> write_back(n);
    for (const std::size_t i : taken) {
        if (answers[i].reply->view()[1].integer() == fence)
            ++stored;
        else
            write_back[i] =
                eval(store_fence_script, keys, {std::to_string(fence), fence_ttl_ms, token});
    }
    if (taken.size() >= needed && stored < needed) {
        const auto left = std::chrono::ceil<Millis>(valid_until - Clock::now());
        if (left.count() > 0) {
            const std::vector<Answer> written =
                call_all(servers_, write_back, std::min(left, timeout_), timeout_);
            for (const Answer& a : written)
                if (a.answered())
                    ++stored;
        }
    }
    if (taken.size() >= needed && stored >= needed && Clock::now() < valid_until) {
        attempt.result.lease = Lease{token, fence, ttl};
        attempt.result.holder.reset();
        return attempt;
    }

    // Not acquired: whatever was taken is released, on every server (one that answered late
    // may have taken it too).
    if (!taken.empty()) {
        attempt.split = true;
        release_everywhere(servers_, keys, token, timeout_);
    }
    if (answered(answers) < needed)
        too_few_answered(answers);
    // A majority must be free before anyone can take it: the needed-th soonest.
    std::sort(free_after.begin(), free_after.end());
    const Millis free_in = free_after[std::min(needed, free_after.size()) - 1];
    if (free_in != Millis::max())
        attempt.result.holder_ttl = free_in;
    return attempt;
}

AcquireResult QuorumLock::try_acquire(std::string_view key, Millis ttl) {
    validate_key(key);
    return attempt(lock_keys(settings_.prefix, key), new_owner_token(), ttl).result;
}

// Waiting is pushed: before its second attempt a waiter subscribes to the lock's events channel on
// every server at once (once per lock and QuorumLock), and retries as soon as any server announces
// a release, or when the holder's lease runs out on a majority (an expiry announces nothing).
// Waiters are not queued: after a release they race, and one that took some servers but not a
// majority releases them and retries after a short random pause.
AcquireResult QuorumLock::block(std::string_view key, Millis ttl, Millis wait,
                                const WaitObserver& observer) {
    validate_key(key);
    const auto start = Clock::now();
    const LockKeys keys = lock_keys(settings_.prefix, key);
    const std::string token = new_owner_token();
    Attempt last = attempt(keys, token, ttl);
    if (last.result.acquired() || wait.count() <= 0)
        return last.result;

    std::shared_ptr<Wakeups>& wakeups = listening_[keys.channel];
    if (wakeups) {
        const std::lock_guard guard(wakeups->mutex);
        if (wakeups->ended == servers_.size()) { // every subscriber lost its server: again
            wakeups->stop = true;
            wakeups.reset();
        }
    }
    if (!wakeups) {
        wakeups = std::make_shared<Wakeups>();
        for (const ServerPtr& server : servers_)
            listen_for_releases(server, keys.channel, wakeups);
        std::unique_lock lock(wakeups->mutex);
        wakeups->changed.wait_for(lock, timeout_,
                                  [&] { return wakeups->settled == servers_.size(); });
    }

    const auto deadline = wait == wait_forever ? Clock::time_point::max() : start + wait;
    std::minstd_rand jitter{detail::random_seed()};
    for (;;) {
        std::uint64_t heard = 0;
        {
            const std::lock_guard guard(wakeups->mutex);
            heard = wakeups->releases;
        }
        if (last.split)
            std::this_thread::sleep_for(Millis{
                std::uniform_int_distribution<Millis::rep>{1, split_backoff.count()}(jitter)});
        last = attempt(keys, token, ttl);
        if (last.result.acquired())
            return last.result;
        const auto left = std::chrono::ceil<Millis>(deadline - Clock::now());
        if (left.count() <= 0)
            return last.result;
        if (observer)
            observer({"release announcements from every server",
                      std::chrono::floor<Millis>(Clock::now() - start), wait,
                      last.result.holder_ttl, last.result.holder});
        Millis sleep = std::min(left, observer ? progress_interval : longest_wait_for_release);
        if (last.result.holder_ttl)
            sleep = std::min(sleep, std::max(*last.result.holder_ttl, Millis{1}));
        std::unique_lock lock(wakeups->mutex);
        wakeups->changed.wait_for(lock, sleep, [&] { return wakeups->releases != heard; });
    }
}

OwnerCheck QuorumLock::release(std::string_view key, std::string_view token) {
    validate_key(key);
    validate_token(token);
    return owner_check(release_everywhere(servers_, lock_keys(settings_.prefix, key),
                                          std::string(token), timeout_),
                       1);
}

// Done when a majority renewed it before the lease's validity ends; whatever the rest answer.
OwnerCheck QuorumLock::extend(std::string_view key, std::string_view token, Millis ttl) {
    validate_key(key);
    validate_token(token);
    const LockKeys keys = lock_keys(settings_.prefix, key);
    const std::size_t n = servers_.size();
    const std::size_t needed = majority(n);
    const auto start = Clock::now();
    const auto decided = [&](const std::vector<std::optional<Answer>>& answers) {
        return static_cast<std::size_t>(std::count_if(
                   answers.begin(), answers.end(), [](const std::optional<Answer>& a) {
                       return a && a->answered() && a->reply->view().integer() == 1;
                   })) >= needed;
    };
    const std::vector<Answer> answers = call_all(
        servers_,
        same_for_all(n, eval(owner_checked_script, keys,
                             {std::string(token), keys.channel, std::to_string(ttl.count()),
                              std::to_string((ttl + settings_.fence_idle).count())})),
        timeout_, timeout_, decided);
    const OwnerCheck check = owner_check(answers, needed);
    if (check == OwnerCheck::done && Clock::now() >= start + ttl - clock_drift_allowance(ttl))
        return OwnerCheck::not_held; // renewed too late to count on
    return check;
}

ForceReleaseResult QuorumLock::force_release(std::string_view key,
                                             std::optional<std::string_view> only_owner) {
    validate_key(key);
    if (only_owner)
        validate_token(*only_owner);
    const LockKeys keys = lock_keys(settings_.prefix, key);
    const std::vector<Answer> answers = call_all(
        servers_,
        same_for_all(servers_.size(), eval(force_release_script, keys,
                                           {std::string(only_owner.value_or("")), keys.channel})),
        timeout_, timeout_);
    need_majority(answers);
    ForceReleaseResult result;
    for (const Answer& answer : answers) {
        if (!answer.answered())
            continue;
        const redis::ReplyView view = answer.reply->view();
        const std::int64_t code = view[0].integer();
        if (code == 0)
            continue;
        result.released = result.released || code == 1;
        if (!result.holder || code == 1) {
            result.holder = view[1].string();
            result.ttl = remaining(view[2].integer());
            result.details = holder_details(view[3], *result.holder);
            result.now_ms = to_int(view[4].string());
        }
    }
    return result;
}

// The quorum's view: the lock is held by the owner a majority of servers names, for as long as
// a majority still holds it; the fence is the highest counter any server answered.
LockStatus QuorumLock::status(std::string_view key) {
    validate_key(key);
    const LockKeys keys = lock_keys(settings_.prefix, key);
    const std::size_t n = servers_.size();
    const std::vector<Answer> answers =
        call_all(servers_, same_for_all(n, eval(status_script, keys, {})), timeout_, timeout_);
    LockStatus result;
    std::map<std::string, std::vector<Millis>> held_by; // owner -> TTLs left (max: none)
    for (std::size_t i = 0; i < n; ++i) {
        ServerLockStatus server{servers_[i]->where, std::nullopt, std::nullopt, std::nullopt,
                                std::nullopt};
        if (!answers[i].answered()) {
            server.error = answers[i].error;
            result.servers.push_back(std::move(server));
            continue;
        }
        const redis::ReplyView view = answers[i].reply->view();
        if (!view[0].is_nil()) {
            server.holder = view[0].string();
            server.ttl = remaining(view[1].integer());
            held_by[*server.holder].push_back(server.ttl.value_or(Millis::max()));
        }
        if (!view[2].is_nil()) {
            server.fence = to_int(view[2].string());
            result.fence = std::max(result.fence.value_or(0), *server.fence);
        }
        result.now_ms = std::max(result.now_ms, to_int(view[4].string()));
        result.servers.push_back(std::move(server));
    }
    need_majority(answers);
    const std::size_t needed = majority(n);
    for (auto& [owner, ttls] : held_by) {
        if (ttls.size() < needed)
            continue;
        std::sort(ttls.begin(), ttls.end(), std::greater<>());
        result.holder = owner;
        if (ttls[needed - 1] != Millis::max())
            result.ttl = ttls[needed - 1];
        for (std::size_t i = 0; i < n; ++i)
            if (answers[i].answered() && result.servers[i].holder == owner && !result.details)
                result.details = holder_details(answers[i].reply->view()[3], owner);
    }
    return result;
}

// SCAN (never KEYS) on every server at once, then each lock's quorum status.
std::vector<LockListing> QuorumLock::list(std::string_view pattern) {
    const std::string match = lock_names_matching(KeyLayout::dlock, settings_.prefix, pattern);
    const std::size_t n = servers_.size();
    std::vector<std::string> cursors(n, "0");
    std::vector<bool> done(n, false);
    std::set<std::string> keys;
    for (;;) {
        std::vector<std::optional<Command>> scans(n);
        for (std::size_t i = 0; i < n; ++i)
            if (!done[i])
                scans[i] =
                    Command{"SCAN", cursors[i], "MATCH", match, "COUNT", "1000", "TYPE", "string"};
        if (std::all_of(done.begin(), done.end(), [](bool d) { return d; }))
            break;
        const std::vector<Answer> answers = call_all(servers_, scans, timeout_, timeout_);
        for (std::size_t i = 0; i < n; ++i) {
            if (done[i])
                continue;
            if (!answers[i].answered()) {
                done[i] = true; // a server that fails mid-scan: the others still list
                continue;
            }
            const redis::ReplyView view = answers[i].reply->view();
            cursors[i] = view[0].string();
            done[i] = cursors[i] == "0";
            for (std::size_t k = 0; k < view[1].size(); ++k)
                keys.insert(
                    key_of_lock_name(KeyLayout::dlock, settings_.prefix, view[1][k].string()));
        }
    }
    std::vector<LockListing> listings;
    for (const std::string& key : keys) {
        LockStatus now = status(key);
        if (now.holder)
            listings.push_back({key, std::move(now)});
    }
    return listings;
}

void QuorumLock::watch(std::string_view, const LockWatcher&) {
    throw UsageError("watch follows one Redis server; give a single --redis URL");
}

} // namespace dlock
