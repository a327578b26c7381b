// deposit, withdraw, balance, history, verify, invoice create, invoice process: their options,
// how those are parsed into library requests, and the functions that run them.
#pragma once

#include "cli/common.hpp"
#include "dlock/guarded_ledger.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace dlock::cli {

inline constexpr std::size_t max_idempotency_key_bytes = 256;

// Every ledger subcommand's options, as CLI11 parses them (text until parsed).
struct LedgerCommandOptions {
    std::string account;
    std::string amount;
    std::string invoice;
    std::string idempotency_key; // empty: none (an explicit empty key is refused by CLI11)
    std::string ttl = duration_text(default_ttl);
    std::string wait = duration_text(default_wait);
    std::string hold = "0s";
    bool no_lock = false;
    std::string fence; // empty: none
    std::string lock_key;
    std::int64_t limit = 20;
    std::string busy_timeout = duration_text(LedgerOptions{}.sqlite.busy_timeout);
    std::string retry = duration_text(LedgerOptions{}.sqlite.retry_deadline);
};

// --idempotency-key, validated; nullopt when not given.
std::optional<std::string> idempotency_key(const LedgerCommandOptions& opts);
// --fence N --lock-key KEY: a token another command's lock handed out, for the resource that
// lock guards under the configured lock store; nullopt when not given.
std::optional<Fence> external_fence(const GlobalOptions& global, const LedgerCommandOptions& opts);
// The backends' settings from the ledger's advanced options, --timeout (connecting to a ledger
// server) and the db_password setting (DLOCK_DB_PASSWORD).
LedgerOptions ledger_options(const GlobalOptions& global, const LedgerCommandOptions& opts);

// Writes; withdraw and process_invoice take the lesson's locks.
int deposit(const Invocation& inv, const LedgerCommandOptions& opts);
int withdraw(const Invocation& inv, const LedgerCommandOptions& opts);
int create_invoice(const Invocation& inv, const LedgerCommandOptions& opts);
int process_invoice(const Invocation& inv, const LedgerCommandOptions& opts);

// Reads.
int balance(const Invocation& inv, const LedgerCommandOptions& opts);
int history(const Invocation& inv, const LedgerCommandOptions& opts);
int verify(const Invocation& inv, const LedgerCommandOptions& opts);

void setup_ledger_commands(CLI::App& app, Invocation& inv, std::string_view only);

} // namespace dlock::cli
