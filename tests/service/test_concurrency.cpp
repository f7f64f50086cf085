// 64 concurrent HTTP clients spending one wallet, on real SQLite and real PostgreSQL: the wallet
// never goes negative and exactly the affordable number of leases succeed.
#include <gtest/gtest.h>

#include <barrier>

#include "tests/service/api_fixture.h"

namespace stemsphere::service::testing {
namespace {

constexpr int kClients = 64;

class Concurrency : public ::testing::TestWithParam<std::string> {};

TEST_P(Concurrency, SixtyFourClientsSpendOneWallet) {
    std::string why;
    const std::string url = fresh_database_url(GetParam(), why);
    if (url.empty()) GTEST_SKIP() << "skipped: " << why;
    ServerConfig config;
    config.threads = kClients + 16;  // every keep-alive connection gets a thread
    config.ledger.max_open_leases = 1000;
    config.lease_per_minute_account = 1e6;
    TestServer s(url, config);
    const auto u = s.make_user("hot@x.org");
    s.grant(u.account_id, 40'500, "hot-grant");  // pays for 40 one-minute leases, not 41

    // Phase 1: all 64 ask for one minute (1000 mt) at the same instant, nothing partial.
    std::atomic<int> granted{0}, refused{0}, other{0};
    std::barrier start(kClients);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            httplib::Client cli("127.0.0.1", s.port());
            cli.set_read_timeout(60, 0);
            const httplib::Headers auth = {{"Authorization", "Bearer " + u.access_token}};
            Json::Value body;
            body["lease_id"] = "burst-" + std::to_string(c);
            body["device_id"] = "dev-" + std::to_string(c);
            body["want_ms"] = 60000;
            body["min_ms"] = 60000;
            start.arrive_and_wait();
            auto res = cli.Post("/v1/leases", auth, to_json_text(body), "application/json");
            if (res && res->status == 201) {
                ++granted;
            } else if (res && res->status == 402) {
                ++refused;
            } else {
                ++other;
                ADD_FAILURE() << "lease: "
                              << (res ? std::to_string(res->status) + " " + res->body
                                      : httplib::to_string(res.error()));
            }
        });
    }
    for (auto& t : clients) t.join();
    clients.clear();
    EXPECT_EQ(granted.load(), 40);
    EXPECT_EQ(refused.load(), kClients - 40);
    EXPECT_EQ(other.load(), 0);
    Reply balance = s.get("/v1/balance", u.access_token);
    EXPECT_EQ(balance.body["available_mt"], 500);
    EXPECT_EQ(balance.body["held_mt"], 40'000);

    // Phase 2: release the holds, then 64 clients loop lease(100 ms = 2 mt) + settle(100 ms)
    // until refused. 3,200 mt pays for exactly 1,600 of them.
    for (int c = 0; c < kClients; ++c) {
        Json::Value v;
        v["void_id"] = "burst-void-" + std::to_string(c);
        s.post("/v1/leases/burst-" + std::to_string(c) + "/void", v, u.access_token);
    }
    ASSERT_EQ(s.get("/v1/balance", u.access_token).body["available_mt"], 40'500);
    // Spend all but 3,201 mt with one settle, so phase 2 stays short; the last milli-token can
    // never be spent in 2-mt steps.
    Json::Value big;
    big["lease_id"] = "drain";
    big["device_id"] = "dev";
    big["want_ms"] = (40'500 - 3'201) * 60;
    ASSERT_EQ(s.post("/v1/leases", big, u.access_token).status, 201);
    Json::Value drain;
    drain["settle_id"] = "drain-s";
    drain["used_ms"] = (40'500 - 3'201) * 60;
    ASSERT_EQ(s.post("/v1/leases/drain/settle", drain, u.access_token).status, 200);
    std::atomic<int> spent{0}, unexpected{0};
    std::atomic<bool> negative_seen{false};
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            httplib::Client cli("127.0.0.1", s.port());
            cli.set_read_timeout(60, 0);
            const httplib::Headers auth = {{"Authorization", "Bearer " + u.access_token}};
            for (int i = 0; i < 100'000; ++i) {  // bounded; ends at the first refusal
                const std::string id = "loop-" + std::to_string(c) + "-" + std::to_string(i);
                Json::Value open;
                open["lease_id"] = id;
                open["device_id"] = "dev";
                open["want_ms"] = 100;
                open["min_ms"] = 100;
                auto res = cli.Post("/v1/leases", auth, to_json_text(open), "application/json");
                if (!res || res->status != 201) {
                    if (!res || res->status != 402) {
                        ++unexpected;
                        ADD_FAILURE() << "lease: "
                                      << (res ? std::to_string(res->status) + " " + res->body
                                              : httplib::to_string(res.error()));
                    }
                    break;
                }
                Json::Value settle;
                settle["settle_id"] = id + "-s";
                settle["used_ms"] = 100;
                auto done = cli.Post("/v1/leases/" + id + "/settle", auth, to_json_text(settle),
                                     "application/json");
                if (!done || done->status != 200) {
                    ++unexpected;
                    ADD_FAILURE() << "settle: "
                                  << (done ? std::to_string(done->status) + " " + done->body
                                           : httplib::to_string(done.error()));
                    break;
                }
                ++spent;
                if (i % 50 == 0) {
                    auto b = cli.Get("/v1/balance", auth);
                    Json::Value bv;
                    std::string err;
                    if (b && parse_json_text(b->body, bv, err) &&
                        bv["available_mt"].asInt64() < 0) {
                        negative_seen = true;
                    }
                }
            }
        });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(spent.load(), 1'600);
    EXPECT_EQ(unexpected.load(), 0);
    EXPECT_FALSE(negative_seen.load());
    balance = s.get("/v1/balance", u.access_token);
    EXPECT_EQ(balance.body["available_mt"], 1);
    EXPECT_EQ(balance.body["held_mt"], 0);
    const auto problems = s.server().ledger().reconcile();
    for (const auto& p : problems) ADD_FAILURE() << p.what << " " << p.detail;
}

INSTANTIATE_TEST_SUITE_P(Backends, Concurrency, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace stemsphere::service::testing
