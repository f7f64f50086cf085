// Accounts and sign-in: sign-up with email verification through a mail outbox, argon2id
// passwords on a bounded pool, short-lived HMAC-signed access tokens checked against the
// session, rotating refresh tokens with reuse detection (RFC 9700), TOTP (RFC 6238) with
// hashed single-use backup codes, device sign-in (RFC 8628), export and self-deletion.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "service/crypto.h"
#include "service/db.h"
#include "service/hash_slots.h"
#include "service/ledger.h"
#include "service/outcome.h"

namespace stemsphere::service {

struct AuthConfig {
    int64_t access_ttl_s = 600;
    int64_t web_session_ttl_s = 12 * 3600;  // the account pages' session cookie
    int64_t refresh_ttl_s = 60LL * 24 * 3600;
    int64_t device_code_ttl_s = 600;
    int64_t device_interval_s = 5;
    int64_t email_token_ttl_s = 2 * 24 * 3600;
    int64_t unverified_retention_s = 7 * 24 * 3600;
    int64_t security_log_retention_s = 90 * 24 * 3600;
    std::string public_url = "http://127.0.0.1:8080";  // verification links and device URI
    int hash_workers = 2;                              // per node
    int hash_max_waiting = 8;
    // On PostgreSQL, hashes running at once over all nodes of the database (0: per node only),
    // and how long a request waits for a free one before `503 busy`.
    int cluster_hash_slots = 2;
    int64_t cluster_hash_wait_ms = 1000;
    uint64_t argon2_ops_limit = 2;
    size_t argon2_mem_limit = 19u * 1024 * 1024;
};

struct Principal {
    std::string account_id;
    std::string session_id;
};

// Server-wide secrets, created on first start and shared by every replica through the database.
struct ServerSecrets {
    std::string token_key;  // 32 bytes, HMAC for access tokens
    std::string box_key;    // 32 bytes, secretbox for TOTP secrets
    std::string lease_key;  // 64 bytes, Ed25519 secret key for lease signatures
    static ServerSecrets load_or_create(Db& db);
};

class Accounts {
  public:
    Accounts(Db& db, Clock clock, ServerSecrets secrets, AuthConfig config = {});
    ~Accounts();
    Accounts(const Accounts&) = delete;
    Accounts& operator=(const Accounts&) = delete;

    Outcome sign_up(const std::string& email, const std::string& name, const std::string& password,
                    const std::string& ip);
    Outcome verify_email(const std::string& token);
    Outcome sign_in(const std::string& email, const std::string& password,
                    const std::string& totp_code, const std::string& backup_code,
                    const std::string& device_name, const std::string& client_id,
                    const std::string& ip);
    Outcome refresh(const std::string& refresh_token, const std::string& ip);
    Outcome sign_out(const Principal& who);
    std::optional<Principal> authenticate(const std::string& access_token);
    // Browser sessions of the account pages: a signed cookie token bound to a session row, so
    // revoking the session (sign-out, "revoke", deletion, password change) ends it too. Access
    // tokens and cookie tokens are signed with different keys and never stand in for each other.
    std::string issue_web_token(const std::string& account_id, const std::string& session_id) const;
    std::optional<Principal> authenticate_web(const std::string& token);
    // A key for one purpose (e.g. "csrf"), derived from the server's token key.
    std::string derived_key(const std::string& purpose) const;

    // Checks the current password, stores the new one and revokes every other session.
    Outcome change_password(const Principal& who, const std::string& current_password,
                            const std::string& new_password, const std::string& ip);
    // Ends one of the user's own sessions (a device or a browser); its tokens stop working.
    Outcome revoke_session(const Principal& who, const std::string& session_id,
                           const std::string& ip);
    // Stores the language of pages and mail; one of languages().
    Outcome set_language(const Principal& who, const std::string& language);
    static const std::vector<std::string>& languages();

    Outcome totp_setup(const Principal& who);
    // The secret that totp_setup made and totp_enable has not yet confirmed (to show it again).
    Outcome totp_pending(const Principal& who);
    Outcome totp_enable(const Principal& who, const std::string& code, const std::string& ip);
    Outcome totp_disable(const Principal& who, const std::string& code,
                         const std::string& backup_code, const std::string& ip);

    Outcome device_authorize(const std::string& client_id, const std::string& device_name);
    Outcome device_token(const std::string& device_code, const std::string& client_id,
                         const std::string& ip);
    Outcome device_approve(const Principal& who, const std::string& user_code, bool approve,
                           const std::string& ip);
    // What a pending user code asks for ({user_code, client_id, device_name, expires_at}), so
    // the user sees which device they approve; 404 invalid_user_code when unknown or expired.
    Outcome device_pending(const std::string& user_code);

    Outcome me(const Principal& who);
    Outcome sessions(const Principal& who);
    Outcome export_data(const Principal& who, Ledger& ledger);
    // Needs the password, and a TOTP or backup code when two-factor sign-in is on.
    Outcome delete_account(const Principal& who, const std::string& password,
                           const std::string& totp_code, const std::string& backup_code,
                           const std::string& ip);

    // Retention: unverified accounts after 7 days, security logs after 3 months, stale device
    // codes. Returns rows removed.
    int64_t purge();

    // User codes: 8 letters from BCDFGHJKLMNPQRSTVWXZ (RFC 8628 §6.1), shown as XXXX-XXXX;
    // entry accepts any case, dashes and spaces.
    static std::optional<std::string> normalize_user_code(const std::string& entered);

    const AuthConfig& config() const { return config_; }
    const ServerSecrets& secrets() const { return secrets_; }

  private:
    Json::Value create_session(DbTx& tx, const std::string& account_id,
                               const std::string& device_name, const std::string& client_id,
                               int64_t now);
    std::string issue_access_token(const std::string& account_id, const std::string& session_id,
                                   int64_t now) const;
    // "<prefix><base64url claims>.<base64url HMAC>" with claims {sub, sid, exp}.
    std::string sign_claims(const std::string& prefix, const std::string& key,
                            const std::string& account_id, const std::string& session_id,
                            int64_t expires_s) const;
    std::optional<Principal> check_claims(const std::string& token, const std::string& prefix,
                                          const std::string& key);
    std::string otpauth_uri(const std::string& email, const std::string& base32_secret) const;
    void log(DbTx& tx, const std::string& account_id, const std::string& event,
             const std::string& ip, const std::string& detail, int64_t now);
    // Checks a TOTP code (±1 step, never the same step twice) or consumes a backup code.
    bool second_factor_ok(DbTx& tx, const std::string& account_id, const std::string& sealed_secret,
                          int64_t last_step, const std::string& code,
                          const std::string& backup_code, int64_t now);

    // Outer nothing: no cluster slot freed up in time (answer busy). Inner: the slot held for the
    // hash (empty when there is no cluster bound).
    std::optional<std::optional<HashSlots::Held>> take_hash_slot();

    Db& db_;
    Clock clock_;
    ServerSecrets secrets_;
    AuthConfig config_;
    std::string web_key_;  // derived_key("web-session")
    PasswordHasher hasher_;
    std::unique_ptr<HashSlots> cluster_slots_;
};

}  // namespace stemsphere::service
