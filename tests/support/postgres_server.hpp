// A private PostgreSQL cluster for a test executable: initdb into a temp dir, the postmaster on
// a unix socket there and on a free 127.0.0.1 port, started once per process (it takes about a
// second) and stopped when the process exits, or killed with it. Each test takes a fresh
// database of its own. Never the machine's own PostgreSQL, never port 5432.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace dlock::test {

class PostgresServer {
public:
    // The login every database belongs to, and its password (needed over TCP only: the unix
    // socket trusts the local user).
    static constexpr const char* user = "dlock";
    static constexpr const char* password = "fixture-secret";

    PostgresServer();
    ~PostgresServer();
    PostgresServer(const PostgresServer&) = delete;
    PostgresServer& operator=(const PostgresServer&) = delete;

    // A new, empty database: t_1, t_2, ...
    std::string create_database();
    // postgresql:///NAME?host=SOCKET_DIR&port=PORT&user=dlock
    std::string socket_uri(const std::string& database) const;
    // postgresql://dlock@127.0.0.1:PORT/NAME: the password must come from elsewhere.
    std::string tcp_uri(const std::string& database) const;
    int port() const { return port_; }
    const std::string& dir() const { return dir_; }
    pid_t pid() const { return pid_; }

    // Runs SQL in `database` as the superuser; the first column of the first row, or "".
    std::string sql(const std::string& database, const std::string& statement) const;

    // A fast shutdown (every session is terminated, in-flight transactions roll back), then a
    // start on the same socket and port.
    void restart();
    void stop();
    void start();

private:
    void run_as_owner(const std::vector<std::string>& argv) const;
    void wait_until_ready() const;

    std::string bin_;
    std::string dir_;
    int port_ = 0;
    pid_t pid_ = -1;
    pid_t owner_; // the test process; its forked children never stop the server
    int databases_ = 0;
};

// The process's one server, started at first use.
PostgresServer& postgres_server();

} // namespace dlock::test
