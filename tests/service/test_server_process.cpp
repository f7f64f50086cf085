// The stemsphere-server binary as an operator runs it: the admin CLI refuses malformed numbers
// (a usage error, nothing granted), and SIGTERM under load stops accepting, lets the requests in
// flight finish, closes the database and exits 0 within its bound, with idle keep-alive
// connections open. Every acknowledged operation is in the database afterwards.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "tests/service/api_fixture.h"
#include "tests/service/server_process.h"

namespace stemsphere::service::testing {
namespace {

class ServerBinary : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        std::string why;
        url_ = fresh_database_url(GetParam(), why);
        if (url_.empty()) GTEST_SKIP() << "skipped: " << why;
    }
    void TearDown() override {
        if (url_.rfind("sqlite:", 0) == 0) {
            std::error_code ec;
            std::filesystem::remove_all(std::filesystem::path(url_.substr(7)).parent_path(), ec);
        }
    }
    // One verified, signed-in user with a large grant, made by an in-process server.
    TestServer::User set_up_user(const std::string& email) {
        ServerConfig config;  // the limits the server processes below run with (shared on PG)
        config.signin_per_minute_ip = 1e6;
        config.signin_per_minute_account = 1e6 / 4;
        TestServer s(url_, config);
        s.keep_database();
        auto u = s.make_user(email);
        s.grant(u.account_id, 1'000'000'000, "grant-" + u.account_id);
        return u;
    }
    std::string url_;
};

int64_t count_lots(const std::string& url) {
    auto db = open_database(url);
    int64_t n = 0;
    db->read([&](DbTx& tx) { n = tx.query("SELECT COUNT(*) FROM grant_lot").at(0).integer(0); });
    return n;
}

TEST_P(ServerBinary, AdminGrantRefusesAMalformedAmount) {
    const auto u = set_up_user("cli@x.org");
    const int64_t lots = count_lots(url_);
    for (const char* bad : {"12abc", "", " 12", "12.5", "0x10", "1e3"}) {
        std::string out;
        const int rc =
            run_server_command({"admin", "--db", url_, "grant", "--account", u.account_id,
                                "--amount", bad, "--category", "promo", "--id", "cli-bad"},
                               &out);
        EXPECT_EQ(rc, 2) << "--amount '" << bad << "': " << out;
        EXPECT_NE(out.find("--amount"), std::string::npos) << out;
    }
    std::string out;
    EXPECT_EQ(run_server_command(
                  {"admin", "--db", url_, "grant", "--account", u.account_id, "--amount", "1000",
                   "--category", "promo", "--id", "cli-ok", "--expires-in-days", "3d"},
                  &out),
              2)
        << out;
    EXPECT_EQ(count_lots(url_), lots) << "a refused command granted something";
    EXPECT_EQ(run_server_command({"admin", "--db", url_, "grant", "--account", u.account_id,
                                  "--amount", "12", "--category", "promo", "--id", "cli-ok"},
                                 &out),
              0)
        << out;
    EXPECT_EQ(count_lots(url_), lots + 1);
    EXPECT_EQ(run_server_command({"--db", url_, "--threads", "8x"}, &out), 2) << out;
}

TEST_P(ServerBinary, SigtermUnderLoadFinishesInFlightRequestsAndExitsZero) {
    const auto u = set_up_user("term@x.org");
    ServerProcess server(url_, {"--signin-rate", "1000000", "--cluster-hash-slots", "3"});
    ASSERT_GT(server.port(), 0);

    // Idle keep-alive connections, as a load balancer or a quiet client keeps them.
    std::vector<std::unique_ptr<httplib::Client>> idle;
    for (int i = 0; i < 4; ++i) {
        idle.push_back(std::make_unique<httplib::Client>("127.0.0.1", server.port()));
        idle.back()->set_keep_alive(true);
        ASSERT_TRUE(idle.back()->Get("/v1/health"));
    }
    constexpr int kClients = 6;
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::map<std::string, Json::Value> acknowledged;  // lease id → settle answer
    std::atomic<int> bad_status{0}, answered{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            httplib::Client cli("127.0.0.1", server.port());
            cli.set_keep_alive(true);
            cli.set_read_timeout(30, 0);
            const httplib::Headers auth = {{"Authorization", "Bearer " + u.access_token}};
            for (int i = 0; !stop; ++i) {
                const std::string id = "t" + std::to_string(c) + "-" + std::to_string(i);
                Json::Value open;
                open["lease_id"] = id;
                open["device_id"] = "dev";
                open["want_ms"] = 60000;
                auto res = cli.Post("/v1/leases", auth, to_json_text(open), "application/json");
                if (!res) break;  // the server stopped accepting
                ++answered;
                if (res->status != 201) {
                    ++bad_status;
                    ADD_FAILURE() << "open " << res->status << " " << res->body;
                    break;
                }
                Json::Value settle;
                settle["settle_id"] = id + "-s";
                settle["used_ms"] = 1000;
                res = cli.Post("/v1/leases/" + id + "/settle", auth, to_json_text(settle),
                               "application/json");
                if (!res) break;
                ++answered;
                if (res->status != 200) {
                    ++bad_status;
                    ADD_FAILURE() << "settle " << res->status << " " << res->body;
                    break;
                }
                Json::Value body;
                std::string err;
                parse_json_text(res->body, body, err);
                std::lock_guard lock(mutex);
                acknowledged[id] = body;
            }
        });
    }
    // Slow requests in flight when the signal arrives: three argon2id sign-ins at once on
    // connections the server has already accepted; the hashing pool runs two at a time, so the
    // third is still queued or hashing when the signal comes.
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    constexpr int kSlow = 3;
    std::vector<std::unique_ptr<httplib::Client>> slow_clients;
    for (int i = 0; i < kSlow; ++i) {
        slow_clients.push_back(std::make_unique<httplib::Client>("127.0.0.1", server.port()));
        slow_clients.back()->set_keep_alive(true);
        slow_clients.back()->set_read_timeout(30, 0);
        ASSERT_TRUE(slow_clients.back()->Get("/v1/health"));
    }
    std::vector<int> signin_status(kSlow, 0);
    std::vector<std::chrono::steady_clock::time_point> answered_at(kSlow);
    std::vector<std::thread> slow;
    for (int i = 0; i < kSlow; ++i) {
        slow.emplace_back([&, i] {
            Json::Value in;
            in["email"] = u.email;
            in["password"] = u.password;
            auto res = slow_clients[static_cast<size_t>(i)]->Post("/v1/sessions", to_json_text(in),
                                                                  "application/json");
            signin_status[static_cast<size_t>(i)] = res ? res->status : -1;
            answered_at[static_cast<size_t>(i)] = std::chrono::steady_clock::now();
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    const auto signalled = std::chrono::steady_clock::now();
    server.signal(SIGTERM);
    const int rc = server.wait_exit(std::chrono::seconds(15));
    const double took_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - signalled).count();
    stop = true;
    for (auto& t : slow) t.join();
    int answered_after_signal = 0;
    for (int i = 0; i < kSlow; ++i) {
        EXPECT_EQ(signin_status[static_cast<size_t>(i)], 200)
            << "a sign-in in flight at SIGTERM was not finished";
        answered_after_signal += answered_at[static_cast<size_t>(i)] > signalled;
    }
    EXPECT_GE(answered_after_signal, 1) << "no request was in flight at the signal";
    for (auto& t : clients) t.join();
    std::printf(
        "SIGTERM: exit %d after %.2f s; %d answers, %zu lease+settle acknowledged, %d sign-ins "
        "answered after the signal\n",
        rc, took_s, answered.load(), acknowledged.size(), answered_after_signal);
    EXPECT_EQ(rc, 0) << "exit status (-1: still running after 15 s)";
    EXPECT_LT(took_s, 10.0);
    EXPECT_EQ(bad_status.load(), 0);
    EXPECT_GT(acknowledged.size(), 0u);
    EXPECT_FALSE(httplib::Client("127.0.0.1", server.port()).Get("/v1/health"))
        << "still accepting after exit";

    auto db = open_database(url_);
    db->read([&](DbTx& tx) {
        for (const auto& [id, body] : acknowledged) {
            const auto rows = tx.query("SELECT state, posted_mt FROM lease WHERE id = ?", {id});
            ASSERT_EQ(rows.size(), 1u) << id;
            EXPECT_EQ(rows[0].text(0), "settled") << id;
            EXPECT_EQ(rows[0].integer(1), body["posted_mt"].asInt64()) << id;
        }
    });
    int64_t now = system_now_us();
    Ledger ledger(*db, [&now] { return now; });
    for (const auto& p : ledger.reconcile()) ADD_FAILURE() << p.what << " " << p.detail;
}

INSTANTIATE_TEST_SUITE_P(Backends, ServerBinary, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace stemsphere::service::testing
