#include "cli/settings.hpp"

#include "dlock/backends.hpp"
#include "dlock/quorum_lock.hpp"
#include "dlock/redis_sentinel.hpp"
#include "dlock/runner.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sys/stat.h>
#include <unistd.h>

namespace dlock::cli {
namespace {

constexpr std::string_view env_prefix = "DLOCK_";
constexpr std::string_view builtin_source = "built-in default";

// What a setting's value must be; each is checked the way its flag is.
enum class Kind {
    url,
    password,
    duration,
    positive_duration,
    wait,
    exit_code,
    replicas,
    prefix,
    layout,
    path,
    name,
    flag
};

struct Definition {
    std::string_view key;
    Kind kind;
    std::string builtin;
};

const std::vector<Definition>& definitions() {
    static const std::vector<Definition> table{
        {"redis_url", Kind::url, std::string(redis::default_url)},
        {"redis_password", Kind::password, ""},
        {"timeout", Kind::positive_duration, duration_text(redis::default_timeout)},
        {"prefix", Kind::prefix, std::string(default_prefix)},
        {"layout", Kind::layout, "dlock"},
        {"json", Kind::flag, "false"},
        {"conflict_exit_code", Kind::exit_code, std::to_string(exit_code::conflict)},
        {"db", Kind::path, "dlock-ledger.db"},
        {"db_password", Kind::password, ""},
        {"ttl", Kind::positive_duration, duration_text(default_ttl)},
        {"wait", Kind::wait, duration_text(default_wait)},
        {"kill_grace", Kind::duration, duration_text(default_kill_grace)},
        {"fence_idle", Kind::positive_duration, duration_text(default_fence_idle)},
        {"db_busy_timeout", Kind::duration, duration_text(LedgerOptions{}.sqlite.busy_timeout)},
        {"db_retry", Kind::duration, duration_text(LedgerOptions{}.sqlite.retry_deadline)},
        {"tls_ca", Kind::path, ""},
        {"tls_cert", Kind::path, ""},
        {"tls_key", Kind::path, ""},
        {"tls_server_name", Kind::name, ""},
        {"sentinel_password", Kind::password, ""},
        {"replicas", Kind::replicas, "0"},
    };
    return table;
}

// The index of `key` in definitions(), or none.
std::optional<std::size_t> index_of(std::string_view key) {
    const std::vector<Definition>& table = definitions();
    for (std::size_t i = 0; i < table.size(); ++i)
        if (table[i].key == key)
            return i;
    return std::nullopt;
}

bool is_true(std::string_view text) {
    return text == "1" || text == "true" || text == "yes" || text == "on";
}

// Throws UsageError (its own message) when `value` is not what `kind` takes.
void check(Kind kind, const std::string& value) {
    switch (kind) {
    case Kind::url: { // one URL, or a quorum's 3, 5 or 7 separated by spaces
        const std::vector<std::string> urls = lock_store_urls(value);
        if (urls.size() != 1)
            validate_quorum_size(urls.size());
        for (const std::string& url : urls)
            if (redis::is_sentinel_url(url))
                redis::parse_sentinel_url(url);
            else
                redis::parse_url(url);
        return;
    }
    case Kind::password:
    case Kind::path:
    case Kind::name:
        if (value.empty())
            throw UsageError("must not be empty");
        return;
    case Kind::duration:
        parse_duration(value);
        return;
    case Kind::positive_duration:
        parse_positive_duration(value);
        return;
    case Kind::wait:
        parse_wait(value);
        return;
    case Kind::exit_code: {
        const bool digits = !value.empty() && value.size() <= 3 &&
                            std::all_of(value.begin(), value.end(),
                                        [](unsigned char c) { return std::isdigit(c) != 0; });
        if (!digits || std::stoi(value) > 255)
            throw UsageError("'" + value + "' is not an exit code (0-255)");
        return;
    }
    case Kind::replicas: {
        const bool digits = !value.empty() && value.size() <= 3 &&
                            std::all_of(value.begin(), value.end(),
                                        [](unsigned char c) { return std::isdigit(c) != 0; });
        if (!digits || std::stoi(value) > max_replicas)
            throw UsageError("'" + value + "' is not a number of replicas (0-" +
                             std::to_string(max_replicas) + ")");
        return;
    }
    case Kind::prefix: // checked for its layout when the lock store is opened
        if (!value.empty() && value.front() == '-')
            throw UsageError("'" + value + "' is not a prefix");
        validate_prefix(value, KeyLayout::plain);
        return;
    case Kind::layout:
        parse_layout(value);
        return;
    case Kind::flag:
        if (!is_true(value) && value != "0" && value != "false" && value != "no" && value != "off")
            throw UsageError("'" + value + "' is not true or false");
        return;
    }
}

// Settings' values, in the order of definitions().
using Values = std::vector<SettingValue>;

void set_checked(Values& values, std::size_t index, std::string value, const std::string& source) {
    const Definition& d = definitions()[index];
    try {
        check(d.kind, value);
    } catch (const UsageError& e) {
        throw UsageError(source + ": " +
                         (source.rfind("DLOCK_", 0) == 0 ? "" : std::string(d.key) + ": ") +
                         e.what());
    }
    if (d.kind == Kind::flag)
        value = is_true(value) ? "true" : "false";
    values[index] = {std::move(value), source};
}

bool holds_password(const std::vector<CLI::ConfigItem>& items) {
    for (const CLI::ConfigItem& item : items) {
        if (item.name == "redis_password" || item.name == "db_password" ||
            item.name == "sentinel_password")
            return true;
        if (item.name == "db" && !item.inputs.empty() &&
            item.inputs.front().find("://") != std::string::npos &&
            item.inputs.front().find('@') != std::string::npos &&
            item.inputs.front().find(':', item.inputs.front().find("://") + 3) <
                item.inputs.front().find('@'))
            return true; // postgresql://user:password@host
        if (item.name == "redis_url") {
            for (const std::string& input : item.inputs) {
                for (const std::string& url : lock_store_urls(input)) {
                    try {
                        if (redis::is_sentinel_url(url)
                                ? redis::parse_sentinel_url(url).master.password.has_value()
                                : redis::parse_url(url).password.has_value())
                            return true;
                    } catch (const UsageError&) {
                        return true; // refused below anyway; do not say more about it
                    }
                }
            }
        }
    }
    return false;
}

// Applies one config file, if it exists (a --config FILE must).
void apply_file(Values& values, const std::string& path, bool must_exist) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
        if (must_exist)
            throw UsageError("config file '" + path + "' does not exist");
        return;
    }
    if (!S_ISREG(info.st_mode))
        throw UsageError("config file '" + path + "' is not a regular file");
    if ((info.st_mode & S_IWOTH) != 0)
        throw UsageError("refusing config file '" + path +
                         "': anyone can write to it (chmod o-w '" + path + "')");
    std::vector<CLI::ConfigItem> items;
    try {
        items = CLI::ConfigTOML().from_file(path);
    } catch (const CLI::Error& e) {
        throw UsageError("cannot read config file '" + path + "': " + e.what());
    }
    if ((info.st_mode & S_IROTH) != 0 && holds_password(items))
        throw UsageError("refusing config file '" + path +
                         "': it holds a password and anyone can read it (chmod o-r '" + path +
                         "')");
    for (const CLI::ConfigItem& item : items) {
        if (item.name == "++" || item.name == "--")
            continue; // section markers
        if (!item.parents.empty())
            throw UsageError(path + ": sections are not used ('" + item.parents.front() + "')");
        const std::optional<std::size_t> index = index_of(item.name);
        if (!index)
            throw UsageError(path + ": unknown key '" + item.name + "'");
        // redis_url may be an array: a quorum's servers.
        if (item.name == "redis_url" && item.inputs.size() > 1) {
            std::string urls;
            for (const std::string& url : item.inputs)
                urls += (urls.empty() ? "" : " ") + url;
            set_checked(values, *index, urls, path);
            continue;
        }
        if (item.inputs.size() != 1)
            throw UsageError(path + ": " + item.name + ": expected one value");
        set_checked(values, *index, item.inputs.front(), path);
    }
}

std::string user_config_path() {
    if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
        return std::string(xdg) + "/dlock/dlock.conf";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::string(home) + "/.config/dlock/dlock.conf";
    return "";
}

} // namespace

std::string env_name(std::string_view key) {
    std::string name(env_prefix);
    for (const char c : key)
        name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return name;
}

Settings::Settings() {
    values_.reserve(definitions().size());
    for (const Definition& d : definitions())
        values_.push_back({d.builtin, std::string(builtin_source)});
}

Settings Settings::resolve(const std::optional<std::string>& config_file) {
    Settings settings;
    const char* system = std::getenv("DLOCK_SYSTEM_CONFIG");
    apply_file(settings.values_, system && *system ? system : "/etc/dlock/dlock.conf", false);
    if (config_file)
        apply_file(settings.values_, *config_file, true);
    else if (const std::string user = user_config_path(); !user.empty())
        apply_file(settings.values_, user, false);
    // One pass over the environment for its DLOCK_* variables: cheaper at every start than a
    // getenv() per setting. A variable that is set but empty counts as unset.
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string_view variable = *entry;
        const std::size_t equals = variable.find('=');
        const std::string_view name = variable.substr(0, equals);
        if (equals == std::string_view::npos || equals + 1 == variable.size() ||
            name.substr(0, env_prefix.size()) != env_prefix)
            continue;
        std::string key(name.substr(env_prefix.size()));
        for (char& c : key)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (const std::optional<std::size_t> index = index_of(key); index && env_name(key) == name)
            set_checked(settings.values_, *index, std::string(variable.substr(equals + 1)),
                        std::string(name));
    }
    return settings;
}

const SettingValue& Settings::at(std::string_view key) const {
    const std::optional<std::size_t> index = index_of(key);
    if (!index)
        throw InternalError("no setting named '" + std::string(key) + "'");
    return values_[*index];
}

const std::string& Settings::value(std::string_view key) const {
    return at(key).value;
}

const std::string& Settings::source(std::string_view key) const {
    return at(key).source;
}

std::vector<std::pair<std::string, SettingValue>> Settings::all() const {
    std::vector<std::pair<std::string, SettingValue>> out;
    for (const Definition& d : definitions())
        out.emplace_back(std::string(d.key), at(d.key));
    return out;
}

std::optional<std::string> config_file_argument(int argc, const char* const* argv) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--")
            break;
        if (arg == "--config" && i + 1 < argc)
            return std::string(argv[i + 1]);
        if (arg.rfind("--config=", 0) == 0)
            return std::string(arg.substr(9));
    }
    return std::nullopt;
}

} // namespace dlock::cli
