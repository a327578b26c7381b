#include "support/postgres_server.hpp"

#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <libpq-fe.h>
#include <memory>
#include <pwd.h>
#include <signal.h>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace dlock::test {
namespace {

// The newest PostgreSQL that Debian's packages installed: /usr/lib/postgresql/N/bin.
std::string find_bin_dir() {
    std::string best;
    int best_version = -1;
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ignored)) {
        const std::string name = entry.path().filename().string();
        const int version = std::atoi(name.c_str());
        if (version > best_version &&
            std::filesystem::exists(entry.path() / "bin" / "initdb", ignored)) {
            best_version = version;
            best = (entry.path() / "bin").string();
        }
    }
    if (best.empty())
        throw std::runtime_error("no /usr/lib/postgresql/*/bin/initdb: install postgresql");
    return best;
}

// initdb and postgres refuse to run as root: as root, the cluster belongs to 'postgres'.
const passwd* owner_account() {
    if (geteuid() != 0)
        return nullptr;
    const passwd* account = getpwnam("postgres");
    if (account == nullptr)
        throw std::runtime_error("running as root, and there is no 'postgres' user to run "
                                 "PostgreSQL as");
    return account;
}

// In a forked child: become the cluster's owner, die with the parent, exec.
[[noreturn]] void exec_as_owner(const std::vector<std::string>& args, const std::string& log,
                                pid_t parent) {
    if (const passwd* account = owner_account()) {
        if (setgroups(0, nullptr) != 0 || setgid(account->pw_gid) != 0 ||
            setuid(account->pw_uid) != 0)
            _exit(126);
    }
    // After setuid, which clears it: a test killed before its destructors ran takes its
    // server with it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    const int null_fd = open("/dev/null", O_RDONLY);
    const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    std::vector<char*> argv;
    for (const auto& arg : args)
        argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
}

pid_t spawn(const std::vector<std::string>& args, const std::string& log) {
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0)
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0)
        exec_as_owner(args, log, parent);
    return pid;
}

struct ConnDeleter {
    void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct ResultDeleter {
    void operator()(PGresult* result) const { PQclear(result); }
};

} // namespace

PostgresServer::PostgresServer()
    : bin_(find_bin_dir()), dir_(make_temp_dir()), port_(free_tcp_port()), owner_(getpid()) {
    if (const passwd* account = owner_account())
        if (chown(dir_.c_str(), account->pw_uid, account->pw_gid) != 0)
            throw std::runtime_error("chown " + dir_ + ": " + std::strerror(errno));
    const std::string pwfile = dir_ + "/pwfile";
    std::ofstream(pwfile) << password << '\n';
    if (const passwd* account = owner_account())
        (void)!chown(pwfile.c_str(), account->pw_uid, account->pw_gid);
    // Over the unix socket the local user is trusted; over TCP the password is required.
    run_as_owner({bin_ + "/initdb", "-D", dir_ + "/data", "-U", user, "--pwfile", pwfile,
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale",
                  "--no-sync"});
    start();
}

PostgresServer::~PostgresServer() {
    // A forked test child that exits through exit() must not stop its parent's server.
    if (getpid() == owner_) {
        stop();
        remove_tree(dir_);
    }
}

void PostgresServer::run_as_owner(const std::vector<std::string>& argv) const {
    const pid_t pid = spawn(argv, dir_ + "/setup.log");
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        throw std::runtime_error(argv[0] + " failed; see " + dir_ + "/setup.log");
}

void PostgresServer::start() {
    // Durability is not what these tests are about, and fsyncs would make them slow.
    pid_ = spawn({bin_ + "/postgres", "-D", dir_ + "/data", "-k", dir_, "-p", std::to_string(port_),
                  "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
                  "synchronous_commit=off", "-c", "full_page_writes=off", "-c",
                  "max_connections=200", "-c", "shared_buffers=32MB"},
                 dir_ + "/postgres.log");
    wait_until_ready();
}

void PostgresServer::stop() {
    if (pid_ <= 0)
        return;
    kill(pid_, SIGCONT); // a test may have left it stopped
    kill(pid_, SIGINT);  // fast shutdown: sessions end, open transactions roll back
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
}

void PostgresServer::restart() {
    stop();
    start();
}

// The postmaster signals nothing when it is ready; PQping saying so is the signal.
void PostgresServer::wait_until_ready() const {
    const std::string conninfo =
        "host=" + dir_ + " port=" + std::to_string(port_) + " dbname=postgres user=" + user;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_)
            throw std::runtime_error("postgres exited at start; see " + dir_ + "/postgres.log");
        if (PQping(conninfo.c_str()) == PQPING_OK)
            return;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    throw std::runtime_error("postgres did not start within 30s");
}

std::string PostgresServer::create_database() {
    const std::string name = "t_" + std::to_string(++databases_);
    sql("postgres", "CREATE DATABASE " + name);
    return name;
}

std::string PostgresServer::socket_uri(const std::string& database) const {
    return "postgresql:///" + database + "?host=" + dir_ + "&port=" + std::to_string(port_) +
           "&user=" + user;
}

std::string PostgresServer::tcp_uri(const std::string& database) const {
    return "postgresql://" + std::string(user) + "@127.0.0.1:" + std::to_string(port_) + "/" +
           database;
}

std::string PostgresServer::sql(const std::string& database, const std::string& statement) const {
    const std::string conninfo =
        "host=" + dir_ + " port=" + std::to_string(port_) + " dbname=" + database + " user=" + user;
    const std::unique_ptr<PGconn, ConnDeleter> conn(PQconnectdb(conninfo.c_str()));
    if (PQstatus(conn.get()) != CONNECTION_OK)
        throw std::runtime_error(std::string("test postgres: ") + PQerrorMessage(conn.get()));
    PQsetNoticeProcessor(
        conn.get(), [](void*, const char*) {}, nullptr);
    const std::unique_ptr<PGresult, ResultDeleter> result(PQexec(conn.get(), statement.c_str()));
    const ExecStatusType status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        throw std::runtime_error("test postgres: " + statement + ": " +
                                 PQresultErrorMessage(result.get()));
    if (status == PGRES_TUPLES_OK && PQntuples(result.get()) > 0 && PQnfields(result.get()) > 0)
        return PQgetvalue(result.get(), 0, 0);
    return "";
}

PostgresServer& postgres_server() {
    static PostgresServer server;
    return server;
}

} // namespace dlock::test
