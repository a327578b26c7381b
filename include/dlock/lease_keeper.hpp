// When to renew a lease, and when it must be taken as lost: the timing rules of `dlock run`,
// kept apart from the processes and the network so they can be tested with a fake clock.
//
// Times are the moments an extend was SENT, never when its answer came back: the server
// resets the TTL at some moment after we sent, so `sent + ttl` never overstates the lease.
#pragma once

#include "dlock/duration.hpp"

#include <chrono>

namespace dlock {

class LeaseKeeper {
public:
    using Clock = std::chrono::steady_clock;
    using TimePoint = Clock::time_point;

    // A lease of `ttl` whose last successful write (acquire or extend) was sent at `sent`.
    LeaseKeeper(Millis ttl, TimePoint sent);

    Millis ttl() const { return ttl_; }
    // The latest moment the lease is known to last until.
    TimePoint lease_end() const { return last_sent_ + ttl_; }
    // Renewals go out every TTL/3; while they fail, retries come every `retry_interval()`,
    // never later than the lease end.
    TimePoint next_attempt() const;
    Millis renew_interval() const { return ttl_ / 3; }
    Millis retry_interval() const;
    // How long an attempt starting at `now` may block: half of what is left of the lease, so
    // a connect plus a command that both time out still give up by the lease end. `longest`
    // is the configured Redis timeout.
    Millis attempt_timeout(TimePoint now, Millis longest) const;

    // The extend sent at `sent` succeeded.
    void renewed(TimePoint sent);
    // An attempt failed without an answer (Redis unreachable, timed out, ...).
    void failed(TimePoint now);
    bool failing() const { return failing_; }
    // Failed attempts since the last success.
    int failures() const { return failures_; }
    // True once renewals have failed until the lease end: the lock must be taken as lost.
    // A lease that merely looks old (dlock was stopped or starved) is not lost until an
    // attempt says so: an extend that finds our token proves the key never expired.
    bool ran_out(TimePoint now) const { return failing_ && now >= lease_end(); }

private:
    Millis ttl_;
    TimePoint last_sent_;
    TimePoint retry_at_;
    bool failing_ = false;
    int failures_ = 0;
};

} // namespace dlock
