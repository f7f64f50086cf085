// The real stemsphere-server binary on a loopback port with its own SQLite file, started and
// stopped by the test, plus helpers that make a verified, funded account the way an operator
// would (HTTP sign-up, the admin CLI's mail outbox and grant).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>

#include <json/reader.h>

#include "client/account.h"
#include "client/files.h"
#include "client/http.h"
#include "client/session.h"

namespace stemsphere::client::testing {

// A private temporary directory, removed at the end.
class TempDir {
  public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "stemsphere-client-XXXXXX");
        path_ = ::mkdtemp(pattern.data()) ? pattern : std::string();
    }
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    const std::string& path() const { return path_; }

  private:
    std::string path_;
};

// Runs a command, returns its exit code and stdout.
inline int run_command(const std::string& command, std::string& out) {
    out.clear();
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) return -1;
    std::array<char, 4096> buf{};
    size_t n = 0;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    const int status = ::pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class ServerProcess {
  public:
    ServerProcess(std::string db_file, std::int64_t price_mt = 1000)
        : db_file_(std::move(db_file)), price_(price_mt) {}
    ~ServerProcess() { stop(); }

    // Starts on `port` (0: a free one, remembered for restarts). False when it did not start.
    bool start(int port = 0) {
        int out[2];
        if (::pipe(out) != 0) return false;
        const std::string listen = "127.0.0.1:" + std::to_string(port);
        const std::string db = "sqlite:" + db_file_;
        const std::string price = std::to_string(price_);
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(out[1], STDOUT_FILENO);
            ::close(out[0]);
            ::close(out[1]);
            ::execl(STEMSPHERE_SERVER_BINARY, "stemsphere-server", "--db", db.c_str(), "--listen",
                    listen.c_str(), "--threads", "16", "--lease-rate", "100000", "--sweep-ms",
                    "200", "--price", price.c_str(), "--public-url", "http://127.0.0.1",
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(out[1]);
        FILE* f = ::fdopen(out[0], "r");
        char line[256] = {0};
        port_ = 0;
        if (f && std::fgets(line, sizeof(line), f)) {
            const char* colon = std::strrchr(line, ':');
            if (colon) port_ = std::atoi(colon + 1);
        }
        if (f) std::fclose(f);
        return port_ > 0;
    }
    // Starts again on the port it had (a client keeps its URL).
    bool restart() { return start(port_); }
    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
            pid_ = -1;
        }
    }
    int port() const { return port_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    const std::string& db_file() const { return db_file_; }

    // `stemsphere-server admin ...` on this database; JSON output parsed.
    Json::Value admin(const std::string& args, int* exit_code = nullptr) const {
        std::string out;
        const int rc =
            run_command(std::string(STEMSPHERE_SERVER_BINARY) + " admin --db sqlite:" + db_file_ +
                            " " + args + " 2>/dev/null",
                        out);
        if (exit_code) *exit_code = rc;
        Json::Value v;
        Json::CharReaderBuilder b;
        std::string errs;
        std::istringstream in(out);
        Json::parseFromStream(b, in, &v, &errs);
        return v;
    }

  private:
    std::string db_file_;
    std::int64_t price_;
    pid_t pid_ = -1;
    int port_ = 0;
};

struct TestUser {
    std::string email, password = "correct horse battery", account_id;
    Json::Value tokens;  // a password sign-in's tokens (a separate session from the client's)
};

// Signs up, verifies through the mail outbox and signs in with the password.
inline TestUser make_user(ServerProcess& server, const std::string& email) {
    TestUser u;
    u.email = email;
    HttpClient http(server.url());
    Json::Value up;
    up["email"] = email;
    up["name"] = "Test";
    up["password"] = u.password;
    const HttpReply created = http.post("/v1/accounts", up);
    EXPECT_EQ(created.status, 201) << created.describe();
    u.account_id = created.body["account_id"].asString();
    std::string token;
    for (const auto& mail : server.admin("outbox")) {
        if (mail["to"].asString() != email) continue;
        const std::string body = mail["body"].asString();
        const auto at = body.rfind("Token: ");
        if (at != std::string::npos) token = body.substr(at + 7);
    }
    Json::Value verify;
    verify["token"] = token;
    EXPECT_EQ(http.post("/v1/accounts/verify", verify).status, 200);
    Json::Value in;
    in["email"] = email;
    in["password"] = u.password;
    in["device_name"] = "test harness";
    const HttpReply session = http.post("/v1/sessions", in);
    EXPECT_EQ(session.status, 200) << session.describe();
    u.tokens = session.body;
    return u;
}

// Grants `amount_mt` milli-tokens through the operator CLI.
inline void grant(ServerProcess& server, const TestUser& u, std::int64_t amount_mt,
                  const std::string& id) {
    int rc = -1;
    server.admin("grant --account " + u.account_id + " --amount " + std::to_string(amount_mt) +
                     " --category purchase --id " + id,
                 &rc);
    EXPECT_EQ(rc, 0);
}

// A client sign-in of its own (its own session and refresh token) saved in `config_dir`, as
// `stemsphere-account login` leaves it.
inline void sign_in_client(ServerProcess& server, const TestUser& u,
                           const std::string& config_dir) {
    HttpClient http(server.url());
    Json::Value in;
    in["email"] = u.email;
    in["password"] = u.password;
    in["device_name"] = "client under test";
    in["client_id"] = "stemsphere-plugin";
    const HttpReply r = http.post("/v1/sessions", in);
    ASSERT_EQ(r.status, 200) << r.describe();
    std::string error;
    ASSERT_TRUE(
        save_sign_in(resolve_paths(config_dir), server.url(), "stemsphere-plugin", r.body, error))
        << error;
}

inline Json::Value balance(ServerProcess& server, const TestUser& u) {
    return server.admin("balance --account " + u.account_id);
}

// Milli-tokens the user has spent: what the ledger posted across all their settles (from the
// server's usage history, read with the harness's own session).
inline std::int64_t posted_total(ServerProcess& server, const TestUser& u,
                                 std::int64_t* used_ms = nullptr, int* settles = nullptr) {
    HttpClient http(server.url());
    const HttpReply r = http.get("/v1/usage?limit=1000", u.tokens["access_token"].asString());
    EXPECT_TRUE(r.ok()) << r.describe();
    std::int64_t total = 0, used = 0;
    for (const auto& it : r.body["items"]) {
        total += it["posted_mt"].asInt64();
        used += it["used_ms"].asInt64();
    }
    if (used_ms) *used_ms = used;
    if (settles) *settles = static_cast<int>(r.body["items"].size());
    return total;
}

// What the server charges for one settle: ceil(used_ms × price / 60000).
inline std::int64_t price_of(std::int64_t used_ms, std::int64_t price_mt) {
    return (used_ms * price_mt + 59999) / 60000;
}

}  // namespace stemsphere::client::testing
