#include "dlock/lease_keeper.hpp"

#include <doctest/doctest.h>

using dlock::LeaseKeeper;
using dlock::Millis;
using namespace std::chrono_literals;

namespace {
const LeaseKeeper::TimePoint t0{}; // a fake clock: only differences matter
}

TEST_CASE("renewals are due every TTL/3, counted from when the last extend was sent") {
    LeaseKeeper keeper(3s, t0);
    CHECK(keeper.next_attempt() == t0 + 1s);
    CHECK(keeper.lease_end() == t0 + 3s);
    // Sent at 1s, answered whenever: the lease runs from the send.
    keeper.renewed(t0 + 1s);
    CHECK(keeper.next_attempt() == t0 + 2s);
    CHECK(keeper.lease_end() == t0 + 4s);
}

TEST_CASE("an answer to an older extend never shortens the lease") {
    LeaseKeeper keeper(3s, t0 + 2s);
    keeper.renewed(t0 + 1s);
    CHECK(keeper.lease_end() == t0 + 5s);
}

TEST_CASE("failed renewals are retried until the lease end, and only then is it lost") {
    LeaseKeeper keeper(10s, t0);
    keeper.failed(t0 + 3400ms);
    CHECK(keeper.failing());
    CHECK_FALSE(keeper.ran_out(t0 + 3400ms));
    CHECK(keeper.next_attempt() == t0 + 4400ms); // retries every TTL/10, at most 1s
    keeper.failed(t0 + 9500ms);
    CHECK(keeper.next_attempt() == t0 + 10s); // never past the lease end
    CHECK_FALSE(keeper.ran_out(t0 + 9999ms));
    CHECK(keeper.ran_out(t0 + 10s));
    CHECK(keeper.failures() == 2);
}

TEST_CASE("a success after failures restores the normal rhythm") {
    LeaseKeeper keeper(3s, t0);
    keeper.failed(t0 + 1s);
    keeper.renewed(t0 + 1300ms);
    CHECK_FALSE(keeper.failing());
    CHECK(keeper.failures() == 0);
    CHECK(keeper.next_attempt() == t0 + 2300ms);
    CHECK(keeper.lease_end() == t0 + 4300ms);
}

TEST_CASE("an attempt may block for half of what is left of the lease, at most the timeout") {
    LeaseKeeper keeper(9s, t0);
    CHECK(keeper.attempt_timeout(t0 + 3s, 3s) == 3s);     // 6s left: the configured 3s
    CHECK(keeper.attempt_timeout(t0 + 7s, 3s) == 1s);     // 2s left: 1s
    CHECK(keeper.attempt_timeout(t0 + 8999ms, 3s) > 0ms); // never zero
}

TEST_CASE("a lease that only looks old (dlock was stopped) is not lost until an attempt fails") {
    LeaseKeeper keeper(3s, t0);
    CHECK_FALSE(keeper.ran_out(t0 + 60s));
    CHECK(keeper.next_attempt() <= t0 + 60s);          // try at once
    CHECK(keeper.attempt_timeout(t0 + 60s, 3s) == 1s); // with a real chance to answer
    keeper.failed(t0 + 61s);
    CHECK(keeper.ran_out(t0 + 61s));
}
