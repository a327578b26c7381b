// Every default a user can set, and where each effective value came from. Precedence, highest
// first: a flag on the command line > the environment (DLOCK_*) > the user's config file
// (--config FILE, else ${XDG_CONFIG_HOME:-~/.config}/dlock/dlock.conf) > the system's
// (/etc/dlock/dlock.conf, or DLOCK_SYSTEM_CONFIG) > the built-in default. Config files are TOML
// read by CLI11: `ttl = "50s"`; a key is its variable's name without DLOCK_, in lower case.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dlock::cli {

// --replicas takes 0 to this many.
inline constexpr int max_replicas = 100;

struct SettingValue {
    std::string value;
    std::string source; // "built-in default", "DLOCK_TTL", or a config file's path
};

class Settings {
public:
    // The built-in defaults only.
    Settings();

    // Reads the config files and the environment. `config_file` is --config's value, when
    // given. Throws UsageError, naming the variable or file, for a bad value, an unknown key, a
    // file that is writable by others, or one that holds a password and is readable by others.
    static Settings resolve(const std::optional<std::string>& config_file);

    const std::string& value(std::string_view key) const;
    const std::string& source(std::string_view key) const;
    // Every setting, in the documented order: key, value, source.
    std::vector<std::pair<std::string, SettingValue>> all() const;

private:
    const SettingValue& at(std::string_view key) const;
    std::vector<SettingValue> values_; // in the documented order
};

// The environment variable of a setting: "ttl" -> "DLOCK_TTL".
std::string env_name(std::string_view key);

// --config FILE (or --config=FILE) among the arguments before a `--`, if given.
std::optional<std::string> config_file_argument(int argc, const char* const* argv);

} // namespace dlock::cli
