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

// A JSON object body, or (for the OAuth-style device endpoints) a form body mapped to strings.
std::optional<Outcome> parse_body(const httplib::Request& req, Json::Value& out);
void send(httplib::Response& res, const Outcome& out);
Outcome rate_limited(int64_t retry_s);
std::string bearer(const httplib::Request& req);

using Handler = std::function<Outcome(const httplib::Request&, const Json::Value&)>;
using AuthHandler =
    std::function<Outcome(const httplib::Request&, const Json::Value&, const Principal&)>;

// Every handler runs through here: body parsing, error mapping, never an escaped exception.
httplib::Server::Handler wrap(Handler handler);
// `wrap` for routes that need a valid access token (401 unauthorized otherwise).
httplib::Server::Handler authed(Accounts& accounts, AuthHandler handler);

}  // namespace stemsphere::service
