// The token ledger: double-entry, append-only transfers in integer milli-tokens (1 token =
// 1000 mt). A user's wallet is the set of their grant lots; each lot is its own ledger account
// that must never be overdrawn, so draw-down order, expiry and refunds are attributable. Leases
// are pending transfers lot → op:consumed that are posted (≤ hold), voided or expired exactly
// once. Every mutation is idempotent by a client-made id stored in the same transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "service/db.h"
#include "service/outcome.h"

namespace stemsphere::service {

using Clock = std::function<int64_t()>;  // server time, µs since the Unix epoch

constexpr int64_t kNever = 4102444800LL * 1000000;  // 2100-01-01, "no expiry"

struct LedgerConfig {
    int64_t milli_tokens_per_minute = 1000;  // price of one minute of metered audio
    int64_t max_open_leases = 16;            // per account (anti-abuse)
    int64_t default_lease_ttl_s = 24 * 3600;
    int64_t max_lease_ttl_s = 7 * 24 * 3600;
    int64_t max_lease_ms = 24LL * 3600 * 1000;
};

struct GrantRequest {
    std::string grant_id;  // client-made (admin) or derived from the payment event id
    std::string owner;     // account id
    int64_t amount_mt = 0;
    std::string category;    // subscription | purchase | promo
    int64_t priority = 100;  // lower draws first
    int64_t effective_at_us = 0;
    int64_t expires_at_us = kNever;
    std::string source_event_id;  // payment webhook event, empty for admin grants
    std::string actor = "admin";
};

struct LeaseRequest {
    std::string lease_id;
    std::string device_id;
    int64_t want_ms = 0;
    int64_t min_ms = 1;            // fail with insufficient_tokens when less than this can be held
    std::optional<int64_t> ttl_s;  // absent: LedgerConfig::default_lease_ttl_s
};

struct Discrepancy {
    std::string what;
    std::string detail;
};

class Ledger {
  public:
    Ledger(Db& db, Clock clock, LedgerConfig config = {});

    // Milli-tokens for `ms` of audio: ceil(ms · price / 60000), integer maths.
    int64_t cost_mt(int64_t ms) const;
    // Longest audio (ms) that `mt` pays for: floor(mt · 60000 / price); cost_mt(result) ≤ mt.
    int64_t affordable_ms(int64_t mt) const;

    Outcome grant(const GrantRequest& request);
    Outcome open_lease(const std::string& owner, const LeaseRequest& request);
    Outcome settle_lease(const std::string& owner, const std::string& lease_id,
                         const std::string& settle_id, int64_t used_ms);
    Outcome void_lease(const std::string& owner, const std::string& lease_id,
                       const std::string& void_id);
    // Takes back what is left of a grant lot (payment refund); the consumed part stays consumed
    // and is reported as `shortfall_mt`.
    Outcome refund_grant(const std::string& refund_id, const std::string& grant_id,
                         const std::string& actor);
    // Operator correction: a reversing transfer of a single (non-pending) transfer, at most once.
    Outcome reverse_transfer(const std::string& reverse_id, const std::string& transfer_id,
                             const std::string& actor);
    // Expires due leases and moves what is left in expired or revoked lots to op:expired.
    // Returns the number of transfers written.
    int64_t sweep();

    // The same operations inside a caller's transaction (payment webhooks compose them).
    Outcome grant_in(DbTx& tx, const GrantRequest& request);
    Outcome refund_in(DbTx& tx, const std::string& refund_id, const std::string& grant_id,
                      const std::string& actor);

    Json::Value balance(const std::string& owner);
    std::optional<Json::Value> lease(const std::string& owner, const std::string& lease_id);
    Json::Value usage(const std::string& owner, int64_t limit, int64_t before_us);
    Json::Value leases(const std::string& owner);  // every lease of the owner, oldest first
    // Every transfer into or out of the owner's lots, oldest first (the user's data export).
    Json::Value transfers(const std::string& owner);

    // Σ posted balances = 0, Σ pending debits = Σ pending credits, cached balances = fold of
    // transfers, no overdrawn lot, every pending resolved at most once, no open lease past its
    // expiry + grace, every webhook grant has one lot. Reports, never repairs.
    std::vector<Discrepancy> reconcile(int64_t grace_us = 60'000'000);

    const LedgerConfig& config() const { return config_; }

    // Signs the text of every new lease (Ed25519 in the server); the signature is part of the
    // stored outcome, so replays return it unchanged. Unset: leases carry no signature.
    std::function<std::string(const std::string&)> lease_signer;

  private:
    int64_t sweep_in(DbTx& tx, const std::string& owner, int64_t now);
    Outcome resolve_lease(const std::string& owner, const std::string& lease_id,
                          const std::string& resolution_id, std::optional<int64_t> used_ms);

    Db& db_;
    Clock clock_;
    LedgerConfig config_;
};

// What a lease signature covers: "stemsphere-lease-v1|id|account|device|granted_ms|expires_at".
std::string lease_signing_text(const Json::Value& lease, const std::string& owner);

// The operator accounts every database has (sources may go negative, sinks only grow).
std::vector<std::string> operator_accounts();

}  // namespace stemsphere::service
