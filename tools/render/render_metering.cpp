#include "tools/render/render_metering.h"

#include <cstdio>
#include <exception>

#include "client/files.h"
#include "client/http.h"
#include "client/session.h"

namespace stemsphere::render {

Balance read_balance() {
    Balance balance;
    try {
        const client::Paths paths = client::resolve_paths("");
        const std::string server = client::resolve_server_url("", paths.config_file());
        if (const std::string bad = client::check_server_url(server); !bad.empty()) {
            balance.error = bad;
            return balance;
        }
        client::HttpClient http(server);
        client::Session session(paths, http);
        if (!session.signed_in()) {
            balance.error = session.error().empty() ? "signed out" : session.error();
            return balance;
        }
        const client::HttpReply reply = session.authed("GET", "/v1/balance", Json::Value());
        const Json::Value& b = reply.body;
        if (!reply.ok() || !b["available_mt"].isInt64() || !b["held_mt"].isInt64() ||
            !b["milli_tokens_per_minute"].isInt64()) {
            balance.error = reply.describe();
            return balance;
        }
        balance.available_mt = b["available_mt"].asInt64();
        balance.held_mt = b["held_mt"].asInt64();
        balance.milli_tokens_per_minute = b["milli_tokens_per_minute"].asInt64();
        balance.ok = true;
    } catch (const std::exception& e) {
        balance.error = e.what();
    }
    return balance;
}

int64_t cost_mt(int64_t ms, int64_t price) {
    return ms <= 0 || price <= 0 ? 0 : (ms * price + 59999) / 60000;
}

std::string tokens_text(int64_t mt) {
    char text[64];
    std::snprintf(text, sizeof text, "%s%lld.%03lld", mt < 0 ? "-" : "",
                  static_cast<long long>((mt < 0 ? -mt : mt) / 1000),
                  static_cast<long long>((mt < 0 ? -mt : mt) % 1000));
    return text;
}

}  // namespace stemsphere::render
