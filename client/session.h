// The signed-in session shared by every process of one user: credentials.json (0600) holds the
// refresh token and the current access token. Refresh rotates the refresh token, so it runs
// under an exclusive flock and re-reads the file first: if another process already rotated,
// its result is taken and the server never sees a used token again (refresh_token_reused).
#pragma once

#include <cstdint>
#include <string>

#include "client/files.h"
#include "client/http.h"

namespace stemsphere::client {

struct Credentials {
    std::string server;  // the server these came from
    std::string account_id, session_id, device_id, client_id;
    std::string refresh_token, access_token;
    std::int64_t access_expires_at_ms = 0;

    Json::Value to_json() const;
    // False (and `error`) when a field is missing or of the wrong type.
    bool from_json(const Json::Value& v, std::string& error);
};

enum class CredentialsState { missing, ok, corrupt };

// Reads credentials.json. `corrupt` comes with a message naming the file and what is wrong.
CredentialsState load_credentials(const Paths& paths, Credentials& out, std::string& error);
// Atomic replace with mode 0600 (the caller holds the credentials lock).
bool store_credentials(const Paths& paths, const Credentials& c, std::string& error);
// Credentials from a token reply (device flow or refresh); `previous` supplies what a refresh
// reply leaves out (device id). False when the reply lacks a field.
bool credentials_from_tokens(const Json::Value& tokens, const std::string& server,
                             const Credentials& previous, Credentials& out, std::string& error);

class Session {
  public:
    Session(Paths paths, HttpClient& http);

    // (Re)reads the file when it changed on disk since the last look (login/logout in another
    // process). Cheap when nothing changed: one stat().
    void reload_if_changed();
    CredentialsState state() const { return state_; }
    const std::string& error() const { return error_; }  // why signed out / corrupt / revoked
    bool signed_in() const { return state_ == CredentialsState::ok && !revoked_; }
    const Credentials& credentials() const { return creds_; }

    // An authenticated request: refreshes the access token first when it expires within a
    // minute, and once more after a 401 `unauthorized` (revoked or expired early).
    HttpReply authed(const std::string& method, const std::string& path, const Json::Value& body,
                     Retry retry = Retry::idempotent);

    // Refreshes unless another process already did since `stale_access_token` was read.
    // False when no valid token could be had (error() says why).
    bool refresh(const std::string& stale_access_token);
    // Number of refreshes this object sent to the server (tests, bench).
    int refreshes_sent() const { return refreshes_sent_; }

  private:
    bool load_now();

    Paths paths_;
    HttpClient& http_;
    Credentials creds_;
    CredentialsState state_ = CredentialsState::missing;
    bool revoked_ = false;
    std::string error_;
    std::int64_t file_mtime_ns_ = -1;
    std::uint64_t file_inode_ = 0;
    int refreshes_sent_ = 0;
};

}  // namespace stemsphere::client
