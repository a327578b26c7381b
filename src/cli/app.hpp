// The command tree main() parses: what tests build in-process to parse argument vectors.
#pragma once

#include "cli/common.hpp"

#include <optional>
#include <string>

namespace dlock::cli {

// Every global option and subcommand, wired to `inv`: a subcommand that runs records its exit
// code there.
void add_commands(CLI::App& app, Invocation& inv);

// `dlock config`: the effective settings, each with its source.
void setup_config_command(CLI::App& app, Invocation& inv);
int print_settings(const Invocation& inv);

// CLI11 takes the next word as the value of `--option=` with nothing after the '=' (so
// `--prefix= -n` would set the prefix to "-n"): the message refusing such an argument, if any.
std::optional<std::string> empty_equals_value(int argc, const char* const* argv);

} // namespace dlock::cli
