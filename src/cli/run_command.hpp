// run: hold a lock while a command runs (the library's run_locked does the work).
#pragma once

#include "cli/common.hpp"
#include "dlock/runner.hpp"

#include <string>
#include <vector>

namespace dlock::cli {

struct RunCommandOptions : KeyedLockOptions {
    bool nonblock = false;
    std::string kill_grace = duration_text(default_kill_grace);
    std::string shell_command;
    bool shell = false; // -c was given (its command may be empty)
    std::vector<std::string> command;
};

// The command to run: -c 'shell command' or -- CMD [ARGS...], exactly one of them.
std::vector<std::string> command_argv(const RunCommandOptions& opts);
// Everything run_locked needs, parsed; throws UsageError.
RunSpec run_spec(const RunCommandOptions& opts);

int run(const Invocation& inv, const RunCommandOptions& opts);

void setup_run_command(CLI::App& app, Invocation& inv, std::string_view only);

} // namespace dlock::cli
