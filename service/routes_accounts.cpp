// Routes: sign-up, email verification, sessions, the account itself, TOTP.
#include <httplib.h>

#include "service/http_api.h"
#include "service/route_support.h"

namespace stemsphere::service {

using httplib::Request;
using httplib::Response;

void ApiServer::install_account_routes() {
    auto& s = *http_;
    s.Post("/v1/accounts", wrap([this](const Request& req, const Json::Value& body) {
               if (auto wait = signup_ip_.acquire(req.remote_addr, clock_()))
                   return rate_limited(wait);
               Fields f(body);
               const auto email = f.text("email", true, 254);
               const auto name = f.text("name", true, 200);
               const auto password = f.text("password", true, 1024);
               if (f.error()) return *f.error();
               return accounts_->sign_up(email, name, password, req.remote_addr);
           }));
    s.Post("/v1/accounts/verify", wrap([this](const Request&, const Json::Value& body) {
               Fields f(body);
               const auto token = f.text("token", true, 256);
               if (f.error()) return *f.error();
               return accounts_->verify_email(token);
           }));
    s.Post("/v1/sessions", wrap([this](const Request& req, const Json::Value& body) {
               Fields f(body);
               const auto email = f.text("email", true, 254);
               const auto password = f.text("password", true, 1024);
               const auto totp = f.text("totp_code", false, 16);
               const auto backup = f.text("backup_code", false, 32);
               const auto device = f.text("device_name", false, 200);
               const auto client = f.text("client_id", false, 100);
               if (f.error()) return *f.error();
               const int64_t now = clock_();
               if (auto wait = signin_ip_.acquire(req.remote_addr, now)) return rate_limited(wait);
               if (auto wait = signin_account_.acquire(email, now)) return rate_limited(wait);
               return accounts_->sign_in(email, password, totp, backup, device, client,
                                         req.remote_addr);
           }));
    s.Post("/v1/sessions/refresh", wrap([this](const Request& req, const Json::Value& body) {
               Fields f(body);
               const auto token = f.text("refresh_token", true, 256);
               if (f.error()) return *f.error();
               return accounts_->refresh(token, req.remote_addr);
           }));
    s.Delete("/v1/sessions/current",
             authed(*accounts_, [this](const Request&, const Json::Value&, const Principal& who) {
                 return accounts_->sign_out(who);
             }));
    s.Get("/v1/me",
          authed(*accounts_, [this](const Request&, const Json::Value&, const Principal& who) {
              return accounts_->me(who);
          }));
    s.Get("/v1/me/sessions",
          authed(*accounts_, [this](const Request&, const Json::Value&, const Principal& who) {
              return accounts_->sessions(who);
          }));
    s.Get("/v1/me/export",
          authed(*accounts_, [this](const Request&, const Json::Value&, const Principal& who) {
              return accounts_->export_data(who, *ledger_);
          }));
    s.Delete("/v1/me", authed(*accounts_, [this](const Request& req, const Json::Value& body,
                                                 const Principal& who) {
                 Fields f(body);
                 const auto password = f.text("password", true, 1024);
                 if (f.error()) return *f.error();
                 if (auto wait = signin_account_.acquire(who.account_id, clock_())) {
                     return rate_limited(wait);
                 }
                 return accounts_->delete_account(who, password, req.remote_addr);
             }));
    s.Post("/v1/me/totp/setup",
           authed(*accounts_, [this](const Request&, const Json::Value&, const Principal& who) {
               return accounts_->totp_setup(who);
           }));
    s.Post("/v1/me/totp/enable",
           authed(*accounts_,
                  [this](const Request& req, const Json::Value& body, const Principal& who) {
                      Fields f(body);
                      const auto code = f.text("code", true, 16);
                      if (f.error()) return *f.error();
                      if (auto wait = signin_account_.acquire(who.account_id, clock_())) {
                          return rate_limited(wait);
                      }
                      return accounts_->totp_enable(who, code, req.remote_addr);
                  }));
    s.Post("/v1/me/totp/disable",
           authed(*accounts_,
                  [this](const Request& req, const Json::Value& body, const Principal& who) {
                      Fields f(body);
                      const auto code = f.text("code", false, 16);
                      const auto backup = f.text("backup_code", false, 32);
                      if (f.error()) return *f.error();
                      if (auto wait = signin_account_.acquire(who.account_id, clock_())) {
                          return rate_limited(wait);
                      }
                      return accounts_->totp_disable(who, code, backup, req.remote_addr);
                  }));
}

}  // namespace stemsphere::service
