#include "service/http_api.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>

#include "service/idempotency.h"

namespace stemsphere::service {
namespace {

using httplib::Request;
using httplib::Response;

// Reads typed fields from a JSON object body; the first problem becomes a 400 naming the field.
class Fields {
  public:
    explicit Fields(const Json::Value& body) : body_(body) {}

    std::string text(const char* name, bool required, size_t max_len = 1024) {
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
    int64_t integer(const char* name, bool required, int64_t fallback = 0) {
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
    bool boolean(const char* name, bool fallback) {
        const Json::Value& v = body_[name];
        if (v.isNull()) return fallback;
        if (!v.isBool()) fail(name, std::string(name) + " must be true or false");
        return v.isBool() ? v.asBool() : fallback;
    }
    const std::optional<Outcome>& error() const { return error_; }

  private:
    void fail(const char* name, const std::string& message) {
        if (!error_) error_ = error_outcome(400, "invalid_field", message, name);
    }
    const Json::Value& body_;
    std::optional<Outcome> error_;
};

// A JSON object body, or (for the OAuth-style device endpoints) a form body mapped to strings.
std::optional<Outcome> parse_body(const Request& req, Json::Value& out) {
    const std::string type = req.get_header_value("Content-Type");
    if (type.rfind("application/x-www-form-urlencoded", 0) == 0) {
        out = Json::Value(Json::objectValue);
        for (const auto& [k, v] : req.params) out[k] = v;
        return std::nullopt;
    }
    std::string error;
    if (req.body.empty()) {
        out = Json::Value(Json::objectValue);
        return std::nullopt;
    }
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

// Standard Webhooks secret: "whsec_<base64>" or raw text.
std::string webhook_key(const std::string& secret) {
    if (secret.rfind("whsec_", 0) == 0) {
        if (auto raw = base64_decode(secret.substr(6), false)) return *raw;
    }
    return secret;
}

}  // namespace

int64_t system_now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

ApiServer::ApiServer(Db& db, ServerConfig config, Clock clock)
    : db_(db),
      config_(std::move(config)),
      clock_(std::move(clock)),
      http_(std::make_unique<httplib::Server>()),
      signin_ip_(config_.signin_per_minute_ip, 10),
      signin_account_(config_.signin_per_minute_account, 5),
      signup_ip_(config_.signup_per_minute_ip, 5),
      lease_account_(config_.lease_per_minute_account,
                     static_cast<int>(std::max(10.0, config_.lease_per_minute_account / 6))),
      device_ip_(config_.device_per_minute_ip, 10) {
    crypto_init();
    ServerSecrets secrets = ServerSecrets::load_or_create(db_);
    signer_ = std::make_unique<LeaseSigner>(secrets.lease_key);
    ledger_ = std::make_unique<Ledger>(db_, clock_, config_.ledger);
    ledger_->lease_signer = [this](const std::string& text) { return signer_->sign(text); };
    accounts_ = std::make_unique<Accounts>(db_, clock_, std::move(secrets), config_.auth);
    install_routes();
}

ApiServer::~ApiServer() {
    stop();
    if (sweeper_.joinable()) sweeper_.join();
}

int ApiServer::bind() {
    const int threads = config_.threads;
    http_->new_task_queue = [threads] {
        return new httplib::ThreadPool(static_cast<size_t>(threads));
    };
    http_->set_tcp_nodelay(true);
    http_->set_keep_alive_max_count(100000);
    http_->set_keep_alive_timeout(30);
    http_->set_read_timeout(5, 0);
    http_->set_write_timeout(5, 0);
    http_->set_payload_max_length(config_.max_body_bytes);
    // Debian's build listens with a backlog of 5: a burst of connections overflows the accept
    // queue and clients see resets. Capture the listening socket to raise it after bind. Also
    // SO_REUSEADDR instead of the default SO_REUSEPORT, so a second server cannot silently share
    // the port.
    int listen_fd = -1;
    http_->set_socket_options([&listen_fd](socket_t sock) {
        int yes = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        listen_fd = sock;
    });
    int port = config_.port;
    if (port == 0) {
        port = http_->bind_to_any_port(config_.host);
    } else if (!http_->bind_to_port(config_.host, port)) {
        port = -1;
    }
    if (port <= 0) {
        throw std::runtime_error("cannot listen on " + config_.host + ":" +
                                 std::to_string(config_.port));
    }
    if (listen_fd >= 0) ::listen(listen_fd, 1024);
    http_->set_socket_options([](socket_t) {});  // the capture above is gone now
    return port;
}

void ApiServer::run() {
    sweeper_ = std::thread([this] {
        int64_t last_purge = 0;
        while (!stopping_) {
            try {
                ledger_->sweep();
                if (clock_() - last_purge > 60'000'000) {
                    accounts_->purge();
                    last_purge = clock_();
                }
            } catch (const std::exception& e) {
                std::fprintf(stderr, "sweeper: %s\n", e.what());
            }
            std::unique_lock lock(sweep_mutex_);
            sweep_cv_.wait_for(lock, std::chrono::milliseconds(config_.sweep_interval_ms),
                               [this] { return stopping_.load(); });
        }
    });
    http_->listen_after_bind();
}

void ApiServer::stop() {
    {
        std::lock_guard lock(sweep_mutex_);
        stopping_ = true;
    }
    sweep_cv_.notify_all();
    if (http_) http_->stop();
}

void ApiServer::install_routes() {
    auto& s = *http_;
    using Handler = std::function<Outcome(const Request&, const Json::Value&)>;
    using AuthHandler =
        std::function<Outcome(const Request&, const Json::Value&, const Principal&)>;

    // Every handler runs through here: body parsing, error mapping, never an escaped exception.
    auto wrap = [](Handler handler) {
        return [handler](const Request& req, Response& res) {
            Outcome out;
            try {
                Json::Value body;
                if (auto bad = parse_body(req, body)) {
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
    };
    auto authed = [this, wrap](AuthHandler handler) {
        return wrap([this, handler](const Request& req, const Json::Value& body) {
            const auto who = accounts_->authenticate(bearer(req));
            if (!who) return error_outcome(401, "unauthorized", "a valid access token is required");
            return handler(req, body, *who);
        });
    };

    s.set_error_handler([](const Request&, Response& res) {
        if (!res.body.empty()) return;
        const char* code = res.status == 404   ? "not_found"
                           : res.status == 413 ? "payload_too_large"
                           : res.status == 405 ? "method_not_allowed"
                                               : "bad_request";
        res.set_content(to_json_text(error_outcome(res.status, code, code).body),
                        "application/json");
    });
    s.set_exception_handler([](const Request&, Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content(to_json_text(error_outcome(500, "internal_error", "internal error").body),
                        "application/json");
    });

    s.Get("/v1/health", wrap([this](const Request&, const Json::Value&) {
              Outcome out;
              db_.read([](DbTx& tx) { tx.query("SELECT 1"); });
              out.body["status"] = "ok";
              out.body["database"] = db_.dialect() == Dialect::kSqlite ? "sqlite" : "postgresql";
              return out;
          }));
    s.Get("/v1/keys/lease", wrap([this](const Request&, const Json::Value&) {
              Outcome out;
              out.body["alg"] = "Ed25519";
              out.body["public_key"] = signer_->public_key();
              out.body["signing_text"] =
                  "stemsphere-lease-v1|lease_id|account_id|device_id|granted_ms|expires_at";
              return out;
          }));

    // --- accounts and sign-in
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
             authed([this](const Request&, const Json::Value&, const Principal& who) {
                 return accounts_->sign_out(who);
             }));
    s.Get("/v1/me", authed([this](const Request&, const Json::Value&, const Principal& who) {
              return accounts_->me(who);
          }));
    s.Get("/v1/me/sessions",
          authed([this](const Request&, const Json::Value&, const Principal& who) {
              return accounts_->sessions(who);
          }));
    s.Get("/v1/me/export", authed([this](const Request&, const Json::Value&, const Principal& who) {
              return accounts_->export_data(who, *ledger_);
          }));
    s.Delete("/v1/me",
             authed([this](const Request& req, const Json::Value& body, const Principal& who) {
                 Fields f(body);
                 const auto password = f.text("password", true, 1024);
                 if (f.error()) return *f.error();
                 if (auto wait = signin_account_.acquire(who.account_id, clock_())) {
                     return rate_limited(wait);
                 }
                 return accounts_->delete_account(who, password, req.remote_addr);
             }));
    s.Post("/v1/me/totp/setup",
           authed([this](const Request&, const Json::Value&, const Principal& who) {
               return accounts_->totp_setup(who);
           }));
    s.Post("/v1/me/totp/enable",
           authed([this](const Request& req, const Json::Value& body, const Principal& who) {
               Fields f(body);
               const auto code = f.text("code", true, 16);
               if (f.error()) return *f.error();
               if (auto wait = signin_account_.acquire(who.account_id, clock_())) {
                   return rate_limited(wait);
               }
               return accounts_->totp_enable(who, code, req.remote_addr);
           }));
    s.Post("/v1/me/totp/disable",
           authed([this](const Request& req, const Json::Value& body, const Principal& who) {
               Fields f(body);
               const auto code = f.text("code", false, 16);
               const auto backup = f.text("backup_code", false, 32);
               if (f.error()) return *f.error();
               if (auto wait = signin_account_.acquire(who.account_id, clock_())) {
                   return rate_limited(wait);
               }
               return accounts_->totp_disable(who, code, backup, req.remote_addr);
           }));

    // --- device sign-in (RFC 8628)
    s.Post("/v1/device/authorize", wrap([this](const Request& req, const Json::Value& body) {
               if (auto wait = device_ip_.acquire(req.remote_addr, clock_()))
                   return rate_limited(wait);
               Fields f(body);
               const auto client = f.text("client_id", true, 100);
               const auto device = f.text("device_name", false, 200);
               if (f.error()) return *f.error();
               return accounts_->device_authorize(client, device);
           }));
    s.Post("/v1/device/token", wrap([this](const Request& req, const Json::Value& body) {
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
           }));
    s.Post("/v1/device/approve",
           authed([this](const Request& req, const Json::Value& body, const Principal& who) {
               Fields f(body);
               const auto code = f.text("user_code", true, 32);
               const bool approve = f.boolean("approve", true);
               if (f.error()) return *f.error();
               if (auto wait = signin_account_.acquire("approve:" + who.account_id, clock_())) {
                   return rate_limited(wait);
               }
               return accounts_->device_approve(who, code, approve, req.remote_addr);
           }));

    // --- ledger
    s.Get("/v1/balance", authed([this](const Request&, const Json::Value&, const Principal& who) {
              Outcome out;
              out.body = ledger_->balance(who.account_id);
              return out;
          }));
    s.Get("/v1/usage", authed([this](const Request& req, const Json::Value&, const Principal& who) {
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
    s.Post("/v1/leases",
           authed([this](const Request&, const Json::Value& body, const Principal& who) {
               Fields f(body);
               LeaseRequest r;
               r.lease_id = f.text("lease_id", true, 128);
               r.device_id = f.text("device_id", true, 128);
               r.want_ms = f.integer("want_ms", true);
               r.min_ms = f.integer("min_ms", false, 1);
               r.ttl_s = f.integer("ttl_s", false, 0);
               if (f.error()) return *f.error();
               if (auto wait = lease_account_.acquire(who.account_id, clock_())) {
                   return rate_limited(wait);
               }
               return ledger_->open_lease(who.account_id, r);
           }));
    s.Get(R"(/v1/leases/([A-Za-z0-9._:\-]{1,128}))",
          authed([this](const Request& req, const Json::Value&, const Principal& who) {
              const auto lease = ledger_->lease(who.account_id, req.matches[1]);
              if (!lease) return error_outcome(404, "lease_not_found", "no such lease", "lease_id");
              Outcome out;
              out.body = *lease;
              return out;
          }));
    s.Post(R"(/v1/leases/([A-Za-z0-9._:\-]{1,128})/settle)",
           authed([this](const Request& req, const Json::Value& body, const Principal& who) {
               Fields f(body);
               const auto id = f.text("settle_id", true, 128);
               const int64_t used = f.integer("used_ms", true);
               if (f.error()) return *f.error();
               return ledger_->settle_lease(who.account_id, req.matches[1], id, used);
           }));
    s.Post(R"(/v1/leases/([A-Za-z0-9._:\-]{1,128})/void)",
           authed([this](const Request& req, const Json::Value& body, const Principal& who) {
               Fields f(body);
               const auto id = f.text("void_id", true, 128);
               if (f.error()) return *f.error();
               return ledger_->void_lease(who.account_id, req.matches[1], id);
           }));

    // --- payment webhook (Standard Webhooks: HMAC-SHA256 over "id.timestamp.body")
    s.Post("/v1/webhooks/payments", [this](const Request& req, Response& res) {
        Outcome out;
        try {
            out = [&]() -> Outcome {
                if (config_.webhook_secret.empty()) {
                    return error_outcome(503, "not_configured", "no webhook secret configured");
                }
                const std::string id = req.get_header_value("webhook-id");
                const std::string ts = req.get_header_value("webhook-timestamp");
                const std::string sigs = req.get_header_value("webhook-signature");
                if (!is_valid_client_id(id) || ts.empty() || ts.size() > 12 || sigs.empty()) {
                    return error_outcome(400, "invalid_signature",
                                         "webhook-id, webhook-timestamp and webhook-signature are "
                                         "required");
                }
                int64_t when = 0;
                try {
                    when = std::stoll(ts);
                } catch (const std::exception&) {
                    return error_outcome(400, "invalid_signature", "bad webhook-timestamp");
                }
                const int64_t now_s = clock_() / 1'000'000;
                if (when < now_s - config_.webhook_tolerance_s ||
                    when > now_s + config_.webhook_tolerance_s) {
                    return error_outcome(401, "timestamp_out_of_tolerance",
                                         "webhook-timestamp is too far from the server clock");
                }
                const std::string expected =
                    base64_encode(hmac_sha256(webhook_key(config_.webhook_secret),
                                              id + "." + ts + "." + req.body),
                                  false);
                bool valid = false;
                size_t pos = 0;
                while (pos < sigs.size()) {
                    size_t end = sigs.find(' ', pos);
                    if (end == std::string::npos) end = sigs.size();
                    const std::string one = sigs.substr(pos, end - pos);
                    if (one.rfind("v1,", 0) == 0 && constant_time_equal(one.substr(3), expected)) {
                        valid = true;
                    }
                    pos = end + 1;
                }
                if (!valid) return error_outcome(401, "invalid_signature", "signature mismatch");
                Json::Value event;
                std::string error;
                if (!parse_json_text(req.body, event, error) || !event.isObject() ||
                    !event["type"].isString() || !event["data"].isObject()) {
                    return error_outcome(400, "invalid_json",
                                         "expected {\"type\": ..., \"data\": {...}}");
                }
                const std::string type = event["type"].asString();
                const Json::Value& data = event["data"];
                Outcome result;
                db_.write([&](DbTx& tx) {
                    const auto seen =
                        tx.query("SELECT status, response FROM webhook_event WHERE id = ?", {id});
                    if (!seen.empty()) {
                        result.status = static_cast<int>(seen[0].integer(0));
                        std::string perr;
                        parse_json_text(seen[0].text(1), result.body, perr);
                        return;
                    }
                    if (type == "subscription.renewed" || type == "credit_pack.purchased") {
                        const bool sub = type == "subscription.renewed";
                        if (!data["account_id"].isString() || !data["amount_mt"].isInt64()) {
                            result = error_outcome(400, "invalid_field",
                                                   "data.account_id and data.amount_mt required");
                            return;  // not stored: a corrected resend may follow
                        }
                        GrantRequest g;
                        g.grant_id = "evt:" + id;
                        g.owner = data["account_id"].asString();
                        g.amount_mt = data["amount_mt"].asInt64();
                        g.category = sub ? "subscription" : "purchase";
                        g.priority = sub ? 10 : 20;  // subscription tokens expire first: use first
                        g.effective_at_us = clock_();
                        g.expires_at_us = data["expires_at"].isInt64()
                                              ? data["expires_at"].asInt64() * 1'000'000
                                              : kNever;
                        g.source_event_id = id;
                        g.actor = "webhook";
                        result = ledger_->grant_in(tx, g);
                    } else if (type == "charge.refunded") {
                        if (!data["refunded_event_id"].isString()) {
                            result = error_outcome(400, "invalid_field",
                                                   "data.refunded_event_id required");
                            return;
                        }
                        result = ledger_->refund_in(tx, "evt:" + id,
                                                    "evt:" + data["refunded_event_id"].asString(),
                                                    "webhook");
                    } else {
                        result.body["ignored"] = true;
                    }
                    tx.exec(
                        "INSERT INTO webhook_event(id, type, status, response, received_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        {id, type, static_cast<int64_t>(result.status), to_json_text(result.body),
                         clock_()});
                });
                return result;
            }();
        } catch (const DbError& e) {
            std::fprintf(stderr, "webhook: %s\n", e.what());
            out = error_outcome(503, "unavailable", "try again shortly");
        } catch (const std::exception& e) {
            std::fprintf(stderr, "webhook: %s\n", e.what());
            out = error_outcome(500, "internal_error", "internal error");
        }
        send(res, out);
    });
}

}  // namespace stemsphere::service
