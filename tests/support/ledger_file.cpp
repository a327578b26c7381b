#include "support/ledger_file.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

namespace dlock::test {

std::string ledger_contents(const std::string& db) {
    SQLite::Database file(db, SQLite::OPEN_READONLY);
    std::string out;
    for (const std::string table : {"accounts", "journal", "invoices", "fences"}) {
        SQLite::Statement rows(file, "SELECT * FROM " + table + " ORDER BY 1");
        out += table + ":\n";
        while (rows.executeStep()) {
            for (int column = 0; column < rows.getColumnCount(); ++column)
                out += (rows.getColumn(column).isNull() ? std::string("NULL")
                                                        : rows.getColumn(column).getString()) +
                       "|";
            out += "\n";
        }
    }
    return out;
}

std::string ledger_balances(const std::string& db) {
    SQLite::Database file(db, SQLite::OPEN_READONLY);
    SQLite::Statement rows(file, "SELECT id, balance FROM accounts ORDER BY id");
    std::string out;
    while (rows.executeStep())
        out += rows.getColumn(0).getString() + ":" + rows.getColumn(1).getString() + ";";
    return out;
}

std::string integrity_check(const std::string& db) {
    SQLite::Database file(db, SQLite::OPEN_READONLY);
    SQLite::Statement rows(file, "PRAGMA integrity_check");
    std::string out;
    while (rows.executeStep())
        out += (out.empty() ? "" : "\n") + rows.getColumn(0).getString();
    return out;
}

std::int64_t query_int(const std::string& db, const std::string& sql) {
    SQLite::Database file(db, SQLite::OPEN_READONLY);
    return file.execAndGet(sql).getInt64();
}

bool ledger_write_locked(const std::string& db) {
    SQLite::Database probe(db, SQLite::OPEN_READWRITE); // busy timeout 0: never waits
    try {
        probe.exec("BEGIN IMMEDIATE");
    } catch (const SQLite::Exception& e) {
        if (e.getErrorCode() != SQLITE_BUSY)
            throw;
        return true;
    }
    probe.exec("ROLLBACK");
    return false;
}

} // namespace dlock::test
