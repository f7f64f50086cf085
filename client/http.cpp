#include "client/http.h"

#include <curl/curl.h>
#include <sodium.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "client/files.h"

namespace stemsphere::client {

const char* const kDefaultServerUrl = "https://account.stemsphere.org";

namespace {

struct CurlGlobal {
    CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

void curl_global_once() {
    static CurlGlobal once;
    (void)once;
}

struct Sink {
    std::string data;
    std::size_t limit = 0;
    bool overflow = false;
    long retry_after_s = -1;
};

size_t write_body(char* ptr, size_t size, size_t count, void* user) {
    auto* sink = static_cast<Sink*>(user);
    const size_t n = size * count;
    if (sink->data.size() + n > sink->limit) {
        sink->overflow = true;
        return 0;  // aborts the transfer
    }
    sink->data.append(ptr, n);
    return n;
}

size_t read_header(char* ptr, size_t size, size_t count, void* user) {
    auto* sink = static_cast<Sink*>(user);
    const size_t n = size * count;
    std::string line(ptr, n);
    std::string lower = line;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower.rfind("retry-after:", 0) == 0) {
        const std::string value = line.substr(12);
        char* end = nullptr;
        const long s = std::strtol(value.c_str(), &end, 10);
        if (end != value.c_str() && s >= 0 && s < 86400) sink->retry_after_s = s;
    }
    return n;
}

bool is_loopback_host(const std::string& host) {
    return host == "localhost" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

long jittered_backoff(const HttpOptions& o, int attempt) {
    const long ceiling = std::min(o.max_backoff_ms, o.base_backoff_ms << std::min(attempt, 16));
    if (ceiling <= 0) return 0;
    return static_cast<long>(randombytes_uniform(static_cast<uint32_t>(ceiling) + 1));
}

}  // namespace

std::string HttpReply::error_code() const {
    if (json_ok && body["error"].isString()) return body["error"].asString();
    return "";
}

std::string HttpReply::describe() const {
    if (!answered()) return "no answer from the server (" + transport_error + ")";
    if (!json_ok) return "the server sent a malformed reply (HTTP " + std::to_string(status) + ")";
    if (body["message"].isString()) {
        return body["message"].asString() + " (" + error_code() + ", HTTP " +
               std::to_string(status) + ")";
    }
    if (!error_code().empty()) return error_code() + " (HTTP " + std::to_string(status) + ")";
    return "HTTP " + std::to_string(status);
}

std::string resolve_server_url(const std::string& flag, const std::string& config_file) {
    std::string url = flag;
    if (url.empty()) {
        if (const char* env = std::getenv("STEMSPHERE_SERVER"); env && *env) url = env;
    }
    if (url.empty()) {
        std::string text, error;
        Json::Value config;
        if (read_small_file(config_file, text, error) == ReadStatus::ok &&
            parse_json_object(text, config, error) && config["server"].isString()) {
            url = config["server"].asString();
        }
    }
    if (url.empty()) url = kDefaultServerUrl;
    while (!url.empty() && url.back() == '/') url.pop_back();
    return url;
}

std::string check_server_url(const std::string& url) {
    std::string rest;
    if (url.rfind("https://", 0) == 0) {
        rest = url.substr(8);
    } else if (url.rfind("http://", 0) == 0) {
        rest = url.substr(7);
        std::string host = rest.substr(0, rest.find('/'));
        if (host.empty() || host[0] != '[')
            host = host.substr(0, host.rfind(':'));
        else
            host = host.substr(0, host.find(']') + 1);
        const char* allow = std::getenv("STEMSPHERE_ALLOW_HTTP");
        if (!is_loopback_host(host) && !(allow && std::string(allow) == "1")) {
            return "plain http is only allowed to this machine (use https://, or set "
                   "STEMSPHERE_ALLOW_HTTP=1): " +
                   url;
        }
    } else {
        return "the server URL must start with https:// : " + url;
    }
    if (rest.empty() || rest[0] == '/') return "the server URL has no host: " + url;
    for (const char c : url) {
        if (static_cast<unsigned char>(c) <= ' ' || c == '"' || c == '\\') {
            return "the server URL contains spaces or control characters";
        }
    }
    return "";
}

HttpClient::HttpClient(std::string base_url, HttpOptions options)
    : base_url_(std::move(base_url)), options_(std::move(options)) {
    while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
    if (const char* insecure = std::getenv("STEMSPHERE_INSECURE_TLS");
        insecure && std::string(insecure) == "1") {
        options_.verify_tls = false;
    }
    if (const char* ca = std::getenv("STEMSPHERE_CA_FILE"); ca && *ca && options_.ca_file.empty()) {
        options_.ca_file = ca;
    }
    if (sodium_init() < 0) std::abort();
    curl_global_once();
}

HttpClient::~HttpClient() {
    if (curl_) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

HttpReply HttpClient::request(const std::string& method, const std::string& path,
                              const Json::Value& body, const std::string& bearer, Retry retry) {
    const std::string text = body.isNull() ? std::string() : to_compact_json(body);
    std::lock_guard lock(mutex_);
    HttpReply reply;
    for (int attempt = 0; attempt < std::max(1, options_.max_attempts); ++attempt) {
        bool unsent = false;
        reply = once(method, path, text, bearer, unsent);
        const bool last = attempt + 1 >= options_.max_attempts;
        long wait_ms = -1;
        if (reply.status == 429 || reply.status == 503) {
            wait_ms = reply.retry_after_ms >= 0
                          ? std::min(options_.max_backoff_ms, reply.retry_after_ms) +
                                jittered_backoff(options_, 0) / 4
                          : jittered_backoff(options_, attempt);
        } else if (!reply.answered() && (unsent || retry == Retry::idempotent)) {
            wait_ms = jittered_backoff(options_, attempt);
        }
        if (wait_ms < 0 || last) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
    }
    return reply;
}

HttpReply HttpClient::once(const std::string& method, const std::string& path,
                           const std::string& body, const std::string& bearer, bool& unsent) {
    HttpReply reply;
    if (!curl_) curl_ = curl_easy_init();
    CURL* curl = static_cast<CURL*>(curl_);
    if (!curl) {
        reply.transport_error = "cannot start libcurl";
        unsent = true;
        return reply;
    }
    curl_easy_reset(curl);
    const std::string url = base_url_ + path;
    Sink sink;
    sink.limit = options_.max_reply_bytes;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect would drop the body
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options_.connect_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options_.request_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, read_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "stemsphere-client/1");
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Accept: application/json");
    if (!bearer.empty()) {
        headers = curl_slist_append(headers, ("Authorization: Bearer " + bearer).c_str());
    }
    if (method == "POST" || method == "DELETE" || method == "PUT") {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    const CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        reply.transport_error =
            sink.overflow
                ? "reply larger than " + std::to_string(options_.max_reply_bytes) + " bytes"
                : curl_easy_strerror(rc);
        reply.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        unsent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                 rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_UNSUPPORTED_PROTOCOL ||
                 rc == CURLE_URL_MALFORMAT;
        return reply;
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    reply.status = static_cast<int>(status);
    if (sink.retry_after_s >= 0) reply.retry_after_ms = sink.retry_after_s * 1000;
    std::string error;
    reply.json_ok = parse_json_object(sink.data, reply.body, error);
    if (!reply.json_ok) reply.body = Json::Value();
    return reply;
}

}  // namespace stemsphere::client
