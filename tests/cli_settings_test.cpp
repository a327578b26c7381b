// Settings from the environment and config files, end to end: precedence, sources, refusals.
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <cctype>
#include <doctest/doctest.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

using dlock::test::line_count;
using dlock::test::RedisServer;
using dlock::test::run_dlock;
using nlohmann::json;

namespace {

// A home with a user config file and a system config file, both empty until written.
struct Homes {
    std::string dir = dlock::test::make_temp_dir();
    std::string user = dir + "/xdg/dlock/dlock.conf";
    std::string system = dir + "/etc-dlock.conf";
    Homes() { ::mkdir((dir + "/xdg").c_str(), 0700), ::mkdir((dir + "/xdg/dlock").c_str(), 0700); }
    ~Homes() { dlock::test::remove_tree(dir); }
    Homes(const Homes&) = delete;
    Homes& operator=(const Homes&) = delete;

    static void write(const std::string& path, const std::string& text, mode_t mode = 0600) {
        std::ofstream(path) << text;
        ::chmod(path.c_str(), mode);
    }
    std::vector<std::string> env(std::vector<std::string> more = {}) const {
        more.push_back("XDG_CONFIG_HOME=" + dir + "/xdg");
        more.push_back("DLOCK_SYSTEM_CONFIG=" + system);
        return more;
    }
};

// setting -> {value, source} from `dlock config --json`.
std::map<std::string, std::pair<std::string, std::string>>
effective(const Homes& homes, std::vector<std::string> args, std::vector<std::string> env) {
    args.insert(args.begin(), {"config", "--json"});
    const auto result = run_dlock(args, homes.env(std::move(env)));
    REQUIRE_MESSAGE(result.exit_code == 0, result.err);
    std::map<std::string, std::pair<std::string, std::string>> out;
    const json parsed = json::parse(result.out);
    for (const json& s : parsed["settings"])
        out[s["key"].get<std::string>()] = {s["value"].get<std::string>(),
                                            s["source"].get<std::string>()};
    return out;
}

} // namespace

TEST_CASE("settings come from flag > environment > user file > system file > built-in") {
    Homes homes;
    Homes::write(homes.system, "ttl = \"1m\"\nwait = \"2m\"\nkill_grace = \"3m\"\n");
    Homes::write(homes.user, "ttl = \"4m\"\nwait = \"5m\"\n");
    const auto settings = effective(homes, {}, {"DLOCK_TTL=6m"});
    CHECK(settings.at("ttl") == std::pair<std::string, std::string>{"6m", "DLOCK_TTL"});
    CHECK(settings.at("wait") == std::pair<std::string, std::string>{"5m", homes.user});
    CHECK(settings.at("kill_grace") == std::pair<std::string, std::string>{"3m", homes.system});
    CHECK(settings.at("timeout") == std::pair<std::string, std::string>{"3s", "built-in default"});

    // And they take effect: a lock's TTL from the environment, then from a flag.
    RedisServer server;
    const auto from_env =
        run_dlock({"--redis", server.url(), "acquire", "a", "--json"}, homes.env({"DLOCK_TTL=6m"}));
    CHECK(json::parse(from_env.out)["ttl_ms"] == 360'000);
    const auto from_user =
        run_dlock({"--redis", server.url(), "acquire", "b", "--json"}, homes.env());
    CHECK(json::parse(from_user.out)["ttl_ms"] == 240'000);
    const auto from_flag =
        run_dlock({"--redis", server.url(), "acquire", "c", "--json", "--ttl", "7s"},
                  homes.env({"DLOCK_TTL=6m"}));
    CHECK(json::parse(from_flag.out)["ttl_ms"] == 7'000);
}

TEST_CASE("every global option and default has a variable that works") {
    Homes homes;
    RedisServer server;
    const auto env =
        homes.env({"DLOCK_REDIS_URL=" + server.url(), "DLOCK_PREFIX=app:", "DLOCK_JSON=yes",
                   "DLOCK_CONFLICT_EXIT_CODE=3", "DLOCK_TIMEOUT=1s"});
    const auto first = run_dlock({"acquire", "job"}, env);
    CHECK(first.exit_code == 0);
    CHECK(json::parse(first.out)["status"] == "acquired");    // DLOCK_JSON
    CHECK(server.command({"EXISTS", "app:{job}"}) == "1");    // DLOCK_PREFIX
    CHECK(run_dlock({"acquire", "job"}, env).exit_code == 3); // DLOCK_CONFLICT_EXIT_CODE
    const auto settings = effective(homes, {}, env);
    for (const char* key : {"redis_url", "prefix", "json", "conflict_exit_code", "timeout"})
        CHECK(settings.at(key).second.rfind("DLOCK_", 0) == 0);
}

TEST_CASE("only a set, non-empty DLOCK_ variable with a setting's exact name counts") {
    Homes homes;
    Homes::write(homes.user, "ttl = \"4m\"\n");
    const auto settings = effective(homes, {},
                                    {"DLOCK_TTL=", "DLOCK_ttl=9m", "DLOCK_WAIT_=9m",
                                     "XDLOCK_WAIT=9m", "DLOCK_OWNER=abc", "DLOCK_TIMEOUT=2s"});
    CHECK(settings.at("ttl") == std::pair<std::string, std::string>{"4m", homes.user});
    CHECK(settings.at("wait").second == "built-in default");
    CHECK(settings.at("timeout") == std::pair<std::string, std::string>{"2s", "DLOCK_TIMEOUT"});
    // A value is everything after the first '=', and a bad one is refused by name.
    const auto bad = run_dlock({"config"}, homes.env({"DLOCK_KILL_GRACE=9s=1"}));
    CHECK(bad.exit_code == 64);
    CHECK(bad.err.find("DLOCK_KILL_GRACE") != std::string::npos);
}

TEST_CASE("--config FILE replaces the user file and must exist") {
    Homes homes;
    Homes::write(homes.user, "ttl = \"4m\"\n");
    const std::string other = homes.dir + "/other.conf";
    Homes::write(other, "ttl = \"8m\"\n");
    CHECK(effective(homes, {"--config", other}, {}).at("ttl").first == "8m");
    const auto missing = run_dlock({"--config", homes.dir + "/nope.conf", "config"}, homes.env());
    CHECK(missing.exit_code == 64);
    CHECK(missing.err.find("nope.conf") != std::string::npos);
}

TEST_CASE("bad values are usage errors naming where they came from") {
    Homes homes;
    const auto from_env = run_dlock({"config"}, homes.env({"DLOCK_WAIT=soon"}));
    CHECK(from_env.exit_code == 64);
    CHECK(line_count(from_env.err) == 1);
    CHECK(from_env.err.find("DLOCK_WAIT") != std::string::npos);

    Homes::write(homes.user, "kill_grace = \"-1\"\n");
    const auto from_file = run_dlock({"config"}, homes.env());
    CHECK(from_file.exit_code == 64);
    CHECK(from_file.err.find(homes.user) != std::string::npos);
    CHECK(from_file.err.find("kill_grace") != std::string::npos);

    Homes::write(homes.user, "tll = \"5s\"\n");
    const auto unknown = run_dlock({"config"}, homes.env());
    CHECK(unknown.exit_code == 64);
    CHECK(unknown.err.find("unknown key 'tll'") != std::string::npos);
    CHECK(run_dlock({"config"}, homes.env({"DLOCK_CONFLICT_EXIT_CODE=256"})).exit_code == 64);
}

TEST_CASE("a config file anyone can write, or a password anyone can read, is refused") {
    Homes homes;
    Homes::write(homes.user, "ttl = \"5s\"\n", 0666);
    const auto writable = run_dlock({"config"}, homes.env());
    CHECK(writable.exit_code == 64);
    CHECK(writable.err.find("anyone can write") != std::string::npos);

    Homes::write(homes.user, "redis_password = \"hunter2\"\n", 0644);
    const auto readable = run_dlock({"config"}, homes.env());
    CHECK(readable.exit_code == 64);
    CHECK(readable.err.find("password") != std::string::npos);
    CHECK(readable.err.find("hunter2") == std::string::npos);

    Homes::write(homes.user, "redis_url = \"redis://u:hunter2@127.0.0.1:1/0\"\n", 0644);
    CHECK(run_dlock({"config"}, homes.env()).exit_code == 64);

    // Private, it is read, and `dlock config` masks the password.
    Homes::write(homes.user,
                 "redis_password = \"hunter2\"\nredis_url = \"redis://u:hunter2@h/0\"\n");
    const auto shown = run_dlock({"config"}, homes.env());
    CHECK(shown.exit_code == 0);
    CHECK(shown.out.find("hunter2") == std::string::npos);
    CHECK(shown.out.find("redis_password = \"***\"") != std::string::npos);
}

TEST_CASE("every setting takes its variable, and its key in a config file") {
    Homes homes;
    // A valid value for each setting, by key.
    const std::map<std::string, std::string> values{{"redis_url", "redis://127.0.0.1:1/2"},
                                                    {"redis_password", "pw"},
                                                    {"timeout", "2s"},
                                                    {"prefix", "app:"},
                                                    {"layout", "plain"},
                                                    {"json", "true"},
                                                    {"conflict_exit_code", "3"},
                                                    {"db", "x.db"},
                                                    {"db_password", "dbpw"},
                                                    {"ttl", "11s"},
                                                    {"wait", "inf"},
                                                    {"kill_grace", "9s"},
                                                    {"fence_idle", "1d"},
                                                    {"db_busy_timeout", "7ms"},
                                                    {"db_retry", "8s"},
                                                    {"tls_ca", "ca.pem"},
                                                    {"tls_cert", "client.pem"},
                                                    {"tls_key", "client.key"},
                                                    {"tls_server_name", "redis.example"},
                                                    {"sentinel_password", "spw"},
                                                    {"replicas", "2"}};
    std::vector<std::string> env;
    std::string file;
    for (const auto& [key, value] : values) {
        std::string name = "DLOCK_";
        for (const char c : key)
            name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        env.push_back(name + "=" + value);
        file += key + " = \"" + value + "\"\n";
    }
    const auto from_env = effective(homes, {}, env);
    REQUIRE(from_env.size() == values.size()); // no setting without a test value
    for (const auto& [key, setting] : from_env) {
        CAPTURE(key);
        CHECK(setting.second.rfind("DLOCK_", 0) == 0);
        if (!key.ends_with("_password"))
            CHECK(setting.first == values.at(key));
    }
    Homes::write(homes.user, file);
    for (const auto& [key, setting] : effective(homes, {}, {})) {
        CAPTURE(key);
        CHECK(setting.second == homes.user);
    }
}
