// acquire, block, release, force-release, extend, status: their options and the functions that
// run them.
#pragma once

#include "cli/common.hpp"

#include <string>

namespace dlock::cli {

struct LockCommandOptions {
    std::string key;
    std::string ttl = duration_text(default_ttl);
    std::string wait = duration_text(default_wait);
    std::string owner;
};

int acquire(const Invocation& inv, const LockCommandOptions& opts);
int block(const Invocation& inv, const LockCommandOptions& opts);
int release(const Invocation& inv, const LockCommandOptions& opts);
int extend(const Invocation& inv, const LockCommandOptions& opts);
int force_release(const Invocation& inv, const LockCommandOptions& opts);
int status(const Invocation& inv, const LockCommandOptions& opts);

void setup_lock_commands(CLI::App& app, Invocation& inv);

} // namespace dlock::cli
