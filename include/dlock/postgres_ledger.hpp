// The ledger in a PostgreSQL database, shared by every host that can reach the server.
#pragma once

#include "dlock/duration.hpp"
#include "dlock/ledger.hpp"

#include <memory>
#include <optional>
#include <string>

namespace dlock {

struct PostgresLedgerOptions {
    // How long connecting may take, from the first packet to a session ready for queries.
    Millis connect_timeout{3'000};
    // How long a request waits for row locks other writers hold (PostgreSQL's lock_timeout)
    // and keeps retrying serialization failures and deadlocks before it answers busy.
    Millis retry_deadline{5'000};
    // Used when the URI carries none; libpq's PGPASSWORD and ~/.pgpass come after it.
    std::optional<std::string> password{};
};

namespace detail {
struct PostgresConnection;
} // namespace detail

class PostgresLedger final : public Ledger {
public:
    // Connects to the database `uri` names (postgresql://... or postgres://..., as libpq reads
    // it) and brings the ledger's schema up to date. Throws UsageError for a URI libpq cannot
    // read, UnavailableError when the server cannot be reached or refuses the login within the
    // connect timeout, DataError when the database holds a schema newer than this dlock knows.
    // No message shows the password.
    explicit PostgresLedger(const std::string& uri, PostgresLedgerOptions options = {});
    ~PostgresLedger() override;

    BalanceResult deposit(AccountId account, Cents amount, const WriteOptions& options) override;
    BalanceResult withdraw(AccountId account, Cents amount, const WriteOptions& options) override;
    BalanceResult store_withdrawal(AccountId account, Cents amount, Cents new_balance) override;
    BalanceResult balance(AccountId account) override;
    HistoryResult history(AccountId account, std::size_t limit) override;
    VerifyReport verify() override;
    InvoiceResult create_invoice(AccountId account, Cents amount) override;
    InvoiceResult process_invoice(InvoiceId invoice, const WriteOptions& options) override;

private:
    std::unique_ptr<detail::PostgresConnection> connection_;
};

// `uri` with any password in it (user:password@ or password=) shown as ***.
std::string masked_postgres_uri(const std::string& uri);

} // namespace dlock
