// Races a retrying client and the expiry sweeper produce, on real SQLite and real PostgreSQL:
// the same id in flight several times at once (a retry after a timeout while the first try
// still runs) gets the stored answer on every try, byte for byte; a settle or void racing the
// sweeper is answered with its business outcome; the same email signed up twice at once, and one
// webhook delivered twice at once, resolve to one winner. Never a 500. Seeded: the seed is
// printed and a failing one can be replayed with STEMSPHERE_RACE_SEED.
#include <gtest/gtest.h>

#include <barrier>
#include <cstdlib>
#include <random>

#include "service/crypto.h"
#include "tests/service/api_fixture.h"

namespace stemsphere::service::testing {
namespace {

constexpr int kTries = 6;    // concurrent copies of one request
constexpr int kTrials = 12;  // ids raced per test

uint32_t race_seed() {
    const char* s = std::getenv("STEMSPHERE_RACE_SEED");
    return s ? static_cast<uint32_t>(std::strtoul(s, nullptr, 10)) : 15u;
}

struct Raw {
    int status = 0;  // 0: no answer
    std::string body;
};

// Sends `count` copies of one request at the same instant, each on its own warmed-up
// connection, each copy delayed by a seeded jitter of 0..200 µs.
std::vector<Raw> race(int port, const std::string& token, const std::string& path,
                      const std::string& body, const httplib::Headers& extra, int count,
                      std::mt19937& rng) {
    std::vector<Raw> out(static_cast<size_t>(count));
    std::vector<int> jitter_us;
    for (int i = 0; i < count; ++i) jitter_us.push_back(static_cast<int>(rng() % 200));
    std::barrier start(count);
    std::vector<std::thread> threads;
    for (int i = 0; i < count; ++i) {
        threads.emplace_back([&, i] {
            httplib::Client cli("127.0.0.1", port);
            cli.set_read_timeout(60, 0);
            cli.set_keep_alive(true);
            cli.Get("/v1/health");  // connect before the start line
            httplib::Headers headers = extra;
            if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
            start.arrive_and_wait();
            std::this_thread::sleep_for(
                std::chrono::microseconds(jitter_us[static_cast<size_t>(i)]));
            auto res = cli.Post(path, headers, body, "application/json");
            if (res) out[static_cast<size_t>(i)] = {res->status, res->body};
        });
    }
    for (auto& t : threads) t.join();
    return out;
}

class Races : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        std::string why;
        url_ = fresh_database_url(GetParam(), why);
        if (url_.empty()) GTEST_SKIP() << "skipped: " << why;
        std::printf("seed %u (STEMSPHERE_RACE_SEED replays it)\n", race_seed());
    }
    ServerConfig config() const {
        ServerConfig c;
        c.threads = 64;
        c.lease_per_minute_account = 1e9;
        c.ledger.max_open_leases = 10'000;
        return c;
    }
    std::string url_;
};

void expect_all_identical(const std::vector<Raw>& answers, int status, const std::string& what) {
    ASSERT_FALSE(answers.empty());
    for (const Raw& a : answers) {
        EXPECT_EQ(a.status, status) << what << ": " << a.body;
        EXPECT_EQ(a.body, answers[0].body) << what << ": a retry was answered differently";
    }
}

TEST_P(Races, SameLeaseIdInFlightGetsOneStoredAnswer) {
    TestServer s(url_, config());
    const auto u = s.make_user("lease-race@x.org");
    s.grant(u.account_id, 10'000'000, "g");
    std::mt19937 rng(race_seed());
    for (int trial = 0; trial < kTrials; ++trial) {
        Json::Value open;
        open["lease_id"] = "race-" + std::to_string(trial);
        open["device_id"] = "dev";
        open["want_ms"] = static_cast<int>(1000 + rng() % 59000);
        const auto answers =
            race(s.port(), u.access_token, "/v1/leases", to_json_text(open), {}, kTries, rng);
        expect_all_identical(answers, 201, "open " + open["lease_id"].asString());
    }
    for (const auto& p : s.server().ledger().reconcile())
        ADD_FAILURE() << p.what << " " << p.detail;
}

TEST_P(Races, SameSettleIdInFlightGetsOneStoredAnswer) {
    TestServer s(url_, config());
    const auto u = s.make_user("settle-race@x.org");
    s.grant(u.account_id, 10'000'000, "g");
    std::mt19937 rng(race_seed() + 1);
    for (int trial = 0; trial < kTrials; ++trial) {
        const std::string id = "l-" + std::to_string(trial);
        Json::Value open;
        open["lease_id"] = id;
        open["device_id"] = "dev";
        open["want_ms"] = 60000;
        ASSERT_EQ(s.post("/v1/leases", open, u.access_token).status, 201);
        Json::Value settle;
        settle["settle_id"] = id + "-s";
        settle["used_ms"] = static_cast<int>(rng() % 60000);
        const auto answers = race(s.port(), u.access_token, "/v1/leases/" + id + "/settle",
                                  to_json_text(settle), {}, kTries, rng);
        expect_all_identical(answers, 200, "settle " + id);
    }
    // Two different ids racing for one lease: one settles, the other is told it lost.
    for (int trial = 0; trial < kTrials; ++trial) {
        const std::string id = "two-" + std::to_string(trial);
        Json::Value open;
        open["lease_id"] = id;
        open["device_id"] = "dev";
        open["want_ms"] = 60000;
        ASSERT_EQ(s.post("/v1/leases", open, u.access_token).status, 201);
        std::vector<Raw> answers(2);
        std::barrier start(2);
        std::vector<std::thread> threads;
        for (int i = 0; i < 2; ++i) {
            threads.emplace_back([&, i] {
                httplib::Client cli("127.0.0.1", s.port());
                cli.Get("/v1/health");
                Json::Value settle;
                settle["settle_id"] = id + "-s" + std::to_string(i);
                settle["used_ms"] = 1000;
                start.arrive_and_wait();
                auto res = cli.Post("/v1/leases/" + id + "/settle",
                                    {{"Authorization", "Bearer " + u.access_token}},
                                    to_json_text(settle), "application/json");
                if (res) answers[static_cast<size_t>(i)] = {res->status, res->body};
            });
        }
        for (auto& t : threads) t.join();
        const int ok = (answers[0].status == 200) + (answers[1].status == 200);
        const int lost = (answers[0].status == 409) + (answers[1].status == 409);
        EXPECT_EQ(ok, 1) << answers[0].body << " / " << answers[1].body;
        EXPECT_EQ(lost, 1) << answers[0].body << " / " << answers[1].body;
    }
    for (const auto& p : s.server().ledger().reconcile())
        ADD_FAILURE() << p.what << " " << p.detail;
}

// Leases of several accounts fall due while the sweeper runs in a loop; their owners settle and
// void them at the same time, and settle leases that are not due. A due lease is expired exactly
// once, whoever comes first, and its settle/void is told `lease_already_expired`.
TEST_P(Races, SettleAndVoidRacingTheSweeperExpireOnce) {
    ServerConfig quiet = config();
    quiet.sweep_interval_ms = 3'600'000;  // this test drives the sweeper itself
    TestServer s(url_, quiet);
    constexpr int kUsers = 4, kLeasesPerUser = 24;
    std::mt19937 rng(race_seed() + 2);
    std::vector<TestServer::User> users;
    for (int i = 0; i < kUsers; ++i) {
        users.push_back(s.make_user("sweep-" + std::to_string(i) + "@x.org"));
        s.grant(users.back().account_id, 100'000'000, "g" + std::to_string(i));
    }
    struct Lease {
        int user;
        std::string id;
        bool due;
        bool settle;
    };
    std::vector<Lease> leases;
    for (int u = 0; u < kUsers; ++u) {
        for (int i = 0; i < kLeasesPerUser; ++i) {
            Lease l{u, "u" + std::to_string(u) + "-" + std::to_string(i), rng() % 4 != 0,
                    rng() % 2 == 0};
            Json::Value open;
            open["lease_id"] = l.id;
            open["device_id"] = "dev";
            open["want_ms"] = 60000;
            open["ttl_s"] = l.due ? 1 : 3600;
            ASSERT_EQ(s.post("/v1/leases", open, users[static_cast<size_t>(u)].access_token).status,
                      201);
            leases.push_back(l);
        }
    }
    std::shuffle(leases.begin(), leases.end(), rng);
    s.advance_seconds(5);

    std::atomic<bool> done{false};
    std::atomic<int64_t> swept{0};
    std::vector<std::thread> sweepers;
    for (int i = 0; i < 2; ++i) {
        sweepers.emplace_back([&] {
            while (!done) {
                try {
                    swept += s.server().ledger().sweep();
                } catch (const std::exception& e) {
                    ADD_FAILURE() << "sweeper: " << e.what();
                }
            }
        });
    }
    constexpr int kClients = 8;
    std::vector<Raw> answers(leases.size());
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            httplib::Client cli("127.0.0.1", s.port());
            cli.set_read_timeout(60, 0);
            for (size_t i = static_cast<size_t>(c); i < leases.size(); i += kClients) {
                const Lease& l = leases[i];
                Json::Value body;
                if (l.settle) {
                    body["settle_id"] = l.id + "-s";
                    body["used_ms"] = 30000;
                } else {
                    body["void_id"] = l.id + "-v";
                }
                auto res = cli.Post("/v1/leases/" + l.id + (l.settle ? "/settle" : "/void"),
                                    {{"Authorization",
                                      "Bearer " + users[static_cast<size_t>(l.user)].access_token}},
                                    to_json_text(body), "application/json");
                if (res) answers[i] = {res->status, res->body};
            }
        });
    }
    for (auto& t : clients) t.join();
    done = true;
    for (auto& t : sweepers) t.join();

    for (size_t i = 0; i < leases.size(); ++i) {
        const Lease& l = leases[i];
        Json::Value body;
        std::string err;
        parse_json_text(answers[i].body, body, err);
        if (l.due) {
            EXPECT_EQ(answers[i].status, 409) << l.id << " " << answers[i].body;
            EXPECT_EQ(body["error"], "lease_already_expired") << l.id << " " << answers[i].body;
        } else {
            EXPECT_EQ(answers[i].status, 200) << l.id << " " << answers[i].body;
            EXPECT_EQ(body["state"], l.settle ? "settled" : "voided") << l.id;
        }
    }
    s.db().read([&](DbTx& tx) {
        for (const Lease& l : leases) {
            const auto rows = tx.query("SELECT COUNT(*) FROM ledger_transfer WHERE id = ?",
                                       {"lease:" + l.id + ":0:expire"});
            EXPECT_EQ(rows.at(0).integer(0), l.due ? 1 : 0) << l.id;
        }
    });
    for (const auto& p : s.server().ledger().reconcile())
        ADD_FAILURE() << p.what << " " << p.detail;
}

TEST_P(Races, SameEmailSignedUpTwiceAtOnceHasOneWinner) {
    ServerConfig open_signup = config();
    open_signup.signup_per_minute_ip = 1e6;
    TestServer s(url_, open_signup);
    std::mt19937 rng(race_seed() + 3);
    for (int trial = 0; trial < 3; ++trial) {
        Json::Value up;
        up["email"] = "twice-" + std::to_string(trial) + "@x.org";
        up["name"] = "Twice";
        up["password"] = "correct horse battery";
        const auto answers = race(s.port(), "", "/v1/accounts", to_json_text(up), {}, 3, rng);
        // Sign-up answers 202 whether or not the address is taken (no account enumeration):
        // every racer gets it, never a 500, and the database holds one account.
        for (const Raw& a : answers) EXPECT_EQ(a.status, 202) << a.body;
        s.db().read([&](DbTx& tx) {
            const auto rows =
                tx.query("SELECT COUNT(*) FROM account WHERE email = ?", {up["email"].asString()});
            EXPECT_EQ(rows.at(0).integer(0), 1) << up["email"].asString();
        });
    }
}

TEST_P(Races, OneWebhookDeliveredTwiceAtOnceGrantsOnce) {
    TestServer s(url_, config());
    const auto u = s.make_user("hook-race@x.org");
    std::mt19937 rng(race_seed() + 4);
    const std::string key =
        *base64_decode(std::string(TestServer::kWebhookSecret).substr(6), false);
    for (int trial = 0; trial < kTrials; ++trial) {
        Json::Value event;
        event["type"] = "credit_pack.purchased";
        event["data"]["account_id"] = u.account_id;
        event["data"]["amount_mt"] = 1000;
        const std::string body = to_json_text(event);
        const std::string id = "evt-" + std::to_string(trial);
        const std::string ts = std::to_string(s.now() / 1'000'000);
        const std::string sig = base64_encode(hmac_sha256(key, id + "." + ts + "." + body), false);
        const httplib::Headers h = {
            {"webhook-id", id}, {"webhook-timestamp", ts}, {"webhook-signature", "v1," + sig}};
        const auto answers = race(s.port(), "", "/v1/webhooks/payments", body, h, kTries, rng);
        expect_all_identical(answers, 201, "webhook " + id);
    }
    EXPECT_EQ(s.get("/v1/balance", u.access_token).body["available_mt"], kTrials * 1000);
    for (const auto& p : s.server().ledger().reconcile())
        ADD_FAILURE() << p.what << " " << p.detail;
}

INSTANTIATE_TEST_SUITE_P(Backends, Races, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace stemsphere::service::testing
