// Small, audited building blocks over libsodium (random, hashing, argon2id, Ed25519, secretbox,
// HMAC-SHA-256, constant-time compare) and OpenSSL (HMAC-SHA-1 for TOTP, which libsodium lacks).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stemsphere::service {

void crypto_init();  // sodium_init once; throws when libsodium cannot start

std::string random_bytes(size_t n);
std::string random_token(size_t bytes = 32);  // base64url, unpadded
std::string sha256_hex(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);  // raw 32 bytes
bool constant_time_equal(std::string_view a, std::string_view b);

std::string base64_encode(std::string_view data, bool url_safe);
std::optional<std::string> base64_decode(std::string_view text, bool url_safe);
std::string base32_encode(std::string_view data);                 // RFC 4648, no padding
std::optional<std::string> base32_decode(std::string_view text);  // case/space/padding tolerant
std::string hex_encode(std::string_view data);
std::optional<std::string> hex_decode(std::string_view text);

// RFC 4226 HOTP with HMAC-SHA-1 (RFC 6238 TOTP is hotp(key, floor(t / 30))).
uint32_t hotp(std::string_view key, uint64_t counter, int digits = 6);
std::string totp_code(std::string_view key, int64_t unix_seconds, int digits = 6);
// The step (floor(t/30)) within ±1 step of `unix_seconds` whose code equals `code`, if any.
std::optional<int64_t> totp_match(std::string_view key, std::string_view code,
                                  int64_t unix_seconds);

// Ed25519 signer for leases; the public key is published at /v1/keys/lease.
class LeaseSigner {
  public:
    explicit LeaseSigner(std::string secret_key);  // 64-byte libsodium secret key
    static std::string generate_secret_key();
    std::string sign(std::string_view message) const;  // base64url signature
    std::string public_key() const;                    // base64url
    static bool verify(std::string_view public_key_b64, std::string_view message,
                       std::string_view signature_b64);

  private:
    std::string secret_key_;
};

// libsodium secretbox with a server key (TOTP secrets must be readable by the server, so they
// are encrypted, not hashed).
std::string seal(std::string_view key, std::string_view plaintext);  // base64url(nonce || box)
std::optional<std::string> unseal(std::string_view key, std::string_view sealed);

// Argon2id at OWASP's minimum (m = 19 MiB, t = 2, p = 1) on a bounded pool: at most `workers`
// hashes run at once and at most `max_waiting` wait; beyond that the caller is told to come back
// (so a sign-in flood cannot take every HTTP thread from the ledger routes).
class PasswordHasher {
  public:
    PasswordHasher(int workers, int max_waiting, uint64_t ops_limit = 2,
                   size_t mem_limit = 19u * 1024 * 1024);
    std::optional<std::string> hash(const std::string& password);  // nullopt: busy
    // nullopt: busy; otherwise whether it matches.
    std::optional<bool> verify(const std::string& stored_hash, const std::string& password);
    // A verification of the same cost for unknown accounts, so timing does not reveal them.
    std::optional<bool> verify_dummy(const std::string& password);

  private:
    bool enter();
    void leave();

    int workers_, max_waiting_;
    uint64_t ops_limit_;
    size_t mem_limit_;
    std::mutex mutex_;
    std::condition_variable cv_;
    int running_ = 0, waiting_ = 0;
    std::string dummy_hash_;
};

}  // namespace stemsphere::service
