#include "dlock/redis_lock.hpp"

#include "lock_lua.hpp"
#include "random_seed.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace dlock {
namespace {

using detail::lua_script;
using detail::now_ms_lua;

// Every script gets the same KEYS, all in one hash slot: 1 lock, 2 holder, 3 fence, 4 waiting,
// 5 wake list, 6 queue, 7 queued. Times are the server's (TIME), so ages read the same from every
// host.
//
// The strict queue. KEYS[6] lists the owner tokens of waiting block() calls, first come first;
// KEYS[7] maps each to 'deadline_ms:window_ms': the server time by which its next attempt is due
// (else it is taken for dead) and its hand-off window. A waiter's personal wake list is KEYS[5]
// followed by ':' and its token (same hash tag).
//
// The fencing counter: a missing one (first use, idle past its TTL, or a Redis that restarted
// empty) starts from the server's clock in microseconds, so tokens keep increasing: the counter
// moves by one per acquisition, the clock by a million per second.
//
// hand_over gives a free lock to the first live waiter: the lock becomes that waiter's (for its
// hand-off window, until its attempt takes it up), the next fencing token is issued for it and
// kept in the holder record, and its wake list gets a wake-up; nobody else is woken. A waiter
// that never takes the lock up passes it on when the window ends: every waiter attempts at least
// once a window, and one that finds the lock in a hand-off waits exactly until its end. A counter
// INCR cannot count hands nothing over: the waiters' own attempts report it. A waiter dropped from
// the queue (taken for dead, or handed the lock and not taking it up) finds a wake-up on its list
// should it come back (a stopped process continued), so it queues again at once; an unclaimed one
// goes with the list's TTL.
constexpr std::string_view queue_lua = R"lua(
local function fence_counter()
  local readable, fence = pcall(redis.call, 'GET', KEYS[3])
  if not readable then return false, 'a value of type ' .. redis.call('TYPE', KEYS[3])['ok'] end
  if fence and (#fence > 18 or not string.match(fence, '^%d+$')) then return false, fence end
  return true, fence
end
local function next_fence(fence)
  if not fence then
    local now = redis.call('TIME')
    redis.call('SET', KEYS[3], now[1] .. string.format('%06d', tonumber(now[2])))
  end
  return redis.call('INCR', KEYS[3])
end
local function wake(waiter, wake_ms)
  local list = KEYS[5] .. ':' .. waiter
  redis.call('RPUSH', list, 1)
  redis.call('PEXPIRE', list, wake_ms)
end
local function queue_head(now, wake_ms)
  while true do
    local head = redis.call('LINDEX', KEYS[6], 0)
    if not head then return nil end
    local entry = redis.call('HGET', KEYS[7], head)
    if entry then
      local deadline, window = string.match(entry, '^(%d+):(%d+)$')
      if deadline and tonumber(deadline) >= now then return head, tonumber(window) end
    end
    redis.call('LPOP', KEYS[6])
    redis.call('HDEL', KEYS[7], head)
    wake(head, wake_ms)
  end
end
local function hand_over(now, fence_idle_ms, wake_ms)
  local head, window = queue_head(now, wake_ms)
  if not head then return false end
  local countable, fence = fence_counter()
  if not countable then return false end
  local token = next_fence(fence)
  redis.call('PEXPIRE', KEYS[3], window + tonumber(fence_idle_ms))
  redis.call('LPOP', KEYS[6])
  redis.call('HDEL', KEYS[7], head)
  redis.call('SET', KEYS[1], head, 'PX', window)
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'owner', head, 'fence', token)
  redis.call('PEXPIRE', KEYS[2], window)
  wake(head, wake_ms)
  return true
end
)lua";

// Takes the lock, records its holder and issues the next fencing token, atomically: when it is
// free and nobody queues ahead, or when a release handed it to this waiter (its token is the
// lock's value; the fence was issued then). A free lock that others queue for goes to the first
// of them instead. A counter someone overwrote with something INCR cannot count is reported
// ({-1, what it holds}) before anything is written: a script that fails half-way is not rolled
// back. A refused attempt marks that someone may wait; a refused attempt of block() also queues
// its waiter, or renews its place, with a deadline one window past its next attempt.
// ARGV: 1 token, 2 ttl ms, 3 fence TTL ms, 4 host, 5 pid, 6 user, 7 command, 8 waiting ms,
// 9 the events channel, 10 the hand-off window ms (empty: do not queue), 11 the longest wait
// before the next attempt ms, 12 fence idle ms.
constexpr std::string_view acquire_body = R"lua(
local countable, fence = fence_counter()
if not countable then return {-1, fence} end
local now = tonumber(now_ms())
local holder = redis.call('GET', KEYS[1])
local token = nil
if holder == ARGV[1] then
  token = tonumber(redis.call('HGET', KEYS[2], 'owner') == ARGV[1] and
                   redis.call('HGET', KEYS[2], 'fence')) or next_fence(fence)
  redis.call('DEL', KEYS[5] .. ':' .. ARGV[1])
elseif not holder then
  local head = queue_head(now, ARGV[8])
  if head == nil or head == ARGV[1] then
    if head then
      redis.call('LPOP', KEYS[6])
      redis.call('HDEL', KEYS[7], head)
    end
    token = next_fence(fence)
  else
    hand_over(now, ARGV[12], ARGV[8])
  end
end
if token then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'owner', ARGV[1], 'host', ARGV[4], 'pid', ARGV[5], 'user', ARGV[6],
             'command', ARGV[7], 'since_ms', now_ms(), 'renewals', 0, 'fence', token)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  redis.call('PUBLISH', ARGV[9], 'acquired')
  return {1, token}
end
local pttl = redis.call('PTTL', KEYS[1])
if ARGV[10] ~= '' then
  local next_attempt = tonumber(ARGV[11])
  if pttl >= 0 and pttl < next_attempt then next_attempt = pttl end
  local entry = string.format('%d:%d', now + next_attempt + tonumber(ARGV[10]), tonumber(ARGV[10]))
  if redis.call('HSET', KEYS[7], ARGV[1], entry) == 1 then redis.call('RPUSH', KEYS[6], ARGV[1]) end
  redis.call('PEXPIRE', KEYS[6], ARGV[8])
  redis.call('PEXPIRE', KEYS[7], ARGV[8])
end
redis.call('SET', KEYS[4], 1, 'PX', ARGV[8])
return {0, pttl, redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2])}
)lua";

// Shared by every script that frees a lock (ARGV[1]: how long an unclaimed wake-up stays,
// ARGV[2]: the events channel, told `event`). The first live queued waiter gets the lock at once
// (hand_over). With nobody queued but someone who may wait (a client that waits on the shared
// wake list), it leaves exactly one wake-up there; it stays a while, so a waiter that was about
// to block still sees it. When nobody waits, nothing is left behind.
constexpr std::string_view free_and_wake_one = R"lua(
local function free_and_wake_one(event, fence_idle_ms)
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[5])
  redis.call('PUBLISH', ARGV[2], event)
  if hand_over(tonumber(now_ms()), fence_idle_ms, ARGV[1]) then return end
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('RPUSH', KEYS[5], 1)
    redis.call('PEXPIRE', KEYS[5], ARGV[1])
  end
end
)lua";

// release (ARGV[4] empty) and extend (ARGV[4] the new TTL, ARGV[5] the fence's), only for the
// owner ARGV[3]; ARGV[6] the fence idle period. 1: done, 0: not held, -1: held by another owner.
constexpr std::string_view owner_checked_body = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[3] then
  if holder then return -1 end
  return 0
end
if ARGV[4] == '' then
  free_and_wake_one('released', ARGV[6])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  if redis.call('HGET', KEYS[2], 'owner') == ARGV[3] then
    redis.call('HSET', KEYS[2], 'renewed_ms', now_ms())
    redis.call('HINCRBY', KEYS[2], 'renewals', 1)
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  end
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  redis.call('PUBLISH', ARGV[2], 'extended')
end
return 1
)lua";

// ARGV[3]: the owner that must still hold it, or empty for anyone; ARGV[4] the fence idle
// period. {0}: not held; {1 or -1 (held by another owner, left alone), owner, PTTL, holder
// record, now}.
constexpr std::string_view force_release_body = R"lua(
local holder = redis.call('GET', KEYS[1])
if not holder then return {0} end
local answer = {1, holder, redis.call('PTTL', KEYS[1]), redis.call('HGETALL', KEYS[2]), now_ms()}
if ARGV[3] ~= '' and holder ~= ARGV[3] then
  answer[1] = -1
  return answer
end
free_and_wake_one('force-released', ARGV[4])
return answer
)lua";

// A waiter whose wait ran out leaves the queue (ARGV[3] its token, ARGV[4] the fence idle
// period). Had the lock been handed to it meanwhile, it passes on to the next waiter.
constexpr std::string_view leave_queue_body = R"lua(
redis.call('LREM', KEYS[6], 0, ARGV[3])
redis.call('HDEL', KEYS[7], ARGV[3])
redis.call('DEL', KEYS[5] .. ':' .. ARGV[3])
if redis.call('GET', KEYS[1]) == ARGV[3] then free_and_wake_one('released', ARGV[4]) end
return 1
)lua";

// KEYS: 1 lock, 2 holder, 3 fence: only what it reads, so that a node importing the lock's slot
// (ASK) answers as soon as those three have moved there.
constexpr std::string_view status_body = R"lua(
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[3]),
        redis.call('HGETALL', KEYS[2]), now_ms()}
)lua";

constexpr std::string_view acquire_script = lua_script<now_ms_lua, queue_lua, acquire_body>;
constexpr std::string_view owner_checked_script =
    lua_script<now_ms_lua, queue_lua, free_and_wake_one, owner_checked_body>;
constexpr std::string_view force_release_script =
    lua_script<now_ms_lua, queue_lua, free_and_wake_one, force_release_body>;
constexpr std::string_view leave_queue_script =
    lua_script<now_ms_lua, queue_lua, free_and_wake_one, leave_queue_body>;
constexpr std::string_view status_script = lua_script<now_ms_lua, status_body>;

// How long a wake-up nobody took stays on the wake list.
constexpr Millis unclaimed_wake_up_lifetime{60'000};
const std::string unclaimed_wake_up_ms = std::to_string(unclaimed_wake_up_lifetime.count());

// The longest single BLPOP; a longer wait is several.
constexpr Millis longest_blocking_wait{60'000};
// How often a watched wait reports.
constexpr Millis progress_interval{1'000};
// In the plain layout without keyspace notifications, the longest a foreign release goes
// unnoticed.
constexpr Millis foreign_release_poll{50};

// BLPOP's timeout: seconds with millisecond decimals (Redis 6 or newer); never 0, which would
// mean forever.
std::string blpop_timeout(Millis wait) {
    const auto ms = std::max<Millis::rep>(wait.count(), 1);
    const std::string millis = std::to_string(1000 + ms % 1000);
    return std::to_string(ms / 1000) + "." + millis.substr(1);
}

OwnerCheck to_owner_check(std::int64_t code) {
    switch (code) {
    case 1:
        return OwnerCheck::done;
    case 0:
        return OwnerCheck::not_held;
    default:
        return OwnerCheck::not_owner;
    }
}

// PTTL's answer: -1 means the key has no TTL.
Remaining remaining(std::int64_t pttl) {
    return pttl < 0 ? Remaining{} : Remaining{Millis{pttl}};
}

[[noreturn]] void bad_fence_counter(const std::string& key, const std::string& holds) {
    throw DataError("fence counter '" + key + "' holds " + holds +
                    ", not a fencing token; it was written by something other than dlock "
                    "(delete it to restart the counter from the clock)");
}

std::int64_t fence_value(const std::string& key, const std::string& text) {
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || value < 0)
        bad_fence_counter(key, "'" + text + "'");
    return value;
}

std::string percent_encode_braces(std::string_view key) {
    std::string out;
    out.reserve(key.size());
    for (const char c : key) {
        if (c == '{')
            out += "%7B";
        else if (c == '}')
            out += "%7D";
        else if (c == '%')
            out += "%25";
        else
            out += c;
    }
    return out;
}

// How long an attempt that found the lock held marks it as waited for: longer than any single
// BLPOP of block(), so a release during one still leaves a wake-up.
const std::string waiting_ms = std::to_string((longest_blocking_wait + Millis{5'000}).count());

std::int64_t to_int(const std::string& text) {
    std::int64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

// The status script's answer.
LockStatus lock_status(const redis::ReplyView answer, const std::string& fence_key) {
    LockStatus result;
    if (!answer[0].is_nil()) {
        result.holder = answer[0].string();
        result.ttl = remaining(answer[1].integer());
        result.details = holder_details(answer[3], *result.holder);
    }
    if (!answer[2].is_nil())
        result.fence = fence_value(fence_key, answer[2].string());
    result.now_ms = to_int(answer[4].string());
    return result;
}

// The acquire script's EVAL, with the strings it points into. A waiter's attempts queue it
// (`queue`), saying how long it may wait before its next one (`next_attempt`).
struct AcquireCommand {
    AcquireCommand(const LockKeys& keys, const std::string& token, Millis ttl, Millis fence_idle,
                   const Identity& who)
        : keys(keys), token(token), who(who), ttl_ms(std::to_string(ttl.count())),
          fence_ttl_ms(std::to_string((ttl + fence_idle).count())),
          fence_idle_ms(std::to_string(fence_idle.count())), pid(std::to_string(who.pid)),
          window_ms(std::to_string(hand_off_window(ttl).count())) {}
    std::vector<std::string_view> args(bool queue = false, Millis next_attempt = Millis{0}) {
        next_attempt_ms = std::to_string(next_attempt.count());
        return {"EVAL",
                acquire_script,
                "7",
                keys.lock,
                keys.holder,
                keys.fence,
                keys.waiting,
                keys.wake,
                keys.queue,
                keys.queued,
                token,
                ttl_ms,
                fence_ttl_ms,
                who.host,
                pid,
                who.user,
                who.command,
                waiting_ms,
                keys.channel,
                queue ? std::string_view(window_ms) : std::string_view(),
                next_attempt_ms,
                fence_idle_ms};
    }
    const LockKeys& keys;
    const std::string& token;
    const Identity& who;
    std::string ttl_ms;
    std::string fence_ttl_ms;
    std::string fence_idle_ms;
    std::string pid;
    std::string window_ms;
    std::string next_attempt_ms;
};

AcquireResult acquire_result(const redis::ReplyView answer, const LockKeys& keys,
                             const std::string& token, Millis ttl,
                             std::chrono::steady_clock::time_point sent) {
    AcquireResult result;
    result.sent = sent;
    switch (answer[0].integer()) {
    case 1:
        result.lease = Lease{token, answer[1].integer(), ttl};
        break;
    case 0:
        result.holder_ttl = remaining(answer[1].integer());
        if (!answer[2].is_nil())
            result.holder = holder_details(answer[3], answer[2].string());
        break;
    default:
        bad_fence_counter(keys.fence, answer[1].string());
    }
    return result;
}

std::vector<std::string_view> all_keys(const LockKeys& keys) {
    return {keys.lock, keys.holder, keys.fence, keys.waiting, keys.wake, keys.queue, keys.queued};
}

// A glob that matches `text` literally.
std::string glob_escaped(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
            out += '\\';
        out += c;
    }
    return out;
}

// The inverse of percent_encode_braces.
std::string percent_decoded(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const std::string_view code = text.substr(i, 3);
        const char decoded = code == "%7B" ? '{' : code == "%7D" ? '}' : code == "%25" ? '%' : 0;
        if (decoded != 0) {
            out += decoded;
            i += 2;
        } else {
            out += text[i];
        }
    }
    return out;
}

// The server's notify-keyspace-events flags, or none when CONFIG is refused (a managed service,
// an ACL user): then changes are polled, expiries inferred.
std::string keyspace_event_flags(redis::Router& connection) {
    try {
        const redis::Reply config = connection.command({"CONFIG", "GET", "notify-keyspace-events"});
        return config.view().size() == 2 ? config.view()[1].string() : std::string();
    } catch (const redis::ReplyError&) {
        return {};
    } catch (const redis::AuthError&) {
        return {};
    }
}

bool has_flag(const std::string& flags, char flag) {
    return flags.find(flag) != std::string::npos;
}

} // namespace

std::optional<HolderDetails> holder_details(const redis::ReplyView fields,
                                            const std::string& token) {
    HolderDetails details;
    std::string owner;
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
        const std::string name = fields[i].string();
        const std::string value = fields[i + 1].string();
        if (name == "owner")
            owner = value;
        else if (name == "host")
            details.who.host = value;
        else if (name == "pid")
            details.who.pid = to_int(value);
        else if (name == "user")
            details.who.user = value;
        else if (name == "command")
            details.who.command = value;
        else if (name == "since_ms")
            details.since_ms = to_int(value);
        else if (name == "renewed_ms")
            details.renewed_ms = to_int(value);
        else if (name == "renewals")
            details.renewals = to_int(value);
    }
    if (owner.empty() || owner != token)
        return std::nullopt;
    return details;
}

Millis hand_off_window(Millis ttl) {
    return std::clamp(ttl / 3, Millis{100}, Millis{1'000});
}

LockKeys lock_keys(std::string_view prefix, std::string_view key) {
    return lock_keys(KeyLayout::dlock, prefix, key);
}

LockKeys lock_keys(KeyLayout layout, std::string_view prefix, std::string_view key) {
    if (layout == KeyLayout::plain) {
        const std::string lock = std::string(prefix) + std::string(key);
        const std::string side = lock + ":dlock:";
        return LockKeys{lock,          side + "holder", side + "fence", side + "waiting",
                        side + "wake", side + "events", side + "queue", side + "queued"};
    }
    std::string lock = std::string(prefix) + "{" + percent_encode_braces(key) + "}";
    return LockKeys{lock,           lock + ":holder", lock + ":fence", lock + ":waiting",
                    lock + ":wake", lock + ":events", lock + ":queue", lock + ":queued"};
}

// In the plain layout the lock PREFIX+KEY and its side names PREFIX+KEY:dlock:* share a cluster
// slot only when PREFIX+KEY holds a hash tag.
constexpr std::string_view plain_layout_cluster_hint =
    "in the plain layout a Redis Cluster takes a lock only when PREFIX+KEY holds a hash tag "
    "({...}), which its names PREFIX+KEY:dlock:* then share; or use --layout dlock";

RedisLock::RedisLock(const redis::Options& options, RedisLockSettings settings)
    : options_(options),
      settings_((validate_prefix(settings.prefix, settings.layout), std::move(settings))),
      replicas_text_(std::to_string(settings_.replicas)),
      wait_timeout_ms_(std::to_string(options.timeout.count())),
      connection_(options, settings_.layout == KeyLayout::plain
                               ? std::string(plain_layout_cluster_hint)
                               : std::string()) {
    if (settings_.replicas < 0)
        throw UsageError("--replicas must not be negative");
}

LockKeys RedisLock::keys_of(std::string_view key) const {
    validate_key(key);
    return lock_keys(settings_.layout, settings_.prefix, key);
}

std::string key_of_lock_name(KeyLayout layout, std::string_view prefix,
                             std::string_view lock_name) {
    if (layout == KeyLayout::plain)
        return std::string(lock_name.substr(prefix.size()));
    // PREFIX{ENCODED}: the KEY is between the braces.
    return percent_decoded(
        lock_name.substr(prefix.size() + 1, lock_name.size() - prefix.size() - 2));
}

std::string lock_names_matching(KeyLayout layout, std::string_view prefix,
                                std::string_view pattern) {
    if (layout == KeyLayout::plain)
        return glob_escaped(prefix) + std::string(pattern);
    return glob_escaped(prefix) + "{" + percent_encode_braces(pattern) + "}";
}

std::string RedisLock::key_of(std::string_view lock_name) const {
    return key_of_lock_name(settings_.layout, settings_.prefix, lock_name);
}

std::string RedisLock::names_matching(std::string_view pattern) const {
    return lock_names_matching(settings_.layout, settings_.prefix, pattern);
}

std::string RedisLock::fence_resource(std::string_view key) const {
    return keys_of(key).lock;
}

AcquireResult RedisLock::try_acquire(std::string_view key, Millis ttl) {
    const LockKeys keys = keys_of(key);
    const std::string token = new_owner_token();
    AcquireCommand acquire(keys, token, ttl, settings_.fence_idle, settings_.identity);
    const auto sent = std::chrono::steady_clock::now();
    return attempt({acquire.args()}, Millis{0}, key, keys, token, ttl, sent);
}

std::vector<std::string_view> RedisLock::wait_for_replicas() const {
    return {"WAIT", replicas_text_, wait_timeout_ms_};
}

std::string RedisLock::too_few_replicas(std::int64_t acknowledged) const {
    return "only " + std::to_string(acknowledged) + " of " + replicas_text_ +
           " replicas acknowledged within " + format_duration(options_.timeout);
}

AcquireResult RedisLock::attempt(std::vector<std::vector<std::string_view>> commands,
                                 Millis blocks_for, std::string_view key, const LockKeys& keys,
                                 const std::string& token, Millis ttl,
                                 std::chrono::steady_clock::time_point sent) {
    const std::size_t acquire_at = commands.size() - 1;
    const bool acknowledged = settings_.replicas > 0;
    if (acknowledged) {
        commands.push_back(wait_for_replicas());
        blocks_for += options_.timeout;
    }
    const std::vector<redis::Reply> replies = connection_.pipeline(commands, blocks_for);
    AcquireResult result = acquire_result(replies[acquire_at].view(), keys, token, ttl, sent);
    if (!acknowledged || !result.acquired())
        return result;
    const std::int64_t replicas = replies.back().view().integer();
    if (replicas >= settings_.replicas)
        return result;
    try {
        release(key, token);
    } catch (const redis::RedisError&) {
        // It goes with its TTL.
    }
    throw NotReplicatedError("lock '" + std::string(key) + "' was taken on the master, but " +
                             too_few_replicas(replicas) + "; released it again");
}

bool RedisLock::is_replica() {
    if (!replica_) {
        replica_ = false;
        try {
            const redis::Reply role = connection_.command({"ROLE"});
            const std::string name = role.view().size() > 0 ? role.view()[0].string() : "";
            replica_ = name == "slave" || name == "replica";
        } catch (const redis::ReplyError&) {
        } catch (const redis::AuthError&) {
            // ROLE not allowed to this ACL user: the answer is taken as current.
        }
    }
    return *replica_;
}

bool RedisLock::notifies_releases() {
    if (!notifies_releases_) {
        const std::string flags = keyspace_event_flags(connection_);
        notifies_releases_ =
            has_flag(flags, 'K') &&
            (has_flag(flags, 'A') || (has_flag(flags, 'g') && has_flag(flags, 'x')));
    }
    return *notifies_releases_;
}

// Waiting happens in Redis, in a strict queue. The first attempt that finds the lock held (or
// others queued for it) queues this waiter; then it BLPOPs its own wake list, with its next
// attempt pipelined right behind it on the same connection. A release hands the lock to the
// first live waiter inside the release script and pushes a wake-up onto that waiter's list, so
// its queued attempt runs at once and takes the lock up: one hop, without a round trip back to
// the waiter and without waking those behind it. An expiry pushes nothing: a waiter also stops
// blocking when the holder's remaining TTL runs out (within Redis's timer tick), and its attempt
// then takes the lock, or hands it to the first in the queue.
//
// Each attempt renews the waiter's place until one window past the longest it may block
// before its next one; a waiter that stops attempting (killed, stopped) loses its place then.
// A waiter whose wait runs out leaves the queue. No wait lasts longer than the hand-off window,
// so that a lock handed to a waiter that does not take it up (killed, or stopped after its last
// attempt answered) is seen to run out by those behind it: a release wakes nobody but the first
// waiter, and a waiter wakes on its own at most once a window while nothing happens.
//
// In the plain layout an app releases the lock without a wake-up: the waiter subscribes to the
// lock's keyspace notifications when the server sends them, and retries at each one; otherwise
// it caps each wait at a jittered 30-50 ms, so a foreign release is seen within 50 ms.
AcquireResult RedisLock::block(std::string_view key, Millis ttl, Millis wait,
                               const WaitObserver& observer) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const LockKeys keys = keys_of(key);
    const std::string token = new_owner_token();
    AcquireCommand acquire(keys, token, ttl, settings_.fence_idle, settings_.identity);
    const bool plain = settings_.layout == KeyLayout::plain;
    const bool waits = wait.count() > 0;

    // Plain layout: a second connection, subscribed before the first attempt so that no
    // release falls between the two, hears dlock's own releases on the events channel and, when
    // the server sends them, every change of the key; without those it times out every 30-50 ms
    // (a BLPOP cannot: Redis ends blocked commands on its 100 ms timer tick).
    std::optional<redis::Connection> changes;
    bool notified = plain && waits && notifies_releases();
    if (plain && waits) {
        changes.emplace(connection_.home());
        changes->send({"SUBSCRIBE", keys.channel});
        if (notified)
            changes->send(
                {"SUBSCRIBE", "__keyspace@" + std::to_string(options_.url.db) + "__:" + keys.lock});
    }
    const auto deadline = wait == wait_forever ? clock::time_point::max() : start + wait;
    const Millis longest_sleep = observer ? progress_interval : longest_blocking_wait;
    // The longest this waiter may block before its next attempt, as that attempt tells Redis.
    const auto next_attempt = [&] {
        if (deadline == clock::time_point::max())
            return longest_sleep;
        return std::clamp(std::chrono::ceil<Millis>(deadline - clock::now()), Millis{0},
                          longest_sleep);
    };
    AcquireResult result =
        attempt({acquire.args(waits, next_attempt())}, Millis{0}, key, keys, token, ttl, start);
    if (result.acquired() || !waits)
        return result;

    const std::string own_wake = keys.wake + ":" + token;
    std::minstd_rand jitter{detail::random_seed()};
    for (;;) {
        const auto left = std::chrono::ceil<Millis>(deadline - clock::now());
        if (left.count() <= 0) {
            leave_queue(keys, token);
            return result;
        }
        // A cluster node notifies changes of its own keys only, and the lock's may live on
        // another: a redirection said it is a cluster, so poll.
        notified = notified && !connection_.cluster();
        const std::string_view noticed_by = !plain     ? "release wake-ups"
                                            : notified ? "keyspace notifications"
                                                       : "a poll every 50 ms";
        if (observer)
            observer({noticed_by, std::chrono::floor<Millis>(clock::now() - start), wait,
                      result.holder_ttl, result.holder});
        // A holder without a TTL (not dlock's) frees the lock only by a release, which wakes us.
        Millis sleep = std::min({left, longest_sleep, hand_off_window(ttl)});
        if (result.holder_ttl)
            sleep = std::min(sleep, std::max(*result.holder_ttl, Millis{1}));
        const auto sent = clock::now();
        if (changes) {
            if (!notified)
                sleep = std::min(sleep, Millis{std::uniform_int_distribution<Millis::rep>{
                                            30, foreign_release_poll.count()}(jitter)});
            changes->receive(sleep); // a release or change of the key, or the time is up
            result = attempt({acquire.args(true, next_attempt())}, Millis{0}, key, keys, token, ttl,
                             clock::now());
        } else {
            const std::string seconds = blpop_timeout(sleep);
            result = attempt({{"BLPOP", own_wake, seconds}, acquire.args(true, next_attempt())},
                             sleep, key, keys, token, ttl, sent);
        }
        if (result.acquired())
            return result;
    }
}

// Best effort: a waiter that cannot tell Redis it left loses its place by its deadline anyway.
void RedisLock::leave_queue(const LockKeys& keys, const std::string& token) {
    try {
        const std::string fence_idle_ms = std::to_string(settings_.fence_idle.count());
        connection_.eval(leave_queue_script, all_keys(keys),
                         {unclaimed_wake_up_ms, keys.channel, token, fence_idle_ms});
    } catch (const redis::RedisError&) {
    }
}

OwnerCheck RedisLock::release(std::string_view key, std::string_view token) {
    const LockKeys keys = keys_of(key);
    validate_owner(token, settings_.layout);
    const std::string fence_idle_ms = std::to_string(settings_.fence_idle.count());
    const redis::Reply reply =
        connection_.eval(owner_checked_script, all_keys(keys),
                         {unclaimed_wake_up_ms, keys.channel, token, "", "", fence_idle_ms});
    return to_owner_check(reply.view().integer());
}

OwnerCheck RedisLock::extend(std::string_view key, std::string_view token, Millis ttl) {
    const LockKeys keys = keys_of(key);
    validate_owner(token, settings_.layout);
    const std::string ttl_ms = std::to_string(ttl.count());
    const std::string fence_ttl_ms = std::to_string((ttl + settings_.fence_idle).count());
    const std::string fence_idle_ms = std::to_string(settings_.fence_idle.count());
    const std::vector<std::string_view> args{unclaimed_wake_up_ms, keys.channel, token, ttl_ms,
                                             fence_ttl_ms,         fence_idle_ms};
    if (settings_.replicas == 0)
        return to_owner_check(
            connection_.eval(owner_checked_script, all_keys(keys), args).view().integer());
    std::vector<std::string_view> eval{"EVAL", owner_checked_script, "7"};
    for (const std::string_view part : all_keys(keys))
        eval.push_back(part);
    eval.insert(eval.end(), args.begin(), args.end());
    const std::vector<redis::Reply> replies =
        connection_.pipeline({eval, wait_for_replicas()}, options_.timeout);
    const OwnerCheck check = to_owner_check(replies[0].view().integer());
    const std::int64_t replicas = replies[1].view().integer();
    if (check == OwnerCheck::done && replicas < settings_.replicas)
        throw NotReplicatedError("lock '" + std::string(key) +
                                 "' was extended on the master, but " + too_few_replicas(replicas));
    return check;
}

ForceReleaseResult RedisLock::force_release(std::string_view key,
                                            std::optional<std::string_view> only_owner) {
    const LockKeys keys = keys_of(key);
    if (only_owner)
        validate_owner(*only_owner, settings_.layout);
    const std::string fence_idle_ms = std::to_string(settings_.fence_idle.count());
    const redis::Reply reply = connection_.eval(
        force_release_script, all_keys(keys),
        {unclaimed_wake_up_ms, keys.channel, only_owner.value_or(""), fence_idle_ms});
    const redis::ReplyView answer = reply.view();
    ForceReleaseResult result;
    if (answer[0].integer() == 0)
        return result;
    result.released = answer[0].integer() == 1;
    result.holder = answer[1].string();
    result.ttl = remaining(answer[2].integer());
    result.details = holder_details(answer[3], *result.holder);
    result.now_ms = to_int(answer[4].string());
    return result;
}

LockStatus RedisLock::status(std::string_view key) {
    const LockKeys keys = keys_of(key);
    const redis::Reply reply =
        connection_.eval(status_script, {keys.lock, keys.holder, keys.fence}, {});
    LockStatus status = lock_status(reply.view(), keys.fence);
    status.stale = is_replica();
    return status;
}

// SCAN (never KEYS) for the lock names under the prefix, on the server or on every master of a
// Redis Cluster, then every lock's status in one pipelined round trip per batch (and node). In
// the plain layout a lock is any string key there (an app's lock is nothing more), dlock's side
// keys aside.
std::vector<LockListing> RedisLock::list(std::string_view pattern) {
    const std::string match = names_matching(pattern);
    std::vector<LockListing> listings;
    for (redis::Connection* node : connection_.masters()) {
        std::vector<std::string> names;
        std::string cursor = "0";
        do {
            const redis::Reply reply =
                node->command({"SCAN", cursor, "MATCH", match, "COUNT", "1000", "TYPE", "string"});
            const redis::ReplyView answer = reply.view();
            cursor = answer[0].string();
            for (std::size_t i = 0; i < answer[1].size(); ++i) {
                std::string name = answer[1][i].string();
                const bool side_key =
                    settings_.layout == KeyLayout::plain &&
                    (name.ends_with(":dlock:fence") || name.ends_with(":dlock:waiting"));
                if (!side_key)
                    names.push_back(std::move(name));
            }
        } while (cursor != "0");
        std::sort(names.begin(), names.end()); // SCAN may return a name twice
        names.erase(std::unique(names.begin(), names.end()), names.end());

        constexpr std::size_t batch = 100;
        for (std::size_t first = 0; first < names.size(); first += batch) {
            std::vector<std::string> batch_keys;
            std::vector<LockKeys> batch_names;
            std::vector<std::vector<std::string_view>> commands;
            for (std::size_t i = first; i < std::min(names.size(), first + batch); ++i) {
                batch_keys.push_back(key_of(names[i]));
                batch_names.push_back(
                    lock_keys(settings_.layout, settings_.prefix, batch_keys.back()));
            }
            for (const LockKeys& k : batch_names)
                commands.push_back({"EVAL", status_script, "3", k.lock, k.holder, k.fence});
            std::vector<redis::Reply> replies;
            try {
                replies = node->pipeline(commands);
            } catch (const redis::ClusterError&) {
                // A slot moved since the scan: each status from wherever its lock lives now.
                replies.clear();
                for (const auto& command : commands)
                    replies.push_back(connection_.command(command));
            }
            for (std::size_t i = 0; i < replies.size(); ++i) {
                LockStatus status = lock_status(replies[i].view(), batch_names[i].fence);
                if (status.holder) // not released since the scan
                    listings.push_back({batch_keys[i], std::move(status)});
            }
        }
    }
    std::sort(listings.begin(), listings.end(),
              [](const LockListing& a, const LockListing& b) { return a.key < b.key; });
    return listings;
}

// Two connections: this one for statuses, a second one subscribed to the locks' event channels
// and, when the server sends them, to keyspace notifications of their expiries. Without those,
// a lock known to be held whose TTL has run out is looked at: gone without a release event, it
// expired.
void RedisLock::watch(std::string_view pattern, const LockWatcher& watcher) {
    using clock = std::chrono::steady_clock;
    const std::string names = names_matching(pattern);
    // Each cluster node notifies expiries of its own keys only: in a cluster they are inferred
    // (masters() finds out whether it is one).
    connection_.masters();
    const std::string flags = connection_.cluster() ? "" : keyspace_event_flags(connection_);
    const bool notified_expiries =
        has_flag(flags, 'K') && (has_flag(flags, 'x') || has_flag(flags, 'A'));
    const bool plain = settings_.layout == KeyLayout::plain;
    const std::string_view events = plain ? ":dlock:events" : ":events";
    // Published events reach every node of a cluster, so one subscription hears them all.
    redis::Connection subscriber(connection_.home());
    subscriber.send({"PSUBSCRIBE", names + std::string(events)});
    const std::string keyspace = "__keyspace@" + std::to_string(options_.url.db) + "__:";
    if (notified_expiries)
        subscriber.send({"PSUBSCRIBE", keyspace + names});
    watcher.started(notified_expiries);

    // When each known held lock would expire unless renewed.
    std::map<std::string, clock::time_point> expiries;
    const auto track = [&](const std::string& key, const LockStatus& status) {
        if (status.holder && status.ttl)
            expiries[key] = clock::now() + *status.ttl;
        else
            expiries.erase(key);
    };
    for (const LockListing& held : list(pattern))
        track(held.key, held.status);

    constexpr Millis longest_quiet{500};
    while (watcher.keep_going()) {
        Millis wait = longest_quiet;
        for (const auto& [key, at] : expiries)
            wait = std::clamp(std::chrono::ceil<Millis>(at - clock::now()), Millis{1}, wait);
        if (const std::optional<redis::Reply> message = subscriber.receive(wait)) {
            const redis::ReplyView push = message->view();
            if (!push.is_array() || push.size() != 4 || push[0].string() != "pmessage")
                continue; // a subscription's confirmation
            const std::string channel = push[2].string();
            const std::string payload = push[3].string();
            LockEvent event;
            if (channel.rfind(keyspace, 0) == 0) {
                const bool side_key = plain && channel.find(":dlock:") != std::string::npos;
                if (payload != "expired" || side_key)
                    continue; // every other change comes through the events channel
                event = {key_of(std::string_view(channel).substr(keyspace.size())), "expired",
                         false, std::nullopt};
            } else {
                const std::string_view lock =
                    std::string_view(channel).substr(0, channel.size() - events.size());
                event = {key_of(lock), payload, false, std::nullopt};
                if (payload == "acquired" || payload == "extended")
                    event.status = status(event.key);
            }
            if (event.status)
                track(event.key, *event.status);
            else
                expiries.erase(event.key);
            watcher.event(event);
            continue;
        }
        if (notified_expiries)
            continue;
        for (auto it = expiries.begin(); it != expiries.end();) {
            if (clock::now() < it->second) {
                ++it;
                continue;
            }
            const LockStatus now = status(it->first);
            if (now.holder && now.ttl) { // renewed without our hearing of it
                it->second = clock::now() + *now.ttl;
                ++it;
                continue;
            }
            watcher.event({it->first, "expired", true, std::nullopt});
            it = expiries.erase(it);
        }
    }
}

} // namespace dlock
