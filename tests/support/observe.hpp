// What the tests watch for: text in output, a condition that comes true in time, a process's
// state in /proc, a process's exit, lines a command writes to a FIFO. Synchronisation by
// observation, never by sleeping and hoping.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>

namespace dlock::test {

using Clock = std::chrono::steady_clock;

// True when `part` occurs in `text`: for messages whose wording around it may vary.
bool contains(const std::string& text, const std::string& part);

// Seconds from `start` until now, for the generous bounds that prove a mechanism.
double seconds_since(Clock::time_point start);

// Waits until `check()` holds, looking every 2 ms; false after `limit`.
template <typename Check>
bool eventually(Check check, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    while (!check()) {
        if (Clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

// The state letter of /proc/PID/stat: 'T' stopped, 'S' sleeping, 'Z' zombie, ...; '?' if gone.
char process_state(pid_t pid);

// True once process `pid` has exited (zombie or reaped), waiting at most `limit`; it need not
// be our child.
bool exits_within(pid_t pid, std::chrono::milliseconds limit);
bool has_exited(pid_t pid);

// A FIFO a command writes lines to. The test holds both ends, so opening it for writing
// never blocks the command and reading never sees EOF.
class Fifo {
public:
    explicit Fifo(std::string path);
    ~Fifo();
    Fifo(const Fifo&) = delete;
    Fifo& operator=(const Fifo&) = delete;

    const std::string& path() const { return path_; }

    // The next line written, or nullopt if none comes within `limit`.
    std::optional<std::string> read_line(std::chrono::milliseconds limit);

private:
    std::string path_;
    int fd_ = -1;
    std::string buffer_;
};

} // namespace dlock::test
