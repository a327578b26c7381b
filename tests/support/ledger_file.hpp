// Looking at a ledger file behind dlock's back, to prove what a command did or did not write.
#pragma once

#include <cstdint>
#include <string>

namespace dlock::test {

// Every row of every ledger table, in a stable order: equal strings, equal ledgers.
std::string ledger_contents(const std::string& db);
// "id:balance" of every account, ascending: the balances a user would see.
std::string ledger_balances(const std::string& db);
// SQLite's PRAGMA integrity_check: "ok", or its findings one per line.
std::string integrity_check(const std::string& db);
// One number from a query, e.g. "SELECT COUNT(*) FROM journal"; 0 for NULL.
std::int64_t query_int(const std::string& db, const std::string& sql);
// True while some connection holds the ledger's write lock (a transaction is open).
bool ledger_write_locked(const std::string& db);

} // namespace dlock::test
