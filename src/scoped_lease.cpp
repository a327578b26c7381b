#include "dlock/scoped_lease.hpp"

#include <exception>

namespace dlock {

ScopedLease::ScopedLease(Reach reach, std::string key, Lease lease, Notice notice)
    : reach_(std::move(reach)), key_(std::move(key)), lease_(std::move(lease)),
      notice_(std::move(notice)) {}

ScopedLease::ScopedLease(LockService& locks, std::string key, Lease lease, Notice notice)
    : ScopedLease([&locks]() -> LockService& { return locks; }, std::move(key), std::move(lease),
                  std::move(notice)) {}

ScopedLease::~ScopedLease() {
    try {
        const std::optional<OwnerCheck> released = release();
        if (released && *released != OwnerCheck::done)
            notice_(
                "lock '" + key_ + "' was " +
                (*released == OwnerCheck::not_held ? "no longer held" : "held by another owner") +
                " when dlock released it: it expired or was force-released meanwhile");
    } catch (...) { // the notice itself failed; nothing is left to tell anyone
    }
}

std::optional<OwnerCheck> ScopedLease::release() {
    if (released_)
        return OwnerCheck::done;
    released_ = true;
    try {
        return reach_().release(key_, lease_.token);
    } catch (const std::exception& e) {
        notice_("could not release lock '" + key_ + "' (" + e.what() +
                "); it frees itself within " + format_duration(lease_.ttl));
        return std::nullopt;
    }
}

} // namespace dlock
