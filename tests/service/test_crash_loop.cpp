// kill -9 loop: the real stemsphere-server binary serves 4 clients doing lease + settle with
// client-made ids and is SIGKILLed at a random moment, 20 times per back end. Clients retry
// every unacknowledged request with the same id after each restart. At the end, every
// acknowledged operation is in the database exactly once with the acknowledged result, nothing
// appears that no client sent, reconciliation is clean, and SQLite passes integrity_check.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <random>

#include "tests/service/api_fixture.h"
#include "tests/service/server_process.h"

namespace stemsphere::service::testing {
namespace {

constexpr int kCrashes = 20;
constexpr int kClients = 4;

struct Op {
    std::string path;
    std::string body;
};

struct History {
    std::mutex mutex;
    std::map<std::string, Json::Value> acknowledged;  // request path+id → response body
    std::set<std::string> sent_leases;
};

void run_backend(const std::string& backend) {
    std::string why;
    const std::string url = fresh_database_url(backend, why);
    if (url.empty()) GTEST_SKIP() << "skipped: " << why;

    // Set-up with an in-process server: one verified user with a large grant.
    std::string token, account;
    {
        TestServer s(url);
        s.keep_database();
        const auto u = s.make_user("crash@x.org");
        token = u.access_token;
        account = u.account_id;
        s.grant(account, 100'000'000, "crash-grant");
    }

    History history;
    std::mt19937 rng(1234);
    std::vector<std::vector<Op>> pending(kClients);  // sent, not acknowledged: retried as-is
    std::vector<int> next_seq(kClients, 0);
    int acknowledged_total = 0;
    for (int round = 0; round < kCrashes; ++round) {
        ServerProcess server(url);
        ASSERT_GT(server.port(), 0) << "server did not start";
        std::atomic<bool> stop{false};
        std::vector<std::thread> clients;
        for (int c = 0; c < kClients; ++c) {
            clients.emplace_back([&, c] {
                httplib::Client cli("127.0.0.1", server.port());
                cli.set_read_timeout(5, 0);
                cli.set_connection_timeout(1, 0);
                const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
                while (!stop) {
                    if (pending[c].empty()) {
                        const std::string id =
                            "c" + std::to_string(c) + "-" + std::to_string(next_seq[c]++);
                        Json::Value open;
                        open["lease_id"] = id;
                        open["device_id"] = "dev";
                        open["want_ms"] = 60000;
                        Json::Value settle;
                        settle["settle_id"] = id + "-s";
                        settle["used_ms"] = 1000 + (next_seq[c] % 59000);
                        pending[c].push_back({"/v1/leases", to_json_text(open)});
                        pending[c].push_back(
                            {"/v1/leases/" + id + "/settle", to_json_text(settle)});
                        std::lock_guard lock(history.mutex);
                        history.sent_leases.insert(id);
                    }
                    const Op op = pending[c].front();
                    auto res = cli.Post(op.path, auth, op.body, "application/json");
                    if (!res) {
                        std::this_thread::sleep_for(std::chrono::milliseconds(5));
                        continue;  // indeterminate: retried with the same id
                    }
                    Json::Value body;
                    std::string err;
                    parse_json_text(res->body, body, err);
                    if (res->status == 503) continue;  // transient; retry
                    EXPECT_TRUE(res->status == 200 || res->status == 201)
                        << op.path << " " << res->status << " " << res->body;
                    std::lock_guard lock(history.mutex);
                    const std::string key = op.path + "#" + op.body;
                    auto [it, fresh] = history.acknowledged.emplace(key, body);
                    if (!fresh) {
                        EXPECT_EQ(it->second, body) << "a replay answered differently";
                    }
                    pending[c].erase(pending[c].begin());
                }
            });
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 300));
        server.kill9();
        stop = true;
        for (auto& t : clients) t.join();
        ASSERT_FALSE(::testing::Test::HasFailure());
    }
    // Drain what is still unacknowledged on a last server (killed too, once the queues are empty).
    {
        ServerProcess server(url);
        httplib::Client cli("127.0.0.1", server.port());
        const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
        for (int c = 0; c < kClients; ++c) {
            for (const Op& op : pending[c]) {
                auto res = cli.Post(op.path, auth, op.body, "application/json");
                ASSERT_TRUE(res);
                ASSERT_LT(res->status, 300) << res->body;
                Json::Value body;
                std::string err;
                parse_json_text(res->body, body, err);
                history.acknowledged.emplace(op.path + "#" + op.body, body);
            }
        }
    }

    // Verify against the database directly.
    auto db = open_database(url);
    int64_t now = system_now_us();
    Ledger ledger(*db, [&now] { return now; });
    db->read([&](DbTx& tx) {
        for (const auto& [key, body] : history.acknowledged) {
            ++acknowledged_total;
            if (body.isMember("hold_mt") && body["state"] == "open") {  // an acknowledged open
                const auto rows = tx.query("SELECT hold_mt, granted_ms FROM lease WHERE id = ?",
                                           {body["lease_id"].asString()});
                ASSERT_EQ(rows.size(), 1u) << key;
                EXPECT_EQ(rows[0].integer(0), body["hold_mt"].asInt64()) << key;
            } else if (body["state"] == "settled") {
                const auto rows = tx.query(
                    "SELECT state, posted_mt, used_ms FROM lease WHERE id = ? AND resolution_id = "
                    "?",
                    {body["lease_id"].asString(), body["lease_id"].asString() + "-s"});
                ASSERT_EQ(rows.size(), 1u) << key;
                EXPECT_EQ(rows[0].text(0), "settled");
                EXPECT_EQ(rows[0].integer(1), body["posted_mt"].asInt64()) << key;
                EXPECT_EQ(tx.query("SELECT COUNT(*) FROM usage_event WHERE lease_id = ?",
                                   {body["lease_id"].asString()})
                              .at(0)
                              .integer(0),
                          1);
            } else {
                ADD_FAILURE() << "unexpected acknowledged body " << key << " " << body;
            }
        }
        // Nothing appears that no client sent.
        for (const auto& r : tx.query("SELECT id FROM lease")) {
            EXPECT_TRUE(history.sent_leases.count(r.text(0))) << "phantom lease " << r.text(0);
        }
        const int64_t posted = tx.query(
                                     "SELECT COALESCE(SUM(posted_mt), 0) FROM lease WHERE "
                                     "state = 'settled'")
                                   .at(0)
                                   .integer(0);
        const int64_t consumed = tx.query(
                                       "SELECT SUM(credits_posted) FROM ledger_balance WHERE "
                                       "account_id LIKE 'op:consumed:%'")
                                     .at(0)
                                     .integer(0);
        EXPECT_EQ(posted, consumed);
        if (tx.dialect() == Dialect::kSqlite) {
            EXPECT_EQ(tx.query("PRAGMA integrity_check").at(0).text(0), "ok");
        }
    });
    for (const auto& p : ledger.reconcile()) ADD_FAILURE() << p.what << " " << p.detail;
    db.reset();
    if (url.rfind("sqlite:", 0) == 0) {
        std::error_code ec;
        std::filesystem::remove_all(std::filesystem::path(url.substr(7)).parent_path(), ec);
    }
    std::printf("%s: %d kill -9 restarts, %d acknowledged operations verified, %zu leases sent\n",
                backend.c_str(), kCrashes, acknowledged_total, history.sent_leases.size());
}

TEST(CrashLoop, KillNineUnderLoadOnSqlite) {
    run_backend("sqlite");
}
TEST(CrashLoop, KillNineUnderLoadOnPostgres) {
    run_backend("postgresql");
}

}  // namespace
}  // namespace stemsphere::service::testing
