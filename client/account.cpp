#include "client/account.h"

#include <thread>

#include "client/session.h"

namespace stemsphere::client {

bool start_device_authorization(HttpClient& http, const std::string& client_id,
                                const std::string& device_name, DeviceAuthorization& out,
                                std::string& error) {
    Json::Value body;
    body["client_id"] = client_id;
    if (!device_name.empty()) body["device_name"] = device_name;
    const HttpReply r = http.post("/v1/device/authorize", body);
    if (!r.ok()) {
        error = "cannot start the sign-in: " + r.describe();
        return false;
    }
    const Json::Value& b = r.body;
    if (!b["device_code"].isString() || !b["user_code"].isString() ||
        !b["verification_uri"].isString() || b["device_code"].asString().empty() ||
        b["user_code"].asString().empty()) {
        error = "the server's sign-in reply is malformed";
        return false;
    }
    out.device_code = b["device_code"].asString();
    out.user_code = b["user_code"].asString();
    out.verification_uri = b["verification_uri"].asString();
    out.verification_uri_complete = b["verification_uri_complete"].isString()
                                        ? b["verification_uri_complete"].asString()
                                        : out.verification_uri;
    out.expires_in_s = b["expires_in"].isInt64() ? b["expires_in"].asInt64() : 600;
    out.interval_s = b["interval"].isInt64() && b["interval"].asInt64() > 0
                         ? std::min<std::int64_t>(b["interval"].asInt64(), 60)
                         : 5;
    return true;
}

DeviceOutcome wait_for_device_approval(HttpClient& http, const DeviceAuthorization& authorization,
                                       const std::string& client_id, Json::Value& tokens,
                                       std::string& error,
                                       const std::function<void(std::chrono::seconds)>& sleep) {
    std::int64_t interval = authorization.interval_s;
    const auto give_up =
        std::chrono::steady_clock::now() + std::chrono::seconds(authorization.expires_in_s + 5);
    Json::Value body;
    body["grant_type"] = "urn:ietf:params:oauth:grant-type:device_code";
    body["device_code"] = authorization.device_code;
    body["client_id"] = client_id;
    int failures = 0;
    for (;;) {
        sleep(std::chrono::seconds(interval));
        if (std::chrono::steady_clock::now() > give_up) {
            error = "the sign-in code expired before it was approved; run login again";
            return DeviceOutcome::expired;
        }
        const HttpReply r = http.post("/v1/device/token", body, "", Retry::only_if_unsent);
        if (r.ok()) {
            tokens = r.body;
            return DeviceOutcome::approved;
        }
        const std::string code = r.error_code();
        if (code == "authorization_pending") {
            failures = 0;
            continue;
        }
        if (code == "slow_down") {
            interval = r.body["interval"].isInt64() && r.body["interval"].asInt64() > interval
                           ? std::min<std::int64_t>(r.body["interval"].asInt64(), 120)
                           : interval + 5;
            continue;
        }
        if (code == "access_denied") {
            error = "the sign-in was declined in the browser";
            return DeviceOutcome::denied;
        }
        if (code == "expired_token") {
            error = "the sign-in code expired before it was approved; run login again";
            return DeviceOutcome::expired;
        }
        if (!r.answered() || r.status >= 500 || r.status == 429) {
            // Network trouble or an overloaded server: keep polling (RFC 8628 §3.5 asks for
            // back-off on timeouts) until the code expires or it keeps failing.
            if (++failures >= 10) {
                error = "the server stopped answering: " + r.describe();
                return DeviceOutcome::failed;
            }
            interval = std::min<std::int64_t>(interval * 2, 60);
            continue;
        }
        error = "the sign-in failed: " + r.describe();
        return DeviceOutcome::failed;
    }
}

bool save_sign_in(const Paths& paths, const std::string& server, const std::string& client_id,
                  const Json::Value& tokens, std::string& error) {
    Credentials previous;
    previous.client_id = client_id;
    Credentials c;
    if (!credentials_from_tokens(tokens, server, previous, c, error)) {
        error = "the server's token reply is malformed: " + error;
        return false;
    }
    if (!ensure_private_dir(paths.dir, error)) return false;
    FileLock lock;
    if (!lock.lock(paths.credentials_lock(), error)) return false;
    return store_credentials(paths, c, error);
}

bool save_default_server(const Paths& paths, const std::string& server, std::string& error) {
    Json::Value config(Json::objectValue);
    std::string text;
    if (read_small_file(paths.config_file(), text, error) == ReadStatus::ok &&
        !parse_json_object(text, config, error)) {
        error = "the config file " + paths.config_file() + " is not a JSON object (" + error + ")";
        return false;
    }
    config["server"] = server;
    if (!ensure_private_dir(paths.dir, error)) return false;
    return write_file_atomically(paths.config_file(), config.toStyledString(), error);
}

}  // namespace stemsphere::client
