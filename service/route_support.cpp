#include "service/route_support.h"

#include <cctype>
#include <cstdio>

namespace stemsphere::service {

using httplib::Request;
using httplib::Response;

std::string Fields::text(const char* name, bool required, size_t max_len) {
    const Json::Value& v = body_[name];
    if (v.isNull()) {
        if (required) fail(name, std::string(name) + " is required");
        return {};
    }
    if (!v.isString()) {
        fail(name, std::string(name) + " must be a string");
        return {};
    }
    std::string s = v.asString();
    if (s.size() > max_len) fail(name, std::string(name) + " is too long");
    return s;
}

int64_t Fields::integer(const char* name, bool required, int64_t fallback) {
    const Json::Value& v = body_[name];
    if (v.isNull()) {
        if (required) fail(name, std::string(name) + " is required");
        return fallback;
    }
    if (!v.isInt64()) {
        fail(name, std::string(name) + " must be an integer");
        return fallback;
    }
    return v.asInt64();
}

bool Fields::boolean(const char* name, bool fallback) {
    const Json::Value& v = body_[name];
    if (v.isNull()) return fallback;
    if (!v.isBool()) fail(name, std::string(name) + " must be true or false");
    return v.isBool() ? v.asBool() : fallback;
}

void Fields::fail(const char* name, const std::string& message) {
    if (!error_) error_ = error_outcome(400, "invalid_field", message, name);
}

namespace {

// The media type of a Content-Type value: lower case, without parameters or spaces.
std::string media_type(const std::string& content_type) {
    std::string type;
    for (char c : content_type.substr(0, content_type.find(';'))) {
        if (c != ' ' && c != '\t')
            type += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return type;
}

}  // namespace

std::optional<Outcome> parse_body(const Request& req, Json::Value& out, BodyKinds accept) {
    const std::string type = media_type(req.get_header_value("Content-Type"));
    if (req.body.empty()) {
        out = Json::Value(Json::objectValue);
        if (accept == BodyKinds::kJsonOrForm && type == "application/x-www-form-urlencoded") {
            for (const auto& [k, v] : req.params) out[k] = v;
        }
        return std::nullopt;
    }
    if (accept == BodyKinds::kJsonOrForm && type == "application/x-www-form-urlencoded") {
        out = Json::Value(Json::objectValue);
        for (const auto& [k, v] : req.params) out[k] = v;
        return std::nullopt;
    }
    if (type != "application/json") {
        Outcome bad = error_outcome(
            415, "unsupported_media_type",
            accept == BodyKinds::kJson
                ? "send the body as Content-Type: application/json"
                : "send the body as application/json or application/x-www-form-urlencoded");
        return bad;
    }
    std::string error;
    if (!parse_json_text(req.body, out, error)) {
        return error_outcome(400, "invalid_json", "the body is not valid JSON");
    }
    if (!out.isObject())
        return error_outcome(400, "invalid_json", "the body must be a JSON object");
    return std::nullopt;
}

void send(Response& res, const Outcome& out) {
    res.status = out.status;
    if (out.status == 429 || out.status == 503) {
        const Json::Value& retry = out.body["retry_after_s"];
        res.set_header("Retry-After", std::to_string(retry.isInt64() ? retry.asInt64() : 1));
    }
    if (out.status == 401 && out.body["error"].asString() == "unauthorized") {
        res.set_header("WWW-Authenticate", "Bearer");
    }
    res.set_header("Cache-Control", "no-store");
    res.set_content(to_json_text(out.body), "application/json");
}

Outcome rate_limited(int64_t retry_s) {
    Outcome out = error_outcome(429, "rate_limited", "too many requests; retry later");
    out.body["retry_after_s"] = Json::Int64(retry_s);
    return out;
}

std::string bearer(const Request& req) {
    const std::string h = req.get_header_value("Authorization");
    if (h.size() > 7 && (h.rfind("Bearer ", 0) == 0 || h.rfind("bearer ", 0) == 0))
        return h.substr(7);
    return {};
}

httplib::Server::Handler wrap(Handler handler, BodyKinds accept) {
    return [handler, accept](const Request& req, Response& res) {
        Outcome out;
        try {
            Json::Value body;
            if (auto bad = parse_body(req, body, accept)) {
                out = *bad;
            } else {
                out = handler(req, body);
            }
        } catch (const DbError& e) {
            std::fprintf(stderr, "database error: %s\n", e.what());
            out = e.transient() ? error_outcome(503, "unavailable", "try again shortly")
                                : error_outcome(500, "internal_error", "internal error");
        } catch (const std::exception& e) {
            std::fprintf(stderr, "internal error: %s\n", e.what());
            out = error_outcome(500, "internal_error", "internal error");
        }
        send(res, out);
    };
}

httplib::Server::Handler authed(Accounts& accounts, AuthHandler handler, BodyKinds accept) {
    return wrap(
        [&accounts, handler](const Request& req, const Json::Value& body) {
            const auto who = accounts.authenticate(bearer(req));
            if (!who) {
                return error_outcome(401, "unauthorized", "a valid access token is required");
            }
            return handler(req, body, *who);
        },
        accept);
}

}  // namespace stemsphere::service
