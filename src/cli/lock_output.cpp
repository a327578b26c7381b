#include "cli/lock_output.hpp"

#include <array>
#include <ctime>

namespace dlock::cli {
namespace {

using nlohmann::json;

// A moment on the store's clock as the operator's wall clock shows it: "02:13:07" today,
// "2026-11-30 02:13:07" before.
std::string local_time(std::int64_t time_ms, std::int64_t now_ms) {
    const auto seconds = static_cast<std::time_t>(time_ms / 1000);
    const auto now = static_cast<std::time_t>(now_ms / 1000);
    std::tm then_local{};
    std::tm now_local{};
    localtime_r(&seconds, &then_local);
    localtime_r(&now, &now_local);
    const bool today =
        then_local.tm_year == now_local.tm_year && then_local.tm_yday == now_local.tm_yday;
    std::array<char, 32> text{};
    const std::size_t length = std::strftime(text.data(), text.size(),
                                             today ? "%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &then_local);
    return std::string(text.data(), length);
}

std::string age(std::int64_t since_ms, std::int64_t now_ms) {
    return format_duration(Millis{std::max<std::int64_t>(now_ms - since_ms, 0)});
}

json optional_json(const std::optional<std::int64_t>& value) {
    return value ? json(*value) : json(nullptr);
}

} // namespace

std::string when_free(const Remaining& ttl) {
    return ttl ? "free in " + format_duration(*ttl) + " at the latest"
               : "held without a TTL: it never frees by itself; see 'dlock force-release'";
}

json ttl_ms_json(const Remaining& ttl) {
    return ttl ? json(ttl->count()) : json(nullptr);
}

std::string holder_text(const std::string& owner, const std::optional<HolderDetails>& details) {
    if (!details)
        return "owner " + owner + " (no holder record: taken by another program)";
    std::string text = details->who.host + " pid " + std::to_string(details->who.pid);
    if (!details->who.command.empty())
        text += " (" + details->who.command + ")";
    return text;
}

std::string held_by(const std::string& owner, const std::optional<HolderDetails>& details,
                    std::int64_t now_ms) {
    std::string text = "held by " + holder_text(owner, details);
    if (details) {
        text += " since " + local_time(details->since_ms, now_ms) + ", " +
                age(details->since_ms, now_ms) + " ago";
        if (details->renewals > 0)
            text += ", renewed " + std::to_string(details->renewals) +
                    (details->renewals == 1 ? " time" : " times");
    }
    return text;
}

std::string held_sentence(const std::string& owner, const std::optional<HolderDetails>& details,
                          const Remaining& ttl, std::int64_t now_ms) {
    return held_by(owner, details, now_ms) +
           (ttl ? "; frees in " + format_duration(*ttl) + " unless renewed"
                : "; " + when_free(ttl));
}

void put_holder(json& result, const std::string& owner, const std::optional<HolderDetails>& details,
                const Remaining& ttl, std::int64_t now_ms) {
    result["holder"] = owner;
    result["ttl_ms"] = ttl_ms_json(ttl);
    const auto field = [&](const char* name, json value) {
        result[name] = details ? std::move(value) : json(nullptr);
    };
    const HolderDetails d = details.value_or(HolderDetails{});
    field("host", d.who.host);
    field("pid", d.who.pid);
    field("user", d.who.user);
    field("command", d.who.command);
    field("since", local_time(d.since_ms, now_ms));
    field("since_ms", d.since_ms);
    field("age_ms", std::max<std::int64_t>(now_ms - d.since_ms, 0));
    field("renewed_ms", optional_json(d.renewed_ms));
    field("renewals", d.renewals);
}

std::string listing_table(const std::vector<LockListing>& locks) {
    std::vector<std::vector<std::string>> rows{{"KEY", "HOLDER", "AGE", "TTL", "FENCE"}};
    for (const LockListing& lock : locks) {
        const LockStatus& s = lock.status;
        rows.push_back({lock.key, holder_text(s.holder.value_or("?"), s.details),
                        s.details ? age(s.details->since_ms, s.now_ms) : "-",
                        s.ttl ? format_duration(*s.ttl) : "none",
                        s.fence ? std::to_string(*s.fence) : "-"});
    }
    return text_table(rows, {false, false, true, true, true});
}

} // namespace dlock::cli
