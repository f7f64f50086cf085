// What every route file of the JSON API shares: typed field reading, body parsing, the one
// exception-to-status mapping (`wrap`), bearer authentication (`authed`) and JSON answers.
#pragma once

#include <httplib.h>

#include <functional>
#include <optional>
#include <string>

#include "service/accounts.h"
#include "service/outcome.h"

namespace stemsphere::service {

// Reads typed fields from a JSON object body; the first problem becomes a 400 naming the field.
class Fields {
  public:
    explicit Fields(const Json::Value& body) : body_(body) {}

    std::string text(const char* name, bool required, size_t max_len = 1024);
    int64_t integer(const char* name, bool required, int64_t fallback = 0);
    bool boolean(const char* name, bool fallback);
    const std::optional<Outcome>& error() const { return error_; }

  private:
    void fail(const char* name, const std::string& message);
    const Json::Value& body_;
    std::optional<Outcome> error_;
};

// What a route takes as a request body: JSON only, or also an HTML/OAuth form (the device
// endpoints, RFC 8628 clients post `application/x-www-form-urlencoded`).
enum class BodyKinds { kJson, kJsonOrForm };

// A JSON object body, or (where `accept` allows) a form body mapped to strings. A non-empty body
// of another Content-Type (or none) is `415 unsupported_media_type`; an empty body needs none.
std::optional<Outcome> parse_body(const httplib::Request& req, Json::Value& out,
                                  BodyKinds accept = BodyKinds::kJson);
void send(httplib::Response& res, const Outcome& out);
Outcome rate_limited(int64_t retry_s);
std::string bearer(const httplib::Request& req);

using Handler = std::function<Outcome(const httplib::Request&, const Json::Value&)>;
using AuthHandler =
    std::function<Outcome(const httplib::Request&, const Json::Value&, const Principal&)>;

// Every handler runs through here: body parsing, error mapping, never an escaped exception.
httplib::Server::Handler wrap(Handler handler, BodyKinds accept = BodyKinds::kJson);
// `wrap` for routes that need a valid access token (401 unauthorized otherwise).
httplib::Server::Handler authed(Accounts& accounts, AuthHandler handler,
                                BodyKinds accept = BodyKinds::kJson);

}  // namespace stemsphere::service
