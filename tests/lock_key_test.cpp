#include "dlock/redis_lock.hpp"

#include <doctest/doctest.h>
#include <set>

using dlock::lock_keys;
using dlock::validate_key;

TEST_CASE("lock keys of printable UTF-8 from 1 to 256 bytes are accepted") {
    CHECK_NOTHROW(validate_key("a"));
    CHECK_NOTHROW(validate_key("withdraw_funds_user_42"));
    CHECK_NOTHROW(validate_key("nightly backup: db-1 {eu}"));
    CHECK_NOTHROW(validate_key("r\xC3\xA9sum\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\x92"));
    CHECK_NOTHROW(validate_key(std::string(256, 'k')));
}

TEST_CASE("empty, oversized, control-character and invalid UTF-8 keys are usage errors") {
    for (const std::string& bad : std::vector<std::string>{
             std::string(), std::string(257, 'k'), std::string(10'000, 'k'), std::string("a\nb"),
             std::string("tab\there"), std::string("nul\0x", 5), std::string("del\x7F"),
             std::string("\xC2\x85"),     // C1 control NEL
             std::string("\xFF"),         // never valid
             std::string("\xC0\xAF"),     // overlong '/'
             std::string("\xE0\x80\xAF"), // overlong '/'
             std::string("\xED\xA0\x80"), // surrogate
             std::string("\xF4\x90\x80\x80"), std::string("\xE2\x82"), std::string("\x80")}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(validate_key(bad), dlock::UsageError);
    }
}

TEST_CASE("all of one lock's keys share exactly one hash tag whatever the key holds") {
    for (const std::string key : {"plain", "a}b", "}x", "{x}", "{}", "%7D", "a{b}c{d}"}) {
        CAPTURE(key);
        const dlock::LockKeys keys = lock_keys("dlock:", key);
        // Redis hashes the text between the first '{' and the first '}' after it.
        const auto open = keys.lock.find('{');
        const auto close = keys.lock.find('}', open + 1);
        REQUIRE(open == std::string("dlock:").size());
        REQUIRE(close == keys.lock.size() - 1); // the tag spans the whole encoded key
        const std::string tag = keys.lock.substr(open, close - open + 1);
        CHECK(keys.fence.substr(open, tag.size()) == tag);
        CHECK(keys.channel.substr(open, tag.size()) == tag);
        CHECK(tag.size() > 2); // never "{}", which would hash the whole name
    }
}

TEST_CASE("distinct keys never share lock names") {
    std::set<std::string> names;
    for (const std::string key : {"a}b", "a%7Db", "a%b", "a%25b", "a{b", "a%7Bb"})
        CHECK(names.insert(lock_keys("dlock:", key).lock).second);
}

TEST_CASE("prefixes with braces or spaces are refused") {
    CHECK_NOTHROW(dlock::validate_prefix("dlock:"));
    CHECK_NOTHROW(dlock::validate_prefix(""));
    CHECK_THROWS_AS(dlock::validate_prefix("dl{ock"), dlock::UsageError);
    CHECK_THROWS_AS(dlock::validate_prefix("a b"), dlock::UsageError);
    CHECK_THROWS_AS(dlock::validate_prefix(std::string(65, 'p')), dlock::UsageError);
}

TEST_CASE("owner tokens are 128 random bits in hex, and 10,000 are all distinct") {
    std::set<std::string> tokens;
    for (int i = 0; i < 10'000; ++i) {
        const std::string token = dlock::new_owner_token();
        REQUIRE(token.size() == 32);
        REQUIRE_NOTHROW(dlock::validate_token(token));
        tokens.insert(token);
    }
    CHECK(tokens.size() == 10'000);
}

TEST_CASE("tokens of the wrong length or alphabet are usage errors") {
    for (const char* bad :
         {"", "abc", "0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcdef0",
          "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdeg"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(dlock::validate_token(bad), dlock::UsageError);
    }
}
