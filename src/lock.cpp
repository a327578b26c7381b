#include "dlock/lock.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <sys/random.h>
#include <vector>

namespace dlock {
namespace {

// Takes the lock and issues the next fencing token, atomically. A missing counter (first use,
// or a Redis that restarted empty) starts from the server's clock in microseconds, so tokens
// keep increasing across a restart that lost every key.
constexpr std::string_view acquire_script = R"lua(
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    local now = redis.call('TIME')
    redis.call('SET', KEYS[2], now[1] .. string.format('%06d', tonumber(now[2])))
  end
  return {1, redis.call('INCR', KEYS[2])}
end
return {0, redis.call('PTTL', KEYS[1])}
)lua";

// 1: released, 0: not held, -1: held by another owner. A release leaves exactly one wake-up on
// the wake list: Redis hands it to the waiter blocked longest, and only that one wakes (see
// block()). When nobody waits, it stays for a minute, so a waiter that was about to block
// still sees it.
constexpr std::string_view release_script = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('RPUSH', KEYS[2], 1)
  redis.call('PEXPIRE', KEYS[2], 60000)
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
if holder then return -1 end
return 0
)lua";

constexpr std::string_view extend_script = R"lua(
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return -1 end
return 0
)lua";

constexpr std::string_view force_release_script = R"lua(
local holder = redis.call('GET', KEYS[1])
if not holder then return {} end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('RPUSH', KEYS[2], 1)
redis.call('PEXPIRE', KEYS[2], 60000)
redis.call('PUBLISH', ARGV[1], 'released')
return {holder, ttl}
)lua";

constexpr std::string_view status_script = R"lua(
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', KEYS[2])}
)lua";

constexpr std::size_t token_bytes = 16;

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

// Length of the UTF-8 sequence starting at text[i], or 0 if it is not valid UTF-8
// (overlong forms, surrogates and code points past U+10FFFF included).
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) {
        return static_cast<unsigned char>(text[k]);
    };
    const unsigned char lead = byte(i);
    std::size_t length = 0;
    char32_t code_point = 0;
    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        code_point = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        code_point = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        code_point = lead & 0x07;
    } else {
        return 0;
    }
    if (i + length > text.size())
        return 0;
    for (std::size_t k = 1; k < length; ++k) {
        if ((byte(i + k) & 0xC0) != 0x80)
            return 0;
        code_point = (code_point << 6) | (byte(i + k) & 0x3F);
    }
    const bool overlong =
        (length == 3 && code_point < 0x800) || (length == 4 && code_point < 0x10000);
    const bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
    if (overlong || surrogate || code_point > 0x10FFFF || (code_point >= 0x80 && code_point < 0xA0))
        return 0; // the last test rejects C1 control characters
    return length;
}

[[noreturn]] void bad_key(std::string_view why) {
    throw UsageError("invalid lock key: " + std::string(why));
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

} // namespace

void validate_key(std::string_view key) {
    if (key.empty())
        bad_key("empty");
    if (key.size() > max_key_bytes)
        bad_key(std::to_string(key.size()) + " bytes, at most " + std::to_string(max_key_bytes));
    for (std::size_t i = 0; i < key.size();) {
        const auto c = static_cast<unsigned char>(key[i]);
        if (c < 0x20 || c == 0x7F)
            bad_key("control character at byte " + std::to_string(i));
        const std::size_t length = utf8_sequence_length(key, i);
        if (length == 0)
            bad_key("not valid UTF-8 (or a control character) at byte " + std::to_string(i));
        i += length;
    }
}

void validate_prefix(std::string_view prefix) {
    if (prefix.size() > max_prefix_bytes)
        throw UsageError("invalid prefix: at most " + std::to_string(max_prefix_bytes) + " bytes");
    for (const char c : prefix) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x21 || byte > 0x7E || c == '{' || c == '}')
            throw UsageError("invalid prefix: printable ASCII without spaces or braces only");
    }
}

void validate_token(std::string_view token) {
    const bool hex = token.find_first_not_of("0123456789abcdef") == std::string_view::npos;
    if (token.size() != token_bytes * 2 || !hex)
        throw UsageError("invalid owner token: expected " + std::to_string(token_bytes * 2) +
                         " lowercase hex digits, as acquire prints");
}

std::string new_owner_token() {
    std::array<unsigned char, token_bytes> bytes{};
    std::size_t filled = 0;
    while (filled < bytes.size()) {
        const ssize_t n = getrandom(bytes.data() + filled, bytes.size() - filled, 0);
        if (n < 0 && errno != EINTR)
            throw InternalError(std::string("getrandom failed: ") + std::strerror(errno));
        if (n > 0)
            filled += static_cast<std::size_t>(n);
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string token;
    token.reserve(token_bytes * 2);
    for (const unsigned char b : bytes) {
        token += digits[b >> 4];
        token += digits[b & 0x0F];
    }
    return token;
}

LockKeys lock_keys(std::string_view prefix, std::string_view key) {
    std::string lock = std::string(prefix) + "{" + percent_encode_braces(key) + "}";
    return LockKeys{lock, lock + ":fence", lock + ":wake", lock + ":released"};
}

RedisLock::RedisLock(const redis::Options& options, std::string prefix)
    : prefix_(std::move(prefix)), connection_(options) {}

namespace {

// The acquire script's EVAL, with the strings it points into.
struct AcquireCommand {
    AcquireCommand(const LockKeys& keys, const std::string& token, Millis ttl)
        : ttl_ms(std::to_string(ttl.count())), args{"EVAL",     acquire_script, "2",   keys.lock,
                                                    keys.fence, token,          ttl_ms} {}
    std::string ttl_ms;
    std::vector<std::string_view> args;
};

AcquireResult acquire_result(const redis::ReplyView answer, const std::string& token, Millis ttl,
                             std::chrono::steady_clock::time_point sent) {
    AcquireResult result;
    result.sent = sent;
    if (answer[0].integer() == 1)
        result.lease = Lease{token, answer[1].integer(), ttl};
    else
        result.holder_ttl = Millis{answer[1].integer()};
    return result;
}

} // namespace

AcquireResult RedisLock::try_acquire_with_token(const LockKeys& keys, const std::string& token,
                                                Millis ttl) {
    const AcquireCommand acquire(keys, token, ttl);
    const auto sent = std::chrono::steady_clock::now();
    return acquire_result(connection_.command(acquire.args).view(), token, ttl, sent);
}

AcquireResult RedisLock::try_acquire(std::string_view key, Millis ttl) {
    return try_acquire_with_token(lock_keys(prefix_, key), new_owner_token(), ttl);
}

// Waiting happens in Redis: BLPOP on the lock's wake list, with the next attempt pipelined
// right behind it on the same connection. A release pushes one wake-up; Redis hands it to the
// waiter that has been blocked longest and runs that waiter's attempt at once, so the lock
// passes in one hop, without a round trip back to the waiter and without waking the others.
// An expiry pushes nothing: a waiter also stops blocking when the holder's remaining TTL runs
// out (within Redis's timer tick), and its queued attempt then finds the lock free.
AcquireResult RedisLock::block(std::string_view key, Millis ttl, Millis wait) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const LockKeys keys = lock_keys(prefix_, key);
    const std::string token = new_owner_token();
    const AcquireCommand acquire(keys, token, ttl);

    AcquireResult result =
        acquire_result(connection_.command(acquire.args).view(), token, ttl, start);
    if (result.acquired() || wait.count() <= 0)
        return result;

    const auto deadline = wait == wait_forever ? clock::time_point::max() : start + wait;
    for (;;) {
        const auto left = std::chrono::ceil<Millis>(deadline - clock::now());
        if (left.count() <= 0)
            return result;
        // PTTL -2: gone between our SET and PTTL, retry now. -1: a key without TTL that dlock
        // did not write; only a release can end it.
        Millis sleep = std::min(left, longest_blocking_wait);
        if (result.holder_ttl.count() == -2)
            sleep = Millis{0};
        else if (result.holder_ttl.count() >= 0)
            sleep = std::min(sleep, std::max(result.holder_ttl, Millis{1}));
        const auto sent = clock::now();
        if (sleep.count() == 0) {
            result = acquire_result(connection_.command(acquire.args).view(), token, ttl, sent);
        } else {
            const std::string seconds = blpop_timeout(sleep);
            const std::vector<redis::Reply> replies =
                connection_.pipeline({{"BLPOP", keys.wake, seconds}, acquire.args}, sleep);
            result = acquire_result(replies[1].view(), token, ttl, sent);
        }
        if (result.acquired())
            return result;
    }
}

OwnerCheck RedisLock::release(std::string_view key, std::string_view token) {
    const LockKeys keys = lock_keys(prefix_, key);
    const redis::Reply reply =
        connection_.eval(release_script, {keys.lock, keys.wake}, {token, keys.channel});
    return to_owner_check(reply.view().integer());
}

OwnerCheck RedisLock::extend(std::string_view key, std::string_view token, Millis ttl) {
    const LockKeys keys = lock_keys(prefix_, key);
    const std::string ttl_ms = std::to_string(ttl.count());
    const redis::Reply reply = connection_.eval(extend_script, {keys.lock}, {token, ttl_ms});
    return to_owner_check(reply.view().integer());
}

ForceReleaseResult RedisLock::force_release(std::string_view key) {
    const LockKeys keys = lock_keys(prefix_, key);
    const redis::Reply reply =
        connection_.eval(force_release_script, {keys.lock, keys.wake}, {keys.channel});
    const redis::ReplyView answer = reply.view();
    ForceReleaseResult result;
    if (answer.size() == 2) {
        result.holder = answer[0].string();
        result.ttl = Millis{answer[1].integer()};
    }
    return result;
}

LockStatus RedisLock::status(std::string_view key) {
    const LockKeys keys = lock_keys(prefix_, key);
    const redis::Reply reply = connection_.eval(status_script, {keys.lock, keys.fence}, {});
    const redis::ReplyView answer = reply.view();
    LockStatus result;
    if (!answer[0].is_nil()) {
        result.holder = answer[0].string();
        result.ttl = Millis{answer[1].integer()};
    }
    if (!answer[2].is_nil())
        result.fence = std::stoll(answer[2].string());
    return result;
}

} // namespace dlock
