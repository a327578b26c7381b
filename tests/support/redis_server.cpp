#include "support/redis_server.hpp"

#include "support/process.hpp"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <hiredis/hiredis.h>
#include <memory>
#include <netinet/in.h>
#include <signal.h>
#include <sstream>
#include <stdexcept>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace dlock::test {
namespace {

using ContextPtr = std::unique_ptr<redisContext, decltype(&redisFree)>;

ContextPtr connect_unix(const std::string& socket) {
    const timeval tv{1, 0};
    return ContextPtr(redisConnectUnixWithTimeout(socket.c_str(), tv), &redisFree);
}

// Scalars as their text, nil as "(nil)", arrays as their elements one per line.
std::string describe(const redisReply* reply) {
    switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        return std::string(reply->str, reply->len);
    case REDIS_REPLY_INTEGER:
        return std::to_string(reply->integer);
    case REDIS_REPLY_ARRAY: {
        std::string out;
        for (std::size_t i = 0; i < reply->elements; ++i)
            out += (i == 0 ? "" : "\n") + describe(reply->element[i]);
        return out;
    }
    default:
        return "(nil)";
    }
}

} // namespace

int free_tcp_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
}

std::vector<std::string> documented_acl_setuser(const std::string& password) {
    std::istringstream docs(read_file(DLOCK_SOURCE_DIR "/docs/connecting.md"));
    for (std::string line; std::getline(docs, line);) {
        if (line.rfind("ACL SETUSER dlock ", 0) != 0)
            continue;
        std::vector<std::string> words;
        std::istringstream rules(line);
        for (std::string word; rules >> word;)
            words.push_back(word == ">CHANGE-ME" ? ">" + password : word);
        return words;
    }
    throw std::runtime_error("docs/connecting.md has no line starting 'ACL SETUSER dlock '");
}

RedisServer::RedisServer() : RedisServer(Options{}) {}

RedisServer::RedisServer(Options options)
    : options_(std::move(options)), dir_(make_temp_dir()), socket_(dir_ + "/redis.sock") {
    if (options_.tcp)
        port_ = free_tcp_port();
    if (!options_.sentinel_config.empty()) {
        std::ofstream config(dir_ + "/sentinel.conf");
        for (const std::string& line : options_.sentinel_config)
            config << line << '\n';
    }
    start();
}

RedisServer::~RedisServer() {
    stop();
    remove_tree(dir_);
}

std::string RedisServer::url() const {
    return "unix://" + socket_;
}

std::string RedisServer::tcp_url() const {
    return "redis://127.0.0.1:" + std::to_string(port_);
}

void RedisServer::start() {
    std::vector<std::string> args{REDIS_SERVER_BINARY};
    if (!options_.sentinel_config.empty())
        args = {REDIS_SENTINEL_BINARY, dir_ + "/sentinel.conf"};
    args.insert(args.end(), {"--port", std::to_string(port_), "--bind", "127.0.0.1", "--unixsocket",
                             socket_, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                             "--dir", dir_, "--daemonize", "no", "--logfile", dir_ + "/redis.log"});
    args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0)
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
        // A test killed before its destructors ran (a ctest timeout, `| head`) takes its
        // server with it instead of leaving it running.
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        const int null_fd = open("/dev/null", O_RDWR);
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        execv(argv[0], argv.data());
        _exit(127);
    }
    wait_until_ready();
}

void RedisServer::stop() {
    if (pid_ <= 0)
        return;
    kill(pid_, SIGCONT); // a test may have left it stopped
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    unlink(socket_.c_str());
}

void RedisServer::restart() {
    stop();
    start();
}

// The server signals nothing when it is ready; the socket answering PING is the signal.
void RedisServer::wait_until_ready() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_)
            throw std::runtime_error("redis-server exited at start; see " + dir_ + "/redis.log");
        if (access(socket_.c_str(), F_OK) == 0) {
            ContextPtr ctx = connect_unix(socket_);
            if (ctx && ctx->err == 0) {
                auto* reply = static_cast<redisReply*>(redisCommand(ctx.get(), "PING"));
                if (reply != nullptr) {
                    // PING answers even with requirepass (NOAUTH error): the server is up.
                    freeReplyObject(reply);
                    return;
                }
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    throw std::runtime_error("redis-server did not start within 10s");
}

std::string RedisServer::command(const std::vector<std::string>& args) const {
    ContextPtr ctx = connect_unix(socket_);
    if (!ctx || ctx->err != 0)
        throw std::runtime_error("cannot connect to test redis-server");
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(ctx.get(), static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (reply == nullptr)
        throw std::runtime_error("test redis-server did not answer");
    std::string out = describe(reply);
    freeReplyObject(reply);
    return out;
}

int RedisServer::blocked_clients() const {
    const std::string info = command({"INFO", "clients"});
    constexpr std::string_view field = "blocked_clients:";
    const auto at = info.find(field);
    if (at == std::string::npos)
        throw std::runtime_error("INFO clients has no blocked_clients");
    return std::stoi(info.substr(at + field.size()));
}

bool RedisServer::wait_for_blocked_clients(int count, std::chrono::milliseconds limit) const {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (blocked_clients() != count) {
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

} // namespace dlock::test
