// An in-process stemsphere-server on a free loopback port, on real SQLite (temp file) or a real
// PostgreSQL cluster (one per test executable), with a clock the test can move forward.
#pragma once

#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>

#include "service/http_api.h"
#include "service/idempotency.h"
#include "tests/service/pg_cluster.h"

namespace stemsphere::service::testing {

struct Reply {
    int status = 0;
    Json::Value body;
    std::string retry_after;
};

// The PostgreSQL cluster shared by the tests of one executable; nullptr (and `why`) if absent.
inline PgCluster* shared_cluster(std::string& why) {
    static std::string reason;
    static std::optional<PgCluster> cluster = PgCluster::start(reason);
    why = reason;
    return cluster ? &*cluster : nullptr;
}

inline std::string fresh_database_url(const std::string& backend, std::string& why) {
    static std::atomic<int> counter{0};
    const std::string name = "t" + std::to_string(getpid()) + "_" + std::to_string(counter++);
    if (backend == "sqlite") {
        const auto dir = std::filesystem::temp_directory_path() / ("stemsphere-test-" + name);
        std::filesystem::create_directories(dir);
        return "sqlite:" + (dir / "ledger.db").string();
    }
    PgCluster* c = shared_cluster(why);
    return c ? c->create_database(name) : std::string();
}

class TestServer {
  public:
    static constexpr const char* kWebhookSecret = "whsec_dGVzdC13ZWJob29rLXNlY3JldA==";

    TestServer(const std::string& url, ServerConfig config = {}) : url_(url) {
        db_ = open_database(url);
        config.port = 0;
        config.webhook_secret = kWebhookSecret;
        config.auth.hash_workers = 2;
        server_ = std::make_unique<ApiServer>(*db_, config, [this] { return now(); });
        port_ = server_->bind();
        thread_ = std::thread([this] { server_->run(); });
        // Wait until the accept loop runs.
        for (int i = 0; i < 200 && get("/v1/health").status != 200; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    ~TestServer() {
        server_->stop();
        thread_.join();
        server_.reset();
        db_.reset();
        if (remove_database_ && url_.rfind("sqlite:", 0) == 0) {
            std::error_code ec;
            std::filesystem::remove_all(std::filesystem::path(url_.substr(7)).parent_path(), ec);
        }
    }

    // The SQLite file outlives this server (for a test that goes on with another process).
    void keep_database() { remove_database_ = false; }

    int64_t now() const { return system_now_us() + offset_us_.load(); }
    void advance_seconds(int64_t s) { offset_us_ += s * 1'000'000; }
    int port() const { return port_; }
    Db& db() { return *db_; }
    ApiServer& server() { return *server_; }

    Reply call(const std::string& method, const std::string& path, const std::string& body = "",
               const std::string& token = "", const httplib::Headers& extra = {}) const {
        httplib::Client cli("127.0.0.1", port_);
        cli.set_read_timeout(30, 0);
        httplib::Headers headers = extra;
        if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
        httplib::Result res = method == "GET" ? cli.Get(path, headers)
                              : method == "DELETE"
                                  ? cli.Delete(path, headers, body, "application/json")
                                  : cli.Post(path, headers, body, "application/json");
        Reply r;
        if (!res) return r;
        r.status = res->status;
        r.retry_after = res->get_header_value("Retry-After");
        std::string err;
        if (!res->body.empty() && !parse_json_text(res->body, r.body, err))
            r.body = Json::nullValue;
        return r;
    }
    Reply get(const std::string& path, const std::string& token = "") const {
        return call("GET", path, "", token);
    }
    Reply post(const std::string& path, const Json::Value& body,
               const std::string& token = "") const {
        return call("POST", path, to_json_text(body), token);
    }

    // The verification token mailed to `email` (read from the outbox, as a mail sender would).
    std::string mailed_token(const std::string& email) {
        std::string text;
        db_->read([&](DbTx& tx) {
            const auto rows = tx.query(
                "SELECT body FROM mail_outbox WHERE to_addr = ? ORDER BY created_at DESC", {email});
            if (!rows.empty()) text = rows[0].text(0);
        });
        const auto at = text.rfind("Token: ");
        return at == std::string::npos ? "" : text.substr(at + 7);
    }

    struct User {
        std::string account_id, access_token, refresh_token, email, password;
    };
    // Signs up, verifies the email and signs in.
    User make_user(const std::string& email,
                   const std::string& password = "correct horse battery") {
        Json::Value up;
        up["email"] = email;
        up["name"] = "Test " + email;
        up["password"] = password;
        post("/v1/accounts", up);
        Json::Value verify;
        verify["token"] = mailed_token(email);
        post("/v1/accounts/verify", verify);
        Json::Value in;
        in["email"] = email;
        in["password"] = password;
        const Reply session = post("/v1/sessions", in);
        return {session.body["account_id"].asString(), session.body["access_token"].asString(),
                session.body["refresh_token"].asString(), email, password};
    }

    void grant(const std::string& account, int64_t amount_mt, const std::string& id) {
        GrantRequest g;
        g.grant_id = id;
        g.owner = account;
        g.amount_mt = amount_mt;
        g.category = "purchase";
        g.effective_at_us = now() - 1'000'000;
        server_->ledger().grant(g);
    }

  private:
    std::string url_;
    std::unique_ptr<Db> db_;
    std::unique_ptr<ApiServer> server_;
    std::thread thread_;
    int port_ = 0;
    std::atomic<int64_t> offset_us_{0};
    bool remove_database_ = true;
};

}  // namespace stemsphere::service::testing
