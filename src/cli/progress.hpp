// Telling a person how a wait for a lock goes, on stderr, and never on stdout:
//   -v on a terminal: one status line, updated in place about once a second, erased when done;
//   -v elsewhere: a line when the wait starts and whenever the holder changes;
//   no -v, on a terminal: the status line once the wait passes 2 s (as git shows progress);
//   otherwise, or with -q: nothing, and the wait asks the store no more often than it must.
#pragma once

#include "cli/common.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace dlock::cli {

class WaitReport {
public:
    WaitReport(const GlobalOptions& global, std::string key);
    ~WaitReport();
    WaitReport(const WaitReport&) = delete;
    WaitReport& operator=(const WaitReport&) = delete;

    // What the lock service should tell; empty when nothing would be shown.
    WaitObserver observer();
    // The wait is over: erases the status line; with -v, says the lock was taken (with its
    // fencing token) when it was.
    void finished(std::optional<std::int64_t> fence);

private:
    void show(const WaitProgress& progress);
    void erase();

    std::string key_;
    bool verbose_;
    bool quiet_;
    bool terminal_;
    bool line_shown_ = false;
    bool done_ = false;
    std::string last_holder_;
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

} // namespace dlock::cli
