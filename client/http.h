// The client's one way to talk to stemsphere-server: JSON over HTTPS (libcurl), TLS verified,
// bounded in time, with jittered back-off on 429/503 (honouring Retry-After). Every reply is
// checked to be a JSON object before anyone looks at it.
#pragma once

#include <json/value.h>

#include <cstdint>
#include <mutex>
#include <string>

namespace stemsphere::client {

struct HttpOptions {
    long connect_timeout_ms = 5000;
    long request_timeout_ms = 15000;  // whole exchange, so a server that hangs cannot hang us
    int max_attempts = 3;             // first try included
    long base_backoff_ms = 500;       // full jitter: uniform(0, base × 2^attempt), capped below
    long max_backoff_ms = 10000;      // also caps a server's Retry-After
    bool verify_tls = true;           // off only through $STEMSPHERE_INSECURE_TLS=1 (tests)
    std::string ca_file;              // extra CA bundle ($STEMSPHERE_CA_FILE)
    std::size_t max_reply_bytes = 1 << 20;
};

// How a request may be repeated when no answer came back.
enum class Retry {
    // Ledger mutations carry client-made ids and GETs change nothing: safe to resend after a
    // timeout or a dropped connection.
    idempotent,
    // Refresh-token rotation: a resend after the server may have acted would present a used
    // token (refresh_token_reused). Only resent when the request provably never left.
    only_if_unsent,
};

struct HttpReply {
    int status = 0;               // 0: no HTTP answer at all
    std::string transport_error;  // why there was no answer (timeout, refused, TLS, ...)
    bool timed_out = false;
    bool json_ok = false;  // body is a JSON object
    Json::Value body;      // the object, or null
    long retry_after_ms = -1;

    bool answered() const { return status != 0; }
    bool ok() const { return status >= 200 && status < 300 && json_ok; }
    // The server's machine-readable error code ("" when none).
    std::string error_code() const;
    // One line for a person: the server's message, or what went wrong on the way.
    std::string describe() const;
};

// The server URL from, in order: `flag`, $STEMSPHERE_SERVER, the config file's "server", the
// built-in default. Trailing slashes are dropped.
std::string resolve_server_url(const std::string& flag, const std::string& config_file);
extern const char* const kDefaultServerUrl;

// "" when `url` may be used; else why not. https always; plain http only to a loopback host
// (or anywhere with $STEMSPHERE_ALLOW_HTTP=1), since tokens travel in every request.
std::string check_server_url(const std::string& url);

class HttpClient {
  public:
    HttpClient(std::string base_url, HttpOptions options = {});
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // `body` null: no body. `bearer` empty: no Authorization header. Safe from several threads
    // (one request at a time per client).
    HttpReply request(const std::string& method, const std::string& path, const Json::Value& body,
                      const std::string& bearer, Retry retry);
    HttpReply get(const std::string& path, const std::string& bearer = "") {
        return request("GET", path, Json::Value(), bearer, Retry::idempotent);
    }
    HttpReply post(const std::string& path, const Json::Value& body, const std::string& bearer = "",
                   Retry retry = Retry::idempotent) {
        return request("POST", path, body, bearer, retry);
    }

    const std::string& base_url() const { return base_url_; }
    HttpOptions& options() { return options_; }

  private:
    HttpReply once(const std::string& method, const std::string& path, const std::string& body,
                   const std::string& bearer, bool& unsent);

    std::string base_url_;
    HttpOptions options_;
    std::mutex mutex_;
    void* curl_ = nullptr;  // CURL*, reused for keep-alive
};

}  // namespace stemsphere::client
