// Run real processes (the dlock binary, shells) and look at what they did.
#pragma once

#include <chrono>
#include <string>
#include <sys/types.h>
#include <vector>

namespace dlock::test {

struct ProcessResult {
    int exit_code = -1; // -1 when killed by a signal
    int signal = 0;     // the signal that killed it, or 0
    std::string out;
    std::string err;
};

// A process started in the background; stdout and stderr go to files in a temp dir.
class Child {
public:
    // env entries are "NAME=value" added to (or replacing in) the current environment.
    explicit Child(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int signo) const;
    // Waits for exit and collects output. Safe to call once.
    ProcessResult wait();
    // Waits at most `limit`; false if the child is still running.
    bool wait_for(std::chrono::milliseconds limit);
    // Output so far (the child may still be writing).
    std::string out_so_far() const;
    std::string err_so_far() const;

private:
    pid_t pid_ = -1;
    std::string dir_;
    bool reaped_ = false;
    int status_ = 0;
};

ProcessResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});

// The dlock binary under test, with its arguments.
std::vector<std::string> dlock_argv(std::initializer_list<std::string> args);
ProcessResult run_dlock(const std::vector<std::string>& args,
                        const std::vector<std::string>& env = {});
// The same, against the Redis at `url` (--redis URL before the arguments).
ProcessResult run_dlock_at(const std::string& url, std::vector<std::string> args,
                           const std::vector<std::string>& env = {});

// Waits for `child` at most `limit` (a failed REQUIRE if it is still running) and collects it.
ProcessResult finish(Child& child, std::chrono::milliseconds limit);

// Starts every command at once, `per_worker` of them one after another in each of `workers`
// threads, and returns every result: the concurrency the ledger's guarantees are about.
std::vector<ProcessResult> run_concurrently(int workers, int per_worker,
                                            const std::vector<std::string>& argv,
                                            const std::vector<std::string>& env = {});
// How many of `results` exited with `code`.
int count_exits(const std::vector<ProcessResult>& results, int code);

// Lines in `text`, counted by their newlines: a one-line message is 1.
int line_count(const std::string& text);

std::string read_file(const std::string& path);
std::string make_temp_dir();
void remove_tree(const std::string& path);

} // namespace dlock::test
