// Internal: the Lua both lock backends build their scripts from (redis_lock.cpp on one server,
// quorum_lock.cpp on each server of a quorum).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

namespace dlock::detail {

// now_ms(): the server's clock in ms since the epoch, as text, so that ages read the same from
// every host.
inline constexpr std::string_view now_ms_lua = R"lua(
local function now_ms()
  local now = redis.call('TIME')
  return now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
end
)lua";

// One script from its parts, shared functions first, then the body: joined at compile time, so
// that no script costs a process anything before it is sent (a command sends one or two).
template <const std::string_view&... Parts>
class LuaScript {
    static constexpr auto joined = [] {
        std::array<char, (Parts.size() + ...)> text{};
        std::size_t at = 0;
        for (const std::string_view part : {Parts...})
            for (const char c : part)
                text[at++] = c;
        return text;
    }();

public:
    static constexpr std::string_view text{joined.data(), joined.size()};
};

template <const std::string_view&... Parts>
inline constexpr std::string_view lua_script = LuaScript<Parts...>::text;

} // namespace dlock::detail
