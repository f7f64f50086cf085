#include "service/http_api.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "service/drain.h"
#include "service/idempotency.h"
#include "service/route_support.h"
#include "service/web_session.h"

namespace stemsphere::service {

namespace {

bool& counted_on_this_thread() {
    thread_local bool counted = false;
    return counted;
}

// Where state that replicas must share lives: the database when several nodes can use it.
Db* shared_state(Db& db) {
    return db.dialect() == Dialect::kPostgres ? &db : nullptr;
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
      // On PostgreSQL the limits live in the database, so replicas share them.
      signin_ip_("signin_ip", config_.signin_per_minute_ip, 10, shared_state(db)),
      signin_account_("signin_account", config_.signin_per_minute_account, 5, shared_state(db)),
      signup_ip_("signup_ip", config_.signup_per_minute_ip, 5, shared_state(db)),
      lease_account_("lease_account", config_.lease_per_minute_account,
                     static_cast<int>(std::max(10.0, config_.lease_per_minute_account / 6)),
                     shared_state(db)),
      device_ip_("device_ip", config_.device_per_minute_ip, 10, shared_state(db)) {
    crypto_init();
    ServerSecrets secrets = ServerSecrets::load_or_create(db_);
    signer_ = std::make_unique<LeaseSigner>(secrets.lease_key);
    ledger_ = std::make_unique<Ledger>(db_, clock_, config_.ledger);
    ledger_->lease_signer = [this](const std::string& text) { return signer_->sign(text); };
    accounts_ = std::make_unique<Accounts>(db_, clock_, std::move(secrets), config_.auth);
    payments_ = std::make_unique<Payments>(
        db_, *ledger_, clock_, PaymentsConfig{config_.webhook_secret, config_.webhook_tolerance_s});
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
    port_ = port;
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
                    RateLimiter::purge(db_, clock_());
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
    if (!http_) return;
    // Stop accepting. A connection being served closes after its current request (the library
    // checks the listener between requests); wait for the requests in flight to be answered,
    // then end the idle keep-alive connections, whose workers would otherwise wait for the next
    // request until the keep-alive timeout. (The caller bounds the wait: main's watchdog.)
    http_->stop();
    if (port_ <= 0) return;
    for (;;) {
        while (in_flight_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (shut_down_idle_accepted_connections(port_) == 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // a request is arriving
    }
}

void ApiServer::install_routes() {
    auto& s = *http_;
    // Requests in flight, for a graceful stop: from routing (the request is read) until the
    // response is written (the library logs after writing). A request that fails before routing
    // is logged without being counted, hence the per-thread flag (a worker serves one request
    // at a time).
    s.set_pre_routing_handler([this](const httplib::Request&, httplib::Response&) {
        counted_on_this_thread() = true;
        ++in_flight_;
        return httplib::Server::HandlerResponse::Unhandled;
    });
    s.set_logger([this](const httplib::Request&, const httplib::Response&) {
        if (counted_on_this_thread()) {
            counted_on_this_thread() = false;
            --in_flight_;
        }
    });
    s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return;
        if (req.path.rfind("/v1/", 0) != 0) return render_error_page(res);  // a page path
        const char* code = res.status == 404   ? "not_found"
                           : res.status == 413 ? "payload_too_large"
                           : res.status == 405 ? "method_not_allowed"
                                               : "bad_request";
        res.set_content(to_json_text(error_outcome(res.status, code, code).body),
                        "application/json");
    });
    s.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                               std::exception_ptr) {
        res.status = 500;
        res.set_content(to_json_text(error_outcome(500, "internal_error", "internal error").body),
                        "application/json");
    });

    s.Get("/v1/health", wrap([this](const httplib::Request&, const Json::Value&) {
              Outcome out;
              db_.read_one("SELECT 1", {});
              out.body["status"] = "ok";
              out.body["database"] = db_.dialect() == Dialect::kSqlite ? "sqlite" : "postgresql";
              return out;
          }));
    s.Get("/v1/keys/lease", wrap([this](const httplib::Request&, const Json::Value&) {
              Outcome out;
              out.body["alg"] = "Ed25519";
              out.body["public_key"] = signer_->public_key();
              out.body["signing_text"] =
                  "stemsphere-lease-v1|lease_id|account_id|device_id|granted_ms|expires_at";
              return out;
          }));

    install_account_routes();
    install_device_routes();
    install_ledger_routes();
    install_payment_routes();
    install_page_routes();
}

// The payment webhook (Standard Webhooks: HMAC-SHA256 over "id.timestamp.body"). The raw body
// is signed, so it bypasses `wrap`'s JSON parsing.
void ApiServer::install_payment_routes() {
    http_->Post(
        "/v1/webhooks/payments", [this](const httplib::Request& req, httplib::Response& res) {
            Outcome out;
            try {
                out = payments_->receive(req.get_header_value("webhook-id"),
                                         req.get_header_value("webhook-timestamp"),
                                         req.get_header_value("webhook-signature"), req.body);
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
