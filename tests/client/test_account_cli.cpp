// stemsphere-account against the real server: the device sign-in (approved in "the browser",
// i.e. POST /v1/device/approve with the user's web session, or declined), then the read-only
// commands and logout, in human and --json form.
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/client/server_harness.h"

namespace stemsphere::client::testing {
namespace {

// A running `stemsphere-account login`: its first JSON object (the code to show) is read.
class LoginProcess {
  public:
    LoginProcess(const std::string& server, const std::string& config) {
        int out[2];
        if (::pipe(out) != 0) return;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(out[1], STDOUT_FILENO);
            ::close(out[0]);
            ::close(out[1]);
            ::execl(STEMSPHERE_ACCOUNT_BINARY, "stemsphere-account", "login", "--json", "--server",
                    server.c_str(), "--config-dir", config.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(out[1]);
        out_ = ::fdopen(out[0], "r");
    }
    ~LoginProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (out_) std::fclose(out_);
    }
    // The next JSON object it prints (styled: ends with a line "}").
    Json::Value next_object() {
        std::string text;
        char line[1024];
        while (out_ && std::fgets(line, sizeof(line), out_)) {
            text += line;
            if (std::string(line) == "}\n") break;
        }
        Json::Value v;
        std::string error;
        parse_json_object(text, v, error);
        return v;
    }
    int wait_exit() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }

  private:
    pid_t pid_ = -1;
    std::FILE* out_ = nullptr;
};

HttpReply approve(ServerProcess& server, const TestUser& user, const std::string& code, bool yes) {
    HttpClient http(server.url());
    Json::Value body;
    body["user_code"] = code;
    body["approve"] = yes;
    return http.post("/v1/device/approve", body, user.tokens["access_token"].asString());
}

std::string cli(const std::string& args, int& rc) {
    std::string out;
    rc = run_command(std::string(STEMSPHERE_ACCOUNT_BINARY) + " " + args + " 2>&1", out);
    return out;
}

TEST(AccountCli, DeviceLoginApprovedThenStatusBalanceUsageDevicesLogout) {
    TempDir dir;
    ServerProcess server(dir.path() + "/ledger.db", 1000);
    ASSERT_TRUE(server.start());
    const TestUser user = make_user(server, "cli@example.org");
    grant(server, user, 90'000, "g1");
    const std::string config = dir.path() + "/config";
    LoginProcess login(server.url(), config);
    const Json::Value shown = login.next_object();
    ASSERT_EQ(shown["event"].asString(), "authorize") << shown.toStyledString();
    EXPECT_NE(shown["verification_uri"].asString().find("/device"), std::string::npos);
    const std::string code = shown["user_code"].asString();
    ASSERT_EQ(code.size(), 9u);  // XXXX-XXXX
    const HttpReply approved = approve(server, user, code, true);
    ASSERT_TRUE(approved.ok()) << approved.describe();
    const Json::Value done = login.next_object();
    EXPECT_EQ(done["event"].asString(), "signed_in") << done.toStyledString();
    EXPECT_EQ(done["account_id"].asString(), user.account_id);
    EXPECT_EQ(login.wait_exit(), 0);

    const Paths paths = resolve_paths(config);
    struct stat st {};
    ASSERT_EQ(::stat(paths.credentials_file().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat(paths.dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);

    // --server was remembered: later commands need no flag.
    const std::string base = "--config-dir " + config;
    int rc = -1;
    std::string out = cli("status " + base, rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("cli@example.org"), std::string::npos) << out;
    out = cli("balance --json " + base, rc);
    EXPECT_EQ(rc, 0) << out;
    Json::Value bal;
    std::string error;
    ASSERT_TRUE(parse_json_object(out, bal, error)) << out;
    EXPECT_EQ(bal["available_mt"].asInt64(), 90'000);
    out = cli("balance " + base, rc);
    EXPECT_NE(out.find("90.000 tokens (90.0 min"), std::string::npos) << out;

    // Use some minutes through a lease, then read them back per day.
    {
        HttpClient http(server.url());
        Session session(paths, http);
        Json::Value open;
        open["lease_id"] = "cli-l1";
        open["device_id"] = session.credentials().device_id;
        open["want_ms"] = 600000;
        ASSERT_EQ(session.authed("POST", "/v1/leases", open).status, 201);
        Json::Value settle;
        settle["settle_id"] = "cli-s1";
        settle["used_ms"] = 150000;
        ASSERT_TRUE(session.authed("POST", "/v1/leases/cli-l1/settle", settle).ok());
    }
    out = cli("usage --json " + base, rc);
    EXPECT_EQ(rc, 0) << out;
    Json::Value usage;
    ASSERT_TRUE(parse_json_object(out, usage, error)) << out;
    ASSERT_EQ(usage["days"].size(), 1u) << out;
    EXPECT_EQ(usage["days"][0]["used_ms"].asInt64(), 150000);
    EXPECT_EQ(usage["days"][0]["posted_mt"].asInt64(), 2500);
    out = cli("usage " + base, rc);
    EXPECT_NE(out.find("2.5"), std::string::npos) << out;
    EXPECT_NE(out.find("\u2587"), std::string::npos) << "a bar in the chart:\n" << out;

    out = cli("devices --json " + base, rc);
    EXPECT_EQ(rc, 0) << out;
    Json::Value devices;
    ASSERT_TRUE(parse_json_object(out, devices, error)) << out;
    bool found = false;
    for (const auto& s : devices["sessions"]) {
        if (s["current"].asBool()) found = s["client_id"].asString() == "stemsphere-account";
    }
    EXPECT_TRUE(found) << out;

    out = cli("logout " + base, rc);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_FALSE(std::filesystem::exists(paths.credentials_file()));
    out = cli("balance " + base, rc);
    EXPECT_EQ(rc, 3) << "signed out: " << out;
    // The session really ended on the server.
    HttpClient http(server.url());
    const HttpReply sessions = http.get("/v1/me/sessions", user.tokens["access_token"].asString());
    for (const auto& s : sessions.body["sessions"]) {
        if (s["client_id"].asString() == "stemsphere-account") {
            EXPECT_FALSE(s["revoked_at"].isNull()) << s.toStyledString();
        }
    }
}

TEST(AccountCli, DeviceLoginDeclinedExitsWithCode5AndStoresNothing) {
    TempDir dir;
    ServerProcess server(dir.path() + "/ledger.db");
    ASSERT_TRUE(server.start());
    const TestUser user = make_user(server, "deny@example.org");
    const std::string config = dir.path() + "/config";
    LoginProcess login(server.url(), config);
    const Json::Value shown = login.next_object();
    ASSERT_TRUE(approve(server, user, shown["user_code"].asString(), false).ok());
    const Json::Value done = login.next_object();
    EXPECT_EQ(done["ok"].asBool(), false);
    EXPECT_NE(done["error"].asString().find("declined"), std::string::npos)
        << done.toStyledString();
    EXPECT_EQ(login.wait_exit(), 5);
    EXPECT_FALSE(std::filesystem::exists(resolve_paths(config).credentials_file()));
}

TEST(AccountCli, BadCommandLinesAndUnsafeServersAreRefused) {
    TempDir dir;
    int rc = -1;
    std::string out = cli("frobnicate", rc);
    EXPECT_EQ(rc, 2) << out;
    out = cli("login --server http://example.org --config-dir " + dir.path(), rc);
    EXPECT_EQ(rc, 2) << out;
    EXPECT_NE(out.find("plain http"), std::string::npos) << out;
    out = cli("status --server https://127.0.0.1:9 --config-dir " + dir.path(), rc);
    EXPECT_EQ(rc, 3) << out;
    EXPECT_NE(out.find("login"), std::string::npos) << out;
}

}  // namespace
}  // namespace stemsphere::client::testing
