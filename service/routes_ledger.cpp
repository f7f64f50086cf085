// Routes: balance, usage and leases.
#include <httplib.h>

#include "service/http_api.h"
#include "service/route_support.h"

namespace stemsphere::service {

using httplib::Request;
using httplib::Response;

void ApiServer::install_ledger_routes() {
    auto& s = *http_;
    s.Get("/v1/balance",
          authed(*accounts_, [this](const Request&, const Json::Value&, const Principal& who) {
              Outcome out;
              out.body = ledger_->balance(who.account_id);
              return out;
          }));
    s.Get("/v1/usage",
          authed(*accounts_, [this](const Request& req, const Json::Value&, const Principal& who) {
              int64_t limit = 100, before = kNever;
              try {
                  if (req.has_param("limit")) limit = std::stoll(req.get_param_value("limit"));
                  if (req.has_param("before_us"))
                      before = std::stoll(req.get_param_value("before_us"));
              } catch (const std::exception&) {
                  return error_outcome(400, "invalid_field", "limit and before_us are integers");
              }
              if (limit < 1 || limit > 1000) {
                  return error_outcome(400, "invalid_field", "limit must be 1..1000", "limit");
              }
              Outcome out;
              out.body = ledger_->usage(who.account_id, limit, before);
              return out;
          }));
    s.Post("/v1/leases", authed(*accounts_, [this](const Request&, const Json::Value& body,
                                                   const Principal& who) {
               Fields f(body);
               LeaseRequest r;
               r.lease_id = f.text("lease_id", true, 128);
               r.device_id = f.text("device_id", true, 128);
               r.want_ms = f.integer("want_ms", true);
               r.min_ms = f.integer("min_ms", false, 1);
               if (!body["ttl_s"].isNull()) r.ttl_s = f.integer("ttl_s", true);
               if (f.error()) return *f.error();
               if (auto wait = lease_account_.acquire(who.account_id, clock_())) {
                   return rate_limited(wait);
               }
               return ledger_->open_lease(who.account_id, r);
           }));
    s.Get(R"(/v1/leases/([A-Za-z0-9._:\-]{1,128}))",
          authed(*accounts_, [this](const Request& req, const Json::Value&, const Principal& who) {
              const auto lease = ledger_->lease(who.account_id, req.matches[1]);
              if (!lease) return error_outcome(404, "lease_not_found", "no such lease", "lease_id");
              Outcome out;
              out.body = *lease;
              return out;
          }));
    s.Post(R"(/v1/leases/([A-Za-z0-9._:\-]{1,128})/settle)",
           authed(*accounts_,
                  [this](const Request& req, const Json::Value& body, const Principal& who) {
                      Fields f(body);
                      const auto id = f.text("settle_id", true, 128);
                      const int64_t used = f.integer("used_ms", true);
                      if (f.error()) return *f.error();
                      return ledger_->settle_lease(who.account_id, req.matches[1], id, used);
                  }));
    s.Post(R"(/v1/leases/([A-Za-z0-9._:\-]{1,128})/void)",
           authed(*accounts_,
                  [this](const Request& req, const Json::Value& body, const Principal& who) {
                      Fields f(body);
                      const auto id = f.text("void_id", true, 128);
                      if (f.error()) return *f.error();
                      return ledger_->void_lease(who.account_id, req.matches[1], id);
                  }));
}

}  // namespace stemsphere::service
