// A lock this process took, released (owner-checked) exactly once: explicitly, or when the
// scope ends, whatever happened meanwhile. Used by `dlock run` and by the ledger's locked
// writes alike.
#pragma once

#include "dlock/lock.hpp"

#include <functional>
#include <optional>
#include <string>

namespace dlock {

// One-line messages about trouble that changes no outcome (a release that failed, ...).
using Notice = std::function<void(const std::string&)>;

class ScopedLease {
public:
    // How to reach the lock store when it is time to release: the service that took the lock,
    // or a fresh connection (dlock run keeps none open while the command runs).
    using Reach = std::function<LockService&()>;

    ScopedLease(Reach reach, std::string key, Lease lease, Notice notice);
    ScopedLease(LockService& locks, std::string key, Lease lease, Notice notice);
    ~ScopedLease();
    ScopedLease(const ScopedLease&) = delete;
    ScopedLease& operator=(const ScopedLease&) = delete;

    const std::string& key() const { return key_; }
    const Lease& lease() const { return lease_; }

    // Releases if not done yet; later calls answer done. nullopt when the lock store could not
    // be asked: the notice says so, and the lock frees itself within its TTL.
    std::optional<OwnerCheck> release();

private:
    Reach reach_;
    std::string key_;
    Lease lease_;
    Notice notice_;
    bool released_ = false;
};

} // namespace dlock
