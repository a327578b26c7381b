#include "dlock/lease_keeper.hpp"

#include <algorithm>

namespace dlock {
namespace {

constexpr Millis longest_retry_interval{1'000};
constexpr Millis shortest_attempt_timeout{10};

} // namespace

LeaseKeeper::LeaseKeeper(Millis ttl, TimePoint sent)
    : ttl_(ttl), last_sent_(sent), retry_at_(sent) {}

Millis LeaseKeeper::retry_interval() const {
    return std::clamp(ttl_ / 10, Millis{1}, longest_retry_interval);
}

LeaseKeeper::TimePoint LeaseKeeper::next_attempt() const {
    if (failing_)
        return std::min(retry_at_, lease_end());
    return last_sent_ + renew_interval();
}

Millis LeaseKeeper::attempt_timeout(TimePoint now, Millis longest) const {
    const auto left = std::chrono::floor<Millis>(lease_end() - now);
    // Late but not failing (dlock was stopped or starved): one honest try decides.
    if (left.count() <= 0)
        return std::min(longest, renew_interval());
    return std::min(longest, std::max(left / 2, shortest_attempt_timeout));
}

void LeaseKeeper::renewed(TimePoint sent) {
    last_sent_ = std::max(last_sent_, sent);
    failing_ = false;
    failures_ = 0;
}

void LeaseKeeper::failed(TimePoint now) {
    failing_ = true;
    ++failures_;
    retry_at_ = now + retry_interval();
}

} // namespace dlock
