#include "service/schema.h"

#include <string>
#include <vector>

namespace stemsphere::service {
namespace {

// Version 1: accounts, sign-in, ledger, leases, usage, logs, outbox.
const char* const kV1Portable[] = {
    R"(CREATE TABLE account (
        id TEXT PRIMARY KEY,
        email TEXT UNIQUE,
        name TEXT,
        password_hash TEXT,
        email_verified {INT} NOT NULL DEFAULT 0,
        totp_secret TEXT,
        totp_pending_secret TEXT,
        totp_enabled {INT} NOT NULL DEFAULT 0,
        totp_last_step {INT} NOT NULL DEFAULT 0,
        created_at {INT} NOT NULL,
        deleted_at {INT})
      {STRICT})",
    R"(CREATE TABLE backup_code (
        account_id TEXT NOT NULL REFERENCES account(id),
        code_hash TEXT NOT NULL,
        used_at {INT},
        PRIMARY KEY (account_id, code_hash)) {STRICT})",
    R"(CREATE TABLE email_token (
        token_hash TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES account(id),
        purpose TEXT NOT NULL,
        expires_at {INT} NOT NULL,
        used_at {INT}) {STRICT})",
    R"(CREATE TABLE mail_outbox (
        id TEXT PRIMARY KEY,
        account_id TEXT,
        to_addr TEXT,
        subject TEXT NOT NULL,
        body TEXT,
        created_at {INT} NOT NULL,
        sent_at {INT}) {STRICT})",
    R"(CREATE TABLE session (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES account(id),
        device_id TEXT NOT NULL,
        device_name TEXT NOT NULL,
        client_id TEXT NOT NULL,
        created_at {INT} NOT NULL,
        last_used_at {INT} NOT NULL,
        revoked_at {INT},
        revoke_reason TEXT) {STRICT})",
    "CREATE INDEX session_by_account ON session(account_id)",
    R"(CREATE TABLE refresh_token (
        token_hash TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES session(id),
        created_at {INT} NOT NULL,
        used_at {INT}) {STRICT})",
    R"(CREATE TABLE device_grant (
        device_code_hash TEXT PRIMARY KEY,
        user_code TEXT NOT NULL UNIQUE,
        client_id TEXT NOT NULL,
        device_name TEXT NOT NULL,
        created_at {INT} NOT NULL,
        expires_at {INT} NOT NULL,
        interval_s {INT} NOT NULL,
        last_poll_at {INT} NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        account_id TEXT) {STRICT})",
    R"(CREATE TABLE security_log (
        id TEXT PRIMARY KEY,
        account_id TEXT,
        event TEXT NOT NULL,
        ip TEXT,
        detail TEXT,
        created_at {INT} NOT NULL) {STRICT})",
    "CREATE INDEX security_log_by_account ON security_log(account_id, created_at)",
    "CREATE INDEX security_log_by_time ON security_log(created_at)",
    R"(CREATE TABLE ledger_account (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        owner TEXT,
        created_at {INT} NOT NULL) {STRICT})",
    // Cached per-account sums (derived from ledger_transfer; reconciliation re-derives them).
    // The CHECK is the database-enforced "debits must not exceed credits" limit of wallets.
    R"(CREATE TABLE ledger_balance (
        account_id TEXT PRIMARY KEY REFERENCES ledger_account(id),
        debits_posted {INT} NOT NULL DEFAULT 0,
        credits_posted {INT} NOT NULL DEFAULT 0,
        debits_pending {INT} NOT NULL DEFAULT 0,
        credits_pending {INT} NOT NULL DEFAULT 0,
        must_not_overdraw {INT} NOT NULL,
        CHECK (debits_pending >= 0 AND credits_pending >= 0),
        CHECK (must_not_overdraw = 0 OR debits_posted + debits_pending <= credits_posted))
      {STRICT})",
    R"(CREATE TABLE ledger_transfer (
        id TEXT PRIMARY KEY,
        debit_account TEXT NOT NULL REFERENCES ledger_account(id),
        credit_account TEXT NOT NULL REFERENCES ledger_account(id),
        amount {INT} NOT NULL CHECK (amount > 0),
        kind TEXT NOT NULL CHECK (kind IN ('single','pending','post','void','expire')),
        pending_id TEXT REFERENCES ledger_transfer(id),
        reverses TEXT REFERENCES ledger_transfer(id),
        code TEXT NOT NULL,
        actor TEXT NOT NULL,
        created_at {INT} NOT NULL) {STRICT})",
    // At most one resolution per pending transfer and one reversal per transfer, in the database.
    "CREATE UNIQUE INDEX ledger_transfer_one_resolution ON ledger_transfer(pending_id)",
    "CREATE UNIQUE INDEX ledger_transfer_one_reversal ON ledger_transfer(reverses)",
    R"(CREATE TABLE grant_lot (
        id TEXT PRIMARY KEY REFERENCES ledger_account(id),
        grant_id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        category TEXT NOT NULL CHECK (category IN ('subscription','purchase','promo')),
        priority {INT} NOT NULL,
        amount {INT} NOT NULL,
        effective_at {INT} NOT NULL,
        expires_at {INT} NOT NULL,
        source_event_id TEXT UNIQUE,
        revoked_at {INT},
        created_at {INT} NOT NULL,
        seq {INT} NOT NULL) {STRICT})",
    "CREATE INDEX grant_lot_by_owner ON grant_lot(owner, priority, expires_at, seq)",
    "CREATE INDEX grant_lot_by_expiry ON grant_lot(expires_at)",
    R"(CREATE TABLE lease (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        device_id TEXT NOT NULL,
        want_ms {INT} NOT NULL,
        granted_ms {INT} NOT NULL,
        hold_mt {INT} NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open','settled','voided','expired')),
        created_at {INT} NOT NULL,
        expires_at {INT} NOT NULL,
        resolution_id TEXT UNIQUE,
        used_ms {INT},
        posted_mt {INT},
        overage_ms {INT},
        resolved_at {INT}) {STRICT})",
    "CREATE INDEX lease_open_by_owner ON lease(owner, state, expires_at)",
    "CREATE INDEX lease_by_state_expiry ON lease(state, expires_at)",
    R"(CREATE TABLE lease_part (
        lease_id TEXT NOT NULL REFERENCES lease(id),
        seq {INT} NOT NULL,
        lot_id TEXT NOT NULL,
        pending_transfer_id TEXT NOT NULL,
        amount {INT} NOT NULL,
        PRIMARY KEY (lease_id, seq)) {STRICT})",
    R"(CREATE TABLE usage_event (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        lease_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        used_ms {INT} NOT NULL,
        posted_mt {INT} NOT NULL,
        created_at {INT} NOT NULL) {STRICT})",
    "CREATE INDEX usage_event_by_owner ON usage_event(owner, created_at)",
    R"(CREATE TABLE idempotency_record (
        key TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        status {INT} NOT NULL,
        response TEXT NOT NULL,
        created_at {INT} NOT NULL) {STRICT})",
    R"(CREATE TABLE webhook_event (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        status {INT} NOT NULL,
        response TEXT NOT NULL,
        received_at {INT} NOT NULL) {STRICT})",
    R"(CREATE TABLE server_secret (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL) {STRICT})",
    R"(CREATE TABLE job_lock (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until_at {INT} NOT NULL) {STRICT})",
};

const char* const kV1SqliteTriggers[] = {
    R"(CREATE TRIGGER ledger_transfer_no_update BEFORE UPDATE ON ledger_transfer
       BEGIN SELECT RAISE(ABORT, 'ledger_transfer is append-only'); END)",
    R"(CREATE TRIGGER ledger_transfer_no_delete BEFORE DELETE ON ledger_transfer
       BEGIN SELECT RAISE(ABORT, 'ledger_transfer is append-only'); END)",
};

const char* const kV1PostgresTriggers[] = {
    R"(CREATE FUNCTION ledger_transfer_append_only() RETURNS trigger LANGUAGE plpgsql AS
       'BEGIN RAISE EXCEPTION ''ledger_transfer is append-only''; END')",
    R"(CREATE TRIGGER ledger_transfer_no_update BEFORE UPDATE OR DELETE ON ledger_transfer
       FOR EACH ROW EXECUTE FUNCTION ledger_transfer_append_only())",
    R"(CREATE TRIGGER ledger_transfer_no_truncate BEFORE TRUNCATE ON ledger_transfer
       FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfer_append_only())",
};

// Version 2: state that every replica on one database shares. `rate_limit` holds one GCRA
// theoretical arrival time per limited key (sign-in per IP and per account, sign-up, device
// authorization, lease opening); rows whose time has passed are worth nothing and are purged.
// `hash_slot` holds the cluster's password-hashing slots: a node hashes only while it holds
// one (`until_at` in the future), so all nodes together run at most that many argon2id at once.
const char* const kV2Portable[] = {
    R"(CREATE TABLE rate_limit (
        key TEXT PRIMARY KEY,
        tat {INT} NOT NULL) {STRICT})",
    R"(CREATE TABLE hash_slot (
        slot {INT} PRIMARY KEY,
        holder TEXT NOT NULL DEFAULT '',
        until_at {INT} NOT NULL DEFAULT 0) {STRICT})",
};

std::string expand(std::string sql, Dialect dialect) {
    auto replace_all = [&sql](const std::string& from, const std::string& to) {
        for (size_t pos = 0; (pos = sql.find(from, pos)) != std::string::npos; pos += to.size()) {
            sql.replace(pos, from.size(), to);
        }
    };
    const bool lite = dialect == Dialect::kSqlite;
    replace_all("{INT}", lite ? "INTEGER" : "BIGINT");
    replace_all("{STRICT}", lite ? "STRICT" : "");
    return sql;
}

}  // namespace

int latest_schema_version() {
    return 3;
}

void migrate(Db& db) {
    const Dialect dialect = db.dialect();
    db.write([&](DbTx& tx) {
        if (dialect == Dialect::kPostgres) {
            // Two replicas starting at once must not both run the migration.
            tx.query("SELECT pg_advisory_xact_lock(7414011)");
        }
        tx.exec(
            expand("CREATE TABLE IF NOT EXISTS schema_version (version {INT} PRIMARY KEY, "
                   "applied_at {INT} NOT NULL) {STRICT}",
                   dialect));
        const auto rows = tx.query("SELECT COALESCE(MAX(version), 0) FROM schema_version");
        const int64_t current = rows.at(0).integer(0);
        if (current > latest_schema_version()) {
            throw DbError("database schema version " + std::to_string(current) +
                              " is newer than this server (" +
                              std::to_string(latest_schema_version()) + ")",
                          false);
        }
        if (current < 1) {
            for (const char* stmt : kV1Portable) tx.exec(expand(stmt, dialect));
            if (dialect == Dialect::kSqlite) {
                for (const char* stmt : kV1SqliteTriggers) tx.exec(stmt);
            } else {
                for (const char* stmt : kV1PostgresTriggers) tx.exec(stmt);
            }
            tx.exec("INSERT INTO schema_version(version, applied_at) VALUES (1, 0)");
        }
        if (current < 2) {
            for (const char* stmt : kV2Portable) tx.exec(expand(stmt, dialect));
            tx.exec("INSERT INTO schema_version(version, applied_at) VALUES (2, 0)");
        }
        if (current < 3) {  // version 3: the language of pages and mail
            tx.exec("ALTER TABLE account ADD COLUMN language TEXT NOT NULL DEFAULT 'en'");
            tx.exec("INSERT INTO schema_version(version, applied_at) VALUES (3, 0)");
        }
    });
}

}  // namespace stemsphere::service
