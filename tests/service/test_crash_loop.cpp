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

// Every acknowledged operation is in the database exactly once with the acknowledged result,
// nothing appears that no client sent, the posted sums agree, reconciliation is clean (and
// SQLite passes integrity_check). Returns the number of acknowledged operations.
int verify_history(const std::string& url, const History& history) {
    int acknowledged_total = 0;
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
    return acknowledged_total;
}

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

    acknowledged_total = verify_history(url, history);
    std::printf("%s: %d kill -9 restarts, %d acknowledged operations verified, %zu leases sent\n",
                backend.c_str(), kCrashes, acknowledged_total, history.sent_leases.size());
}

TEST(CrashLoop, KillNineUnderLoadOnSqlite) {
    run_backend("sqlite");
}
TEST(CrashLoop, KillNineUnderLoadOnPostgres) {
    run_backend("postgresql");
}

// Three replicas on one PostgreSQL database under 6 clients (two per node, retrying every
// unacknowledged request with the same id): every round one replica is kill -9ed and started
// again, and halfway PostgreSQL itself is stopped with `pg_ctl stop -m immediate` for 1.5 s and
// started again (crash recovery). During the outage every answer is `503 unavailable` with
// Retry-After, never another error and never a success; afterwards every acknowledged operation
// is present exactly once, replays answered byte-identically, and reconciliation is clean.
TEST(CrashLoop, ReplicasAndPostgresCrashUnderLoad) {
    std::string why;
    const std::string url = fresh_database_url("postgresql", why);
    if (url.empty()) GTEST_SKIP() << "skipped: " << why;
    PgCluster* cluster = shared_cluster(why);
    ASSERT_NE(cluster, nullptr);
    std::string token;
    {
        TestServer s(url);
        const auto u = s.make_user("replica-crash@x.org");
        token = u.access_token;
        s.grant(u.account_id, 100'000'000, "replica-crash-grant");
    }
    constexpr int kNodes = 3, kReplicaClients = 6, kRounds = 8;
    std::vector<std::unique_ptr<ServerProcess>> nodes;
    std::mutex ports_mutex;
    std::vector<int> ports;
    for (int i = 0; i < kNodes; ++i) {
        nodes.push_back(std::make_unique<ServerProcess>(url));
        ASSERT_GT(nodes.back()->port(), 0);
        ports.push_back(nodes.back()->port());
    }
    History history;
    std::vector<std::vector<Op>> pending(kReplicaClients);
    std::vector<int> next_seq(kReplicaClients, 0);
    std::atomic<bool> stop{false}, db_down{false};
    std::atomic<int> unavailable{0}, unavailable_in_outage{0}, successes_in_outage{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kReplicaClients; ++c) {
        clients.emplace_back([&, c] {
            const size_t node = static_cast<size_t>(c % kNodes);
            int port = 0;
            std::unique_ptr<httplib::Client> cli;
            const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
            while (!stop) {
                {
                    std::lock_guard lock(ports_mutex);
                    if (ports[node] != port) {
                        port = ports[node];
                        cli = std::make_unique<httplib::Client>("127.0.0.1", port);
                        cli->set_read_timeout(5, 0);
                        cli->set_connection_timeout(1, 0);
                    }
                }
                if (pending[c].empty()) {
                    const std::string id =
                        "r" + std::to_string(c) + "-" + std::to_string(next_seq[c]++);
                    Json::Value open;
                    open["lease_id"] = id;
                    open["device_id"] = "dev";
                    open["want_ms"] = 60000;
                    Json::Value settle;
                    settle["settle_id"] = id + "-s";
                    settle["used_ms"] = 1000 + (next_seq[c] % 59000);
                    pending[c].push_back({"/v1/leases", to_json_text(open)});
                    pending[c].push_back({"/v1/leases/" + id + "/settle", to_json_text(settle)});
                    std::lock_guard lock(history.mutex);
                    history.sent_leases.insert(id);
                }
                const Op op = pending[c].front();
                const bool outage = db_down;
                auto res = cli->Post(op.path, auth, op.body, "application/json");
                if (!res) {  // the node is down: indeterminate, retried with the same id
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                    continue;
                }
                Json::Value body;
                std::string err;
                parse_json_text(res->body, body, err);
                if (res->status == 503) {
                    ++unavailable;
                    if (outage && db_down) ++unavailable_in_outage;
                    EXPECT_EQ(body["error"], "unavailable") << res->body;
                    EXPECT_FALSE(res->get_header_value("Retry-After").empty());
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                    continue;
                }
                EXPECT_TRUE(res->status == 200 || res->status == 201)
                    << op.path << " " << res->status << " " << res->body;
                if (outage && db_down) ++successes_in_outage;
                std::lock_guard lock(history.mutex);
                auto [it, fresh] = history.acknowledged.emplace(op.path + "#" + op.body, body);
                if (!fresh) {
                    EXPECT_EQ(it->second, body) << "a replay answered differently";
                }
                pending[c].erase(pending[c].begin());
            }
        });
    }
    std::mt19937 rng(4321);
    for (int round = 0; round < kRounds; ++round) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 300));
        const size_t victim = static_cast<size_t>(round % kNodes);
        nodes[victim]->kill9();
        nodes[victim] = std::make_unique<ServerProcess>(url);
        ASSERT_GT(nodes[victim]->port(), 0) << "a replica did not restart";
        {
            std::lock_guard lock(ports_mutex);
            ports[victim] = nodes[victim]->port();
        }
        if (round == kRounds / 2) {
            ASSERT_TRUE(cluster->stop_immediately());
            db_down = true;
            std::this_thread::sleep_for(std::chrono::milliseconds(1500));
            db_down = false;
            ASSERT_TRUE(cluster->start_again());
        }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    stop = true;
    for (auto& t : clients) t.join();
    // What is still unacknowledged goes to a live node until it is answered.
    {
        httplib::Client cli("127.0.0.1", ports[0]);
        cli.set_read_timeout(10, 0);
        const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
        for (int c = 0; c < kReplicaClients; ++c) {
            for (const Op& op : pending[c]) {
                httplib::Result res = cli.Post(op.path, auth, op.body, "application/json");
                for (int i = 0; i < 100 && (!res || res->status == 503); ++i) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));
                    res = cli.Post(op.path, auth, op.body, "application/json");
                }
                ASSERT_TRUE(res);
                ASSERT_LT(res->status, 300) << res->body;
                Json::Value body;
                std::string err;
                parse_json_text(res->body, body, err);
                history.acknowledged.emplace(op.path + "#" + op.body, body);
            }
        }
    }
    nodes.clear();
    const int acknowledged_total = verify_history(url, history);
    std::printf(
        "3 replicas: %d kill -9 restarts and one PostgreSQL crash; %d acknowledged operations "
        "verified, %zu leases sent; %d answers 503 (%d during the outage), %d successes during "
        "the outage\n",
        kRounds, acknowledged_total, history.sent_leases.size(), unavailable.load(),
        unavailable_in_outage.load(), successes_in_outage.load());
    EXPECT_GT(unavailable_in_outage.load(), 0) << "the outage was not seen";
    EXPECT_EQ(successes_in_outage.load(), 0) << "a success while the database was down";
}

}  // namespace
}  // namespace stemsphere::service::testing
