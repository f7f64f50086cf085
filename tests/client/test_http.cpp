// HttpClient's policy against small local servers: TLS is verified by default, 429/503 are
// retried after Retry-After, and a request that may have reached the server is resent only
// when it is idempotent (a refresh never is).
#include <httplib.h>

#include <atomic>

#include "tests/client/server_harness.h"

namespace stemsphere::client::testing {
namespace {

class LocalServer {
  public:
    explicit LocalServer(std::unique_ptr<httplib::Server> server) : server_(std::move(server)) {}
    void start() {
        port_ = server_->bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_->listen_after_bind(); });
        while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~LocalServer() {
        server_->stop();
        if (thread_.joinable()) thread_.join();
    }
    httplib::Server& operator*() { return *server_; }
    int port() const { return port_; }

  private:
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
    int port_ = 0;
};

TEST(Http, TlsCertificatesAreVerifiedByDefault) {
    TempDir dir;
    const std::string cert = dir.path() + "/cert.pem", key = dir.path() + "/key.pem";
    std::string out;
    ASSERT_EQ(run_command("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                          "-addext subjectAltName=IP:127.0.0.1 -keyout " +
                              key + " -out " + cert + " 2>&1",
                          out),
              0)
        << out;
    LocalServer server(std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str()));
    (*server).Get("/v1/health", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(R"({"status":"ok"})", "application/json");
    });
    server.start();
    const std::string url = "https://127.0.0.1:" + std::to_string(server.port());
    HttpOptions o;
    o.max_attempts = 1;
    {
        HttpClient untrusted(url, o);  // a self-signed certificate nobody vouches for
        const HttpReply r = untrusted.get("/v1/health");
        EXPECT_FALSE(r.answered()) << "TLS must fail without a trusted certificate";
        EXPECT_FALSE(r.transport_error.empty());
    }
    o.ca_file = cert;
    HttpClient trusted(url, o);
    const HttpReply r = trusted.get("/v1/health");
    EXPECT_TRUE(r.ok()) << r.describe();
}

TEST(Http, RetryAfterIsHonouredAndOnlyIdempotentRequestsAreResentAfterATimeout) {
    std::atomic<int> busy_hits{0}, slow_hits{0};
    LocalServer server(std::make_unique<httplib::Server>());
    (*server).Get("/busy", [&](const httplib::Request&, httplib::Response& res) {
        if (busy_hits++ == 0) {
            res.status = 503;
            res.set_header("Retry-After", "1");
            res.set_content(R"({"error":"unavailable"})", "application/json");
            return;
        }
        res.set_content(R"({"ok":true})", "application/json");
    });
    (*server).Post("/slow", [&](const httplib::Request&, httplib::Response& res) {
        ++slow_hits;
        std::this_thread::sleep_for(std::chrono::milliseconds(600));
        res.set_content(R"({"ok":true})", "application/json");
    });
    server.start();
    HttpOptions o;
    o.request_timeout_ms = 300;
    o.max_attempts = 3;
    o.base_backoff_ms = 10;
    HttpClient http("http://127.0.0.1:" + std::to_string(server.port()), o);
    o.request_timeout_ms = 3000;
    HttpClient patient("http://127.0.0.1:" + std::to_string(server.port()), o);
    const auto t0 = std::chrono::steady_clock::now();
    const HttpReply busy = patient.get("/busy");
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(busy.ok()) << busy.describe();
    EXPECT_EQ(busy_hits, 2);
    EXPECT_GE(waited, 1.0) << "Retry-After: 1 was not waited for";

    const HttpReply once =
        http.post("/slow", Json::Value(Json::objectValue), "", Retry::only_if_unsent);
    EXPECT_TRUE(once.timed_out);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    EXPECT_EQ(slow_hits, 1) << "a refresh that may have arrived must not be sent twice";
    slow_hits = 0;
    const HttpReply retried = http.post("/slow", Json::Value(Json::objectValue));
    EXPECT_TRUE(retried.timed_out);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    EXPECT_EQ(slow_hits, 3) << "an idempotent request is resent up to max_attempts";
}

TEST(Http, ServerUrlsFollowThePrecedenceAndPlainHttpStaysLocal) {
    TempDir dir;
    const std::string config = dir.path() + "/config.json";
    std::string error;
    ASSERT_TRUE(
        write_file_atomically(config, R"({"server": "https://from-config.example/"})", error));
    ::unsetenv("STEMSPHERE_SERVER");
    EXPECT_EQ(resolve_server_url("", config), "https://from-config.example");
    ::setenv("STEMSPHERE_SERVER", "https://from-env.example", 1);
    EXPECT_EQ(resolve_server_url("", config), "https://from-env.example");
    EXPECT_EQ(resolve_server_url("https://flag.example", config), "https://flag.example");
    ::unsetenv("STEMSPHERE_SERVER");
    EXPECT_EQ(resolve_server_url("", dir.path() + "/none.json"), kDefaultServerUrl);
    EXPECT_EQ(check_server_url("https://account.example.org"), "");
    EXPECT_EQ(check_server_url("http://127.0.0.1:8080"), "");
    EXPECT_EQ(check_server_url("http://localhost:8080/x"), "");
    EXPECT_NE(check_server_url("http://account.example.org"), "");
    EXPECT_NE(check_server_url("ftp://account.example.org"), "");
    EXPECT_NE(check_server_url("https://"), "");
}

}  // namespace
}  // namespace stemsphere::client::testing
