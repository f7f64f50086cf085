// The JSON API of stemsphere-server over cpp-httplib 0.11.4, tuned per the measured pitfalls:
// TCP_NODELAY, long keep-alive, a thread pool larger than the expected keep-alive connections,
// payload and time limits. Every error is JSON with a stable `error` code (docs/api.md).
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "service/accounts.h"
#include "service/db.h"
#include "service/ledger.h"
#include "service/payments.h"
#include "service/rate_limiter.h"

namespace httplib {
class Server;
struct Response;
}  // namespace httplib

namespace stemsphere::service {

class FormErrors;

struct ServerConfig {
    std::string host = "127.0.0.1";
    int port = 8080;  // 0: any free port (printed at start)
    int threads = 64;
    size_t max_body_bytes = 64 * 1024;
    std::string webhook_secret;  // empty: the payment webhook answers 503 not_configured
    int64_t webhook_tolerance_s = 300;
    double signin_per_minute_ip = 20;
    double signin_per_minute_account = 5;
    double signup_per_minute_ip = 10;
    double lease_per_minute_account = 600;
    double device_per_minute_ip = 30;
    int64_t sweep_interval_ms = 5000;
    LedgerConfig ledger;
    AuthConfig auth;
};

int64_t system_now_us();

class ApiServer {
  public:
    ApiServer(Db& db, ServerConfig config, Clock clock = system_now_us);
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    int bind();  // returns the port; throws when the address cannot be bound
    void run();  // serves until stop(); also runs the expiry/retention sweeper
    void stop();

    Ledger& ledger() { return *ledger_; }
    Accounts& accounts() { return *accounts_; }

  private:
    // One per area, each in its own routes_*.cpp (payments here in http_api.cpp).
    void install_routes();
    void install_account_routes();
    void install_device_routes();
    void install_ledger_routes();
    void install_payment_routes();
    void install_page_routes();  // routes_pages.cpp

    struct PageContext;
    void render(httplib::Response& res, const PageContext& ctx, const std::string& title,
                int status, const std::string& body);
    void render_account(httplib::Response& res, const PageContext& ctx, const std::string& notice,
                        const FormErrors& errors, int status);

    Db& db_;
    ServerConfig config_;
    Clock clock_;
    std::unique_ptr<Ledger> ledger_;
    std::unique_ptr<Accounts> accounts_;
    std::unique_ptr<Payments> payments_;
    std::unique_ptr<LeaseSigner> signer_;
    std::unique_ptr<httplib::Server> http_;
    RateLimiter signin_ip_, signin_account_, signup_ip_, lease_account_, device_ip_;
    std::atomic<bool> stopping_{false};
    int port_ = 0;  // once bound
    std::atomic<int> in_flight_{0};
    std::mutex sweep_mutex_;
    std::condition_variable sweep_cv_;
    std::thread sweeper_;
};

}  // namespace stemsphere::service
