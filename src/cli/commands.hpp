// The subcommand groups; main.cpp wires them into one CLI::App.
#pragma once

#include "cli/common.hpp"

#include <string_view>

namespace dlock::cli {

void setup_ledger_commands(CLI::App& app, Invocation& inv);
void setup_lock_commands(CLI::App& app, Invocation& inv);
void setup_run_command(CLI::App& app, Invocation& inv);

// A --wait value: DUR, or 'inf' to wait forever.
Millis parse_wait(std::string_view text);

} // namespace dlock::cli
