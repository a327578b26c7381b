// rediss:// end to end: a real redis-server with --tls-port, a CA and certificates made at test
// time with the openssl command line, and the dlock binary talking to it. Each refusal must come
// with its reason in one line, exit 69, and within --timeout.
#include "dlock/redis.hpp"
#include "support/observe.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <fstream>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>
#include <openssl/ssl.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using namespace dlock::test;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void openssl(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"/usr/bin/openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    const ProcessResult result = run(argv);
    if (result.exit_code != 0)
        throw std::runtime_error("openssl " + args.front() + " failed: " + result.err);
}

// A CA, a server certificate for "localhost" and "redis.test" (not for 127.0.0.1) and a client
// certificate, all ECDSA P-256; and a second CA that signed none of them.
struct Certificates {
    std::string dir = make_temp_dir();
    std::string ca = dir + "/ca.crt";
    std::string other_ca = dir + "/other-ca.crt";
    std::string server_cert = dir + "/server.crt";
    std::string server_key = dir + "/server.key";
    std::string client_cert = dir + "/client.crt";
    std::string client_key = dir + "/client.key";

    Certificates() {
        make_ca("ca", "dlock test CA");
        make_ca("other-ca", "some other CA");
        issue("server", "localhost", "subjectAltName=DNS:localhost,DNS:redis.test");
        issue("client", "dlock client", "extendedKeyUsage=clientAuth");
    }
    ~Certificates() { remove_tree(dir); }
    Certificates(const Certificates&) = delete;
    Certificates& operator=(const Certificates&) = delete;

private:
    void make_ca(const std::string& name, const std::string& subject) {
        openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", dir + "/" + name + ".key", "-out", dir + "/" + name + ".crt", "-subj",
                 "/CN=" + subject, "-days", "2"});
    }
    void issue(const std::string& name, const std::string& subject, const std::string& extension) {
        const std::string base = dir + "/" + name;
        openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                 base + ".key", "-out", base + ".csr", "-subj", "/CN=" + subject});
        run({"/bin/sh", "-c", "echo '" + extension + "' > '" + base + ".ext'"});
        openssl({"x509", "-req", "-in", base + ".csr", "-CA", ca, "-CAkey", dir + "/ca.key",
                 "-CAcreateserial", "-out", base + ".crt", "-days", "2", "-extfile",
                 base + ".ext"});
    }
};

// A redis-server that speaks TLS on one loopback port and plaintext on another (tcp_url()).
struct TlsRedis {
    Certificates certs;
    int tls_port = free_tcp_port();
    RedisServer server;

    explicit TlsRedis(bool auth_clients = false, std::vector<std::string> extra = {})
        : server(RedisServer::Options{args(auth_clients, std::move(extra)), true}) {}

    std::string url(const std::string& host = "localhost", const std::string& userinfo = "") {
        return "rediss://" + userinfo + host + ":" + std::to_string(tls_port);
    }
    // dlock with the test CA, against `url`.
    ProcessResult dlock(const std::string& url, std::vector<std::string> args) {
        std::vector<std::string> all{"--redis", url, "--tls-ca", certs.ca};
        all.insert(all.end(), args.begin(), args.end());
        return run_dlock(all);
    }

private:
    std::vector<std::string> args(bool auth_clients, std::vector<std::string> extra) {
        std::vector<std::string> out{"--tls-port",         std::to_string(tls_port),
                                     "--tls-cert-file",    certs.server_cert,
                                     "--tls-key-file",     certs.server_key,
                                     "--tls-ca-cert-file", certs.ca,
                                     "--tls-auth-clients", auth_clients ? "yes" : "no"};
        out.insert(out.end(), extra.begin(), extra.end());
        return out;
    }
};

// One refusal: exit 69, the reason in one line on stderr, within the 2 s --timeout given.
void check_refused(const ProcessResult& result, Clock::time_point start,
                   const std::string& reason) {
    CAPTURE(result.err);
    CHECK(result.exit_code == 69);
    CHECK(contains(result.err, reason));
    CHECK(line_count(result.err) == 1);
    CHECK(seconds_since(start) < 2.0 + 1.0);
}

// A loopback listener on a free port.
int listen_loopback(int& port) {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    if (bind(listener, reinterpret_cast<sockaddr*>(&address), size) != 0 ||
        listen(listener, 8) != 0)
        throw std::runtime_error("cannot listen on loopback");
    getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size);
    port = ntohs(address.sin_port);
    return listener;
}

// A TLS peer that answers each command with "+PONG\r\n" split across two TLS records that
// reach the client in one TCP segment (TCP_CORK): after the first record, the second is already
// decrypted-ready inside the client's OpenSSL and the socket has nothing left for poll().
class SplitRecordServer {
public:
    explicit SplitRecordServer(const Certificates& certs) {
        listener_ = listen_loopback(port_);
        context_ = SSL_CTX_new(TLS_server_method());
        SSL_CTX_use_certificate_chain_file(context_, certs.server_cert.c_str());
        SSL_CTX_use_PrivateKey_file(context_, certs.server_key.c_str(), SSL_FILETYPE_PEM);
        thread_ = std::thread([this] { serve(); });
    }
    ~SplitRecordServer() {
        shutdown(listener_, SHUT_RDWR);
        thread_.join();
        close(listener_);
        SSL_CTX_free(context_);
    }
    SplitRecordServer(const SplitRecordServer&) = delete;
    SplitRecordServer& operator=(const SplitRecordServer&) = delete;
    int port() const { return port_; }

private:
    void serve() {
        const int fd = accept(listener_, nullptr, nullptr);
        if (fd < 0)
            return;
        SSL* ssl = SSL_new(context_);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) == 1) {
            char buffer[4096];
            while (SSL_read(ssl, buffer, sizeof buffer) > 0) {
                int on = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
                SSL_write(ssl, "+PO", 3);
                SSL_write(ssl, "NG\r\n", 4);
                on = 0;
                setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
            }
        }
        SSL_free(ssl);
        close(fd);
    }

    int listener_ = -1;
    int port_ = 0;
    SSL_CTX* context_ = nullptr;
    std::thread thread_;
};

} // namespace

TEST_CASE("a reply whose last TLS record OpenSSL already holds is read at once, not at --timeout") {
    Certificates certs;
    SplitRecordServer server(certs);
    dlock::redis::Options options;
    options.url = dlock::redis::parse_url("rediss://localhost:" + std::to_string(server.port()));
    options.tls.ca_file = certs.ca;
    options.timeout = std::chrono::milliseconds(2000);
    dlock::redis::Connection connection(options);
    for (int i = 0; i < 5; ++i) {
        const auto start = Clock::now();
        CHECK(connection.command({"PING"}).view().string() == "PONG");
        CHECK(seconds_since(start) < 1.0);
    }
}

TEST_CASE("every lock subcommand works over rediss://") {
    TlsRedis redis;
    const std::string url = redis.url();
    const auto acquired = redis.dlock(url, {"acquire", "job", "--ttl", "1m", "--json"});
    REQUIRE(acquired.exit_code == 0);
    const std::string token = json::parse(acquired.out)["token"];
    CHECK(redis.server.command({"EXISTS", "dlock:{job}"}) == "1"); // on the server, really

    const auto status = redis.dlock(url, {"status", "job", "--json"});
    CHECK(status.exit_code == 0);
    CHECK(json::parse(status.out)["holder"] == token);
    CHECK(redis.dlock(url, {"extend", "job", "--owner", token, "--ttl", "2m"}).exit_code == 0);
    const auto listed = redis.dlock(url, {"list", "--json"});
    CHECK(listed.exit_code == 0);
    CHECK(contains(listed.out, "job"));
    CHECK(redis.dlock(url, {"block", "job", "--wait", "100ms"}).exit_code == 75);
    CHECK(redis.dlock(url, {"release", "job", "--owner", token}).exit_code == 0);
    CHECK(redis.dlock(url, {"block", "job", "--wait", "1s"}).exit_code == 0);
    CHECK(redis.dlock(url, {"force-release", "job"}).exit_code == 0);
    CHECK(redis.server.command({"EXISTS", "dlock:{job}"}) == "0");
    const auto ran = redis.dlock(url, {"run", "job", "--", "sh", "-c", "echo ran"});
    CHECK(ran.exit_code == 0);
    CHECK(ran.out == "ran\n");
}

TEST_CASE("a waiter over rediss:// takes the lock the moment its holder releases it") {
    TlsRedis redis;
    const std::string url = redis.url();
    const auto acquired = redis.dlock(url, {"acquire", "job", "--ttl", "1m", "--json"});
    REQUIRE(acquired.exit_code == 0);
    const std::string token = json::parse(acquired.out)["token"];
    Child waiter(dlock_argv(
        {"--redis", url, "--tls-ca", redis.certs.ca, "block", "job", "--wait", "30s", "--json"}));
    REQUIRE(redis.server.wait_for_blocked_clients(1, std::chrono::seconds(10)));
    const auto start = Clock::now();
    CHECK(redis.dlock(url, {"release", "job", "--owner", token}).exit_code == 0);
    const ProcessResult result = waiter.wait();
    CHECK(result.exit_code == 0);
    CHECK(seconds_since(start) < 5.0);
}

TEST_CASE("a server with tls-auth-clients takes dlock's client certificate, and wants one") {
    TlsRedis redis(true);
    const std::string url = redis.url();
    const auto start = Clock::now();
    check_refused(redis.dlock(url, {"--timeout", "2s", "acquire", "job"}), start,
                  "the server wants a client certificate: --tls-cert and --tls-key");
    const auto with_cert = redis.dlock(url, {"--tls-cert", redis.certs.client_cert, "--tls-key",
                                             redis.certs.client_key, "acquire", "job"});
    CAPTURE(with_cert.err);
    CHECK(with_cert.exit_code == 0);
    // The same from the environment.
    const auto from_env =
        run_dlock({"--redis", url, "acquire", "other"},
                  {"DLOCK_TLS_CA=" + redis.certs.ca, "DLOCK_TLS_CERT=" + redis.certs.client_cert,
                   "DLOCK_TLS_KEY=" + redis.certs.client_key});
    CHECK(from_env.exit_code == 0);
}

TEST_CASE("a server certificate from another CA is refused with the reason") {
    TlsRedis redis;
    auto start = Clock::now();
    check_refused(run_dlock({"--redis", redis.url(), "--tls-ca", redis.certs.other_ca, "--timeout",
                             "2s", "acquire", "job"}),
                  start, "certificate verify failed: ");
    // Without --tls-ca, the system's CAs: none of them signed the test CA.
    start = Clock::now();
    check_refused(run_dlock({"--redis", redis.url(), "--timeout", "2s", "acquire", "job"}), start,
                  "certificate verify failed: ");
    CHECK(redis.server.command({"EXISTS", "dlock:{job}"}) == "0");
}

TEST_CASE("a certificate for another name is refused, and --tls-server-name names the right one") {
    TlsRedis redis;
    const std::string by_address = redis.url("127.0.0.1"); // the certificate has no IP in it
    const auto start = Clock::now();
    check_refused(redis.dlock(by_address, {"--timeout", "2s", "acquire", "job"}), start,
                  "certificate verify failed: IP address mismatch");
    const auto wrong =
        redis.dlock(redis.url(), {"--tls-server-name", "other.test", "acquire", "job"});
    CHECK(wrong.exit_code == 69);
    CHECK(contains(wrong.err, "not for 'other.test'"));
    const auto named =
        redis.dlock(by_address, {"--tls-server-name", "redis.test", "acquire", "job"});
    CAPTURE(named.err);
    CHECK(named.exit_code == 0);
}

TEST_CASE("rediss:// to a plaintext Redis and redis:// to a TLS one say which to use") {
    TlsRedis redis;
    const std::string plaintext_port = std::to_string(redis.server.port());
    auto start = Clock::now();
    check_refused(
        redis.dlock("rediss://localhost:" + plaintext_port, {"--timeout", "2s", "acquire", "job"}),
        start, "server speaks plaintext, not TLS; use redis://");
    start = Clock::now();
    check_refused(run_dlock({"--redis", "redis://localhost:" + std::to_string(redis.tls_port),
                             "--timeout", "2s", "acquire", "job"}),
                  start, "server speaks TLS; use rediss://");
}

TEST_CASE("OpenSSL is loaded only for rediss://, and a broken one is an unavailable service") {
    TlsRedis redis;
    // A libssl that cannot be loaded, found first: a plaintext command never tries to load
    // it, a TLS one says what is missing, in one line, exit 69.
    const std::string dir = dlock::test::make_temp_dir();
    std::ofstream(dir + "/libssl.so.3") << "not a shared library\n";
    const std::vector<std::string> env{"LD_LIBRARY_PATH=" + dir};
    const auto plain = run_dlock(
        {"--redis", "redis://localhost:" + std::to_string(redis.server.port()), "acquire", "plain"},
        env);
    CHECK_MESSAGE(plain.exit_code == 0, plain.err);
    const auto tls =
        run_dlock({"--redis", redis.url(), "--tls-ca", redis.certs.ca, "acquire", "job"}, env);
    CAPTURE(tls.err);
    CHECK(tls.exit_code == 69);
    CHECK(contains(tls.err, "rediss:// needs libssl.so.3 (Debian: libssl3)"));
    CHECK(line_count(tls.err) == 1);
    CHECK(redis.server.command({"EXISTS", "dlock:{job}"}) == "0");
    dlock::test::remove_tree(dir);
}

TEST_CASE("a TLS handshake with a silent peer ends at --timeout") {
    // A listening socket nobody accepts from: connects succeed, nothing is ever answered.
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof address;
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&address), size) == 0);
    REQUIRE(listen(listener, 8) == 0);
    getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size);
    const std::string url = "rediss://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
    const auto start = Clock::now();
    const auto result = run_dlock({"--redis", url, "--timeout", "700ms", "acquire", "job"});
    CAPTURE(result.err);
    CHECK(result.exit_code == 69);
    CHECK(contains(result.err, "TLS handshake with Redis at " + url + ": timed out"));
    CHECK(seconds_since(start) >= 0.6);
    CHECK(seconds_since(start) < 0.7 + 1.0);
    close(listener);
}

TEST_CASE("the password never appears in a rediss:// message") {
    TlsRedis redis(false, {"--requirepass", "hunter2-secret"});
    const auto ok =
        redis.dlock(redis.url("localhost", ":hunter2-secret@"), {"acquire", "job", "--json"});
    CHECK(ok.exit_code == 0);
    const auto failures = {
        redis.dlock(redis.url("localhost", ":wrong-hunter3@"), {"acquire", "job"}),
        redis.dlock(redis.url("127.0.0.1", ":hunter2-secret@"), {"acquire", "job"}),
        run_dlock({"--redis", redis.url("localhost", ":hunter2-secret@"), "--tls-ca",
                   redis.certs.other_ca, "--json", "acquire", "job"}),
        run_dlock({"--redis",
                   "rediss://:hunter2-secret@localhost:" + std::to_string(redis.server.port()),
                   "--tls-ca", redis.certs.ca, "acquire", "job"}),
    };
    for (const ProcessResult& failed : failures) {
        CAPTURE(failed.err);
        CHECK(failed.exit_code == 69);
        CHECK(contains(failed.err, ":***@"));
        CHECK_FALSE(contains(failed.err + failed.out, "hunter2-secret"));
        CHECK_FALSE(contains(failed.err + failed.out, "wrong-hunter3"));
    }
}

TEST_CASE("--tls-* options with a URL that is not rediss:// are usage errors") {
    const auto result = run_dlock(
        {"--redis", "redis://localhost:1", "--tls-ca", "/nonexistent.pem", "acquire", "job"});
    CHECK(result.exit_code == 64);
    CHECK(contains(result.err, "for rediss:// URLs"));
    Certificates certs;
    const auto half = run_dlock(
        {"--redis", "rediss://localhost:1", "--tls-cert", certs.client_cert, "acquire", "job"});
    CHECK(half.exit_code == 64);
    CHECK(contains(half.err, "--tls-cert and --tls-key go together"));
}

TEST_CASE("rediss+sentinel:// speaks TLS to the sentinel and to the master it names") {
    TlsRedis redis;
    const int sentinel_tls_port = free_tcp_port();
    const Certificates& certs = redis.certs;
    RedisServer sentinel(RedisServer::Options{
        {"--tls-port", std::to_string(sentinel_tls_port), "--tls-cert-file", certs.server_cert,
         "--tls-key-file", certs.server_key, "--tls-ca-cert-file", certs.ca, "--tls-auth-clients",
         "no", "--tls-replication", "yes"},
        true,
        {"sentinel monitor secure 127.0.0.1 " + std::to_string(redis.tls_port) + " 1"}});
    // The sentinel names the master by its address, which the certificate does not carry.
    const std::string url =
        "rediss+sentinel://localhost:" + std::to_string(sentinel_tls_port) + "/secure";
    const auto dlock = [&](std::vector<std::string> args) {
        std::vector<std::string> all{"--redis",           url,        "--tls-ca", certs.ca,
                                     "--tls-server-name", "localhost"};
        all.insert(all.end(), args.begin(), args.end());
        return run_dlock(all);
    };
    const ProcessResult acquired = dlock({"acquire", "secure-job"});
    CAPTURE(acquired.err);
    REQUIRE(acquired.exit_code == 0);
    const std::string token = acquired.out.substr(0, acquired.out.find('\n'));
    CHECK(redis.server.command({"GET", "dlock:{secure-job}"}) == token);
    CHECK(dlock({"status", "secure-job"}).exit_code == 0);
    CHECK(dlock({"release", "secure-job", "--owner", token}).exit_code == 0);
    // Without the name the certificate carries, the master's address does not verify.
    const ProcessResult unverified =
        run_dlock({"--redis", url, "--tls-ca", certs.ca, "acquire", "secure-job"});
    CHECK(unverified.exit_code == 69);
    CHECK(contains(unverified.err, "certificate verify failed"));
    CHECK(line_count(unverified.err) == 1);
}
