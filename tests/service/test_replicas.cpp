// Three stemsphere-server processes on one PostgreSQL database, as docs/deploy.md runs them:
// a token issued by one node works on every node and a sign-out on one is seen by all; the
// lease-opening and sign-in limits hold for the cluster, not per node; the password-hashing
// slots bound the whole cluster. Then the same through HAProxy on loopback (when installed):
// lease+settle load spread over the nodes, every acknowledged operation present once.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <map>
#include <mutex>

#include "service/hash_slots.h"
#include "tests/service/api_fixture.h"
#include "tests/service/server_process.h"

namespace stemsphere::service::testing {
namespace {

constexpr int kNodes = 3;

int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    const int port = ntohs(addr.sin_port);
    close(fd);
    return port;
}

Reply call(int port, const std::string& method, const std::string& path, const Json::Value& body,
           const std::string& token = "") {
    httplib::Client cli("127.0.0.1", port);
    cli.set_read_timeout(30, 0);
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    const std::string text = body.isNull() ? "" : to_json_text(body);
    auto res = method == "GET"      ? cli.Get(path, h)
               : method == "DELETE" ? cli.Delete(path, h, text, "application/json")
                                    : cli.Post(path, h, text, "application/json");
    Reply r;
    if (!res) return r;
    r.status = res->status;
    r.retry_after = res->get_header_value("Retry-After");
    std::string err;
    parse_json_text(res->body, r.body, err);
    return r;
}

class Replicas : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why;
        url_ = fresh_database_url("postgresql", why);
        if (url_.empty()) GTEST_SKIP() << "skipped: " << why;
        TestServer s(url_);
        user_ = s.make_user("replica@x.org");
        s.grant(user_.account_id, 1'000'000'000, "replica-grant");
    }
    void start_nodes(const std::vector<std::string>& extra) {
        for (int i = 0; i < kNodes; ++i) {
            nodes_.push_back(std::make_unique<ServerProcess>(url_, extra));
            ASSERT_GT(nodes_.back()->port(), 0) << "node " << i << " did not start";
        }
    }
    int port(size_t i) const { return nodes_[i % nodes_.size()]->port(); }

    std::string url_;
    TestServer::User user_;
    std::vector<std::unique_ptr<ServerProcess>> nodes_;
};

TEST_F(Replicas, TokensAndSignOutHoldOnEveryNode) {
    start_nodes({});
    Json::Value in;
    in["email"] = user_.email;
    in["password"] = user_.password;
    const Reply session = call(port(0), "POST", "/v1/sessions", in);
    ASSERT_EQ(session.status, 200);
    const std::string token = session.body["access_token"].asString();
    for (size_t i = 0; i < kNodes; ++i) {
        EXPECT_EQ(call(port(i), "GET", "/v1/balance", {}, token).status, 200) << "node " << i;
    }
    // A lease opened on node 1 is settled on node 2 and replayed on node 0.
    Json::Value open;
    open["lease_id"] = "cross-node";
    open["device_id"] = "dev";
    open["want_ms"] = 60000;
    ASSERT_EQ(call(port(1), "POST", "/v1/leases", open, token).status, 201);
    Json::Value settle;
    settle["settle_id"] = "cross-node-s";
    settle["used_ms"] = 30000;
    const Reply settled = call(port(2), "POST", "/v1/leases/cross-node/settle", settle, token);
    ASSERT_EQ(settled.status, 200);
    EXPECT_EQ(call(port(0), "POST", "/v1/leases/cross-node/settle", settle, token).body,
              settled.body);
    // Refresh on node 1, then signing out on node 2 revokes the session on every node.
    Json::Value refresh;
    refresh["refresh_token"] = session.body["refresh_token"];
    const Reply refreshed = call(port(1), "POST", "/v1/sessions/refresh", refresh);
    ASSERT_EQ(refreshed.status, 200);
    const std::string token2 = refreshed.body["access_token"].asString();
    EXPECT_EQ(call(port(0), "GET", "/v1/me", {}, token2).status, 200);
    EXPECT_EQ(call(port(2), "DELETE", "/v1/sessions/current", Json::Value(), token2).status, 200);
    for (size_t i = 0; i < kNodes; ++i) {
        EXPECT_EQ(call(port(i), "GET", "/v1/me", {}, token2).status, 401) << "node " << i;
    }
}

TEST_F(Replicas, LimitsHoldForTheClusterNotPerNode) {
    // 60 lease openings per minute per account with a burst of 10: three nodes together let 10
    // through at once (and about one more per second), not 30.
    start_nodes({"--lease-rate", "60", "--signin-rate", "1000"});
    const std::string token = user_.access_token;
    int opened = 0, limited = 0;
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < 30; ++i) {
        Json::Value open;
        open["lease_id"] = "limit-" + std::to_string(i);
        open["device_id"] = "dev";
        open["want_ms"] = 1000;
        const Reply r = call(port(static_cast<size_t>(i)), "POST", "/v1/leases", open, token);
        if (r.status == 201) {
            ++opened;
            Json::Value v;
            v["void_id"] = "limit-v-" + std::to_string(i);
            call(port(static_cast<size_t>(i) + 1), "POST",
                 "/v1/leases/limit-" + std::to_string(i) + "/void", v, token);
        } else {
            EXPECT_EQ(r.status, 429) << r.body;
            EXPECT_EQ(r.body["error"], "rate_limited");
            EXPECT_FALSE(r.retry_after.empty());
            ++limited;
        }
    }
    const double took_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("lease limit over %d nodes: %d opened, %d limited in %.2f s\n", kNodes, opened,
                limited, took_s);
    EXPECT_GE(opened, 10);
    EXPECT_LE(opened, 10 + static_cast<int>(took_s) + 1);

    // Sign-in throttling per account (NIST's "prefer throttling to lockouts"): --signin-rate 8
    // is 8/min per IP (burst 10) and 2/min per account (burst 5), so 9 wrong passwords spread
    // over the nodes get 5 checks and 4 refusals, not 9 checks.
    nodes_.clear();
    start_nodes({"--signin-rate", "8"});
    int allowed = 0, throttled = 0;
    for (int i = 0; i < 9; ++i) {
        Json::Value in;
        in["email"] = "nobody@x.org";  // a key no set-up sign-in has counted yet
        in["password"] = "wrong password " + std::to_string(i);
        const Reply r = call(port(static_cast<size_t>(i)), "POST", "/v1/sessions", in);
        if (r.status == 401) {
            ++allowed;
        } else {
            EXPECT_EQ(r.status, 429) << r.body;
            ++throttled;
        }
    }
    std::printf("sign-in throttle over %d nodes: %d checked, %d throttled\n", kNodes, allowed,
                throttled);
    EXPECT_EQ(allowed, 5) << "the per-account burst of 5 is for the cluster";
    EXPECT_EQ(throttled, 4);
}

TEST_F(Replicas, HashSlotsBoundTheCluster) {
    auto db_a = open_database(url_);
    auto db_b = open_database(url_);
    HashSlots a(*db_a, 1, system_now_us, std::chrono::milliseconds(300));
    HashSlots b(*db_b, 1, system_now_us, std::chrono::milliseconds(300));
    {
        auto held = a.take(std::chrono::milliseconds(0));
        ASSERT_TRUE(held);
        EXPECT_FALSE(b.take(std::chrono::milliseconds(50))) << "two holders of one slot";
    }
    EXPECT_TRUE(b.take(std::chrono::milliseconds(0))) << "a freed slot was not taken";
    // A holder that never gives back (a node that died while hashing) frees it by timeout.
    std::optional<HashSlots::Held> stuck = a.take(std::chrono::milliseconds(0));
    ASSERT_TRUE(stuck);
    EXPECT_TRUE(b.take(std::chrono::milliseconds(1000)));
}

bool have_haproxy() {
    return std::system("command -v haproxy >/dev/null 2>&1") == 0;
}

TEST_F(Replicas, BehindHaproxyLoadIsSpreadAndEveryAcknowledgedOpIsPresentOnce) {
    if (!have_haproxy()) GTEST_SKIP() << "skipped: haproxy is not installed";
    start_nodes({});
    const int lb_port = free_port();
    char dir_template[] = "/tmp/stemsphere-haproxy-XXXXXX";
    ASSERT_TRUE(mkdtemp(dir_template));
    const std::string dir = dir_template;
    {
        std::ofstream cfg(dir + "/haproxy.cfg");
        cfg << "global\n  maxconn 256\n  pidfile " << dir << "/haproxy.pid\n"
            << "defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n"
            << "  timeout server 30s\n  retry-on conn-failure empty-response\n"
            << "frontend api\n  bind 127.0.0.1:" << lb_port << "\n  default_backend nodes\n"
            << "backend nodes\n  balance roundrobin\n  option httpchk GET /v1/health\n";
        for (int i = 0; i < kNodes; ++i) {
            cfg << "  server s" << i << " 127.0.0.1:" << port(static_cast<size_t>(i))
                << " check inter 500ms\n";
        }
    }
    ASSERT_EQ(std::system(("haproxy -D -f " + dir + "/haproxy.cfg").c_str()), 0);
    struct StopHaproxy {
        std::string dir;
        ~StopHaproxy() {
            [[maybe_unused]] int rc = std::system(
                ("kill $(cat " + dir + "/haproxy.pid) 2>/dev/null; rm -rf " + dir).c_str());
        }
    } stop_haproxy{dir};
    for (int i = 0; i < 100 && call(lb_port, "GET", "/v1/health", {}).status != 200; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // A token from a sign-in through the balancer (on whichever node) works through it.
    Json::Value in;
    in["email"] = user_.email;
    in["password"] = user_.password;
    const Reply session = call(lb_port, "POST", "/v1/sessions", in);
    ASSERT_EQ(session.status, 200) << session.body;
    const std::string token = session.body["access_token"].asString();

    constexpr int kClients = 6;
    std::mutex mutex;
    std::map<std::string, Json::Value> settled;
    std::atomic<int> failures{0};
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
        clients.emplace_back([&, c] {
            httplib::Client cli("127.0.0.1", lb_port);
            cli.set_read_timeout(30, 0);
            const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
            for (int i = 0; std::chrono::steady_clock::now() < until; ++i) {
                const std::string id = "lb" + std::to_string(c) + "-" + std::to_string(i);
                Json::Value open;
                open["lease_id"] = id;
                open["device_id"] = "dev";
                open["want_ms"] = 60000;
                auto res = cli.Post("/v1/leases", auth, to_json_text(open), "application/json");
                if (!res || res->status != 201) {
                    ++failures;
                    ADD_FAILURE() << "open " << (res ? res->body : httplib::to_string(res.error()));
                    return;
                }
                Json::Value s;
                s["settle_id"] = id + "-s";
                s["used_ms"] = 1000 + i;
                res = cli.Post("/v1/leases/" + id + "/settle", auth, to_json_text(s),
                               "application/json");
                if (!res || res->status != 200) {
                    ++failures;
                    ADD_FAILURE() << "settle "
                                  << (res ? res->body : httplib::to_string(res.error()));
                    return;
                }
                Json::Value body;
                std::string err;
                parse_json_text(res->body, body, err);
                std::lock_guard lock(mutex);
                settled[id] = body;
            }
        });
    }
    for (auto& t : clients) t.join();
    std::printf("through haproxy over %d nodes: %zu lease+settle pairs in 3 s\n", kNodes,
                settled.size());
    EXPECT_EQ(failures.load(), 0);
    auto db = open_database(url_);
    db->read([&](DbTx& tx) {
        for (const auto& [id, body] : settled) {
            const auto rows =
                tx.query("SELECT posted_mt FROM lease WHERE id = ? AND state = 'settled'", {id});
            ASSERT_EQ(rows.size(), 1u) << id;
            EXPECT_EQ(rows[0].integer(0), body["posted_mt"].asInt64());
            EXPECT_EQ(tx.query("SELECT COUNT(*) FROM usage_event WHERE lease_id = ?", {id})
                          .at(0)
                          .integer(0),
                      1);
        }
    });
    int64_t now = system_now_us();
    Ledger ledger(*db, [&now] { return now; });
    for (const auto& p : ledger.reconcile()) ADD_FAILURE() << p.what << " " << p.detail;
}

}  // namespace
}  // namespace stemsphere::service::testing
