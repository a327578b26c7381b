#include "dlock/redis.hpp"
#include "dlock/redis_sentinel.hpp"

#include <doctest/doctest.h>

using dlock::redis::parse_url;
using dlock::redis::Url;

TEST_CASE("a redis URL gives host, port, user, password and database") {
    const Url url = parse_url("redis://alice:s3cret@cache.example:6380/2");
    CHECK(url.transport == Url::Transport::tcp);
    CHECK(url.host == "cache.example");
    CHECK(url.port == 6380);
    CHECK(url.user == "alice");
    CHECK(url.password == "s3cret");
    CHECK(url.db == 2);
}

TEST_CASE("a redis URL defaults to port 6379, database 0 and no credentials") {
    const Url url = parse_url("redis://10.0.0.5");
    CHECK(url.host == "10.0.0.5");
    CHECK(url.port == 6379);
    CHECK(url.db == 0);
    CHECK(url.user.empty());
    CHECK_FALSE(url.password.has_value());
}

TEST_CASE("a password alone, percent-encoded characters and IPv6 hosts are understood") {
    const Url url = parse_url("redis://:p%40ss%3Aword@[::1]:7000/");
    CHECK(url.user.empty());
    CHECK(url.password == "p@ss:word");
    CHECK(url.host == "::1");
    CHECK(url.port == 7000);
    CHECK(parse_url("redis://[::1]").port == 6379);
}

TEST_CASE("a unix socket URL gives the path and an optional database") {
    const Url url = parse_url("unix:///run/redis/redis.sock?db=3");
    CHECK(url.transport == Url::Transport::unix_socket);
    CHECK(url.socket_path == "/run/redis/redis.sock");
    CHECK(url.db == 3);
    CHECK(parse_url("unix:///tmp/r.sock").db == 0);
}

TEST_CASE("a unix socket URL may carry a user and password, and paths may hold '@'") {
    const Url url = parse_url("unix://dlock:p%40w@/run/redis.sock?db=1");
    CHECK(url.user == "dlock");
    CHECK(url.password == "p@w");
    CHECK(url.socket_path == "/run/redis.sock");
    CHECK(url.redacted() == "unix://dlock:***@/run/redis.sock?db=1");
    CHECK(parse_url("unix:///tmp/a@/b.sock").socket_path == "/tmp/a@/b.sock");
    CHECK(parse_url("unix:///tmp/a@/b.sock").user.empty());
}

TEST_CASE("rediss:// is a TCP URL spoken over TLS") {
    const Url url = parse_url("rediss://alice:s3cret@cache.example:6380/2");
    CHECK(url.transport == Url::Transport::tls);
    CHECK(url.host == "cache.example");
    CHECK(url.port == 6380);
    CHECK(url.db == 2);
    CHECK(url.redacted() == "rediss://alice:***@cache.example:6380/2");
    CHECK(parse_url("rediss://[::1]").redacted() == "rediss://[::1]:6379");
}

TEST_CASE("redis+cluster:// lists seed nodes in order, with one user and password for all") {
    const Url url = parse_url("redis+cluster://alice:s3cret@10.0.0.1:7000,10.0.0.2,[::1]:7002/");
    CHECK(url.transport == Url::Transport::tcp);
    REQUIRE(url.cluster_seeds.size() == 3);
    CHECK(url.cluster_seeds[0].host == "10.0.0.1");
    CHECK(url.cluster_seeds[0].port == 7000);
    CHECK(url.cluster_seeds[1].host == "10.0.0.2");
    CHECK(url.cluster_seeds[1].port == 6379);
    CHECK(url.cluster_seeds[2].host == "::1");
    CHECK(url.host == "10.0.0.1");
    CHECK(url.port == 7000);
    CHECK(url.user == "alice");
    CHECK(url.password == "s3cret");
    CHECK(url.db == 0);
    CHECK(url.redacted() == "redis+cluster://alice:***@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002");
    const Url tls = parse_url("rediss+cluster://node-a:7000");
    CHECK(tls.transport == Url::Transport::tls);
    CHECK(tls.cluster_seeds.size() == 1);
    CHECK(tls.redacted() == "rediss+cluster://node-a:7000");
    CHECK(parse_url("redis://host").cluster_seeds.empty());
}

TEST_CASE("a database in a redis+cluster:// URL is a usage error: a cluster has only db 0") {
    try {
        parse_url("redis+cluster://u:hunter2@a:7000,b:7001/1");
        FAIL("expected a usage error");
    } catch (const dlock::UsageError& e) {
        CHECK(std::string(e.what()).find("only database 0") != std::string::npos);
        CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
    }
}

TEST_CASE("malformed Redis URLs are usage errors") {
    for (const char* bad : {"",
                            "localhost:6379",
                            "http://x",
                            "redis://",
                            "redis://host:",
                            "redis://host:abc",
                            "redis://host:70000",
                            "redis://host:0",
                            "redis://host:-1",
                            "redis://host/abc",
                            "redis://host/-1",
                            "redis://[::1",
                            "redis://[::1]x",
                            "redis://u:%zz@host",
                            "redis://u:%4@host",
                            "unix://",
                            "unix://relative/path",
                            "unix:///tmp/s?database=1",
                            "unix:///tmp/s?db=x",
                            "redis+cluster://",
                            "redis+cluster://a:1,",
                            "redis+cluster://,a:1",
                            "redis+cluster://a:1,b:x",
                            "rediss+cluster://a:0"}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(parse_url(bad), dlock::UsageError);
    }
}

TEST_CASE("errors and redacted URLs never show the password") {
    try {
        parse_url("redis://u:hunter2@host:99999");
        FAIL("expected a usage error");
    } catch (const dlock::UsageError& e) {
        CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
    }
    // Mistyped schemes: the message must not echo what might be a password.
    for (const char* typo : {"redis:/u:hunter2@host", "u:hunter2@host:6379", "redis//:hunter2@h",
                             "http://u:hunter2@host", "hunter2"}) {
        CAPTURE(typo);
        try {
            parse_url(typo);
            FAIL("expected a usage error");
        } catch (const dlock::UsageError& e) {
            CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
        }
    }
    const std::string shown = parse_url("redis://u:hunter2@host:1/4").redacted();
    CHECK(shown == "redis://u:***@host:1/4");
}

TEST_CASE("a redis+sentinel URL gives the sentinels, the master's name, credentials and db") {
    using dlock::redis::parse_sentinel_url;
    const auto url = parse_sentinel_url("redis+sentinel://alice:s3cret@s1,s2:26380,[::1]/locks/3");
    REQUIRE(url.sentinels.size() == 3);
    CHECK(url.sentinels[0].host == "s1");
    CHECK(url.sentinels[0].port == 26379);
    CHECK(url.sentinels[1].port == 26380);
    CHECK(url.sentinels[2].host == "::1");
    CHECK(url.sentinels[2].port == 26379);
    CHECK(url.master_name == "locks");
    CHECK(url.master.user == "alice");
    CHECK(url.master.password == "s3cret");
    CHECK(url.master.db == 3);
    CHECK(url.master.transport == Url::Transport::tcp);
    CHECK(url.redacted() == "redis+sentinel://alice:***@s1:26379,s2:26380,[::1]:26379/locks/3");
    CHECK(parse_sentinel_url("rediss+sentinel://s1/locks").master.transport == Url::Transport::tls);
}

TEST_CASE("malformed redis+sentinel URLs are usage errors that never show the password") {
    using dlock::redis::parse_sentinel_url;
    for (const char* text :
         {"redis+sentinel://:pw@s1", "redis+sentinel://:pw@s1/", "redis+sentinel://:pw@s1,,s2/m",
          "redis+sentinel://:pw@s1:0/m", "redis+sentinel://:pw@s1/m/x"}) {
        CAPTURE(text);
        try {
            parse_sentinel_url(text);
            FAIL("accepted");
        } catch (const dlock::UsageError& e) {
            CHECK(std::string(e.what()).find("pw") == std::string::npos);
            CHECK(std::string(e.what()).find("redis+sentinel://") != std::string::npos);
        }
    }
}
