// Routes: device sign-in (RFC 8628).
#include <httplib.h>

#include "service/http_api.h"
#include "service/route_support.h"

namespace stemsphere::service {

using httplib::Request;
using httplib::Response;

void ApiServer::install_device_routes() {
    auto& s = *http_;
    s.Post("/v1/device/authorize",
           wrap(
               [this](const Request& req, const Json::Value& body) {
                   if (auto wait = device_ip_.acquire(req.remote_addr, clock_()))
                       return rate_limited(wait);
                   Fields f(body);
                   const auto client = f.text("client_id", true, 100);
                   const auto device = f.text("device_name", false, 200);
                   if (f.error()) return *f.error();
                   return accounts_->device_authorize(client, device);
               },
               BodyKinds::kJsonOrForm));
    s.Post("/v1/device/token",
           wrap(
               [this](const Request& req, const Json::Value& body) {
                   Fields f(body);
                   const auto grant = f.text("grant_type", true, 100);
                   const auto code = f.text("device_code", true, 256);
                   const auto client = f.text("client_id", true, 100);
                   if (f.error()) return *f.error();
                   if (grant != "urn:ietf:params:oauth:grant-type:device_code") {
                       return error_outcome(400, "unsupported_grant_type",
                                            "grant_type must be urn:ietf:params:oauth:grant-type:"
                                            "device_code",
                                            "grant_type");
                   }
                   return accounts_->device_token(code, client, req.remote_addr);
               },
               BodyKinds::kJsonOrForm));
    s.Get("/v1/device/pending",
          authed(*accounts_, [this](const Request& req, const Json::Value&, const Principal& who) {
              if (auto wait = signin_account_.acquire("approve:" + who.account_id, clock_())) {
                  return rate_limited(wait);
              }
              return accounts_->device_pending(req.get_param_value("user_code"));
          }));
    s.Post("/v1/device/approve",
           authed(*accounts_, [this](const Request& req, const Json::Value& body,
                                     const Principal& who) {
               Fields f(body);
               const auto code = f.text("user_code", true, 32);
               const bool approve = f.boolean("approve", true);
               if (f.error()) return *f.error();
               if (auto wait = signin_account_.acquire("approve:" + who.account_id, clock_())) {
                   return rate_limited(wait);
               }
               return accounts_->device_approve(who, code, approve, req.remote_addr);
           }));
}

}  // namespace stemsphere::service
