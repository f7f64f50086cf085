// Hostile and broken servers: a proxy in front of the real server turns its replies into
// garbage, truncates them, hangs, forges lease signatures or throttles; a tiny fake server
// speaks the device flow's slow_down/expired_token. The client keeps its last good state.
#include <httplib.h>

#include <atomic>

#include "client/lease_meter.h"
#include "tests/client/server_harness.h"

namespace stemsphere::client::testing {
namespace {

enum class Mode {
    pass,
    garbage,
    truncated,
    hang,
    forged_signature,
    throttled,
    html_500,
    lost_reply  // forwarded, so the server acts, but the answer never comes back
};

// Forwards every request to the real server, then spoils the answer as `mode` says.
class HostileProxy {
  public:
    explicit HostileProxy(int upstream_port) : upstream_(upstream_port) {
        auto handler = [this](const httplib::Request& req, httplib::Response& res) {
            forward(req, res);
        };
        server_.Get(".*", handler);
        server_.Post(".*", handler);
        server_.Delete(".*", handler);
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ~HostileProxy() {
        release_ = true;
        server_.stop();
        thread_.join();
    }
    void set(Mode m) { mode_ = m; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    int leases_forwarded() const { return leases_forwarded_; }

  private:
    void forward(const httplib::Request& req, httplib::Response& res) {
        const Mode mode = mode_;
        if (mode == Mode::hang) {
            for (int i = 0; i < 60 && !release_; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            res.status = 503;
            return;
        }
        if (mode == Mode::throttled) {
            res.status = 503;
            res.set_header("Retry-After", "1");
            res.set_content(R"({"error":"unavailable","message":"busy"})", "application/json");
            return;
        }
        if (mode == Mode::html_500) {
            res.status = 500;
            res.set_content("<html>Internal Server Error</html>", "text/html");
            return;
        }
        if (mode == Mode::garbage) {
            res.status = 200;
            res.set_content("\x01\x02 not json at all", "application/json");
            return;
        }
        httplib::Client up("127.0.0.1", upstream_);
        httplib::Headers headers;
        if (req.has_header("Authorization")) {
            headers.emplace("Authorization", req.get_header_value("Authorization"));
        }
        httplib::Result r = req.method == "GET" ? up.Get(req.target, headers)
                            : req.method == "DELETE"
                                ? up.Delete(req.target, headers, req.body, "application/json")
                                : up.Post(req.target, headers, req.body, "application/json");
        if (!r) {
            res.status = 502;
            return;
        }
        if (req.method == "POST" && req.path == "/v1/leases") ++leases_forwarded_;
        if (mode == Mode::lost_reply) {
            for (int i = 0; i < 60 && !release_; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            res.status = 503;
            return;
        }
        std::string body = r->body;
        if (mode == Mode::truncated) body = body.substr(0, body.size() / 2);
        if (mode == Mode::forged_signature) {
            const auto at = body.find("\"signature\":\"");
            if (at != std::string::npos) {
                char& c = body[at + 13];
                c = c == 'A' ? 'B' : 'A';
            }
        }
        res.status = r->status;
        res.set_content(body, "application/json");
    }

    int upstream_;
    int port_ = 0;
    httplib::Server server_;
    std::thread thread_;
    std::atomic<Mode> mode_{Mode::pass};
    std::atomic<bool> release_{false};
    std::atomic<int> leases_forwarded_{0};
};

TEST(Hostile, BrokenRepliesHangsAndForgedLeasesLeaveTheLastGoodStateAndChargeNothingExtra) {
    TempDir dir;
    constexpr std::int64_t kPrice = 1000;
    ServerProcess server(dir.path() + "/ledger.db", kPrice);
    ASSERT_TRUE(server.start());
    const TestUser user = make_user(server, "hostile@example.org");
    grant(server, user, 1'000'000, "g1");
    HostileProxy proxy(server.port());
    const std::string config = dir.path() + "/config";
    {
        // Sign in through the real server, but save the proxy as the server the client uses.
        HttpClient http(server.url());
        Json::Value in;
        in["email"] = user.email;
        in["password"] = user.password;
        const HttpReply r = http.post("/v1/sessions", in);
        ASSERT_TRUE(r.ok());
        std::string error;
        ASSERT_TRUE(save_sign_in(resolve_paths(config), proxy.url(), "t", r.body, error));
    }
    MeterOptions o;
    o.server_url = proxy.url();
    o.config_dir = config;
    o.lease_ms = 60'000;
    o.request_timeout_ms = 500;
    int modes = 0;
    for (const Mode mode : {Mode::garbage, Mode::truncated, Mode::html_500, Mode::throttled,
                            Mode::hang, Mode::forged_signature}) {
        SCOPED_TRACE("mode " + std::to_string(static_cast<int>(mode)));
        proxy.set(Mode::pass);
        auto meter = open_meter(o);
        for (int i = 0; i < 100 && !meter->licensed(); ++i) meter->poll();
        ASSERT_TRUE(meter->licensed()) << meter->status().message;
        meter->record_usage(40'000);  // past half: the poll asks for the next lease
        proxy.set(mode);
        const auto t0 = std::chrono::steady_clock::now();
        meter->poll();
        const double took =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const MeterStatus s = meter->status();
        EXPECT_TRUE(meter->licensed()) << s.message;
        EXPECT_EQ(s.covered_ms, 20'000) << "only the first, verified lease counts: " << s.message;
        EXPECT_TRUE(s.state == LicenceState::active || s.state == LicenceState::offline_grace)
            << s.message;
        EXPECT_LT(took, 3.0) << "a hanging server must not hang the client";
        if (mode == Mode::forged_signature) {
            EXPECT_NE(s.message.find("failed verification"), std::string::npos) << s.message;
        }
        meter->record_usage(1'000);  // use goes on, journalled on the good lease
        meter->poll();               // (in back-off: no request)
        EXPECT_EQ(meter->status().covered_ms, 19'000);
        proxy.set(Mode::pass);
        meter->shutdown();
        ++modes;
    }
    // Charged: exactly the 41 s used per round, each on its first lease; the forged lease was
    // released on the server rather than used, and nothing is left held.
    std::int64_t used = 0;
    EXPECT_EQ(posted_total(server, user, &used), modes * ((41'000 * kPrice + 59'999) / 60'000));
    EXPECT_EQ(used, modes * 41'000);
    EXPECT_EQ(balance(server, user)["held_mt"].asInt64(), 0);
    EXPECT_GE(proxy.leases_forwarded(), modes + 1);
}

// The server settles but its answer is lost (twice: the retry too): the settle stays pending
// in the journal, and the next start resends it with the same id; it is charged once.
TEST(Hostile, LostSettleRepliesAreResentWithTheSameIdAndChargedOnce) {
    TempDir dir;
    constexpr std::int64_t kPrice = 1000;
    ServerProcess server(dir.path() + "/ledger.db", kPrice);
    ASSERT_TRUE(server.start());
    const TestUser user = make_user(server, "lost@example.org");
    grant(server, user, 1'000'000, "g1");
    HostileProxy proxy(server.port());
    const std::string config = dir.path() + "/config";
    {
        HttpClient http(server.url());
        Json::Value in;
        in["email"] = user.email;
        in["password"] = user.password;
        const HttpReply r = http.post("/v1/sessions", in);
        ASSERT_TRUE(r.ok());
        std::string error;
        ASSERT_TRUE(save_sign_in(resolve_paths(config), proxy.url(), "t", r.body, error));
    }
    MeterOptions o;
    o.server_url = proxy.url();
    o.config_dir = config;
    o.request_timeout_ms = 400;
    {
        auto meter = open_meter(o);
        for (int i = 0; i < 100 && !meter->licensed(); ++i) meter->poll();
        ASSERT_TRUE(meter->licensed()) << meter->status().message;
        meter->record_usage(90'000);
        proxy.set(Mode::lost_reply);
        meter->shutdown();  // the settle reaches the server; its answer does not come back
    }
    EXPECT_EQ(posted_total(server, user), (90'000 * kPrice + 59'999) / 60'000)
        << "the server did settle";
    const std::string journal_dir = resolve_paths(config).journal_dir();
    EXPECT_FALSE(std::filesystem::is_empty(journal_dir)) << "the unacknowledged settle is kept";
    proxy.set(Mode::pass);
    {
        auto meter = open_meter(o);
        for (int i = 0; i < 100 && !meter->licensed(); ++i) meter->poll();
        meter->shutdown();
    }
    int settles = 0;
    std::int64_t used = 0;
    EXPECT_EQ(posted_total(server, user, &used, &settles), (90'000 * kPrice + 59'999) / 60'000);
    EXPECT_EQ(settles, 1);
    EXPECT_EQ(used, 90'000);
    EXPECT_TRUE(std::filesystem::is_empty(journal_dir));
    EXPECT_EQ(balance(server, user)["held_mt"].asInt64(), 0);
}

// The device flow against a scripted server: pending, slow_down (interval grows by 5 s and
// stays grown), pending, then approved; and a code that expires.
TEST(Hostile, DeviceFlowHonoursSlowDownAndExpiredToken) {
    httplib::Server fake;
    std::atomic<int> polls{0};
    std::atomic<bool> expire{false};
    fake.Post("/v1/device/token", [&](const httplib::Request&, httplib::Response& res) {
        const int n = polls++;
        if (expire) {
            res.status = 400;
            res.set_content(R"({"error":"expired_token","message":"expired"})", "application/json");
        } else if (n == 1) {
            res.status = 400;
            res.set_content(R"({"error":"slow_down","interval":7})", "application/json");
        } else if (n < 3) {
            res.status = 400;
            res.set_content(R"({"error":"authorization_pending"})", "application/json");
        } else {
            res.status = 200;
            res.set_content(R"({"access_token":"a","refresh_token":"r","account_id":"acc",)"
                            R"("session_id":"s","device_id":"d","expires_in":600})",
                            "application/json");
        }
    });
    const int port = fake.bind_to_any_port("127.0.0.1");
    std::thread t([&] { fake.listen_after_bind(); });
    while (!fake.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    HttpClient http("http://127.0.0.1:" + std::to_string(port));
    DeviceAuthorization auth;
    auth.device_code = "dc";
    auth.expires_in_s = 600;
    auth.interval_s = 2;
    std::vector<std::int64_t> waits;
    auto record = [&](std::chrono::seconds s) { waits.push_back(s.count()); };
    Json::Value tokens;
    std::string error;
    EXPECT_EQ(wait_for_device_approval(http, auth, "c", tokens, error, record),
              DeviceOutcome::approved)
        << error;
    EXPECT_EQ(waits, (std::vector<std::int64_t>{2, 2, 7, 7}));
    EXPECT_EQ(tokens["account_id"].asString(), "acc");
    expire = true;
    waits.clear();
    EXPECT_EQ(wait_for_device_approval(http, auth, "c", tokens, error, record),
              DeviceOutcome::expired);
    EXPECT_NE(error.find("expired"), std::string::npos);
    fake.stop();
    t.join();
}

}  // namespace
}  // namespace stemsphere::client::testing
