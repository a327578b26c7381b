// How locks look to operators: who holds a lock, since when, until when, in text and JSON.
#pragma once

#include "cli/common.hpp"

#include <string>
#include <vector>

namespace dlock::cli {

// When a holder's lock frees by itself, for messages: "free in 4.2s at the latest", or that a
// key without a TTL never does.
std::string when_free(const Remaining& ttl);
// "ttl_ms" in JSON: the milliseconds left, or null for a key without a TTL.
nlohmann::json ttl_ms_json(const Remaining& ttl);

// "web-3 pid 4242 (backup.sh --full)", or "owner TOKEN" when the holder left no record.
std::string holder_text(const std::string& owner, const std::optional<HolderDetails>& details);

// Who held a lock and since when: "held by web-3 pid 4242 (backup.sh --full) since 02:13:07,
// 3m12s ago, renewed 9 times".
std::string held_by(const std::string& owner, const std::optional<HolderDetails>& details,
                    std::int64_t now_ms);
// The one-line story of a held lock: held_by(), then "; frees in 7.1s unless renewed".
std::string held_sentence(const std::string& owner, const std::optional<HolderDetails>& details,
                          const Remaining& ttl, std::int64_t now_ms);

// The holder's fields in JSON: holder (the owner token), ttl_ms, and host, pid, user, command,
// since, since_ms, age_ms, renewed_ms, renewals when it left a record (null otherwise).
void put_holder(nlohmann::json& result, const std::string& owner,
                const std::optional<HolderDetails>& details, const Remaining& ttl,
                std::int64_t now_ms);

// `dlock list` as a table: KEY, HOLDER, AGE, TTL, FENCE; one row per lock.
std::string listing_table(const std::vector<LockListing>& locks);

} // namespace dlock::cli
