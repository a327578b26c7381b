// The ledger in one SQLite file (WAL mode), shared safely by any number of processes on one
// host.
#pragma once

#include "dlock/duration.hpp"
#include "dlock/ledger.hpp"

#include <memory>
#include <string>

namespace dlock {

struct SqliteLedgerOptions {
    // How long SQLite itself waits for a lock before reporting the ledger busy.
    Millis busy_timeout{100};
    // How long a request keeps retrying a busy ledger, with short random pauses, before it
    // answers busy.
    Millis retry_deadline{5'000};
};

namespace detail {
struct SqliteConnection;
} // namespace detail

class SqliteLedger final : public Ledger {
public:
    // Opens the ledger at `path`, creating it with mode 0600 (or stricter, as the umask says) and
    // bringing its schema up to date. Throws UnavailableError when the folder is missing or not
    // writable or the file stays locked past the retry deadline, DataError when the file is not
    // a SQLite database or holds a schema newer than this dlock knows.
    explicit SqliteLedger(const std::string& path, SqliteLedgerOptions options = {});
    ~SqliteLedger() override;

    BalanceResult deposit(AccountId account, Cents amount, const WriteOptions& options) override;
    BalanceResult withdraw(AccountId account, Cents amount, const WriteOptions& options) override;
    BalanceResult store_withdrawal(AccountId account, Cents amount, Cents new_balance) override;
    BalanceResult balance(AccountId account) override;
    HistoryResult history(AccountId account, std::size_t limit) override;
    VerifyReport verify() override;
    InvoiceResult create_invoice(AccountId account, Cents amount) override;
    InvoiceResult process_invoice(InvoiceId invoice, const WriteOptions& options) override;

private:
    std::unique_ptr<detail::SqliteConnection> connection_;
};

} // namespace dlock
