// The ledger's use cases under a lock (guarded_ledger.hpp), against a real redis-server and a
// real ledger file.
#include "dlock/backends.hpp"
#include "dlock/guarded_ledger.hpp"
#include "support/process.hpp"
#include "support/redis_server.hpp"

#include <chrono>
#include <doctest/doctest.h>
#include <string>
#include <vector>

using namespace dlock;
using namespace std::chrono_literals;

namespace {

struct Setting {
    test::RedisServer server;
    std::string dir = test::make_temp_dir();
    std::vector<std::string> notices;
    Setting() = default;
    Setting(const Setting&) = delete;
    Setting& operator=(const Setting&) = delete;
    ~Setting() { test::remove_tree(dir); }

    std::unique_ptr<LockService> locks() const {
        LockConfig config;
        config.url = server.url();
        return open_lock_service(config);
    }
    std::unique_ptr<Ledger> ledger() const { return open_ledger(dir + "/ledger.db", {}); }
    Notice notice() {
        return [this](const std::string& message) {
            notices.push_back(message);
        };
    }
};

} // namespace

TEST_CASE("every outcome has its documented word") {
    const std::pair<Outcome, const char*> words[] = {
        {Outcome::ok, "ok"},
        {Outcome::insufficient_funds, "insufficient_funds"},
        {Outcome::duplicate, "duplicate"},
        {Outcome::idempotency_conflict, "idempotency_conflict"},
        {Outcome::stale_fence, "stale_fence"},
        {Outcome::busy, "busy"},
        {Outcome::paid, "paid"},
        {Outcome::unknown_account, "unknown_account"},
        {Outcome::unknown_invoice, "unknown_invoice"},
        {Outcome::lock_busy, "busy"},
        {Outcome::processing, "processing"},
    };
    for (const auto& [outcome, word] : words)
        CHECK(to_string(outcome) == word);
    CHECK(outcome_of(LedgerStatus::stale_fence) == Outcome::stale_fence);
    CHECK(withdraw_lock_key(5) == "withdraw_funds_user_5");
    CHECK(invoice_lock_key(7) == "invoice_7");
}

TEST_CASE("a locked withdrawal carries its lock's fence and frees the lock afterwards") {
    Setting setting;
    const auto locks = setting.locks();
    const auto ledger = setting.ledger();
    ledger->deposit(1, 1000, {});
    const WithdrawalResult result =
        withdraw_under_lock(*locks, *ledger, {.account = 1, .amount = 300}, setting.notice());
    CHECK(result.outcome == Outcome::ok);
    CHECK(result.balance == 700);
    CHECK(result.lock_key == "withdraw_funds_user_1");
    REQUIRE(result.fence.has_value());
    CHECK(result.fence->resource == "dlock:{withdraw_funds_user_1}");
    const LockStatus after = locks->status("withdraw_funds_user_1");
    CHECK_FALSE(after.holder.has_value()); // released
    CHECK(after.fence == result.fence->token);
    CHECK(ledger->history(1, 1).entries.at(0).fence_token == result.fence->token);
    CHECK(setting.notices.empty());
}

TEST_CASE("a withdrawal whose lock stays busy answers lock_busy and writes nothing") {
    Setting setting;
    const auto ledger = setting.ledger();
    ledger->deposit(1, 1000, {});
    const auto holder = setting.locks();
    const auto held = holder->try_acquire("withdraw_funds_user_1", 60s);
    REQUIRE(held.acquired());
    const auto locks = setting.locks();
    const WithdrawalResult result = withdraw_under_lock(
        *locks, *ledger, {.account = 1, .amount = 300, .wait = 100ms}, setting.notice());
    CHECK(result.outcome == Outcome::lock_busy);
    CHECK_FALSE(result.fence.has_value());
    CHECK(ledger->balance(1).balance == 1000);
    CHECK(ledger->history(1, 10).entries.size() == 1);
    CHECK(holder->status("withdraw_funds_user_1").holder == held.lease->token); // untouched
}

TEST_CASE("a withdrawal whose lock expired during the write says so and still wrote fenced") {
    Setting setting;
    const auto locks = setting.locks();
    const auto ledger = setting.ledger();
    ledger->deposit(1, 1000, {});
    const WithdrawalResult result = withdraw_under_lock(
        *locks, *ledger, {.account = 1, .amount = 300, .ttl = 50ms, .work = 200ms},
        setting.notice());
    CHECK(result.outcome == Outcome::ok);
    REQUIRE(setting.notices.size() == 1);
    CHECK(setting.notices[0].find("no longer held") != std::string::npos);
}

TEST_CASE("an invoice whose lock is held answers processing and charges nothing") {
    Setting setting;
    const auto ledger = setting.ledger();
    ledger->deposit(1, 1000, {});
    const InvoiceId invoice = ledger->create_invoice(1, 300).invoice.value().id;
    const auto holder = setting.locks();
    REQUIRE(holder->try_acquire(invoice_lock_key(invoice), 60s).acquired());
    const auto locks = setting.locks();
    const InvoiceProcessing busy =
        process_invoice_once(*locks, *ledger, invoice, 10s, 0ms, setting.notice());
    CHECK(busy.outcome == Outcome::processing);
    CHECK(ledger->balance(1).balance == 1000);

    holder->force_release(invoice_lock_key(invoice), std::nullopt);
    const InvoiceProcessing paid =
        process_invoice_once(*locks, *ledger, invoice, 10s, 0ms, setting.notice());
    CHECK(paid.outcome == Outcome::ok);
    CHECK(paid.balance == 700);
    REQUIRE(paid.fence.has_value());
    CHECK(paid.fence->resource == locks->fence_resource(invoice_lock_key(invoice)));
    CHECK(process_invoice_once(*locks, *ledger, invoice, 10s, 0ms, setting.notice()).outcome ==
          Outcome::paid);
}
