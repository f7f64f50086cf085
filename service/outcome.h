// What a mutation or query answers: an HTTP status and a JSON body. Errors carry a stable
// machine-readable `error` code (documented in docs/api.md) and a human `message`.
#pragma once

#include <json/json.h>

#include <string>

namespace stemsphere::service {

struct Outcome {
    int status = 200;
    Json::Value body;

    bool ok() const { return status >= 200 && status < 300; }
};

inline Outcome error_outcome(int status, const std::string& code, const std::string& message,
                             const std::string& field = {}) {
    Outcome out;
    out.status = status;
    out.body["error"] = code;
    out.body["message"] = message;
    if (!field.empty()) out.body["field"] = field;
    return out;
}

// Compact, stable (sorted keys) serialisation used for storage and for the wire.
std::string to_json_text(const Json::Value& value);
// Strict parse: rejects trailing garbage, duplicate keys, and nesting deeper than 32 levels.
bool parse_json_text(const std::string& text, Json::Value& out, std::string& error);

}  // namespace stemsphere::service
