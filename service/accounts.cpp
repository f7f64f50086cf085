#include "service/accounts.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>

#include "service/idempotency.h"

namespace stemsphere::service {
namespace {

constexpr int64_t kUs = 1'000'000;
const char kUserCodeAlphabet[] = "BCDFGHJKLMNPQRSTVWXZ";

Outcome busy() {
    Outcome out = error_outcome(503, "busy", "too many password checks in progress; retry shortly");
    out.body["retry_after_s"] = 1;
    return out;
}

std::string load_secret(Db& db, const std::string& name, size_t size,
                        const std::function<std::string()>& make) {
    std::string value;
    db.write([&](DbTx& tx) {
        tx.exec(
            "INSERT INTO server_secret(name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
            {name, hex_encode(make())});
        value = tx.query("SELECT value FROM server_secret WHERE name = ?", {name}).at(0).text(0);
    });
    const auto raw = hex_decode(value);
    if (!raw || raw->size() != size) throw DbError("corrupt server secret " + name, false);
    return *raw;
}

bool valid_email(const std::string& email) {
    const auto at = email.find('@');
    if (email.size() < 3 || email.size() > 254 || at == std::string::npos || at == 0 ||
        at != email.rfind('@') || email.find('.', at) == std::string::npos || email.back() == '.') {
        return false;
    }
    return std::none_of(email.begin(), email.end(), [](unsigned char c) {
        return std::isspace(c) || std::iscntrl(c) || c == ',' || c == ';' || c == '<' || c == '>';
    });
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

int64_t seconds(int64_t us) {
    return us / kUs;
}

}  // namespace

ServerSecrets ServerSecrets::load_or_create(Db& db) {
    ServerSecrets s;
    s.token_key = load_secret(db, "access_token_hmac_key", 32, [] { return random_bytes(32); });
    s.box_key = load_secret(db, "totp_secretbox_key", 32, [] { return random_bytes(32); });
    s.lease_key = load_secret(db, "lease_ed25519_secret_key", 64, LeaseSigner::generate_secret_key);
    return s;
}

Accounts::Accounts(Db& db, Clock clock, ServerSecrets secrets, AuthConfig config)
    : db_(db),
      clock_(std::move(clock)),
      secrets_(std::move(secrets)),
      config_(std::move(config)),
      web_key_(hmac_sha256(secrets_.token_key, "stemsphere-derived|web-session")),
      hasher_(config_.hash_workers, config_.hash_max_waiting, config_.argon2_ops_limit,
              config_.argon2_mem_limit) {
    if (config_.cluster_hash_slots > 0 && db_.dialect() == Dialect::kPostgres) {
        cluster_slots_ = std::make_unique<HashSlots>(db_, config_.cluster_hash_slots, clock_);
    }
}

Accounts::~Accounts() = default;

std::optional<std::optional<HashSlots::Held>> Accounts::take_hash_slot() {
    if (!cluster_slots_) return std::optional<HashSlots::Held>();  // no cluster bound: go ahead
    auto held = cluster_slots_->take(std::chrono::milliseconds(config_.cluster_hash_wait_ms));
    if (!held) return std::nullopt;
    return std::optional<HashSlots::Held>(std::move(held));
}

void Accounts::log(DbTx& tx, const std::string& account_id, const std::string& event,
                   const std::string& ip, const std::string& detail, int64_t now) {
    tx.exec(
        "INSERT INTO security_log(id, account_id, event, ip, detail, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        {random_token(12), account_id.empty() ? DbValue{} : DbValue{account_id}, event, ip, detail,
         now});
}

Outcome Accounts::sign_up(const std::string& email_in, const std::string& name,
                          const std::string& password, const std::string& ip) {
    const std::string email = lower(email_in);
    if (!valid_email(email))
        return error_outcome(400, "invalid_field", "not an email address", "email");
    if (name.empty() || name.size() > 200) {
        return error_outcome(400, "invalid_field", "name must be 1..200 bytes", "name");
    }
    if (password.size() < 10 || password.size() > 1024) {
        return error_outcome(400, "weak_password", "password must be 10..1024 bytes", "password");
    }
    const auto slot = take_hash_slot();
    if (!slot) return busy();
    const auto hash = hasher_.hash(password);
    if (!hash) return busy();
    Outcome out;
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        // The same answer whether or not the address has an account (no enumeration); the
        // owner of a taken address is told by mail instead.
        out.status = 202;
        out.body["email"] = email;
        out.body["email_verified"] = false;
        out.body["verification_sent"] = true;
        const auto taken = tx.query("SELECT id FROM account WHERE email = ?", {email});
        if (!taken.empty()) {
            tx.exec(
                "INSERT INTO mail_outbox(id, account_id, to_addr, subject, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                {random_token(12), taken[0].text(0), email,
                 std::string("Someone tried to create a Stemsphere account with your address"),
                 "Your address already has a Stemsphere account. If that was you, sign in at " +
                     config_.public_url +
                     "/signin instead. If it was not, you can ignore this message.",
                 now});
            log(tx, taken[0].text(0), "sign_up_existing", ip, "", now);
            return;
        }
        const std::string id = "acc_" + random_token(12);
        tx.exec(
            "INSERT INTO account(id, email, name, password_hash, created_at) VALUES (?, ?, ?, ?, "
            "?)",
            {id, email, name, *hash, now});
        const std::string token = random_token(24);
        tx.exec(
            "INSERT INTO email_token(token_hash, account_id, purpose, expires_at) "
            "VALUES (?, ?, 'verify', ?)",
            {sha256_hex(token), id, now + config_.email_token_ttl_s * kUs});
        tx.exec(
            "INSERT INTO mail_outbox(id, account_id, to_addr, subject, body, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            {random_token(12), id, email, std::string("Confirm your Stemsphere account"),
             "Open " + config_.public_url + "/verify?token=" + token +
                 " to confirm your email address. Token: " + token,
             now});
        log(tx, id, "sign_up", ip, "", now);
    });
    return out;
}

Outcome Accounts::verify_email(const std::string& token) {
    Outcome out = error_outcome(400, "invalid_token", "unknown, used or expired token", "token");
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        const auto rows = tx.query(
            "SELECT account_id FROM email_token WHERE token_hash = ? AND purpose = 'verify' AND "
            "used_at IS NULL AND expires_at > ?",
            {sha256_hex(token), now});
        if (rows.empty()) return;
        tx.exec("UPDATE email_token SET used_at = ? WHERE token_hash = ?",
                {now, sha256_hex(token)});
        tx.exec("UPDATE account SET email_verified = 1 WHERE id = ?", {rows[0].text(0)});
        log(tx, rows[0].text(0), "email_verified", "", "", now);
        out = Outcome{};
        out.body["account_id"] = rows[0].text(0);
        out.body["email_verified"] = true;
    });
    return out;
}

std::string Accounts::sign_claims(const std::string& prefix, const std::string& key,
                                  const std::string& account_id, const std::string& session_id,
                                  int64_t expires_s) const {
    Json::Value claims;
    claims["sub"] = account_id;
    claims["sid"] = session_id;
    claims["exp"] = Json::Int64(expires_s);
    const std::string payload = base64_encode(to_json_text(claims), true);
    return prefix + payload + "." + base64_encode(hmac_sha256(key, payload), true);
}

std::string Accounts::issue_access_token(const std::string& account_id,
                                         const std::string& session_id, int64_t now) const {
    return sign_claims("v1.", secrets_.token_key, account_id, session_id,
                       seconds(now) + config_.access_ttl_s);
}

std::string Accounts::issue_web_token(const std::string& account_id,
                                      const std::string& session_id) const {
    return sign_claims("w1.", web_key_, account_id, session_id,
                       seconds(clock_()) + config_.web_session_ttl_s);
}

std::string Accounts::derived_key(const std::string& purpose) const {
    return hmac_sha256(secrets_.token_key, "stemsphere-derived|" + purpose);
}

std::optional<Principal> Accounts::authenticate(const std::string& token) {
    return check_claims(token, "v1.", secrets_.token_key);
}

std::optional<Principal> Accounts::authenticate_web(const std::string& token) {
    return check_claims(token, "w1.", web_key_);
}

std::optional<Principal> Accounts::check_claims(const std::string& token, const std::string& prefix,
                                                const std::string& key) {
    if (token.size() > 1024 || token.rfind(prefix, 0) != 0) return std::nullopt;
    const auto dot = token.find('.', prefix.size());
    if (dot == std::string::npos) return std::nullopt;
    const std::string payload = token.substr(prefix.size(), dot - prefix.size());
    const auto mac = base64_decode(token.substr(dot + 1), true);
    if (!mac || !constant_time_equal(*mac, hmac_sha256(key, payload))) return std::nullopt;
    const auto json = base64_decode(payload, true);
    Json::Value claims;
    std::string error;
    if (!json || !parse_json_text(*json, claims, error) || !claims.isObject() ||
        !claims["exp"].isInt64() || !claims["sub"].isString() || !claims["sid"].isString()) {
        return std::nullopt;
    }
    if (claims["exp"].asInt64() <= seconds(clock_())) return std::nullopt;
    Principal who{claims["sub"].asString(), claims["sid"].asString()};
    const bool live =
        !db_.read_one(
                "SELECT 1 FROM session WHERE id = ? AND account_id = ? AND revoked_at IS NULL",
                {who.session_id, who.account_id})
             .empty();
    if (!live) return std::nullopt;
    return who;
}

Json::Value Accounts::create_session(DbTx& tx, const std::string& account_id,
                                     const std::string& device_name, const std::string& client_id,
                                     int64_t now) {
    const std::string session_id = "ses_" + random_token(12);
    const std::string device_id = "dev_" + random_token(12);
    tx.exec(
        "INSERT INTO session(id, account_id, device_id, device_name, client_id, created_at, "
        "last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        {session_id, account_id, device_id, device_name, client_id, now, now});
    const std::string refresh = random_token(32);
    tx.exec("INSERT INTO refresh_token(token_hash, session_id, created_at) VALUES (?, ?, ?)",
            {sha256_hex(refresh), session_id, now});
    Json::Value out;
    out["token_type"] = "Bearer";
    out["access_token"] = issue_access_token(account_id, session_id, now);
    out["expires_in"] = Json::Int64(config_.access_ttl_s);
    out["refresh_token"] = refresh;
    out["account_id"] = account_id;
    out["session_id"] = session_id;
    out["device_id"] = device_id;
    return out;
}

bool Accounts::second_factor_ok(DbTx& tx, const std::string& account_id,
                                const std::string& sealed_secret, int64_t last_step,
                                const std::string& code, const std::string& backup_code,
                                int64_t now) {
    if (!code.empty()) {
        const auto secret = unseal(secrets_.box_key, sealed_secret);
        if (!secret) return false;
        const auto step = totp_match(*secret, code, seconds(now));
        // A step at or before the last accepted one is a replay, even within the window.
        if (!step || *step <= last_step) return false;
        return tx.exec("UPDATE account SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?",
                       {*step, account_id, *step}) == 1;
    }
    if (!backup_code.empty()) {
        std::string normalized;
        for (char c : backup_code) {
            if (std::isalnum(static_cast<unsigned char>(c))) {
                normalized += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            }
        }
        return tx.exec(
                   "UPDATE backup_code SET used_at = ? WHERE account_id = ? AND code_hash = ? AND "
                   "used_at IS NULL",
                   {now, account_id, sha256_hex(normalized)}) == 1;
    }
    return false;
}

Outcome Accounts::sign_in(const std::string& email_in, const std::string& password,
                          const std::string& totp_code, const std::string& backup_code,
                          const std::string& device_name, const std::string& client_id,
                          const std::string& ip) {
    const std::string email = lower(email_in);
    if (device_name.size() > 200 || client_id.size() > 200) {
        return error_outcome(400, "invalid_field", "device_name and client_id are ≤ 200 bytes");
    }
    std::optional<DbRow> row;
    db_.read([&](DbTx& tx) {
        auto rows = tx.query(
            "SELECT id, password_hash, email_verified, totp_enabled, totp_secret, totp_last_step "
            "FROM account WHERE email = ? AND deleted_at IS NULL",
            {email});
        if (!rows.empty()) row = std::move(rows[0]);
    });
    std::optional<bool> matches;
    if (const auto slot = take_hash_slot()) {
        matches = row ? hasher_.verify(row->text(1), password) : hasher_.verify_dummy(password);
    }
    if (!matches) return busy();
    Outcome out;
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        if (!*matches) {
            log(tx, row ? row->text(0) : "", "sign_in_failed", ip, "password", now);
            out = error_outcome(401, "invalid_credentials", "wrong email or password");
            return;
        }
        const std::string& id = row->text(0);
        if (row->integer(2) == 0) {
            out = error_outcome(403, "email_not_verified", "confirm your email address first");
            return;
        }
        if (row->integer(3) != 0) {
            if (totp_code.empty() && backup_code.empty()) {
                out = error_outcome(401, "totp_required",
                                    "this account needs a TOTP or backup code", "totp_code");
                return;
            }
            if (!second_factor_ok(tx, id, row->text(4), row->integer(5), totp_code, backup_code,
                                  now)) {
                log(tx, id, "sign_in_failed", ip, "second_factor", now);
                out = error_outcome(401, "invalid_totp",
                                    "wrong, reused or expired second-factor code", "totp_code");
                return;
            }
        }
        out.body = create_session(tx, id, device_name.empty() ? "unnamed device" : device_name,
                                  client_id.empty() ? "password" : client_id, now);
        log(tx, id, "sign_in", ip, out.body["session_id"].asString(), now);
    });
    return out;
}

Outcome Accounts::refresh(const std::string& refresh_token, const std::string& ip) {
    Outcome out = error_outcome(401, "invalid_grant", "unknown or expired refresh token");
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        const std::string hash = sha256_hex(refresh_token);
        const auto rows = tx.query(
            "SELECT r.session_id, r.used_at, s.revoked_at, s.account_id, r.created_at "
            "FROM refresh_token r JOIN session s ON s.id = r.session_id WHERE r.token_hash = ?",
            {hash});
        if (rows.empty()) return;
        const std::string& session_id = rows[0].text(0);
        const std::string& account_id = rows[0].text(3);
        if (!rows[0].is_null(2)) return;
        if (!rows[0].is_null(1)) {
            // RFC 9700 §4.14.2: a used refresh token came back, so one of the two holders is not
            // the user. End the whole device session.
            tx.exec(
                "UPDATE session SET revoked_at = ?, revoke_reason = 'refresh_reuse' WHERE id = ?",
                {now, session_id});
            log(tx, account_id, "refresh_token_reused", ip, session_id, now);
            out = error_outcome(401, "refresh_token_reused",
                                "this refresh token was already used; the session is revoked");
            return;
        }
        if (rows[0].integer(4) + config_.refresh_ttl_s * kUs <= now) return;
        if (tx.exec("UPDATE refresh_token SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
                    {now, hash}) != 1) {
            return;
        }
        const std::string next = random_token(32);
        tx.exec("INSERT INTO refresh_token(token_hash, session_id, created_at) VALUES (?, ?, ?)",
                {sha256_hex(next), session_id, now});
        tx.exec("UPDATE session SET last_used_at = ? WHERE id = ?", {now, session_id});
        out = Outcome{};
        out.body["token_type"] = "Bearer";
        out.body["access_token"] = issue_access_token(account_id, session_id, now);
        out.body["expires_in"] = Json::Int64(config_.access_ttl_s);
        out.body["refresh_token"] = next;
        out.body["account_id"] = account_id;
        out.body["session_id"] = session_id;
    });
    return out;
}

Outcome Accounts::sign_out(const Principal& who) {
    db_.write([&](DbTx& tx) {
        tx.exec(
            "UPDATE session SET revoked_at = ?, revoke_reason = 'sign_out' WHERE id = ? AND "
            "revoked_at IS NULL",
            {clock_(), who.session_id});
    });
    Outcome out;
    out.body["signed_out"] = true;
    return out;
}

Outcome Accounts::totp_setup(const Principal& who) {
    Outcome out;
    db_.write([&](DbTx& tx) {
        const auto rows =
            tx.query("SELECT email, totp_enabled FROM account WHERE id = ?", {who.account_id});
        if (rows.empty()) {
            out = error_outcome(404, "account_not_found", "no such account");
            return;
        }
        if (rows[0].integer(1) != 0) {
            out = error_outcome(409, "totp_already_enabled", "disable two-factor sign-in first");
            return;
        }
        const std::string secret = random_bytes(20);  // 160 bits (RFC 4226 §4)
        tx.exec("UPDATE account SET totp_pending_secret = ? WHERE id = ?",
                {seal(secrets_.box_key, secret), who.account_id});
        const std::string b32 = base32_encode(secret);
        out.body["secret"] = b32;
        out.body["otpauth_uri"] = otpauth_uri(rows[0].text(0), b32);
    });
    return out;
}

std::string Accounts::otpauth_uri(const std::string& email, const std::string& b32) const {
    return "otpauth://totp/Stemsphere:" + email + "?secret=" + b32 +
           "&issuer=Stemsphere&algorithm=SHA1&digits=6&period=30";
}

Outcome Accounts::totp_pending(const Principal& who) {
    Outcome out = error_outcome(409, "totp_not_pending", "call /v1/me/totp/setup first");
    db_.read([&](DbTx& tx) {
        const auto rows = tx.query(
            "SELECT email, totp_pending_secret, totp_enabled FROM account WHERE id = ? AND "
            "deleted_at IS NULL",
            {who.account_id});
        if (rows.empty() || rows[0].is_null(1) || rows[0].integer(2) != 0) return;
        const auto secret = unseal(secrets_.box_key, rows[0].text(1));
        if (!secret) return;
        out = Outcome{};
        out.body["secret"] = base32_encode(*secret);
        out.body["otpauth_uri"] = otpauth_uri(rows[0].text(0), out.body["secret"].asString());
    });
    return out;
}

Outcome Accounts::totp_enable(const Principal& who, const std::string& code,
                              const std::string& ip) {
    Outcome out;
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        const auto rows = tx.query(
            "SELECT totp_pending_secret, totp_enabled, totp_last_step FROM account WHERE id = ?",
            {who.account_id});
        if (rows.empty() || rows[0].is_null(0) || rows[0].integer(1) != 0) {
            out = error_outcome(409, "totp_not_pending", "call /v1/me/totp/setup first");
            return;
        }
        if (!second_factor_ok(tx, who.account_id, rows[0].text(0), rows[0].integer(2), code, "",
                              now)) {
            out = error_outcome(400, "invalid_totp", "wrong or expired code", "code");
            return;
        }
        tx.exec(
            "UPDATE account SET totp_secret = totp_pending_secret, totp_pending_secret = NULL, "
            "totp_enabled = 1 WHERE id = ?",
            {who.account_id});
        tx.exec("DELETE FROM backup_code WHERE account_id = ?", {who.account_id});
        Json::Value codes(Json::arrayValue);
        for (int i = 0; i < 10; ++i) {
            const std::string c = base32_encode(random_bytes(7)).substr(0, 10);  // 50 bits
            tx.exec("INSERT INTO backup_code(account_id, code_hash) VALUES (?, ?)",
                    {who.account_id, sha256_hex(c)});
            codes.append(c);
        }
        log(tx, who.account_id, "2fa_enabled", ip, "", now);
        out.body["totp_enabled"] = true;
        out.body["backup_codes"] = codes;
    });
    return out;
}

Outcome Accounts::totp_disable(const Principal& who, const std::string& code,
                               const std::string& backup_code, const std::string& ip) {
    Outcome out;
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        const auto rows =
            tx.query("SELECT totp_secret, totp_enabled, totp_last_step FROM account WHERE id = ?",
                     {who.account_id});
        if (rows.empty() || rows[0].integer(1) == 0) {
            out = error_outcome(409, "totp_not_enabled", "two-factor sign-in is not enabled");
            return;
        }
        if (!second_factor_ok(tx, who.account_id, rows[0].text(0), rows[0].integer(2), code,
                              backup_code, now)) {
            log(tx, who.account_id, "2fa_disable_failed", ip, "", now);
            out = error_outcome(400, "invalid_totp", "wrong, reused or expired code", "code");
            return;
        }
        tx.exec("UPDATE account SET totp_secret = NULL, totp_enabled = 0 WHERE id = ?",
                {who.account_id});
        tx.exec("DELETE FROM backup_code WHERE account_id = ?", {who.account_id});
        log(tx, who.account_id, "2fa_disabled", ip, "", now);
        out.body["totp_enabled"] = false;
    });
    return out;
}

std::optional<std::string> Accounts::normalize_user_code(const std::string& entered) {
    if (entered.size() > 32) return std::nullopt;
    std::string code;
    for (char c : entered) {
        if (c == '-' || c == ' ') continue;
        const char u = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (!std::strchr(kUserCodeAlphabet, u) || u == '\0') return std::nullopt;
        code += u;
    }
    if (code.size() != 8) return std::nullopt;
    return code;
}

Outcome Accounts::device_authorize(const std::string& client_id, const std::string& device_name) {
    if (client_id.empty() || client_id.size() > 100) {
        return error_outcome(400, "invalid_request", "client_id must be 1..100 bytes", "client_id");
    }
    if (device_name.size() > 200) {
        return error_outcome(400, "invalid_request", "device_name must be ≤ 200 bytes",
                             "device_name");
    }
    Outcome out;
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        const std::string device_code = random_token(32);
        std::string user_code;
        for (int attempt = 0; attempt < 8; ++attempt) {  // collisions are ~2^-34 per live code
            user_code.clear();
            for (int i = 0; i < 8; ++i) user_code += kUserCodeAlphabet[randombytes_uniform(20)];
            if (tx.query("SELECT 1 FROM device_grant WHERE user_code = ?", {user_code}).empty())
                break;
        }
        tx.exec(
            "INSERT INTO device_grant(device_code_hash, user_code, client_id, device_name, "
            "created_at, expires_at, interval_s, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
            {sha256_hex(device_code), user_code, client_id,
             device_name.empty() ? client_id : device_name, now,
             now + config_.device_code_ttl_s * kUs, config_.device_interval_s});
        const std::string shown = user_code.substr(0, 4) + "-" + user_code.substr(4);
        out.body["device_code"] = device_code;
        out.body["user_code"] = shown;
        out.body["verification_uri"] = config_.public_url + "/device";
        out.body["verification_uri_complete"] = config_.public_url + "/device?user_code=" + shown;
        out.body["expires_in"] = Json::Int64(config_.device_code_ttl_s);
        out.body["interval"] = Json::Int64(config_.device_interval_s);
    });
    return out;
}

Outcome Accounts::device_token(const std::string& device_code, const std::string& client_id,
                               const std::string& ip) {
    Outcome out = error_outcome(400, "invalid_grant", "unknown or used device_code");
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        const std::string hash = sha256_hex(device_code);
        const auto rows = tx.query(
            "SELECT client_id, device_name, expires_at, interval_s, last_poll_at, state, "
            "account_id "
            "FROM device_grant WHERE device_code_hash = ?",
            {hash});
        if (rows.empty() || rows[0].text(0) != client_id) return;
        const DbRow& g = rows[0];
        const std::string state = g.text(5);
        if (state == "consumed") return;
        if (g.integer(2) <= now) {
            out = error_outcome(400, "expired_token", "the device code expired; start again");
            return;
        }
        if (state == "denied") {
            out = error_outcome(400, "access_denied", "the user declined this sign-in");
            return;
        }
        if (state == "pending") {
            const int64_t interval = g.integer(3);
            if (g.integer(4) != 0 && now - g.integer(4) < interval * kUs) {
                // RFC 8628 §3.5: slow_down adds 5 s to this and every later poll.
                tx.exec(
                    "UPDATE device_grant SET interval_s = ?, last_poll_at = ? "
                    "WHERE device_code_hash = ?",
                    {interval + 5, now, hash});
                out = error_outcome(400, "slow_down", "polling too fast");
                out.body["interval"] = Json::Int64(interval + 5);
                return;
            }
            tx.exec("UPDATE device_grant SET last_poll_at = ? WHERE device_code_hash = ?",
                    {now, hash});
            out = error_outcome(400, "authorization_pending", "waiting for the user to approve");
            return;
        }
        // approved: hand out the tokens exactly once
        if (tx.exec("UPDATE device_grant SET state = 'consumed' WHERE device_code_hash = ? AND "
                    "state = 'approved'",
                    {hash}) != 1) {
            return;
        }
        out = Outcome{};
        out.body = create_session(tx, g.text(6), g.text(1), client_id, now);
        log(tx, g.text(6), "sign_in", ip, "device:" + out.body["session_id"].asString(), now);
    });
    return out;
}

Outcome Accounts::device_approve(const Principal& who, const std::string& entered, bool approve,
                                 const std::string& ip) {
    const auto code = normalize_user_code(entered);
    if (!code) {
        return error_outcome(400, "invalid_user_code", "a user code is 8 letters like BCDF-GHJK",
                             "user_code");
    }
    Outcome out =
        error_outcome(404, "invalid_user_code", "unknown or expired user code", "user_code");
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        const auto rows = tx.query(
            "SELECT client_id, device_name FROM device_grant WHERE user_code = ? AND "
            "state = 'pending' AND expires_at > ?",
            {*code, now});
        if (rows.empty()) return;
        tx.exec(
            "UPDATE device_grant SET state = ?, account_id = ? WHERE user_code = ? AND "
            "state = 'pending'",
            {std::string(approve ? "approved" : "denied"), who.account_id, *code});
        log(tx, who.account_id, approve ? "device_approved" : "device_denied", ip,
            rows[0].text(0) + ":" + rows[0].text(1), now);
        out = Outcome{};
        out.body["client_id"] = rows[0].text(0);
        out.body["device_name"] = rows[0].text(1);
        out.body["approved"] = approve;
    });
    return out;
}

Outcome Accounts::device_pending(const std::string& entered) {
    const auto code = normalize_user_code(entered);
    if (!code) {
        return error_outcome(400, "invalid_user_code", "a user code is 8 letters like BCDF-GHJK",
                             "user_code");
    }
    Outcome out =
        error_outcome(404, "invalid_user_code", "unknown or expired user code", "user_code");
    db_.read([&](DbTx& tx) {
        const auto rows = tx.query(
            "SELECT client_id, device_name, expires_at FROM device_grant WHERE user_code = ? AND "
            "state = 'pending' AND expires_at > ?",
            {*code, clock_()});
        if (rows.empty()) return;
        out = Outcome{};
        out.body["user_code"] = code->substr(0, 4) + "-" + code->substr(4);
        out.body["client_id"] = rows[0].text(0);
        out.body["device_name"] = rows[0].text(1);
        out.body["expires_at"] = Json::Int64(seconds(rows[0].integer(2)));
    });
    return out;
}

Outcome Accounts::change_password(const Principal& who, const std::string& current,
                                  const std::string& next, const std::string& ip) {
    if (next.size() < 10 || next.size() > 1024) {
        return error_outcome(400, "weak_password", "password must be 10..1024 bytes",
                             "new_password");
    }
    std::string hash;
    db_.read([&](DbTx& tx) {
        const auto rows =
            tx.query("SELECT password_hash FROM account WHERE id = ? AND deleted_at IS NULL",
                     {who.account_id});
        if (!rows.empty()) hash = rows[0].text(0);
    });
    if (hash.empty()) return error_outcome(404, "account_not_found", "no such account");
    const auto slot = take_hash_slot();  // held for the verify and the new hash
    if (!slot) return busy();
    const auto ok = hasher_.verify(hash, current);
    if (!ok) return busy();
    if (!*ok) {
        db_.write(
            [&](DbTx& tx) { log(tx, who.account_id, "password_change_failed", ip, "", clock_()); });
        return error_outcome(401, "invalid_credentials", "wrong password", "current_password");
    }
    const auto fresh = hasher_.hash(next);
    if (!fresh) return busy();
    Outcome out;
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        tx.exec("UPDATE account SET password_hash = ? WHERE id = ?", {*fresh, who.account_id});
        const int64_t revoked = tx.exec(
            "UPDATE session SET revoked_at = ?, revoke_reason = 'password_changed' WHERE "
            "account_id = ? AND id <> ? AND revoked_at IS NULL",
            {now, who.account_id, who.session_id});
        log(tx, who.account_id, "password_changed", ip, "", now);
        out.body["password_changed"] = true;
        out.body["sessions_revoked"] = Json::Int64(revoked);
    });
    return out;
}

Outcome Accounts::revoke_session(const Principal& who, const std::string& session_id,
                                 const std::string& ip) {
    Outcome out = error_outcome(404, "session_not_found", "no such active session", "session_id");
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        if (tx.exec("UPDATE session SET revoked_at = ?, revoke_reason = 'revoked_by_user' "
                    "WHERE id = ? AND account_id = ? AND revoked_at IS NULL",
                    {now, session_id, who.account_id}) != 1) {
            return;
        }
        log(tx, who.account_id, "session_revoked", ip, session_id, now);
        out = Outcome{};
        out.body["session_id"] = session_id;
        out.body["revoked"] = true;
    });
    return out;
}

const std::vector<std::string>& Accounts::languages() {
    static const std::vector<std::string> all = {"en"};
    return all;
}

Outcome Accounts::set_language(const Principal& who, const std::string& language) {
    const auto& all = languages();
    if (std::find(all.begin(), all.end(), language) == all.end()) {
        return error_outcome(400, "invalid_field", "unsupported language", "language");
    }
    db_.write([&](DbTx& tx) {
        tx.exec("UPDATE account SET language = ? WHERE id = ?", {language, who.account_id});
    });
    Outcome out;
    out.body["language"] = language;
    return out;
}

Outcome Accounts::me(const Principal& who) {
    Outcome out = error_outcome(404, "account_not_found", "no such account");
    db_.read([&](DbTx& tx) {
        const auto rows = tx.query(
            "SELECT id, email, name, email_verified, totp_enabled, created_at, language FROM "
            "account WHERE id = ? AND deleted_at IS NULL",
            {who.account_id});
        if (rows.empty()) return;
        out = Outcome{};
        out.body["account_id"] = rows[0].text(0);
        out.body["email"] = rows[0].text(1);
        out.body["name"] = rows[0].text(2);
        out.body["email_verified"] = rows[0].integer(3) != 0;
        out.body["totp_enabled"] = rows[0].integer(4) != 0;
        out.body["created_at"] = Json::Int64(seconds(rows[0].integer(5)));
        out.body["language"] = rows[0].text(6);
        out.body["session_id"] = who.session_id;
    });
    return out;
}

Outcome Accounts::sessions(const Principal& who) {
    Outcome out;
    Json::Value items(Json::arrayValue);
    db_.read([&](DbTx& tx) {
        for (const auto& r : tx.query(
                 "SELECT id, device_id, device_name, client_id, created_at, last_used_at, "
                 "revoked_at, revoke_reason FROM session WHERE account_id = ? ORDER BY created_at",
                 {who.account_id})) {
            Json::Value s;
            s["session_id"] = r.text(0);
            s["device_id"] = r.text(1);
            s["device_name"] = r.text(2);
            s["client_id"] = r.text(3);
            s["created_at"] = Json::Int64(seconds(r.integer(4)));
            s["last_used_at"] = Json::Int64(seconds(r.integer(5)));
            if (!r.is_null(6)) {
                s["revoked_at"] = Json::Int64(seconds(r.integer(6)));
                s["revoke_reason"] = r.text(7);
            }
            s["current"] = r.text(0) == who.session_id;
            items.append(s);
        }
    });
    out.body["sessions"] = items;
    return out;
}

Outcome Accounts::export_data(const Principal& who, Ledger& ledger) {
    Outcome out = me(who);
    if (!out.ok()) return out;
    Json::Value data;
    data["account"] = out.body;
    data["sessions"] = sessions(who).body["sessions"];
    data["balance"] = ledger.balance(who.account_id);
    data["usage"] = ledger.usage(who.account_id, 1'000'000, kNever)["items"];
    data["leases"] = ledger.leases(who.account_id);
    db_.read([&](DbTx& tx) {
        Json::Value log_items(Json::arrayValue);
        for (const auto& r :
             tx.query("SELECT event, ip, detail, created_at FROM security_log WHERE "
                      "account_id = ? ORDER BY created_at",
                      {who.account_id})) {
            Json::Value e;
            e["event"] = r.text(0);
            e["ip"] = r.text(1);
            e["detail"] = r.text(2);
            e["at"] = Json::Int64(seconds(r.integer(3)));
            log_items.append(e);
        }
        data["security_log"] = log_items;
    });
    data["ledger_transfers"] = ledger.transfers(who.account_id);
    out.body = data;
    return out;
}

Outcome Accounts::delete_account(const Principal& who, const std::string& password,
                                 const std::string& totp_code, const std::string& backup_code,
                                 const std::string& ip) {
    std::optional<DbRow> row;
    db_.read([&](DbTx& tx) {
        auto rows = tx.query(
            "SELECT password_hash, totp_enabled, totp_secret, totp_last_step FROM account WHERE "
            "id = ? AND deleted_at IS NULL",
            {who.account_id});
        if (!rows.empty()) row = std::move(rows[0]);
    });
    if (!row) return error_outcome(404, "account_not_found", "no such account");
    std::optional<bool> ok;
    if (const auto slot = take_hash_slot()) ok = hasher_.verify(row->text(0), password);
    if (!ok) return busy();
    if (!*ok) return error_outcome(401, "invalid_credentials", "wrong password", "password");
    const bool totp_on = row->integer(1) != 0;
    if (totp_on && totp_code.empty() && backup_code.empty()) {
        return error_outcome(401, "totp_required", "this account needs a TOTP or backup code",
                             "totp_code");
    }
    Outcome out;
    out.body["deleted"] = true;
    out.body["retained"] = "ledger and payment records, anonymised, for 5 years";
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        const std::string& id = who.account_id;
        if (totp_on &&
            !second_factor_ok(tx, id, row->text(2), row->integer(3), totp_code, backup_code, now)) {
            log(tx, id, "delete_failed", ip, "second_factor", now);
            out = error_outcome(401, "invalid_totp", "wrong, reused or expired second-factor code",
                                "totp_code");
            return;
        }
        // Personal data goes now; ledger and payment records stay (5-year duty) under the opaque
        // account id, with device names and usage history erased.
        tx.exec(
            "UPDATE account SET email = NULL, name = NULL, password_hash = NULL, totp_secret = "
            "NULL, "
            "totp_pending_secret = NULL, totp_enabled = 0, deleted_at = ? WHERE id = ?",
            {now, id});
        tx.exec("DELETE FROM backup_code WHERE account_id = ?", {id});
        tx.exec("DELETE FROM email_token WHERE account_id = ?", {id});
        tx.exec("DELETE FROM mail_outbox WHERE account_id = ?", {id});
        tx.exec("DELETE FROM usage_event WHERE owner = ?", {id});
        tx.exec("DELETE FROM device_grant WHERE account_id = ?", {id});
        tx.exec(
            "DELETE FROM refresh_token WHERE session_id IN (SELECT id FROM session WHERE "
            "account_id = ?)",
            {id});
        tx.exec(
            "UPDATE session SET device_name = 'erased', revoked_at = COALESCE(revoked_at, ?), "
            "revoke_reason = COALESCE(revoke_reason, 'account_deleted') WHERE account_id = ?",
            {now, id});
        tx.exec("UPDATE lease SET device_id = 'erased' WHERE owner = ?", {id});
        log(tx, id, "account_deleted", ip, "", now);
    });
    return out;
}

int64_t Accounts::purge() {
    int64_t removed = 0;
    db_.write([&](DbTx& tx) {
        const int64_t now = clock_();
        const int64_t cutoff = now - config_.unverified_retention_s * kUs;
        const std::string stale =
            "SELECT id FROM account WHERE email_verified = 0 AND deleted_at IS NULL AND "
            "created_at < ? AND NOT EXISTS (SELECT 1 FROM grant_lot g WHERE g.owner = account.id)";
        for (const char* table : {"email_token", "mail_outbox", "backup_code"}) {
            removed += tx.exec(
                "DELETE FROM " + std::string(table) + " WHERE account_id IN (" + stale + ")",
                {cutoff});
        }
        removed += tx.exec(
            "DELETE FROM refresh_token WHERE session_id IN (SELECT id FROM session "
            "WHERE account_id IN (" +
                stale + "))",
            {cutoff});
        removed += tx.exec("DELETE FROM session WHERE account_id IN (" + stale + ")", {cutoff});
        removed +=
            tx.exec("DELETE FROM security_log WHERE account_id IN (" + stale + ")", {cutoff});
        removed += tx.exec(
            "DELETE FROM account WHERE email_verified = 0 AND deleted_at IS NULL AND created_at < "
            "? "
            "AND NOT EXISTS (SELECT 1 FROM grant_lot g WHERE g.owner = account.id)",
            {cutoff});
        removed += tx.exec("DELETE FROM security_log WHERE created_at < ?",
                           {now - config_.security_log_retention_s * kUs});
        removed += tx.exec("DELETE FROM device_grant WHERE expires_at < ?", {now - 86400 * kUs});
    });
    return removed;
}

}  // namespace stemsphere::service
