// The rules every lock store shares: lock names, prefixes and owner tokens.
#include "dlock/lock.hpp"

#include "dlock/error.hpp"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <optional>
#include <pwd.h>
#include <sys/random.h>
#include <unistd.h>

namespace dlock {
namespace {

constexpr std::size_t token_bytes = 16;

// Length of the UTF-8 sequence starting at text[i], or 0 if it is not valid UTF-8
// (overlong forms, surrogates and code points past U+10FFFF included).
std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) {
        return static_cast<unsigned char>(text[k]);
    };
    const unsigned char lead = byte(i);
    std::size_t length = 0;
    char32_t code_point = 0;
    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        code_point = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        code_point = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        code_point = lead & 0x07;
    } else {
        return 0;
    }
    if (i + length > text.size())
        return 0;
    for (std::size_t k = 1; k < length; ++k) {
        if ((byte(i + k) & 0xC0) != 0x80)
            return 0;
        code_point = (code_point << 6) | (byte(i + k) & 0x3F);
    }
    const bool overlong =
        (length == 3 && code_point < 0x800) || (length == 4 && code_point < 0x10000);
    const bool surrogate = code_point >= 0xD800 && code_point <= 0xDFFF;
    if (overlong || surrogate || code_point > 0x10FFFF || (code_point >= 0x80 && code_point < 0xA0))
        return 0; // the last test rejects C1 control characters
    return length;
}

[[noreturn]] void bad_key(std::string_view why) {
    throw UsageError("invalid lock key: " + std::string(why));
}

std::string host_name() {
    std::array<char, 256> name{};
    if (gethostname(name.data(), name.size() - 1) != 0)
        return "?";
    return name.data();
}

struct CloseFile {
    void operator()(FILE* file) const { std::fclose(file); }
};

// The user's name from /etc/passwd, where every system and local user is and which
// nsswitch.conf asks first: read directly, it costs a lock command about a third of what
// getpwuid_r does, whose probes for nscd and parsing of nsswitch.conf touch a dozen pages of libc.
// Lines of the old NIS "compat" syntax (+name, -name) are left to NSS.
std::optional<std::string> local_user_name(uid_t uid) {
    const std::unique_ptr<FILE, CloseFile> file(std::fopen("/etc/passwd", "re"));
    if (!file)
        return std::nullopt;
    std::array<char, 1024> buffer{};
    passwd entry{};
    passwd* parsed = nullptr;
    while (fgetpwent_r(file.get(), &entry, buffer.data(), buffer.size(), &parsed) == 0) {
        if (parsed->pw_uid == uid && parsed->pw_name[0] != '+' && parsed->pw_name[0] != '-')
            return parsed->pw_name;
    }
    return std::nullopt;
}

// A user that only a directory (LDAP, SSSD) knows is looked up through NSS; one nobody knows
// is its number.
std::string user_name() {
    const uid_t uid = geteuid();
    if (auto name = local_user_name(uid))
        return *std::move(name);
    std::array<char, 1024> buffer{};
    passwd entry{};
    passwd* found = nullptr;
    if (getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr)
        return found->pw_name;
    return std::to_string(uid);
}

// At most max_command_bytes, cut at a UTF-8 character boundary.
std::string truncated(std::string command) {
    if (command.size() <= max_command_bytes)
        return command;
    std::size_t end = max_command_bytes - 3;
    while (end > 0 && (static_cast<unsigned char>(command[end]) & 0xC0) == 0x80)
        --end;
    command.resize(end);
    return command + "...";
}

// The start of process `pid`'s command line, NUL-separated, enough of it for truncated(). Read
// with read(2): an ifstream's set-up cost a lock command more instructions than its EVAL.
std::string command_line_start(pid_t pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/cmdline";
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return {};
    std::string command(max_command_bytes + 1, '\0');
    std::size_t size = 0;
    while (size < command.size()) {
        const ssize_t n = ::read(fd, command.data() + size, command.size() - size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size += static_cast<std::size_t>(n);
    }
    ::close(fd);
    command.resize(size);
    return command;
}

} // namespace

Identity this_process(std::string command) {
    return {host_name(), static_cast<std::int64_t>(getpid()), user_name(),
            truncated(std::move(command))};
}

Identity parent_process() {
    const pid_t parent = getppid();
    std::string command = command_line_start(parent);
    while (!command.empty() && command.back() == '\0')
        command.pop_back();
    for (char& c : command)
        if (c == '\0')
            c = ' ';
    Identity identity = this_process(std::move(command));
    identity.pid = parent;
    return identity;
}

void validate_key(std::string_view key) {
    if (key.empty())
        bad_key("empty");
    if (key.size() > max_key_bytes)
        bad_key(std::to_string(key.size()) + " bytes, at most " + std::to_string(max_key_bytes));
    for (std::size_t i = 0; i < key.size();) {
        const auto c = static_cast<unsigned char>(key[i]);
        if (c < 0x20 || c == 0x7F)
            bad_key("control character at byte " + std::to_string(i));
        const std::size_t length = utf8_sequence_length(key, i);
        if (length == 0)
            bad_key("not valid UTF-8 (or a control character) at byte " + std::to_string(i));
        i += length;
    }
}

void validate_prefix(std::string_view prefix) {
    if (prefix.size() > max_prefix_bytes)
        throw UsageError("invalid prefix: at most " + std::to_string(max_prefix_bytes) + " bytes");
    for (const char c : prefix) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x21 || byte > 0x7E || c == '{' || c == '}')
            throw UsageError("invalid prefix: printable ASCII without spaces or braces only");
    }
}

KeyLayout parse_layout(std::string_view text) {
    if (text == "dlock")
        return KeyLayout::dlock;
    if (text == "plain")
        return KeyLayout::plain;
    throw UsageError("invalid layout '" + std::string(text) + "': dlock or plain");
}

namespace {

// 0 to 256 bytes of UTF-8 without control characters, for what a plain-layout app chose.
void validate_app_text(std::string_view text, std::string_view what, bool may_be_empty) {
    if ((text.empty() && !may_be_empty) || text.size() > max_key_bytes)
        throw UsageError("invalid " + std::string(what) + ": " + (may_be_empty ? "0" : "1") + "-" +
                         std::to_string(max_key_bytes) +
                         " bytes of UTF-8 without control characters");
    if (!text.empty()) {
        try {
            validate_key(text);
        } catch (const UsageError& e) {
            const std::string why = e.what();
            throw UsageError("invalid " + std::string(what) +
                             why.substr(why.find(':'))); // "invalid lock key: ..." reworded
        }
    }
}

} // namespace

void validate_prefix(std::string_view prefix, KeyLayout layout) {
    if (layout == KeyLayout::dlock)
        validate_prefix(prefix);
    else
        validate_app_text(prefix, "prefix", true);
}

void validate_owner(std::string_view owner, KeyLayout layout) {
    if (layout == KeyLayout::dlock)
        validate_token(owner);
    else
        validate_app_text(owner, "owner", false);
}

void validate_token(std::string_view token) {
    const bool hex = token.find_first_not_of("0123456789abcdef") == std::string_view::npos;
    if (token.size() != token_bytes * 2 || !hex)
        throw UsageError("invalid owner token: expected " + std::to_string(token_bytes * 2) +
                         " lowercase hex digits, as acquire prints");
}

std::string new_owner_token() {
    std::array<unsigned char, token_bytes> bytes{};
    std::size_t filled = 0;
    while (filled < bytes.size()) {
        const ssize_t n = getrandom(bytes.data() + filled, bytes.size() - filled, 0);
        if (n < 0 && errno != EINTR)
            throw InternalError(std::string("getrandom failed: ") + std::strerror(errno));
        if (n > 0)
            filled += static_cast<std::size_t>(n);
    }
    static constexpr char digits[] = "0123456789abcdef";
    std::string token;
    token.reserve(token_bytes * 2);
    for (const unsigned char b : bytes) {
        token += digits[b >> 4];
        token += digits[b & 0x0F];
    }
    return token;
}

} // namespace dlock
