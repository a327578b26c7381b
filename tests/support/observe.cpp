#include "support/observe.hpp"

#include <cerrno>
#include <fstream>
#include <iterator>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace dlock::test {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

char process_state(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    return close == std::string::npos || close + 2 >= text.size() ? '?' : text[close + 2];
}

bool exits_within(pid_t pid, std::chrono::milliseconds limit) {
    const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0)
        return errno == ESRCH;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(limit.count()));
    close(fd);
    return ready > 0;
}

bool has_exited(pid_t pid) {
    return exits_within(pid, std::chrono::milliseconds(0));
}

} // namespace dlock::test
