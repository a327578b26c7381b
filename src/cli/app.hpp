// The command tree main() parses: what tests build in-process to parse argument vectors.
#pragma once

#include "cli/common.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace dlock::cli {

// Every global option, and the subcommands, wired to `inv`: a subcommand that runs records its
// exit code there. With `invoked` (a subcommand's name), only that subcommand: every process runs
// one, and declaring the options of all the others cost about half of a short command's
// instructions.
void add_commands(CLI::App& app, Invocation& inv, std::string_view invoked = {});
// The same for the arguments main() was given: only the subcommand they invoke, if any.
void add_commands(CLI::App& app, Invocation& inv, int argc, const char* const* argv);

// The subcommand the arguments name, if they name one (empty for none, `--help` alone, or a
// word that is no subcommand: those need the whole tree). `app` has the global options, which
// say which of them take the next word as their value.
std::string_view invoked_subcommand(const CLI::App& app, int argc, const char* const* argv);

// `dlock config`: the effective settings, each with its source.
void setup_config_command(CLI::App& app, Invocation& inv, std::string_view only);
int print_settings(const Invocation& inv);

// CLI11 takes the next word as the value of `--option=` with nothing after the '=' (so
// `--prefix= -n` would set the prefix to "-n"): the message refusing such an argument, if any.
std::optional<std::string> empty_equals_value(int argc, const char* const* argv);

} // namespace dlock::cli
