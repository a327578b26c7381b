#include "cli/progress.hpp"

#include "cli/lock_output.hpp"

#include <chrono>
#include <iostream>
#include <sys/ioctl.h>
#include <unistd.h>

namespace dlock::cli {
namespace {

// Without -v, a wait this short shows nothing at all.
constexpr Millis quiet_wait{2'000};

std::int64_t wall_clock_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// The status line must fit the terminal: a wrapped line cannot be rewritten in place.
std::size_t terminal_width() {
    winsize size{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 1)
        return size.ws_col - 1;
    return 79;
}

std::string whom(const WaitProgress& progress) {
    return progress.holder ? "held by " + holder_text("", progress.holder)
                           : "held by another owner";
}

// " for 3m12s": how long the holder has had it.
std::string held_for(const WaitProgress& progress) {
    if (!progress.holder)
        return "";
    const std::int64_t held = wall_clock_ms() - progress.holder->since_ms;
    return " for " + format_duration(Millis{std::max<std::int64_t>(held, 0)});
}

} // namespace

WaitReport::WaitReport(const GlobalOptions& global, std::string key)
    : key_(std::move(key)), verbose_(global.verbose), quiet_(global.quiet),
      terminal_(isatty(STDERR_FILENO) == 1) {}

WaitReport::~WaitReport() {
    erase();
}

WaitObserver WaitReport::observer() {
    if (quiet_ || (!verbose_ && !terminal_))
        return {};
    return [this](const WaitProgress& progress) {
        show(progress);
    };
}

void WaitReport::show(const WaitProgress& progress) {
    const std::string holder = whom(progress);
    if (!terminal_) { // -v into a log: a line per change of holder
        if (holder != last_holder_)
            std::cerr << "dlock: waiting for '" << printable(key_)
                      << "': " << printable(holder + held_for(progress)) << '\n';
        last_holder_ = holder;
        return;
    }
    if (!verbose_ && progress.waited < quiet_wait)
        return;
    // What changes comes first, so that a narrow terminal cuts only the holder's description.
    const std::string of =
        progress.wait == wait_forever ? "" : " of " + format_duration(progress.wait);
    std::string line = "waiting for '" + printable(key_) + "' " + format_duration(progress.waited) +
                       of + ": " + printable(holder + held_for(progress));
    const std::size_t width = terminal_width();
    if (line.size() > width)
        line = line.substr(0, width > 3 ? width - 3 : width) + "...";
    std::cerr << "\r\033[K" << line << std::flush;
    line_shown_ = true;
}

void WaitReport::erase() {
    if (line_shown_)
        std::cerr << "\r\033[K" << std::flush;
    line_shown_ = false;
}

void WaitReport::finished(std::optional<std::int64_t> fence) {
    if (done_)
        return;
    done_ = true;
    erase();
    if (!verbose_ || quiet_ || !fence)
        return;
    const auto waited = std::chrono::floor<Millis>(std::chrono::steady_clock::now() - start_);
    std::cerr << "dlock: acquired lock '" << printable(key_) << "' after "
              << format_duration(waited) << " (fence " << *fence << ")\n";
}

} // namespace dlock::cli
