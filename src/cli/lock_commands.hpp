// acquire, block, release, force-release, extend, status: their options and the functions that
// run them.
#pragma once

#include "cli/common.hpp"

#include <string>

namespace dlock::cli {

struct LockCommandOptions : KeyedLockOptions {
    std::string owner;
};

// Take the lock: print the owner token, or refuse with 75 (-E N) when it is busy.
int acquire(const Invocation& inv, const LockCommandOptions& opts);
int block(const Invocation& inv, const LockCommandOptions& opts);

// Only for the owner: exit 1 when the token does not own the lock.
int release(const Invocation& inv, const LockCommandOptions& opts);
int extend(const Invocation& inv, const LockCommandOptions& opts);

// For operators, whoever holds the lock.
int force_release(const Invocation& inv, const LockCommandOptions& opts);
int status(const Invocation& inv, const LockCommandOptions& opts);
// opts.key is the PATTERN (empty: every lock).
int list(const Invocation& inv, const LockCommandOptions& opts);
int watch(const Invocation& inv, const LockCommandOptions& opts);

void setup_lock_commands(CLI::App& app, Invocation& inv, std::string_view only);

} // namespace dlock::cli
