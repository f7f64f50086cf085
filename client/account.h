// Sign-in and sign-out for the stemsphere-account CLI: the device flow (RFC 8628) against the
// server's /v1/device/* and the credentials file it leaves behind.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "client/files.h"
#include "client/http.h"

namespace stemsphere::client {

struct DeviceAuthorization {
    std::string device_code, user_code, verification_uri, verification_uri_complete;
    std::int64_t expires_in_s = 0;
    std::int64_t interval_s = 5;  // RFC 8628 §3.2: 5 s when the server names none
};

// POST /v1/device/authorize. False (and `error`) when the server refuses or answers nonsense.
bool start_device_authorization(HttpClient& http, const std::string& client_id,
                                const std::string& device_name, DeviceAuthorization& out,
                                std::string& error);

enum class DeviceOutcome { approved, denied, expired, failed };

// Polls /v1/device/token every interval until the user decides or the code expires: honours
// `slow_down` (+5 s for this and later polls, or the server's new interval), stops on
// `access_denied` and `expired_token`. `sleep` waits (tests may shorten it); `tokens` holds the
// token reply when approved.
DeviceOutcome wait_for_device_approval(HttpClient& http, const DeviceAuthorization& authorization,
                                       const std::string& client_id, Json::Value& tokens,
                                       std::string& error,
                                       const std::function<void(std::chrono::seconds)>& sleep);

// Writes credentials.json from a token reply, under the credentials lock.
bool save_sign_in(const Paths& paths, const std::string& server, const std::string& client_id,
                  const Json::Value& tokens, std::string& error);

// Saves `server` as the default in config.json (keeps other keys).
bool save_default_server(const Paths& paths, const std::string& server, std::string& error);

}  // namespace stemsphere::client
