// The dlock commands a fleet fixture runs: a fixture that set up a Redis and a ledger and names
// both in its `env` member ("DLOCK_REDIS_URL=...", "DLOCK_DB=...") derives from
// FleetCommands<Itself> and gets the binary run, started and asked for balances with that
// environment, the same way whichever ledger backend it set up.
#pragma once

#include "support/process.hpp"

#include <cstdint>
#include <doctest/doctest.h>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dlock::test {

template <typename Fleet>
class FleetCommands {
public:
    // The binary with `args`; `extra_env` adds to (or overrides) the fleet's environment.
    ProcessResult dlock(const std::vector<std::string>& args,
                        std::vector<std::string> extra_env = {}) const {
        extra_env.insert(extra_env.begin(), env().begin(), env().end());
        return run_dlock(args, extra_env);
    }
    // The same with --json, the answer parsed.
    nlohmann::json dlock_json(std::vector<std::string> args) const {
        args.push_back("--json");
        const ProcessResult result = dlock(args);
        CAPTURE(result.err);
        return nlohmann::json::parse(result.out);
    }
    std::vector<std::string> argv(const std::vector<std::string>& args) const {
        std::vector<std::string> out{DLOCK_BINARY};
        out.insert(out.end(), args.begin(), args.end());
        return out;
    }
    std::unique_ptr<Child> start(const std::vector<std::string>& args) const {
        return std::make_unique<Child>(argv(args), env());
    }
    // sh -c SCRIPT with $1.. = args.
    std::unique_ptr<Child> start_shell(const std::string& script,
                                       const std::vector<std::string>& args = {}) const {
        std::vector<std::string> argv{"/bin/sh", "-c", script, "sh"};
        argv.insert(argv.end(), args.begin(), args.end());
        return std::make_unique<Child>(argv, env());
    }
    std::int64_t balance_cents(int account) const {
        const nlohmann::json answer = dlock_json({"balance", "--account", std::to_string(account)});
        REQUIRE(answer["status"] == "ok");
        return answer["balance_cents"].get<std::int64_t>();
    }
    void deposit(int account, const std::string& amount) const {
        REQUIRE(dlock({"deposit", "--account", std::to_string(account), "--amount", amount})
                    .exit_code == 0);
    }

private:
    const std::vector<std::string>& env() const { return static_cast<const Fleet&>(*this).env; }
};

} // namespace dlock::test
