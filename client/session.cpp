#include "client/session.h"

#include <sys/stat.h>

namespace stemsphere::client {

namespace {

constexpr std::int64_t kRefreshMarginMs = 60'000;

bool text_field(const Json::Value& v, const char* name, std::string& out, bool required,
                std::string& error) {
    const Json::Value& f = v[name];
    if (f.isNull() && !required) return true;
    if (!f.isString() || (required && f.asString().empty()) || f.asString().size() > 4096) {
        error = std::string("field '") + name + "' is missing or not a string";
        return false;
    }
    out = f.asString();
    return true;
}

}  // namespace

Json::Value Credentials::to_json() const {
    Json::Value v;
    v["version"] = 1;
    v["server"] = server;
    v["account_id"] = account_id;
    v["session_id"] = session_id;
    v["device_id"] = device_id;
    v["client_id"] = client_id;
    v["refresh_token"] = refresh_token;
    v["access_token"] = access_token;
    v["access_expires_at_ms"] = Json::Int64(access_expires_at_ms);
    return v;
}

bool Credentials::from_json(const Json::Value& v, std::string& error) {
    if (!v["version"].isInt() || v["version"].asInt() != 1) {
        error = "unknown version (expected 1)";
        return false;
    }
    if (!text_field(v, "server", server, true, error) ||
        !text_field(v, "account_id", account_id, true, error) ||
        !text_field(v, "session_id", session_id, true, error) ||
        !text_field(v, "device_id", device_id, true, error) ||
        !text_field(v, "client_id", client_id, false, error) ||
        !text_field(v, "refresh_token", refresh_token, true, error) ||
        !text_field(v, "access_token", access_token, false, error)) {
        return false;
    }
    if (!v["access_expires_at_ms"].isInt64()) {
        error = "field 'access_expires_at_ms' is missing or not an integer";
        return false;
    }
    access_expires_at_ms = v["access_expires_at_ms"].asInt64();
    return true;
}

CredentialsState load_credentials(const Paths& paths, Credentials& out, std::string& error) {
    std::string text;
    const std::string file = paths.credentials_file();
    switch (read_small_file(file, text, error, 64 * 1024)) {
        case ReadStatus::missing:
            error = "not signed in (run `stemsphere-account login`)";
            return CredentialsState::missing;
        case ReadStatus::error:
            return CredentialsState::corrupt;
        case ReadStatus::ok:
            break;
    }
    Json::Value v;
    std::string why;
    if (!parse_json_object(text, v, why) || !out.from_json(v, why)) {
        error = "the sign-in file " + file + " is corrupt (" + why +
                "); run `stemsphere-account login` to sign in again";
        return CredentialsState::corrupt;
    }
    return CredentialsState::ok;
}

bool store_credentials(const Paths& paths, const Credentials& c, std::string& error) {
    if (!ensure_private_dir(paths.dir, error)) return false;
    Json::Value v = c.to_json();
    return write_file_atomically(paths.credentials_file(), v.toStyledString(), error);
}

bool credentials_from_tokens(const Json::Value& tokens, const std::string& server,
                             const Credentials& previous, Credentials& out, std::string& error) {
    Credentials c = previous;
    c.server = server;
    if (!text_field(tokens, "access_token", c.access_token, true, error) ||
        !text_field(tokens, "refresh_token", c.refresh_token, true, error) ||
        !text_field(tokens, "account_id", c.account_id, true, error) ||
        !text_field(tokens, "session_id", c.session_id, true, error)) {
        return false;
    }
    if (tokens.isMember("device_id") && !text_field(tokens, "device_id", c.device_id, true, error))
        return false;
    if (c.device_id.empty()) {
        error = "the reply has no device_id";
        return false;
    }
    if (!tokens["expires_in"].isInt64() || tokens["expires_in"].asInt64() <= 0 ||
        tokens["expires_in"].asInt64() > 86400 * 30) {
        error = "the reply has no valid expires_in";
        return false;
    }
    c.access_expires_at_ms = wall_ms() + tokens["expires_in"].asInt64() * 1000;
    out = c;
    return true;
}

Session::Session(Paths paths, HttpClient& http) : paths_(std::move(paths)), http_(http) {
    load_now();
}

bool Session::load_now() {
    struct stat st {};
    if (::stat(paths_.credentials_file().c_str(), &st) == 0) {
        file_mtime_ns_ =
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        file_inode_ = st.st_ino;
    } else {
        file_mtime_ns_ = 0;
        file_inode_ = 0;
    }
    Credentials c;
    std::string error;
    state_ = load_credentials(paths_, c, error);
    revoked_ = false;
    if (state_ == CredentialsState::ok) {
        if (c.server != http_.base_url()) {
            state_ = CredentialsState::missing;
            error_ = "signed in to " + c.server + ", not to " + http_.base_url() +
                     " (run `stemsphere-account login`)";
            return false;
        }
        creds_ = c;
        error_.clear();
        return true;
    }
    creds_ = Credentials{};
    error_ = error;
    return false;
}

void Session::reload_if_changed() {
    struct stat st {};
    std::int64_t mtime = 0;
    std::uint64_t inode = 0;
    if (::stat(paths_.credentials_file().c_str(), &st) == 0) {
        mtime = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        inode = st.st_ino;
    }
    if (mtime != file_mtime_ns_ || inode != file_inode_) load_now();
}

bool Session::refresh(const std::string& stale_access_token) {
    FileLock lock;
    std::string error;
    if (!ensure_private_dir(paths_.dir, error) || !lock.lock(paths_.credentials_lock(), error)) {
        error_ = error;
        return false;
    }
    // Re-read under the lock: another process may have rotated the token meanwhile.
    load_now();
    if (state_ != CredentialsState::ok) return false;
    if (creds_.access_token != stale_access_token && !creds_.access_token.empty() &&
        creds_.access_expires_at_ms - wall_ms() > kRefreshMarginMs) {
        return true;
    }
    Json::Value body;
    body["refresh_token"] = creds_.refresh_token;
    ++refreshes_sent_;
    const HttpReply r = http_.post("/v1/sessions/refresh", body, "", Retry::only_if_unsent);
    if (!r.ok()) {
        const std::string code = r.error_code();
        if (r.status == 401 && (code == "invalid_grant" || code == "refresh_token_reused")) {
            revoked_ = true;
            error_ = "the sign-in has ended (" + r.describe() +
                     "); run `stemsphere-account login` to sign in again";
        } else {
            error_ = "cannot refresh the sign-in: " + r.describe();
        }
        return false;
    }
    Credentials next;
    if (!credentials_from_tokens(r.body, creds_.server, creds_, next, error)) {
        // The old refresh token may be spent already; keep the file as it is and say so.
        error_ = "the server's refresh reply was malformed: " + error;
        return false;
    }
    if (!store_credentials(paths_, next, error)) {
        error_ = "cannot save the sign-in: " + error;
        creds_ = next;  // still usable by this process
        return true;
    }
    load_now();
    return state_ == CredentialsState::ok;
}

HttpReply Session::authed(const std::string& method, const std::string& path,
                          const Json::Value& body, Retry retry) {
    reload_if_changed();
    HttpReply r;
    if (!signed_in()) {
        r.transport_error = error_;
        return r;
    }
    if (creds_.access_token.empty() || creds_.access_expires_at_ms - wall_ms() < kRefreshMarginMs) {
        if (!refresh(creds_.access_token)) {
            r.transport_error = error_;
            return r;
        }
    }
    r = http_.request(method, path, body, creds_.access_token, retry);
    if (r.status == 401 && r.error_code() == "unauthorized") {
        if (!refresh(creds_.access_token)) return r;
        r = http_.request(method, path, body, creds_.access_token, retry);
    }
    return r;
}

}  // namespace stemsphere::client
