#include "service/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <stdexcept>

namespace stemsphere::service {

void crypto_init() {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
}

std::string random_bytes(size_t n) {
    std::string out(n, '\0');
    randombytes_buf(out.data(), n);
    return out;
}

std::string random_token(size_t bytes) {
    return base64_encode(random_bytes(bytes), true);
}

std::string sha256_hex(std::string_view data) {
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(data.data()), data.size());
    return hex_encode(std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
    crypto_auth_hmacsha256_state state;
    crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(key.data()),
                                key.size());
    crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(data.data()),
                                  data.size());
    std::string out(crypto_auth_hmacsha256_BYTES, '\0');
    crypto_auth_hmacsha256_final(&state, reinterpret_cast<unsigned char*>(out.data()));
    return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string base64_encode(std::string_view data, bool url_safe) {
    const int variant =
        url_safe ? sodium_base64_VARIANT_URLSAFE_NO_PADDING : sodium_base64_VARIANT_ORIGINAL;
    std::string out(sodium_base64_encoded_len(data.size(), variant), '\0');
    sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(data.data()),
                      data.size(), variant);
    out.resize(out.size() - 1);  // the terminating NUL
    return out;
}

std::optional<std::string> base64_decode(std::string_view text, bool url_safe) {
    const int variant =
        url_safe ? sodium_base64_VARIANT_URLSAFE_NO_PADDING : sodium_base64_VARIANT_ORIGINAL;
    std::string out(text.size(), '\0');
    size_t len = 0;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                          text.size(), nullptr, &len, nullptr, variant) != 0) {
        return std::nullopt;
    }
    out.resize(len);
    return out;
}

std::string base32_encode(std::string_view data) {
    static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    std::string out;
    uint32_t buffer = 0;
    int bits = 0;
    for (unsigned char c : data) {
        buffer = (buffer << 8) | c;
        bits += 8;
        while (bits >= 5) {
            out += kAlphabet[(buffer >> (bits - 5)) & 31u];
            bits -= 5;
        }
    }
    if (bits > 0) out += kAlphabet[(buffer << (5 - bits)) & 31u];
    return out;
}

std::optional<std::string> base32_decode(std::string_view text) {
    std::string out;
    uint32_t buffer = 0;
    int bits = 0;
    for (char ch : text) {
        if (ch == ' ' || ch == '-' || ch == '=') continue;
        uint32_t v;
        if (ch >= 'A' && ch <= 'Z') {
            v = static_cast<uint32_t>(ch - 'A');
        } else if (ch >= 'a' && ch <= 'z') {
            v = static_cast<uint32_t>(ch - 'a');
        } else if (ch >= '2' && ch <= '7') {
            v = static_cast<uint32_t>(ch - '2' + 26);
        } else {
            return std::nullopt;
        }
        buffer = (buffer << 5) | v;
        bits += 5;
        if (bits >= 8) {
            out += static_cast<char>((buffer >> (bits - 8)) & 0xffu);
            bits -= 8;
        }
    }
    return out;
}

std::string hex_encode(std::string_view data) {
    std::string out(data.size() * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), reinterpret_cast<const unsigned char*>(data.data()),
                   data.size());
    out.resize(data.size() * 2);
    return out;
}

std::optional<std::string> hex_decode(std::string_view text) {
    std::string out(text.size() / 2, '\0');
    size_t len = 0;
    if (sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                       text.size(), nullptr, &len, nullptr) != 0 ||
        len * 2 != text.size()) {
        return std::nullopt;
    }
    out.resize(len);
    return out;
}

uint32_t hotp(std::string_view key, uint64_t counter, int digits) {
    unsigned char msg[8];
    for (int i = 7; i >= 0; --i) {
        msg[i] = static_cast<unsigned char>(counter & 0xffu);
        counter >>= 8;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha1(), key.data(), static_cast<int>(key.size()), msg, sizeof(msg), mac, &mac_len);
    const unsigned offset = mac[mac_len - 1] & 0x0fu;
    const uint32_t binary = (static_cast<uint32_t>(mac[offset] & 0x7fu) << 24) |
                            (static_cast<uint32_t>(mac[offset + 1]) << 16) |
                            (static_cast<uint32_t>(mac[offset + 2]) << 8) |
                            static_cast<uint32_t>(mac[offset + 3]);
    uint32_t modulus = 1;
    for (int i = 0; i < digits; ++i) modulus *= 10;
    return binary % modulus;
}

std::string totp_code(std::string_view key, int64_t unix_seconds, int digits) {
    std::string code = std::to_string(hotp(key, static_cast<uint64_t>(unix_seconds / 30), digits));
    return std::string(static_cast<size_t>(digits) - code.size(), '0') + code;
}

std::optional<int64_t> totp_match(std::string_view key, std::string_view code,
                                  int64_t unix_seconds) {
    if (code.size() != 6) return std::nullopt;
    const int64_t step = unix_seconds / 30;
    std::optional<int64_t> found;
    for (int64_t s = step - 1; s <= step + 1; ++s) {  // every candidate, so timing is flat
        if (constant_time_equal(totp_code(key, s * 30), code)) found = s;
    }
    return found;
}

LeaseSigner::LeaseSigner(std::string secret_key) : secret_key_(std::move(secret_key)) {
    if (secret_key_.size() != crypto_sign_SECRETKEYBYTES) {
        throw std::runtime_error("Ed25519 secret key must be 64 bytes");
    }
}

std::string LeaseSigner::generate_secret_key() {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    std::string sk(crypto_sign_SECRETKEYBYTES, '\0');
    crypto_sign_keypair(pk, reinterpret_cast<unsigned char*>(sk.data()));
    return sk;
}

std::string LeaseSigner::sign(std::string_view message) const {
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, nullptr, reinterpret_cast<const unsigned char*>(message.data()),
                         message.size(),
                         reinterpret_cast<const unsigned char*>(secret_key_.data()));
    return base64_encode(std::string_view(reinterpret_cast<const char*>(sig), sizeof(sig)), true);
}

std::string LeaseSigner::public_key() const {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    crypto_sign_ed25519_sk_to_pk(pk, reinterpret_cast<const unsigned char*>(secret_key_.data()));
    return base64_encode(std::string_view(reinterpret_cast<const char*>(pk), sizeof(pk)), true);
}

bool LeaseSigner::verify(std::string_view public_key_b64, std::string_view message,
                         std::string_view signature_b64) {
    const auto pk = base64_decode(public_key_b64, true);
    const auto sig = base64_decode(signature_b64, true);
    if (!pk || !sig || pk->size() != crypto_sign_PUBLICKEYBYTES ||
        sig->size() != crypto_sign_BYTES) {
        return false;
    }
    return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(sig->data()),
                                       reinterpret_cast<const unsigned char*>(message.data()),
                                       message.size(),
                                       reinterpret_cast<const unsigned char*>(pk->data())) == 0;
}

std::string seal(std::string_view key, std::string_view plaintext) {
    std::string out(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plaintext.size(),
                    '\0');
    auto* nonce = reinterpret_cast<unsigned char*>(out.data());
    randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(nonce + crypto_secretbox_NONCEBYTES,
                          reinterpret_cast<const unsigned char*>(plaintext.data()),
                          plaintext.size(), nonce,
                          reinterpret_cast<const unsigned char*>(key.data()));
    return base64_encode(out, true);
}

std::optional<std::string> unseal(std::string_view key, std::string_view sealed) {
    const auto raw = base64_decode(sealed, true);
    if (!raw || raw->size() < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES ||
        key.size() != crypto_secretbox_KEYBYTES) {
        return std::nullopt;
    }
    const auto* nonce = reinterpret_cast<const unsigned char*>(raw->data());
    std::string out(raw->size() - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
    if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(out.data()),
                                   nonce + crypto_secretbox_NONCEBYTES,
                                   raw->size() - crypto_secretbox_NONCEBYTES, nonce,
                                   reinterpret_cast<const unsigned char*>(key.data())) != 0) {
        return std::nullopt;
    }
    return out;
}

PasswordHasher::PasswordHasher(int workers, int max_waiting, uint64_t ops_limit, size_t mem_limit)
    : workers_(workers), max_waiting_(max_waiting), ops_limit_(ops_limit), mem_limit_(mem_limit) {
    char out[crypto_pwhash_STRBYTES];
    const std::string pw = random_token(16);
    if (crypto_pwhash_str_alg(out, pw.c_str(), pw.size(), ops_limit_, mem_limit_,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        throw std::runtime_error("argon2id: out of memory");
    }
    dummy_hash_ = out;
}

bool PasswordHasher::enter() {
    std::unique_lock lock(mutex_);
    if (running_ >= workers_ && waiting_ >= max_waiting_) return false;
    ++waiting_;
    cv_.wait(lock, [this] { return running_ < workers_; });
    --waiting_;
    ++running_;
    return true;
}

void PasswordHasher::leave() {
    {
        std::lock_guard lock(mutex_);
        --running_;
    }
    cv_.notify_one();
}

std::optional<std::string> PasswordHasher::hash(const std::string& password) {
    if (!enter()) return std::nullopt;
    char out[crypto_pwhash_STRBYTES];
    const int rc = crypto_pwhash_str_alg(out, password.c_str(), password.size(), ops_limit_,
                                         mem_limit_, crypto_pwhash_ALG_ARGON2ID13);
    leave();
    if (rc != 0) return std::nullopt;
    return std::string(out);
}

std::optional<bool> PasswordHasher::verify(const std::string& stored_hash,
                                           const std::string& password) {
    if (!enter()) return std::nullopt;
    const bool ok =
        crypto_pwhash_str_verify(stored_hash.c_str(), password.c_str(), password.size()) == 0;
    leave();
    return ok;
}

std::optional<bool> PasswordHasher::verify_dummy(const std::string& password) {
    const auto r = verify(dummy_hash_, password);
    if (!r) return std::nullopt;
    return false;
}

}  // namespace stemsphere::service
