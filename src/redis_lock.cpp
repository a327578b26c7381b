#include "dlock/redis_lock.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <string>
#include <vector>

namespace dlock {
namespace {

// Takes the lock and issues the next fencing token, atomically. A missing counter (first use,
// or a Redis that restarted empty) starts from the server's clock in microseconds, so tokens
// keep increasing across a restart that lost every key. A counter someone overwrote with
// something INCR cannot count is reported ({-1, what it holds}) before anything is written:
// a script that fails half-way is not rolled back.
constexpr std::string_view acquire_script = R"lua(
local readable, fence = pcall(redis.call, 'GET', KEYS[2])
if not readable then return {-1, 'a value of type ' .. redis.call('TYPE', KEYS[2])['ok']} end
if fence and (#fence > 18 or not string.match(fence, '^%d+$')) then return {-1, fence} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if not fence then
    local now = redis.call('TIME')
    redis.call('SET', KEYS[2], now[1] .. string.format('%06d', tonumber(now[2])))
  end
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
)lua";

// Shared by every script that frees a lock (KEYS: lock, wake list; ARGV[1]: how long an unused
// wake-up stays, ARGV[2]: the release channel). It leaves exactly one wake-up on the wake list:
// Redis hands it to the waiter blocked longest, and only that one wakes (see block()). When
// nobody waits, it stays a while, so a waiter that was about to block still sees it.
constexpr std::string_view free_and_wake_one = R"lua(
local function free_and_wake_one()
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('RPUSH', KEYS[2], 1)
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  redis.call('PUBLISH', ARGV[2], 'released')
end
)lua";

// release (ARGV[4] empty) and extend (ARGV[4] the new TTL), only for the owner ARGV[3].
// 1: done, 0: not held, -1: held by another owner.
constexpr std::string_view owner_checked_body = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder ~= ARGV[3] then
  if holder then return -1 end
  return 0
end
if ARGV[4] == '' then free_and_wake_one() else redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
)lua";

constexpr std::string_view force_release_body = R"lua(
local holder = redis.call('GET', KEYS[1])
if not holder then return {} end
local ttl = redis.call('PTTL', KEYS[1])
free_and_wake_one()
return {holder, ttl}
)lua";

constexpr std::string_view status_script = R"lua(
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}
)lua";

const std::string owner_checked_script =
    std::string(free_and_wake_one) + std::string(owner_checked_body);
const std::string force_release_script =
    std::string(free_and_wake_one) + std::string(force_release_body);

// How long a wake-up nobody took stays on the wake list.
constexpr Millis unclaimed_wake_up_lifetime{60'000};
const std::string unclaimed_wake_up_ms = std::to_string(unclaimed_wake_up_lifetime.count());

// The longest single BLPOP; a longer wait is several.
constexpr Millis longest_blocking_wait{60'000};

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

// The acquire script's EVAL, with the strings it points into.
struct AcquireCommand {
    AcquireCommand(const LockKeys& keys, const std::string& token, Millis ttl)
        : ttl_ms(std::to_string(ttl.count())), args{"EVAL",     acquire_script, "2",   keys.lock,
                                                    keys.fence, token,          ttl_ms} {}
    std::string ttl_ms;
    std::vector<std::string_view> args;
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
        break;
    default:
        bad_fence_counter(keys.fence, answer[1].string());
    }
    return result;
}

} // namespace

LockKeys lock_keys(std::string_view prefix, std::string_view key) {
    std::string lock = std::string(prefix) + "{" + percent_encode_braces(key) + "}";
    return LockKeys{lock, lock + ":fence", lock + ":wake", lock + ":released"};
}

RedisLock::RedisLock(const redis::Options& options, std::string prefix)
    : prefix_((validate_prefix(prefix), std::move(prefix))), connection_(options) {}

std::string RedisLock::fence_resource(std::string_view key) const {
    return lock_keys(prefix_, key).lock;
}

AcquireResult RedisLock::try_acquire(std::string_view key, Millis ttl) {
    validate_key(key);
    const LockKeys keys = lock_keys(prefix_, key);
    const std::string token = new_owner_token();
    const AcquireCommand acquire(keys, token, ttl);
    const auto sent = std::chrono::steady_clock::now();
    return acquire_result(connection_.command(acquire.args).view(), keys, token, ttl, sent);
}

// Waiting happens in Redis: BLPOP on the lock's wake list, with the next attempt pipelined
// right behind it on the same connection. A release pushes one wake-up; Redis hands it to the
// waiter that has been blocked longest and runs that waiter's attempt at once, so the lock
// passes in one hop, without a round trip back to the waiter and without waking the others.
// An expiry pushes nothing: a waiter also stops blocking when the holder's remaining TTL runs
// out (within Redis's timer tick), and its queued attempt then finds the lock free.
AcquireResult RedisLock::block(std::string_view key, Millis ttl, Millis wait) {
    using clock = std::chrono::steady_clock;
    validate_key(key);
    const auto start = clock::now();
    const LockKeys keys = lock_keys(prefix_, key);
    const std::string token = new_owner_token();
    const AcquireCommand acquire(keys, token, ttl);

    AcquireResult result =
        acquire_result(connection_.command(acquire.args).view(), keys, token, ttl, start);
    if (result.acquired() || wait.count() <= 0)
        return result;

    const auto deadline = wait == wait_forever ? clock::time_point::max() : start + wait;
    for (;;) {
        const auto left = std::chrono::ceil<Millis>(deadline - clock::now());
        if (left.count() <= 0)
            return result;
        // A holder without a TTL (not dlock's) frees the lock only by a release, which wakes us.
        Millis sleep = std::min(left, longest_blocking_wait);
        if (result.holder_ttl)
            sleep = std::min(sleep, std::max(*result.holder_ttl, Millis{1}));
        const auto sent = clock::now();
        const std::string seconds = blpop_timeout(sleep);
        const std::vector<redis::Reply> replies =
            connection_.pipeline({{"BLPOP", keys.wake, seconds}, acquire.args}, sleep);
        result = acquire_result(replies[1].view(), keys, token, ttl, sent);
        if (result.acquired())
            return result;
    }
}

OwnerCheck RedisLock::release(std::string_view key, std::string_view token) {
    validate_key(key);
    validate_token(token);
    const LockKeys keys = lock_keys(prefix_, key);
    const redis::Reply reply = connection_.eval(owner_checked_script, {keys.lock, keys.wake},
                                                {unclaimed_wake_up_ms, keys.channel, token, ""});
    return to_owner_check(reply.view().integer());
}

OwnerCheck RedisLock::extend(std::string_view key, std::string_view token, Millis ttl) {
    validate_key(key);
    validate_token(token);
    const LockKeys keys = lock_keys(prefix_, key);
    const std::string ttl_ms = std::to_string(ttl.count());
    const redis::Reply reply =
        connection_.eval(owner_checked_script, {keys.lock, keys.wake},
                         {unclaimed_wake_up_ms, keys.channel, token, ttl_ms});
    return to_owner_check(reply.view().integer());
}

ForceReleaseResult RedisLock::force_release(std::string_view key) {
    validate_key(key);
    const LockKeys keys = lock_keys(prefix_, key);
    const redis::Reply reply = connection_.eval(force_release_script, {keys.lock, keys.wake},
                                                {unclaimed_wake_up_ms, keys.channel});
    const redis::ReplyView answer = reply.view();
    ForceReleaseResult result;
    if (answer.size() == 2) {
        result.holder = answer[0].string();
        result.ttl = remaining(answer[1].integer());
    }
    return result;
}

LockStatus RedisLock::status(std::string_view key) {
    validate_key(key);
    const LockKeys keys = lock_keys(prefix_, key);
    const redis::Reply reply = connection_.eval(status_script, {keys.lock, keys.fence}, {});
    const redis::ReplyView answer = reply.view();
    LockStatus result;
    if (!answer[0].is_nil()) {
        result.holder = answer[0].string();
        result.ttl = remaining(answer[1].integer());
    }
    if (!answer[2].is_nil())
        result.fence = fence_value(keys.fence, answer[2].string());
    return result;
}

} // namespace dlock
