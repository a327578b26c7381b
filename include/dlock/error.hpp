// Infrastructure failures as typed exceptions, and the exit codes they map to.
//
// Expected outcomes (a busy lock, a refused release, insufficient funds) are result values,
// never exceptions; an exception means dlock could not do its job at all.
#pragma once

#include <stdexcept>
#include <string>

namespace dlock {

// The documented exit codes (README, "Exit codes"). Defined once, here.
namespace exit_code {
inline constexpr int ok = 0;
// Refused by state: not the owner, not held, insufficient funds, stale fence.
inline constexpr int refused = 1;
// EX_USAGE: a bad flag, argument, duration, key, amount or id.
inline constexpr int usage = 64;
// EX_DATAERR: bad data, e.g. a ledger from a newer schema.
inline constexpr int data = 65;
// EX_UNAVAILABLE: Redis or the ledger unreachable, auth failed.
inline constexpr int unavailable = 69;
// EX_SOFTWARE: a bug, or an answer dlock cannot understand.
inline constexpr int internal = 70;
// EX_OSERR: the system ran out of something dlock needs: memory, file descriptors, processes.
inline constexpr int os_error = 71;
// EX_IOERR: dlock's own output (stdout) could not be written.
inline constexpr int output = 74;
// EX_TEMPFAIL: the lock is busy or the wait timed out (see -E).
inline constexpr int conflict = 75;
// dlock run: the lock was lost while the command ran.
inline constexpr int lock_lost = 79;
// dlock run, as a shell reports them (POSIX 2.8.2): found but not runnable; not found.
inline constexpr int command_not_executable = 126;
inline constexpr int command_not_found = 127;
} // namespace exit_code

// Root of every error dlock throws on purpose.
class Error : public std::runtime_error {
public:
    Error(const std::string& message, int exit_code)
        : std::runtime_error(message), exit_code_(exit_code) {}
    int exit_code() const noexcept { return exit_code_; }

private:
    int exit_code_;
};

// Bad flag, argument, duration, key, URL or amount.
class UsageError : public Error {
public:
    explicit UsageError(const std::string& message) : Error(message, exit_code::usage) {}
};

// Input that is well-formed but unusable, e.g. a ledger written by a newer dlock.
class DataError : public Error {
public:
    explicit DataError(const std::string& message) : Error(message, exit_code::data) {}
};

// A service dlock depends on (Redis, the ledger file) cannot be reached or refused us.
class UnavailableError : public Error {
public:
    explicit UnavailableError(const std::string& message)
        : Error(message, exit_code::unavailable) {}
};

// Something that should not happen: an unexpected reply shape, a broken invariant.
class InternalError : public Error {
public:
    explicit InternalError(const std::string& message) : Error(message, exit_code::internal) {}
};

// The system ran out of memory, file descriptors or processes; dlock stopped before acting.
class ResourceError : public Error {
public:
    explicit ResourceError(const std::string& message) : Error(message, exit_code::os_error) {}
};

// dlock's result could not be written to stdout (a full disk, a closed pipe).
class OutputError : public Error {
public:
    explicit OutputError(const std::string& message) : Error(message, exit_code::output) {}
};

} // namespace dlock
