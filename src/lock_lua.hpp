// Internal: the Lua both lock backends build their scripts from (redis_lock.cpp on one server,
// quorum_lock.cpp on each server of a quorum).
#pragma once

#include <initializer_list>
#include <string>
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

// One script from its parts: shared functions first, then the body.
inline std::string lua_script(std::initializer_list<std::string_view> parts) {
    std::string text;
    for (const std::string_view part : parts)
        text += part;
    return text;
}

} // namespace dlock::detail
