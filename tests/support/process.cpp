#include "support/process.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <poll.h>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace dlock::test {
namespace {

std::vector<std::string> merged_environment(const std::vector<std::string>& extra) {
    std::map<std::string, std::string> vars;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string entry = *e;
        vars[entry.substr(0, entry.find('='))] = entry;
    }
    for (const auto& entry : extra)
        vars[entry.substr(0, entry.find('='))] = entry;
    std::vector<std::string> out;
    for (auto& [name, entry] : vars)
        out.push_back(entry);
    return out;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> out;
    for (auto& s : strings)
        out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

} // namespace

std::string make_temp_dir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "dlock-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)
        throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    return pattern;
}

void remove_tree(const std::string& path) {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    return buffer.str();
}

Child::Child(const std::vector<std::string>& argv, const std::vector<std::string>& env)
    : dir_(make_temp_dir()) {
    std::vector<std::string> args = argv;
    std::vector<std::string> envs = merged_environment(env);
    auto c_args = c_strings(args);
    auto c_envs = c_strings(envs);
    const std::string out_path = dir_ + "/out";
    const std::string err_path = dir_ + "/err";

    pid_ = fork();
    if (pid_ < 0)
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
        const int null_in = open("/dev/null", O_RDONLY);
        const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(null_in, 0);
        dup2(out, 1);
        dup2(err, 2);
        execve(c_args[0], c_args.data(), c_envs.data());
        _exit(127);
    }
}

Child::~Child() {
    if (!reaped_) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
    }
    remove_tree(dir_);
}

void Child::signal(int signo) const {
    kill(pid_, signo);
}

bool Child::wait_for(std::chrono::milliseconds limit) {
    if (reaped_)
        return true;
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd < 0)
        throw std::runtime_error(std::string("pidfd_open: ") + std::strerror(errno));
    pollfd pfd{pidfd, POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(limit.count()));
    close(pidfd);
    if (ready <= 0)
        return false;
    waitpid(pid_, &status_, 0);
    reaped_ = true;
    return true;
}

ProcessResult Child::wait() {
    if (!reaped_) {
        while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
        }
        reaped_ = true;
    }
    ProcessResult result;
    if (WIFEXITED(status_))
        result.exit_code = WEXITSTATUS(status_);
    else if (WIFSIGNALED(status_))
        result.signal = WTERMSIG(status_);
    result.out = out_so_far();
    result.err = err_so_far();
    return result;
}

std::string Child::out_so_far() const {
    return read_file(dir_ + "/out");
}
std::string Child::err_so_far() const {
    return read_file(dir_ + "/err");
}

ProcessResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
    Child child(argv, env);
    return child.wait();
}

std::vector<std::string> dlock_argv(std::initializer_list<std::string> args) {
    std::vector<std::string> argv{DLOCK_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

ProcessResult run_dlock(const std::vector<std::string>& args, const std::vector<std::string>& env) {
    std::vector<std::string> argv{DLOCK_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, env);
}

ProcessResult run_dlock_at(const std::string& url, std::vector<std::string> args,
                           const std::vector<std::string>& env) {
    args.insert(args.begin(), {"--redis", url});
    return run_dlock(args, env);
}

ProcessResult finish(Child& child, std::chrono::milliseconds limit) {
    REQUIRE_MESSAGE(child.wait_for(limit), "process still running after the deadline");
    return child.wait();
}

std::vector<ProcessResult> run_concurrently(int workers, int per_worker,
                                            const std::vector<std::string>& argv,
                                            const std::vector<std::string>& env) {
    std::vector<std::vector<ProcessResult>> results(static_cast<std::size_t>(workers));
    std::latch start(workers);
    std::vector<std::thread> threads;
    for (std::size_t w = 0; w < results.size(); ++w)
        threads.emplace_back([&, w] {
            start.arrive_and_wait();
            for (int i = 0; i < per_worker; ++i)
                results[w].push_back(run(argv, env));
        });
    for (auto& thread : threads)
        thread.join();
    std::vector<ProcessResult> all;
    for (auto& worker : results)
        all.insert(all.end(), worker.begin(), worker.end());
    return all;
}

int count_exits(const std::vector<ProcessResult>& results, int code) {
    return static_cast<int>(std::count_if(results.begin(), results.end(),
                                          [code](const auto& r) { return r.exit_code == code; }));
}

int line_count(const std::string& text) {
    return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

} // namespace dlock::test
