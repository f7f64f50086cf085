// Several processes share one sign-in file: refreshes rotate the refresh token under a flock
// that re-reads the file first, so none of them ever presents a used token.
#include <sys/stat.h>
#include <sys/wait.h>

#include "tests/client/server_harness.h"

namespace stemsphere::client::testing {
namespace {

TEST(Session, TwoProcessesRefreshingAtOnceBothKeepWorkingAndNoSessionIsRevoked) {
    TempDir dir;
    ServerProcess server(dir.path() + "/ledger.db");
    ASSERT_TRUE(server.start());
    const TestUser user = make_user(server, "refresh@example.org");
    const std::string config = dir.path() + "/config";
    sign_in_client(server, user, config);
    const std::string first_refresh_token = [&] {
        Credentials c;
        std::string error;
        load_credentials(resolve_paths(config), c, error);
        return c.refresh_token;
    }();

    constexpr int kProcesses = 2;
    constexpr int kRounds = 15;
    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    std::vector<pid_t> children;
    for (int p = 0; p < kProcesses; ++p) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            ::close(go[1]);
            char byte;
            (void)!::read(go[0], &byte, 1);  // everyone starts together
            HttpClient http(server.url());
            Session session(resolve_paths(config), http);
            int failures = 0;
            for (int i = 0; i < kRounds; ++i) {
                // Each round treats its access token as expired, as every process does after
                // 10 minutes: all of them want to refresh at the same moment.
                if (!session.refresh(session.credentials().access_token)) ++failures;
                const HttpReply me = session.authed("GET", "/v1/me", Json::Value());
                if (!me.ok()) ++failures;
            }
            ::_exit(failures > 100 ? 100 : failures);
        }
        children.push_back(pid);
    }
    ::close(go[0]);
    ::close(go[1]);  // EOF releases them all at once
    for (const pid_t pid : children) {
        int status = 0;
        ::waitpid(pid, &status, 0);
        EXPECT_TRUE(WIFEXITED(status));
        EXPECT_EQ(WEXITSTATUS(status), 0) << "failed requests in one process";
    }
    // The client's session is alive, with a rotated refresh token.
    HttpClient http(server.url());
    const HttpReply sessions = http.get("/v1/me/sessions", user.tokens["access_token"].asString());
    ASSERT_TRUE(sessions.ok()) << sessions.describe();
    int client_sessions = 0;
    for (const auto& s : sessions.body["sessions"]) {
        EXPECT_TRUE(s["revoked_at"].isNull()) << s.toStyledString();
        if (s["client_id"].asString() == "stemsphere-plugin") ++client_sessions;
    }
    EXPECT_EQ(client_sessions, 1);
    Credentials after;
    std::string error;
    ASSERT_EQ(load_credentials(resolve_paths(config), after, error), CredentialsState::ok);
    EXPECT_NE(after.refresh_token, first_refresh_token);
    struct stat st {};
    ASSERT_EQ(::stat(resolve_paths(config).credentials_file().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "credentials must be readable only by the user";
}

TEST(Session, AReusedRefreshTokenEndsTheSessionWithAClearError) {
    TempDir dir;
    ServerProcess server(dir.path() + "/ledger.db");
    ASSERT_TRUE(server.start());
    const TestUser user = make_user(server, "reuse@example.org");
    const std::string config = dir.path() + "/config";
    sign_in_client(server, user, config);
    const Paths paths = resolve_paths(config);
    std::string stale;
    ASSERT_EQ(read_small_file(paths.credentials_file(), stale, stale), ReadStatus::ok);
    HttpClient http(server.url());
    {
        Session session(paths, http);
        ASSERT_TRUE(session.refresh(session.credentials().access_token)) << session.error();
    }
    // A copy of the old file comes back (a restored backup, or a thief's copy).
    std::string error;
    ASSERT_TRUE(write_file_atomically(paths.credentials_file(), stale, error));
    Session session(paths, http);
    EXPECT_FALSE(session.refresh(session.credentials().access_token));
    EXPECT_FALSE(session.signed_in());
    EXPECT_NE(session.error().find("stemsphere-account login"), std::string::npos)
        << session.error();
}

}  // namespace
}  // namespace stemsphere::client::testing
