#include "service/ledger.h"

#include <algorithm>
#include <cassert>
#include <map>

#include "service/idempotency.h"

namespace stemsphere::service {
namespace {

constexpr int kConsumedShards = 16;  // avoids one hot operator row under PostgreSQL
const char* const kExpiredAccount = "op:expired";

std::string source_account(const std::string& category) {
    return "op:grants:" + category;
}

std::string consumed_account(const std::string& lease_id) {
    // FNV-1a: stable across processes and platforms, unlike std::hash.
    uint32_t h = 2166136261u;
    for (unsigned char c : lease_id) h = (h ^ c) * 16777619u;
    return "op:consumed:" + std::to_string(h % kConsumedShards);
}

int64_t to_seconds(int64_t us) {
    return us / 1'000'000;
}

// Serialises writers of one owner's lots under PostgreSQL (SQLite has a single writer anyway);
// the balance CHECK stays as the database-level safety net.
void lock_owner(DbTx& tx, const std::string& owner) {
    if (tx.dialect() == Dialect::kPostgres) {
        tx.exec_later("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", {owner});
    }
}

void ensure_account(DbTx& tx, const std::string& id, const std::string& kind,
                    const std::string& owner, bool must_not_overdraw, int64_t now) {
    tx.exec(
        "INSERT INTO ledger_account(id, kind, owner, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        {id, kind, owner.empty() ? DbValue{} : DbValue{owner}, now});
    tx.exec(
        "INSERT INTO ledger_balance(account_id, must_not_overdraw) VALUES (?, ?) "
        "ON CONFLICT (account_id) DO NOTHING",
        {id, static_cast<int64_t>(must_not_overdraw ? 1 : 0)});
}

void insert_transfer(DbTx& tx, const std::string& id, const std::string& debit,
                     const std::string& credit, int64_t amount, const char* kind,
                     const std::string& pending_id, const std::string& reverses,
                     const std::string& code, const std::string& actor, int64_t now) {
    assert(amount > 0);
    tx.exec_later(
        "INSERT INTO ledger_transfer(id, debit_account, credit_account, amount, kind, pending_id, "
        "reverses, code, actor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        {id, debit, credit, amount, std::string(kind),
         pending_id.empty() ? DbValue{} : DbValue{pending_id},
         reverses.empty() ? DbValue{} : DbValue{reverses}, code, actor, now});
}

// debit.<side> += amount; credit.<side> += amount. `side` is "posted" or "pending" (column
// names, never user input). The amount was computed from balances read under the owner's lock;
// the table's CHECK (a limited account's debits never exceed its credits) is the limit in the
// database: a debit that would overdraw fails the statement and with it the whole transaction,
// COMMIT included, and the retry reads the new balance (a `conflict`). A guard in the WHERE clause
// would instead change no row and let the COMMIT through unless its row count were awaited.
void move(DbTx& tx, const char* side, const std::string& debit, const std::string& credit,
          int64_t amount) {
    const std::string s(side);
    tx.exec_later(
        "UPDATE ledger_balance SET debits_" + s + " = debits_" + s + " + ? WHERE account_id = ?",
        {amount, debit});
    tx.exec_later(
        "UPDATE ledger_balance SET credits_" + s + " = credits_" + s + " + ? WHERE account_id = ?",
        {amount, credit});
}

void move_posted(DbTx& tx, const std::string& debit, const std::string& credit, int64_t amount) {
    move(tx, "posted", debit, credit, amount);
}

void move_pending(DbTx& tx, const std::string& debit, const std::string& credit, int64_t amount) {
    move(tx, "pending", debit, credit, amount);
}

// Resolves a pending amount `held`: `posted` (0..held) becomes posted, the rest is released.
void resolve_pending(DbTx& tx, const std::string& debit, const std::string& credit, int64_t held,
                     int64_t posted) {
    assert(posted >= 0 && posted <= held);
    tx.exec_later(
        "UPDATE ledger_balance SET debits_pending = debits_pending - ?, "
        "debits_posted = debits_posted + ? WHERE account_id = ?",
        {held, posted, debit});
    tx.exec_later(
        "UPDATE ledger_balance SET credits_pending = credits_pending - ?, "
        "credits_posted = credits_posted + ? WHERE account_id = ?",
        {held, posted, credit});
}

int64_t lot_available(DbTx& tx, const std::string& lot) {
    const auto rows = tx.query(
        "SELECT credits_posted - debits_posted - debits_pending FROM ledger_balance "
        "WHERE account_id = ?",
        {lot});
    return rows.empty() ? 0 : rows[0].integer(0);
}

Json::Value lease_json(const DbRow& r) {
    // Columns: id, device_id, state, want_ms, granted_ms, hold_mt, created_at, expires_at,
    // used_ms, posted_mt, overage_ms, resolved_at
    Json::Value v;
    v["lease_id"] = r.text(0);
    v["device_id"] = r.text(1);
    v["state"] = r.text(2);
    v["want_ms"] = Json::Int64(r.integer(3));
    v["granted_ms"] = Json::Int64(r.integer(4));
    v["hold_mt"] = Json::Int64(r.integer(5));
    v["created_at"] = Json::Int64(to_seconds(r.integer(6)));
    v["expires_at"] = Json::Int64(to_seconds(r.integer(7)));
    if (!r.is_null(8)) v["used_ms"] = Json::Int64(r.integer(8));
    if (!r.is_null(9)) v["posted_mt"] = Json::Int64(r.integer(9));
    if (!r.is_null(10)) v["overage_ms"] = Json::Int64(r.integer(10));
    if (!r.is_null(11)) v["resolved_at"] = Json::Int64(to_seconds(r.integer(11)));
    return v;
}

const char* const kLeaseColumns =
    "id, device_id, state, want_ms, granted_ms, hold_mt, created_at, expires_at, used_ms, "
    "posted_mt, overage_ms, resolved_at";
constexpr size_t kLeaseColumnCount = 12;

// The kLeaseColumns of a row that has them from column `first` on.
DbRow lease_columns(const DbRow& row, size_t first) {
    DbRow lease;
    lease.columns.assign(
        row.columns.begin() + static_cast<std::ptrdiff_t>(first),
        row.columns.begin() + static_cast<std::ptrdiff_t>(first + kLeaseColumnCount));
    return lease;
}

// How many things sweep_in(owner) would write now (due leases, lots with something left to
// expire), as one scalar SQL expression; its parameters are owner, now, owner, now. Routes read
// it in the same statement as their own data and sweep only when it is non-zero, so the common
// case costs no round trip.
const char* const kSweepDue =
    "(SELECT COUNT(*) FROM lease WHERE owner = ? AND state = 'open' AND expires_at <= ?) + "
    "(SELECT COUNT(*) FROM grant_lot l JOIN ledger_balance b ON b.account_id = l.id "
    "WHERE l.owner = ? AND (l.expires_at <= ? OR l.revoked_at IS NOT NULL) "
    "AND b.credits_posted - b.debits_posted - b.debits_pending > 0)";

}  // namespace

std::vector<std::string> operator_accounts() {
    std::vector<std::string> ids = {source_account("subscription"), source_account("purchase"),
                                    source_account("promo"), kExpiredAccount};
    for (int i = 0; i < kConsumedShards; ++i) ids.push_back("op:consumed:" + std::to_string(i));
    return ids;
}

Ledger::Ledger(Db& db, Clock clock, LedgerConfig config)
    : db_(db), clock_(std::move(clock)), config_(config) {
    assert(config_.milli_tokens_per_minute > 0);
    const int64_t now = clock_();
    db_.write([&](DbTx& tx) {
        for (const auto& id : operator_accounts())
            ensure_account(tx, id, "operator", "", false, now);
    });
}

int64_t Ledger::cost_mt(int64_t ms) const {
    return (ms * config_.milli_tokens_per_minute + 59999) / 60000;
}

int64_t Ledger::affordable_ms(int64_t mt) const {
    return mt * 60000 / config_.milli_tokens_per_minute;
}

Outcome Ledger::grant(const GrantRequest& request) {
    Outcome out;
    db_.write([&](DbTx& tx) { out = grant_in(tx, request); });
    return out;
}

Outcome Ledger::grant_in(DbTx& tx, const GrantRequest& r) {
    if (!is_valid_client_id(r.grant_id)) {
        return error_outcome(400, "invalid_field", "grant_id must be 1..128 chars [A-Za-z0-9._:-]",
                             "grant_id");
    }
    if (r.amount_mt <= 0 || r.amount_mt > 1'000'000'000'000LL) {
        return error_outcome(400, "invalid_field", "amount_mt must be 1..10^12", "amount_mt");
    }
    if (r.category != "subscription" && r.category != "purchase" && r.category != "promo") {
        return error_outcome(400, "invalid_field",
                             "category must be subscription, purchase or promo", "category");
    }
    if (r.expires_at_us <= r.effective_at_us) {
        return error_outcome(400, "invalid_field", "expires_at must be after effective_at",
                             "expires_at");
    }
    const int64_t now = clock_();
    Json::Value req;
    req["owner"] = r.owner;
    req["amount_mt"] = Json::Int64(r.amount_mt);
    req["category"] = r.category;
    req["priority"] = Json::Int64(r.priority);
    req["effective_at"] = Json::Int64(r.effective_at_us);
    req["expires_at"] = Json::Int64(r.expires_at_us);
    const std::string key = "grant:" + r.grant_id;
    lock_request(tx, key);
    if (auto replay = idempotency_replay(tx, key, req)) return *replay;
    if (tx.query("SELECT 1 FROM account WHERE id = ? AND deleted_at IS NULL", {r.owner}).empty()) {
        return error_outcome(404, "account_not_found", "no such account", "account_id");
    }
    lock_owner(tx, r.owner);
    const std::string lot = "lot:" + r.grant_id;
    const std::string source = source_account(r.category);
    ensure_account(tx, lot, "lot", r.owner, true, now);
    const int64_t seq =
        tx.query("SELECT COUNT(*) FROM grant_lot WHERE owner = ?", {r.owner}).at(0).integer(0);
    tx.exec(
        "INSERT INTO grant_lot(id, grant_id, owner, category, priority, amount, effective_at, "
        "expires_at, source_event_id, created_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        {lot, r.grant_id, r.owner, r.category, r.priority, r.amount_mt, r.effective_at_us,
         r.expires_at_us, r.source_event_id.empty() ? DbValue{} : DbValue{r.source_event_id}, now,
         seq});
    insert_transfer(tx, "grant:" + r.grant_id, source, lot, r.amount_mt, "single", "", "",
                    "grant_" + r.category, r.actor, now);
    move_posted(tx, source, lot, r.amount_mt);
    Outcome out;
    out.status = 201;
    out.body["grant_id"] = r.grant_id;
    out.body["account_id"] = r.owner;
    out.body["amount_mt"] = Json::Int64(r.amount_mt);
    out.body["category"] = r.category;
    out.body["expires_at"] = Json::Int64(to_seconds(r.expires_at_us));
    idempotency_store(tx, key, req, out, now);
    return out;
}

Outcome Ledger::open_lease(const std::string& owner, const LeaseRequest& r) {
    if (!is_valid_client_id(r.lease_id)) {
        return error_outcome(400, "invalid_field", "lease_id must be 1..128 chars [A-Za-z0-9._:-]",
                             "lease_id");
    }
    if (!is_valid_client_id(r.device_id)) {
        return error_outcome(400, "invalid_field", "device_id must be 1..128 chars [A-Za-z0-9._:-]",
                             "device_id");
    }
    if (r.want_ms <= 0 || r.want_ms > config_.max_lease_ms) {
        return error_outcome(400, "invalid_field",
                             "want_ms must be 1.." + std::to_string(config_.max_lease_ms),
                             "want_ms");
    }
    if (r.min_ms <= 0 || r.min_ms > r.want_ms) {
        return error_outcome(400, "invalid_field", "min_ms must be 1..want_ms", "min_ms");
    }
    const int64_t ttl_s = r.ttl_s.value_or(config_.default_lease_ttl_s);
    if (ttl_s < 1 || ttl_s > config_.max_lease_ttl_s) {
        return error_outcome(400, "invalid_field",
                             "ttl_s must be 1.." + std::to_string(config_.max_lease_ttl_s),
                             "ttl_s");
    }
    Json::Value req;
    req["account"] = owner;
    req["device_id"] = r.device_id;
    req["want_ms"] = Json::Int64(r.want_ms);
    req["min_ms"] = Json::Int64(r.min_ms);
    req["ttl_s"] = Json::Int64(ttl_s);
    const std::string key = "lease:" + r.lease_id;
    Outcome out;
    db_.write([&](DbTx& tx) {
        lock_request(tx, key, owner);
        const int64_t now = clock_();
        if (auto replay = idempotency_replay(tx, key, req)) {
            out = replay->body.get("field", "") == "account"
                      ? error_outcome(409, "id_conflict", "this lease_id is already in use",
                                      "lease_id")
                      : *replay;
            return;
        }
        // One statement: what the owner's sweep would do, the open leases, and the usable lots in
        // draw-down order (priority, then soonest expiry, then oldest grant).
        auto read_state = [&] {
            return tx.query(
                "SELECT s.sweep_due, c.open_count, u.id, u.available FROM (SELECT " +
                    std::string(kSweepDue) +
                    " AS sweep_due) s CROSS JOIN (SELECT COUNT(*) AS open_count FROM lease WHERE "
                    "owner = ? AND state = 'open') c LEFT JOIN (SELECT l.id AS id, "
                    "b.credits_posted - b.debits_posted - b.debits_pending AS available, "
                    "l.priority AS priority, l.expires_at AS lot_expires, l.seq AS seq "
                    "FROM grant_lot l JOIN ledger_balance b ON b.account_id = l.id "
                    "WHERE l.owner = ? AND l.effective_at <= ? AND l.expires_at > ? "
                    "AND l.revoked_at IS NULL "
                    "AND b.credits_posted - b.debits_posted - b.debits_pending > 0) u ON 1 = 1 "
                    "ORDER BY u.priority, u.lot_expires, u.seq",
                {owner, now, owner, now, owner, owner, now, now});
        };
        auto state = read_state();
        if (state.at(0).integer(0) > 0) {
            sweep_in(tx, owner, now);
            state = read_state();
        }
        const int64_t open = state.at(0).integer(1);
        if (open >= config_.max_open_leases) {
            // Not stored: the same id may succeed once another lease is settled.
            out = error_outcome(429, "too_many_leases",
                                "settle or void an open lease first (limit " +
                                    std::to_string(config_.max_open_leases) + ")");
            return;
        }
        struct Lot {
            std::string id;
            int64_t available;
        };
        std::vector<Lot> lots;
        for (const auto& row : state) {
            if (!row.is_null(2)) lots.push_back({row.text(2), row.integer(3)});
        }
        int64_t available = 0;
        for (const auto& lot : lots) available += lot.available;
        const int64_t granted_ms = std::min(r.want_ms, affordable_ms(available));
        if (granted_ms < r.min_ms) {
            out = error_outcome(402, "insufficient_tokens",
                                "the balance pays for " + std::to_string(granted_ms) +
                                    " ms, at least " + std::to_string(r.min_ms) + " ms asked");
            out.body["available_mt"] = Json::Int64(available);
            idempotency_store(tx, key, req, out, now);  // terminal for this id
            return;
        }
        const int64_t hold = cost_mt(granted_ms);
        assert(hold <= available);
        const int64_t expires_at = now + ttl_s * 1'000'000;
        DbRow lease;  // kLeaseColumns of the new lease
        lease.columns = {r.lease_id, r.device_id, std::string("open"), r.want_ms, granted_ms,
                         hold,       now,         expires_at,          DbValue{}, DbValue{},
                         DbValue{},  DbValue{}};
        tx.exec_later(
            "INSERT INTO lease(id, owner, device_id, want_ms, granted_ms, hold_mt, state, "
            "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?)",
            {r.lease_id, owner, r.device_id, r.want_ms, granted_ms, hold, now, expires_at});
        const std::string consumed = consumed_account(r.lease_id);
        int64_t remaining = hold;
        int64_t seq = 0;
        for (const auto& lot : lots) {
            if (remaining == 0) break;
            const int64_t take = std::min(remaining, lot.available);
            const std::string transfer_id = "lease:" + r.lease_id + ":" + std::to_string(seq);
            insert_transfer(tx, transfer_id, lot.id, consumed, take, "pending", "", "",
                            "lease_hold", "account:" + owner, now);
            move_pending(tx, lot.id, consumed, take);
            tx.exec_later(
                "INSERT INTO lease_part(lease_id, seq, lot_id, pending_transfer_id, amount) "
                "VALUES (?, ?, ?, ?, ?)",
                {r.lease_id, seq, lot.id, transfer_id, take});
            remaining -= take;
            ++seq;
        }
        assert(remaining == 0);
        out.status = 201;
        out.body = lease_json(lease);
        if (lease_signer) {
            const std::string message = lease_signing_text(out.body, owner);
            out.body["signature"] = lease_signer(message);
        }
        idempotency_store(tx, key, req, out, now);
    });
    return out;
}

std::string lease_signing_text(const Json::Value& lease, const std::string& owner) {
    return "stemsphere-lease-v1|" + lease["lease_id"].asString() + "|" + owner + "|" +
           lease["device_id"].asString() + "|" + std::to_string(lease["granted_ms"].asInt64()) +
           "|" + std::to_string(lease["expires_at"].asInt64());
}

Outcome Ledger::settle_lease(const std::string& owner, const std::string& lease_id,
                             const std::string& settle_id, int64_t used_ms) {
    if (used_ms < 0 || used_ms > config_.max_lease_ms * 4) {
        return error_outcome(400, "invalid_field",
                             "used_ms must be 0.." + std::to_string(config_.max_lease_ms * 4),
                             "used_ms");
    }
    return resolve_lease(owner, lease_id, settle_id, used_ms);
}

Outcome Ledger::void_lease(const std::string& owner, const std::string& lease_id,
                           const std::string& void_id) {
    return resolve_lease(owner, lease_id, void_id, std::nullopt);
}

Outcome Ledger::resolve_lease(const std::string& owner, const std::string& lease_id,
                              const std::string& resolution_id, std::optional<int64_t> used_ms) {
    const char* id_field = used_ms ? "settle_id" : "void_id";
    if (!is_valid_client_id(resolution_id)) {
        return error_outcome(400, "invalid_field",
                             std::string(id_field) + " must be 1..128 chars [A-Za-z0-9._:-]",
                             id_field);
    }
    Json::Value req;
    req["account"] = owner;
    req["lease_id"] = lease_id;
    req["action"] = used_ms ? "settle" : "void";
    if (used_ms) req["used_ms"] = Json::Int64(*used_ms);
    const std::string key = "resolve:" + resolution_id;
    Outcome out;
    db_.write([&](DbTx& tx) {
        lock_request(tx, key, owner);
        const int64_t now = clock_();
        if (auto replay = idempotency_replay(tx, key, req)) {
            out = replay->body.get("field", "") == "account"
                      ? error_outcome(409, "id_conflict", "this id is already in use", id_field)
                      : *replay;
            return;
        }
        // One statement: what the owner's sweep would do (a lease past its expiry is expired,
        // not settled), the lease (kLeaseColumns from column 1), and its parts (from column 13).
        auto read_state = [&] {
            return tx.query(
                "SELECT s.sweep_due, le.id, le.device_id, le.state, le.want_ms, "
                "le.granted_ms, le.hold_mt, le.created_at, le.expires_at, le.used_ms, "
                "le.posted_mt, le.overage_ms, le.resolved_at, p.lot_id, "
                "p.pending_transfer_id, p.amount FROM (SELECT " +
                    std::string(kSweepDue) +
                    " AS sweep_due) s LEFT JOIN lease le ON le.id = ? AND le.owner = ? "
                    "LEFT JOIN lease_part p ON p.lease_id = le.id ORDER BY p.seq",
                {owner, now, owner, now, lease_id, owner});
        };
        auto rows = read_state();
        if (rows.at(0).integer(0) > 0) {
            sweep_in(tx, owner, now);
            rows = read_state();
        }
        if (rows.at(0).is_null(1)) {
            // Not stored: another user's lease looks exactly like a missing one.
            out = error_outcome(404, "lease_not_found", "no such lease", "lease_id");
            return;
        }
        const DbRow lease = lease_columns(rows[0], 1);
        const std::string state = lease.text(2);
        if (state != "open") {
            out = error_outcome(409, "lease_already_" + state,
                                "the lease is already " + state + "; it resolves only once");
            out.body["lease"] = lease_json(lease);
            idempotency_store(tx, key, req, out, now);
            return;
        }
        const int64_t granted_ms = lease.integer(4);
        const int64_t hold = lease.integer(5);
        const int64_t posted_total = used_ms ? std::min(cost_mt(*used_ms), hold) : 0;
        const int64_t overage_ms = used_ms ? std::max<int64_t>(0, *used_ms - granted_ms) : 0;
        const std::string consumed = consumed_account(lease_id);
        int64_t to_post = posted_total;
        for (const auto& part : rows) {
            const std::string& lot = part.text(13);
            const std::string& pending_id = part.text(14);
            const int64_t held = part.integer(15);
            const int64_t post = std::min(to_post, held);
            to_post -= post;
            if (post > 0) {
                insert_transfer(tx, pending_id + ":post", lot, consumed, post, "post", pending_id,
                                "", "lease_settle", "account:" + owner, now);
            } else {
                insert_transfer(tx, pending_id + ":void", lot, consumed, held, "void", pending_id,
                                "", used_ms ? "lease_settle" : "lease_void", "account:" + owner,
                                now);
            }
            resolve_pending(tx, lot, consumed, held, post);
        }
        assert(to_post == 0);
        // No row count awaited: every part's resolution transfer above is UNIQUE(pending_id), so
        // a lease resolved by anyone else since it was read fails this transaction there.
        const std::string new_state = used_ms ? "settled" : "voided";
        const DbValue used = used_ms ? DbValue{*used_ms} : DbValue{};
        tx.exec_later(
            "UPDATE lease SET state = ?, resolution_id = ?, used_ms = ?, posted_mt = ?, "
            "overage_ms = ?, resolved_at = ? WHERE id = ? AND state = 'open'",
            {new_state, resolution_id, used, posted_total, overage_ms, now, lease_id});
        if (used_ms) {
            tx.exec_later(
                "INSERT INTO usage_event(id, owner, lease_id, device_id, used_ms, posted_mt, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                {resolution_id, owner, lease_id, lease.text(1), *used_ms, posted_total, now});
        }
        DbRow resolved = lease;
        resolved.columns[2] = new_state;
        resolved.columns[8] = used;
        resolved.columns[9] = posted_total;
        resolved.columns[10] = overage_ms;
        resolved.columns[11] = now;
        out.status = 200;
        out.body = lease_json(resolved);
        idempotency_store(tx, key, req, out, now);
    });
    return out;
}

Outcome Ledger::refund_grant(const std::string& refund_id, const std::string& grant_id,
                             const std::string& actor) {
    Outcome out;
    db_.write([&](DbTx& tx) { out = refund_in(tx, refund_id, grant_id, actor); });
    return out;
}

Outcome Ledger::refund_in(DbTx& tx, const std::string& refund_id, const std::string& grant_id,
                          const std::string& actor) {
    if (!is_valid_client_id(refund_id)) {
        return error_outcome(400, "invalid_field", "refund_id must be 1..128 chars [A-Za-z0-9._:-]",
                             "refund_id");
    }
    const int64_t now = clock_();
    Json::Value req;
    req["grant_id"] = grant_id;
    const std::string key = "refund:" + refund_id;
    lock_request(tx, key);
    if (auto replay = idempotency_replay(tx, key, req)) return *replay;
    const auto lots =
        tx.query("SELECT id, owner, category, amount, revoked_at FROM grant_lot WHERE grant_id = ?",
                 {grant_id});
    if (lots.empty()) return error_outcome(404, "grant_not_found", "no such grant", "grant_id");
    if (!lots[0].is_null(4)) {
        Outcome out =
            error_outcome(409, "grant_already_refunded", "this grant was already refunded");
        idempotency_store(tx, key, req, out, now);
        return out;
    }
    const std::string lot = lots[0].text(0);
    lock_owner(tx, lots[0].text(1));
    const int64_t take = lot_available(tx, lot);
    const std::string source = source_account(lots[0].text(2));
    if (take > 0) {
        // The refund is the grant's reversal unless an operator already reversed it.
        const bool reversed =
            !tx.query("SELECT 1 FROM ledger_transfer WHERE reverses = ?", {"grant:" + grant_id})
                 .empty();
        insert_transfer(tx, "refund:" + refund_id, lot, source, take, "single", "",
                        reversed ? "" : "grant:" + grant_id, "refund", actor, now);
        move_posted(tx, lot, source, take);
    }
    // Holds still pending on the lot are released into it later; the sweeper takes them then.
    tx.exec("UPDATE grant_lot SET revoked_at = ? WHERE id = ?", {now, lot});
    Outcome out;
    out.body["grant_id"] = grant_id;
    out.body["refunded_mt"] = Json::Int64(take);
    out.body["shortfall_mt"] = Json::Int64(lots[0].integer(3) - take);
    idempotency_store(tx, key, req, out, now);
    return out;
}

Outcome Ledger::reverse_transfer(const std::string& reverse_id, const std::string& transfer_id,
                                 const std::string& actor) {
    if (!is_valid_client_id(reverse_id)) {
        return error_outcome(400, "invalid_field",
                             "reverse_id must be 1..128 chars [A-Za-z0-9._:-]", "reverse_id");
    }
    Json::Value req;
    req["transfer_id"] = transfer_id;
    const std::string key = "reverse:" + reverse_id;
    Outcome out;
    db_.write([&](DbTx& tx) {
        lock_request(tx, key);
        const int64_t now = clock_();
        if (auto replay = idempotency_replay(tx, key, req)) {
            out = *replay;
            return;
        }
        const auto rows = tx.query(
            "SELECT debit_account, credit_account, amount, kind FROM ledger_transfer WHERE id = ?",
            {transfer_id});
        if (rows.empty()) {
            out = error_outcome(404, "transfer_not_found", "no such transfer", "transfer_id");
            return;
        }
        if (rows[0].text(3) != "single") {
            out =
                error_outcome(409, "not_reversible",
                              "only single transfers are reversed; leases resolve by settle/void");
            idempotency_store(tx, key, req, out, now);
            return;
        }
        if (!tx.query("SELECT 1 FROM ledger_transfer WHERE reverses = ?", {transfer_id}).empty()) {
            out = error_outcome(409, "already_reversed", "this transfer was already reversed");
            idempotency_store(tx, key, req, out, now);
            return;
        }
        const std::string from = rows[0].text(1);  // reversal debits the original credit side
        const std::string to = rows[0].text(0);
        const int64_t amount = rows[0].integer(2);
        const auto limit = tx.query(
            "SELECT must_not_overdraw, credits_posted - debits_posted - debits_pending "
            "FROM ledger_balance WHERE account_id = ?",
            {from});
        if (limit.at(0).integer(0) != 0 && limit[0].integer(1) < amount) {
            out = error_outcome(409, "insufficient_tokens",
                                "the credited account no longer holds the amount");
            out.body["available_mt"] = Json::Int64(limit[0].integer(1));
            idempotency_store(tx, key, req, out, now);
            return;
        }
        insert_transfer(tx, "reverse:" + reverse_id, from, to, amount, "single", "", transfer_id,
                        "reversal", actor, now);
        move_posted(tx, from, to, amount);
        out.status = 201;
        out.body["transfer_id"] = "reverse:" + reverse_id;
        out.body["reverses"] = transfer_id;
        out.body["amount_mt"] = Json::Int64(amount);
        idempotency_store(tx, key, req, out, now);
    });
    return out;
}

// The sweeper works one owner at a time, under that owner's lock, the lock every route takes
// before it expires the owner's due leases itself: whoever comes first expires a lease, the
// other finds it expired. An owner whose lock is busy is skipped (the route holding it sweeps
// that owner anyway), so sweepers on every replica never wait for each other or for a route.
int64_t Ledger::sweep() {
    const int64_t now = clock_();
    std::vector<std::string> owners;
    db_.read([&](DbTx& tx) {
        for (const auto& r :
             tx.query("SELECT DISTINCT owner FROM lease WHERE state = 'open' AND expires_at <= ? "
                      "LIMIT 1000",
                      {now})) {
            owners.push_back(r.text(0));
        }
        for (const auto& r :
             tx.query("SELECT DISTINCT l.owner FROM grant_lot l JOIN ledger_balance b ON "
                      "b.account_id = l.id WHERE (l.expires_at <= ? OR l.revoked_at IS NOT NULL) "
                      "AND b.credits_posted - b.debits_posted - b.debits_pending > 0 LIMIT 1000",
                      {now})) {
            owners.push_back(r.text(0));
        }
    });
    std::sort(owners.begin(), owners.end());
    owners.erase(std::unique(owners.begin(), owners.end()), owners.end());
    int64_t written = 0;
    for (const auto& owner : owners) {
        db_.write([&](DbTx& tx) {
            if (tx.dialect() == Dialect::kPostgres &&
                tx.query("SELECT pg_try_advisory_xact_lock(hashtextextended(?, 0))", {owner})
                        .at(0)
                        .integer(0) == 0) {
                return;
            }
            written += sweep_in(tx, owner, clock_());
        });
    }
    return written;
}

int64_t Ledger::sweep_in(DbTx& tx, const std::string& owner, int64_t now) {
    int64_t written = 0;
    const auto due =
        tx.query("SELECT id FROM lease WHERE owner = ? AND state = 'open' AND expires_at <= ?",
                 {owner, now});
    for (const auto& row : due) {
        const std::string& lease_id = row.text(0);
        // State first: the row lock and the `state = 'open'` guard make this the one place a
        // lease is expired, even for a caller that does not hold the owner's lock.
        if (tx.exec("UPDATE lease SET state = 'expired', resolved_at = ? WHERE id = ? AND "
                    "state = 'open'",
                    {now, lease_id}) != 1) {
            continue;
        }
        const std::string consumed = consumed_account(lease_id);
        for (const auto& part :
             tx.query("SELECT lot_id, pending_transfer_id, amount FROM lease_part "
                      "WHERE lease_id = ? ORDER BY seq",
                      {lease_id})) {
            insert_transfer(tx, part.text(1) + ":expire", part.text(0), consumed, part.integer(2),
                            "expire", part.text(1), "", "lease_expired", "system", now);
            resolve_pending(tx, part.text(0), consumed, part.integer(2), 0);
            ++written;
        }
    }
    // What is left in expired or refunded lots leaves the wallet (holds on them stay reserved
    // until resolved; a later sweep takes what they release).
    const std::string lot_filter =
        "FROM grant_lot l JOIN ledger_balance b ON b.account_id = l.id WHERE "
        "(l.expires_at <= ? OR l.revoked_at IS NOT NULL) "
        "AND b.credits_posted - b.debits_posted - b.debits_pending > 0";
    const auto lots = tx.query(
        "SELECT l.id, b.credits_posted - b.debits_posted - b.debits_pending, l.revoked_at " +
            lot_filter + " AND l.owner = ?",
        {now, owner});
    for (const auto& lot : lots) {
        const std::string& id = lot.text(0);
        const int64_t n =
            tx.query(
                  "SELECT COUNT(*) FROM ledger_transfer WHERE debit_account = ? AND code IN "
                  "('lot_expired', 'lot_revoked')",
                  {id})
                .at(0)
                .integer(0);
        insert_transfer(tx, "lot-expire:" + id + ":" + std::to_string(n), id, kExpiredAccount,
                        lot.integer(1), "single", "", "",
                        lot.is_null(2) ? "lot_expired" : "lot_revoked", "system", now);
        move_posted(tx, id, kExpiredAccount, lot.integer(1));
        ++written;
    }
    return written;
}

Json::Value Ledger::balance(const std::string& owner) {
    Json::Value out;
    db_.read([&](DbTx& tx) {
        const int64_t now = clock_();
        int64_t available = 0, held = 0;
        Json::Value lots(Json::arrayValue);
        for (const auto& r : tx.query(
                 "SELECT l.grant_id, l.category, l.priority, l.amount, l.effective_at, "
                 "l.expires_at, "
                 "l.revoked_at, b.credits_posted - b.debits_posted - b.debits_pending, "
                 "b.debits_pending FROM grant_lot l JOIN ledger_balance b ON b.account_id = l.id "
                 "WHERE l.owner = ? ORDER BY l.priority, l.expires_at, l.seq",
                 {owner})) {
            const bool usable = r.is_null(6) && r.integer(4) <= now && r.integer(5) > now;
            if (!usable && r.integer(8) == 0 && r.integer(7) == 0) continue;
            Json::Value lot;
            lot["grant_id"] = r.text(0);
            lot["category"] = r.text(1);
            lot["priority"] = Json::Int64(r.integer(2));
            lot["granted_mt"] = Json::Int64(r.integer(3));
            lot["available_mt"] = Json::Int64(usable ? r.integer(7) : 0);
            lot["held_mt"] = Json::Int64(r.integer(8));
            lot["expires_at"] = Json::Int64(to_seconds(r.integer(5)));
            lots.append(lot);
            if (usable) available += r.integer(7);
            held += r.integer(8);
        }
        // Leases past expiry that the sweeper has not reached yet are already free to use.
        out["account_id"] = owner;
        out["available_mt"] = Json::Int64(available);
        out["held_mt"] = Json::Int64(held);
        out["available_ms"] = Json::Int64(affordable_ms(available));
        out["milli_tokens_per_minute"] = Json::Int64(config_.milli_tokens_per_minute);
        out["lots"] = lots;
    });
    return out;
}

std::optional<Json::Value> Ledger::lease(const std::string& owner, const std::string& lease_id) {
    const auto rows = db_.read_one(
        "SELECT " + std::string(kLeaseColumns) + " FROM lease WHERE id = ? AND owner = ?",
        {lease_id, owner});
    if (rows.empty()) return std::nullopt;
    return lease_json(rows[0]);
}

Json::Value Ledger::leases(const std::string& owner) {
    Json::Value items(Json::arrayValue);
    db_.read([&](DbTx& tx) {
        for (const auto& r : tx.query("SELECT " + std::string(kLeaseColumns) +
                                          " FROM lease WHERE owner = ? ORDER BY created_at, id",
                                      {owner})) {
            items.append(lease_json(r));
        }
    });
    return items;
}

Json::Value Ledger::usage(const std::string& owner, int64_t limit, int64_t before_us) {
    Json::Value items(Json::arrayValue);
    db_.read([&](DbTx& tx) {
        for (const auto& r : tx.query(
                 "SELECT id, lease_id, device_id, used_ms, posted_mt, created_at FROM usage_event "
                 "WHERE owner = ? AND created_at < ? ORDER BY created_at DESC, id LIMIT ?",
                 {owner, before_us, limit})) {
            Json::Value item;
            item["settle_id"] = r.text(0);
            item["lease_id"] = r.text(1);
            item["device_id"] = r.text(2);
            item["used_ms"] = Json::Int64(r.integer(3));
            item["posted_mt"] = Json::Int64(r.integer(4));
            item["at"] = Json::Int64(to_seconds(r.integer(5)));
            item["at_us"] = Json::Int64(r.integer(5));
            items.append(item);
        }
    });
    Json::Value out;
    out["items"] = items;
    return out;
}

std::vector<Discrepancy> Ledger::reconcile(int64_t grace_us) {
    std::vector<Discrepancy> found;
    db_.read([&](DbTx& tx) {
        const int64_t now = clock_();
        struct Sums {
            int64_t dp = 0, cp = 0, dq = 0, cq = 0;
        };
        std::map<std::string, Sums> folded;
        std::map<std::string, int64_t> pending_amount;
        for (const auto& t : tx.query(
                 "SELECT t.debit_account, t.credit_account, t.amount, t.kind, p.amount "
                 "FROM ledger_transfer t LEFT JOIN ledger_transfer p ON p.id = t.pending_id")) {
            Sums& d = folded[t.text(0)];
            Sums& c = folded[t.text(1)];
            const int64_t a = t.integer(2);
            const std::string& kind = t.text(3);
            if (kind == "single") {
                d.dp += a;
                c.cp += a;
            } else if (kind == "pending") {
                d.dq += a;
                c.cq += a;
            } else {
                const int64_t held = t.integer(4);
                d.dq -= held;
                c.cq -= held;
                if (kind == "post") {
                    d.dp += a;
                    c.cp += a;
                }
            }
        }
        int64_t sum_posted = 0, sum_dq = 0, sum_cq = 0;
        for (const auto& b : tx.query("SELECT account_id, debits_posted, credits_posted, "
                                      "debits_pending, credits_pending, "
                                      "must_not_overdraw FROM ledger_balance")) {
            const Sums& f = folded[b.text(0)];
            if (f.dp != b.integer(1) || f.cp != b.integer(2) || f.dq != b.integer(3) ||
                f.cq != b.integer(4)) {
                found.push_back({"balance_not_fold_of_transfers", b.text(0)});
            }
            if (b.integer(5) != 0 && b.integer(1) + b.integer(3) > b.integer(2)) {
                found.push_back({"overdrawn", b.text(0)});
            }
            sum_posted += b.integer(2) - b.integer(1);
            sum_dq += b.integer(3);
            sum_cq += b.integer(4);
        }
        if (sum_posted != 0) {
            found.push_back({"posted_sum_not_zero", std::to_string(sum_posted)});
        }
        if (sum_dq != sum_cq) {
            found.push_back(
                {"pending_sides_differ", std::to_string(sum_dq) + " vs " + std::to_string(sum_cq)});
        }
        for (const auto& r : tx.query(
                 "SELECT pending_id, COUNT(*) FROM ledger_transfer WHERE pending_id IS NOT NULL "
                 "GROUP BY pending_id HAVING COUNT(*) > 1")) {
            found.push_back({"pending_resolved_twice", r.text(0)});
        }
        for (const auto& r :
             tx.query("SELECT l.id, l.state, COUNT(r.id) FROM lease l JOIN lease_part p ON "
                      "p.lease_id = l.id "
                      "LEFT JOIN ledger_transfer r ON r.pending_id = p.pending_transfer_id "
                      "GROUP BY l.id, l.state")) {
            const bool open = r.text(1) == "open";
            const int64_t resolved = r.integer(2);
            if (open ? resolved != 0 : resolved == 0) {
                found.push_back({"lease_state_disagrees_with_transfers", r.text(0)});
            }
        }
        for (const auto& r :
             tx.query("SELECT id FROM lease WHERE state = 'open' AND expires_at < ?",
                      {now - grace_us})) {
            found.push_back({"open_lease_past_expiry", r.text(0)});
        }
        for (const auto& r :
             tx.query("SELECT w.id FROM webhook_event w WHERE w.status = 201 AND w.type IN "
                      "('subscription.renewed', 'credit_pack.purchased') AND NOT EXISTS "
                      "(SELECT 1 FROM grant_lot g WHERE g.source_event_id = w.id)")) {
            found.push_back({"webhook_without_grant", r.text(0)});
        }
        for (const auto& r : tx.query(
                 "SELECT g.id FROM grant_lot g WHERE NOT EXISTS (SELECT 1 FROM ledger_transfer t "
                 "WHERE t.id = 'grant:' || g.grant_id AND t.amount = g.amount)")) {
            found.push_back({"lot_without_grant_transfer", r.text(0)});
        }
    });
    return found;
}

Json::Value Ledger::transfers(const std::string& owner) {
    Json::Value out(Json::arrayValue);
    db_.read([&](DbTx& tx) {
        for (const auto& r :
             tx.query("SELECT t.id, t.debit_account, t.credit_account, t.amount, t.kind, t.code, "
                      "t.created_at FROM ledger_transfer t JOIN grant_lot l ON l.id = "
                      "t.debit_account OR l.id = t.credit_account WHERE l.owner = ? "
                      "ORDER BY t.created_at, t.id",
                      {owner})) {
            Json::Value t;
            t["transfer_id"] = r.text(0);
            t["debit_account"] = r.text(1);
            t["credit_account"] = r.text(2);
            t["amount_mt"] = Json::Int64(r.integer(3));
            t["kind"] = r.text(4);
            t["code"] = r.text(5);
            t["at"] = Json::Int64(to_seconds(r.integer(6)));
            out.append(t);
        }
    });
    return out;
}

}  // namespace stemsphere::service
