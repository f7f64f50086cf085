// The account pages over real HTTP, as a browser without JavaScript uses them: forms, cookies,
// CSRF, escaping, headers, shared rate limits, and that they act through the same services as
// the JSON API (what a page does, the API sees, and the other way round).
#include <gtest/gtest.h>

#include <map>
#include <regex>

#include "service/crypto.h"
#include "service/html.h"
#include "service/usage_chart.h"
#include "service/web_session.h"
#include "tests/service/api_fixture.h"

namespace stemsphere::service::testing {
namespace {

Json::Value obj(std::initializer_list<std::pair<const char*, Json::Value>> fields) {
    Json::Value v(Json::objectValue);
    for (const auto& [k, val] : fields) v[k] = val;
    return v;
}

// A cookie-keeping form client: what a browser with scripts off does.
class Browser {
  public:
    explicit Browser(int port) : port_(port) {}

    struct Page {
        int status = 0;
        std::string body, location;
        httplib::Headers headers;
    };

    Page get(const std::string& path) { return send("GET", path, {}); }
    Page post(const std::string& path, const httplib::Params& form) {
        return send("POST", path, form);
    }
    // POST with the CSRF token of the form on `form_page` (the page that shows the form).
    Page submit(const std::string& form_page, const std::string& action, httplib::Params form) {
        const Page shown = get(form_page);
        form.emplace("csrf", csrf_in(shown.body));
        return post(action, form);
    }
    static std::string csrf_in(const std::string& html) {
        std::smatch m;
        static const std::regex re("name=\"csrf\" value=\"([^\"]+)\"");
        return std::regex_search(html, m, re) ? m[1].str() : std::string();
    }
    std::map<std::string, std::string> cookies;

  private:
    Page send(const std::string& method, const std::string& path, const httplib::Params& form) {
        httplib::Client cli("127.0.0.1", port_);
        cli.set_read_timeout(30, 0);
        httplib::Headers h;
        std::string jar;
        for (const auto& [k, v] : cookies) jar += (jar.empty() ? "" : "; ") + k + "=" + v;
        if (!jar.empty()) h.emplace("Cookie", jar);
        h.emplace("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36");
        auto res = method == "GET" ? cli.Get(path, h) : cli.Post(path, h, form);
        Page p;
        if (!res) return p;
        p.status = res->status;
        p.body = res->body;
        p.headers = res->headers;
        p.location = res->get_header_value("Location");
        for (size_t i = 0; i < res->get_header_value_count("Set-Cookie"); ++i) {
            const std::string c = res->get_header_value("Set-Cookie", i);
            const auto eq = c.find('='), semi = c.find(';');
            const std::string name = c.substr(0, eq), value = c.substr(eq + 1, semi - eq - 1);
            if (value.empty()) {
                cookies.erase(name);
            } else {
                cookies[name] = value;
            }
        }
        return p;
    }
    int port_;
};

class PagesTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why;
        ServerConfig config;
        config.auth.public_url = "http://127.0.0.1:1";  // cookies without Secure (loopback)
        config.signup_per_minute_ip = 600;              // several sign-ups per test
        server_ = std::make_unique<TestServer>(fresh_database_url("sqlite", why), config);
    }
    TestServer& s() { return *server_; }

    // Signs in through the sign-in form; returns the browser holding the session cookie.
    Browser signed_in(const TestServer::User& u) {
        Browser b(s().port());
        const auto r =
            b.submit("/signin", "/signin", {{"email", u.email}, {"password", u.password}});
        EXPECT_EQ(r.status, 303) << r.body;
        EXPECT_EQ(r.location, "/account");
        return b;
    }
    size_t outbox_count() {
        size_t n = 0;
        s().db().read([&](DbTx& tx) { n = tx.query("SELECT id FROM mail_outbox").size(); });
        return n;
    }

    std::unique_ptr<TestServer> server_;
};

TEST_F(PagesTest, EveryPageSendsAStrictPolicyAndLoopbackCookiesAreHttpOnlyLax) {
    Browser b(s().port());
    for (const char* path : {"/signin", "/signup", "/verify?token=x"}) {
        const auto p = b.get(path);
        ASSERT_EQ(p.status, 200) << path;
        const std::string csp = p.headers.find("Content-Security-Policy")->second;
        EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
        EXPECT_NE(csp.find("script-src 'self'"), std::string::npos);
        EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
        EXPECT_EQ(p.body.find("<script>"), std::string::npos) << "no inline script";
        EXPECT_EQ(p.body.find("style=\""), std::string::npos) << "no inline style";
        EXPECT_EQ(p.headers.find("Cache-Control")->second, "no-store");
    }
    const auto p = Browser(s().port()).get("/signin");
    const std::string cookie = p.headers.find("Set-Cookie")->second;
    EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
    EXPECT_NE(cookie.find("SameSite=Lax"), std::string::npos);
    EXPECT_EQ(cookie.find("Secure"), std::string::npos);  // relaxed for http://127.0.0.1 only

    EXPECT_TRUE(cookie_policy("https://account.example.org").secure);
    EXPECT_EQ(cookie_policy("https://account.example.org").session_name, "__Host-stemsphere");
    EXPECT_TRUE(cookie_policy("http://127.0.0.1.example.org").secure);
    EXPECT_TRUE(cookie_policy("http://localhost:8080").secure);
    EXPECT_FALSE(cookie_policy("http://127.0.0.1:8080").secure);
    // Static assets are local and typed.
    const auto css = b.get("/static/site.css");
    EXPECT_EQ(css.status, 200);
    EXPECT_EQ(css.headers.find("Content-Type")->second, "text/css; charset=utf-8");
    EXPECT_EQ(b.get("/static/app.js").status, 200);
    // Unknown page paths get an HTML page, unknown API paths JSON.
    const auto missing = b.get("/acount");
    EXPECT_EQ(missing.status, 404);
    EXPECT_NE(missing.body.find("Page not found"), std::string::npos);
    EXPECT_NE(missing.headers.find("Content-Security-Policy"), missing.headers.end());
    EXPECT_EQ(b.get("/v1/nothing").body, "{\"error\":\"not_found\",\"message\":\"not_found\"}");
}

TEST_F(PagesTest, FormsWithoutOrWithAWrongCsrfTokenChangeNothing) {
    Browser b(s().port());
    b.get("/signup");  // the pre-session cookie
    const httplib::Params form = {
        {"name", "Eve"}, {"email", "eve@example.org"}, {"password", "correct horse battery"}};
    EXPECT_EQ(b.post("/signup", form).status, 403);
    auto wrong = form;
    wrong.emplace("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    EXPECT_EQ(b.post("/signup", wrong).status, 403);
    EXPECT_EQ(outbox_count(), 0u) << "no account made, no mail sent";
    // A token from another browser's pre-session is refused too.
    Browser other(s().port());
    auto foreign = form;
    foreign.emplace("csrf", Browser::csrf_in(other.get("/signup").body));
    EXPECT_EQ(b.post("/signup", foreign).status, 403);
    EXPECT_EQ(outbox_count(), 0u);
    EXPECT_EQ(b.submit("/signup", "/signup", form).status, 200);
    EXPECT_EQ(outbox_count(), 1u);

    // Signed in: the token is bound to the session.
    const auto u = s().make_user("ann@example.org");
    Browser ann = signed_in(u);
    const auto sessions = s().get("/v1/me/sessions", u.access_token).body["sessions"];
    EXPECT_EQ(
        ann.post("/account/sessions/revoke", {{"session_id", sessions[0]["session_id"].asString()}})
            .status,
        403);
    EXPECT_EQ(s().get("/v1/me", u.access_token).status, 200) << "the API session still works";
    EXPECT_EQ(ann.post("/signout", {{"csrf", "x"}}).status, 403);
    EXPECT_EQ(ann.get("/account").status, 200) << "still signed in";
}

TEST_F(PagesTest, AnotherAccountsCookieOrTokenReachesNothingOfTheOther) {
    const auto ann = s().make_user("ann@example.org");
    const auto bob = s().make_user("bob@example.org");
    Browser ann_b = signed_in(ann);
    Browser bob_b = signed_in(bob);
    const std::string bob_session =
        s().get("/v1/me/sessions", bob.access_token).body["sessions"][0]["session_id"].asString();
    // Ann's cookie with Bob's session id: refused, Bob's device keeps working.
    const auto r =
        ann_b.submit("/account", "/account/sessions/revoke", {{"session_id", bob_session}});
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(s().get("/v1/me", bob.access_token).status, 200);
    // Ann's cookie with Bob's CSRF token: refused.
    const std::string bob_csrf = Browser::csrf_in(bob_b.get("/account").body);
    EXPECT_EQ(ann_b.post("/signout", {{"csrf", bob_csrf}}).status, 403);
    // Ann's page shows Ann, never Bob.
    const auto page = ann_b.get("/account");
    EXPECT_NE(page.body.find("ann@example.org"), std::string::npos);
    EXPECT_EQ(page.body.find("bob@example.org"), std::string::npos);
    // A bearer access token is not a cookie, and a cookie is not a bearer token.
    Browser forged(s().port());
    forged.cookies["stemsphere"] = ann.access_token;
    EXPECT_EQ(forged.get("/account").status, 303);
    EXPECT_EQ(s().get("/v1/me", ann_b.cookies["stemsphere"]).status, 401);
}

TEST_F(PagesTest, NamesFromUsersAndDevicesAreShownAsText) {
    const std::string evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    Json::Value up =
        obj({{"email", "mal@example.org"}, {"name", evil}, {"password", "0123456789ab"}});
    ASSERT_EQ(s().post("/v1/accounts", up).status, 202);
    s().post("/v1/accounts/verify", obj({{"token", s().mailed_token("mal@example.org")}}));
    Browser b(s().port());
    ASSERT_EQ(
        b.submit("/signin", "/signin", {{"email", "mal@example.org"}, {"password", "0123456789ab"}})
            .status,
        303);
    const auto account = b.get("/account");
    EXPECT_EQ(account.body.find(evil), std::string::npos);
    EXPECT_NE(account.body.find("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x "
                                "onerror=alert(2)&gt;"),
              std::string::npos);
    const auto grant =
        s().post("/v1/device/authorize", obj({{"client_id", "cli\"><b>"}, {"device_name", evil}}));
    const auto confirm = b.get("/device?user_code=" + grant.body["user_code"].asString());
    ASSERT_EQ(confirm.status, 200);
    EXPECT_EQ(confirm.body.find(evil), std::string::npos);
    EXPECT_NE(confirm.body.find("&lt;script&gt;"), std::string::npos);
    EXPECT_NE(confirm.body.find("cli&quot;&gt;&lt;b&gt;"), std::string::npos);
}

TEST_F(PagesTest, SignUpAndSignInTellNothingAboutWhichAddressesHaveAccounts) {
    s().make_user("ann@example.org");
    // The API: the same status and fields for a taken and a new address.
    const auto taken =
        s().post("/v1/accounts",
                 obj({{"email", "ann@example.org"}, {"name", "X"}, {"password", "0123456789ab"}}));
    const auto fresh =
        s().post("/v1/accounts",
                 obj({{"email", "new@example.org"}, {"name", "X"}, {"password", "0123456789ab"}}));
    EXPECT_EQ(taken.status, 202);
    EXPECT_EQ(fresh.status, 202);
    EXPECT_EQ(taken.body.getMemberNames(), fresh.body.getMemberNames());
    EXPECT_EQ(s().mailed_token("ann@example.org"), "") << "the owner is told, no new token";
    // The pages: the same page, the address aside.
    Browser b(s().port());
    auto page_for = [&](const std::string& email) {
        auto body = b.submit("/signup", "/signup",
                             {{"name", "X"}, {"email", email}, {"password", "0123456789ab"}})
                        .body;
        return std::regex_replace(body, std::regex(email), "EMAIL");
    };
    EXPECT_EQ(page_for("ann@example.org"), page_for("other@example.org"));
    auto signin_for = [&](const std::string& email) {
        const auto p =
            b.submit("/signin", "/signin", {{"email", email}, {"password", "wrong-pw-123"}});
        return std::to_string(p.status) +
               std::regex_replace(p.body, std::regex("value=\"[^\"]*\""), "");
    };
    EXPECT_EQ(signin_for("ann@example.org"), signin_for("nobody@example.org"));
}

TEST_F(PagesTest, SignInPagesAndTheApiShareOneRateLimit) {
    const auto u = s().make_user("ann@example.org");
    // Burst 5 per account: spend it through the API with wrong passwords.
    int limited_at = -1;
    for (int i = 0; i < 8 && limited_at < 0; ++i) {
        if (s().post("/v1/sessions", obj({{"email", u.email}, {"password", "wrong password"}}))
                .status == 429) {
            limited_at = i;
        }
    }
    ASSERT_GE(limited_at, 0);
    Browser b(s().port());
    const auto page =
        b.submit("/signin", "/signin", {{"email", u.email}, {"password", u.password}});
    EXPECT_EQ(page.status, 429);
    EXPECT_FALSE(page.headers.find("Retry-After") == page.headers.end());
    EXPECT_TRUE(b.cookies.count("stemsphere") == 0) << "not signed in while limited";
}

TEST_F(PagesTest, DeviceApprovalPageActsLikeTheApiAndThePollingClientGetsTokens) {
    const auto u = s().make_user("ann@example.org");
    Browser b = signed_in(u);
    auto authorize = [&] {
        return s().post("/v1/device/authorize",
                        obj({{"client_id", "stemsphere-account"}, {"device_name", "Studio PC"}}));
    };
    auto poll = [&](const Json::Value& grant) {
        return s().post("/v1/device/token",
                        obj({{"grant_type", "urn:ietf:params:oauth:grant-type:device_code"},
                             {"device_code", grant["device_code"]},
                             {"client_id", "stemsphere-account"}}));
    };
    // Signed out: the device page sends the user to sign in and back, keeping the code.
    const auto grant = authorize().body;
    Browser stranger(s().port());
    const auto away = stranger.get("/device?user_code=" + grant["user_code"].asString());
    EXPECT_EQ(away.status, 303);
    // (cpp-httplib's client percent-decodes Location; the server sends next=/device%3Fuser_code...)
    EXPECT_EQ(away.location, "/signin?next=/device?user_code=" + grant["user_code"].asString());

    // Lower case without a dash is the same code.
    std::string typed = grant["user_code"].asString();
    typed.erase(4, 1);
    for (char& c : typed) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto confirm = b.get("/device?user_code=" + typed);
    ASSERT_EQ(confirm.status, 200);
    EXPECT_NE(confirm.body.find("Studio PC"), std::string::npos);
    EXPECT_NE(confirm.body.find("stemsphere-account"), std::string::npos);
    EXPECT_EQ(poll(grant).body["error"], "authorization_pending");
    const auto done = b.post("/device", {{"csrf", Browser::csrf_in(confirm.body)},
                                         {"user_code", grant["user_code"].asString()},
                                         {"decision", "approve"}});
    EXPECT_EQ(done.status, 200);
    s().advance_seconds(6);
    const auto tokens = poll(grant);
    ASSERT_EQ(tokens.status, 200) << tokens.body;
    EXPECT_EQ(s().get("/v1/me", tokens.body["access_token"].asString()).body["account_id"],
              u.account_id);

    // Deny: the client is told access_denied.
    const auto second = authorize().body;
    const auto page2 = b.get("/device?user_code=" + second["user_code"].asString());
    EXPECT_EQ(b.post("/device", {{"csrf", Browser::csrf_in(page2.body)},
                                 {"user_code", second["user_code"].asString()},
                                 {"decision", "deny"}})
                  .status,
              200);
    EXPECT_EQ(poll(second).body["error"], "access_denied");

    // Unknown, used and expired codes get a clear 404 page; a malformed one a field error.
    s().advance_seconds(60);  // lookups share the approval limit (5 a minute per account)
    EXPECT_EQ(b.get("/device?user_code=BCDF-GHJK").status, 404);
    EXPECT_EQ(b.get("/device?user_code=" + grant["user_code"].asString()).status, 404);
    const auto third = authorize().body;
    s().advance_seconds(601);
    const auto expired = b.get("/device?user_code=" + third["user_code"].asString());
    EXPECT_EQ(expired.status, 404);
    EXPECT_NE(expired.body.find("expired"), std::string::npos);
    const auto bad = b.get("/device?user_code=12");
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(bad.body.find("aria-invalid=\"true\""), std::string::npos);
    EXPECT_NE(bad.body.find("aria-describedby=\"f-user_code-hint f-user_code-error\""),
              std::string::npos);
}

TEST_F(PagesTest, RevokingADeviceOnThePageEndsItsApiAccess) {
    const auto u = s().make_user("ann@example.org");
    const auto device =
        s().post("/v1/sessions",
                 obj({{"email", u.email}, {"password", u.password}, {"device_name", "Laptop"}}));
    Browser b = signed_in(u);
    const std::string session = device.body["session_id"].asString();
    const auto r = b.submit("/account", "/account/sessions/revoke", {{"session_id", session}});
    EXPECT_EQ(r.status, 303);
    EXPECT_EQ(s().get("/v1/me", device.body["access_token"].asString()).status, 401);
    EXPECT_EQ(
        s().post("/v1/sessions/refresh", obj({{"refresh_token", device.body["refresh_token"]}}))
            .status,
        401);
    EXPECT_EQ(s().get("/v1/me", u.access_token).status, 200) << "other sessions unaffected";
    // A language that is not offered is refused at its field; English is stored.
    const auto lang = b.submit("/account", "/account/language", {{"language", "xx"}});
    EXPECT_EQ(lang.status, 400);
    EXPECT_NE(lang.body.find("aria-describedby=\"f-language-error\""), std::string::npos);
    EXPECT_EQ(b.submit("/account", "/account/language", {{"language", "en"}}).status, 303);
    EXPECT_EQ(s().get("/v1/me", u.access_token).body["language"], "en");
    // The API route does the same.
    EXPECT_EQ(s().call("DELETE",
                       "/v1/me/sessions/" +
                           s().get("/v1/me", u.access_token).body["session_id"].asString(),
                       "", u.access_token)
                  .status,
              200);
    EXPECT_EQ(s().get("/v1/me", u.access_token).status, 401);
}

TEST_F(PagesTest, PasswordChangeSignsOutOtherSessionsAndDeletionNeedsTheSecondFactor) {
    const auto u = s().make_user("ann@example.org");
    Browser b = signed_in(u);
    auto wrong =
        b.submit("/account/password", "/account/password",
                 {{"current_password", "not it at all"}, {"new_password", "a new one 123"}});
    EXPECT_EQ(wrong.status, 401);
    EXPECT_NE(wrong.body.find("id=\"f-current_password-error\""), std::string::npos);
    auto ok = b.submit("/account/password", "/account/password",
                       {{"current_password", u.password}, {"new_password", "a new one 123"}});
    EXPECT_EQ(ok.status, 303);
    EXPECT_EQ(s().get("/v1/me", u.access_token).status, 401) << "the API session is signed out";
    EXPECT_EQ(b.get("/account").status, 200) << "this browser stays signed in";
    EXPECT_EQ(s().post("/v1/sessions", obj({{"email", u.email}, {"password", u.password}})).status,
              401);
    const auto again =
        s().post("/v1/sessions", obj({{"email", u.email}, {"password", "a new one 123"}}));
    ASSERT_EQ(again.status, 200);
    const std::string at = again.body["access_token"].asString();

    // Two-factor on through the API; deletion then needs a code too.
    const auto setup = s().post("/v1/me/totp/setup", Json::Value(Json::objectValue), at);
    const std::string key = *base32_decode(setup.body["secret"].asString());
    ASSERT_EQ(
        s().post("/v1/me/totp/enable", obj({{"code", totp_code(key, s().now() / 1'000'000)}}), at)
            .status,
        200);
    const auto api_no_code =
        s().call("DELETE", "/v1/me", to_json_text(obj({{"password", "a new one 123"}})), at);
    EXPECT_EQ(api_no_code.body["error"], "totp_required");
    const auto page =
        b.submit("/account/delete", "/account/delete", {{"password", "a new one 123"}});
    EXPECT_EQ(page.status, 400);
    EXPECT_NE(page.body.find("id=\"f-code-error\""), std::string::npos);
    EXPECT_EQ(s().get("/v1/me", at).status, 200) << "nothing deleted";
    s().advance_seconds(30);
    const auto gone =
        b.submit("/account/delete", "/account/delete",
                 {{"password", "a new one 123"}, {"code", totp_code(key, s().now() / 1'000'000)}});
    EXPECT_EQ(gone.status, 200);
    EXPECT_EQ(s().get("/v1/me", at).status, 401);
    EXPECT_EQ(b.get("/account").status, 303) << "signed out";
}

TEST(UsageChart, FoldsUsageIntoUtcDaysAndDrawsOneBarEach) {
    const int64_t day = 86400, now = 1'800'000'000 - 1'800'000'000 % day + 3600;
    Json::Value items(Json::arrayValue);
    auto item = [&](int64_t at, int64_t ms, int64_t mt) {
        Json::Value i;
        i["at"] = Json::Int64(at);
        i["used_ms"] = Json::Int64(ms);
        i["posted_mt"] = Json::Int64(mt);
        items.append(i);
    };
    item(now, 60000, 1000);
    item(now - 3000, 30000, 500);  // the same UTC day (00:10)
    item(now - day, 1000, 17);
    item(now - 40 * day, 999999, 999);  // outside the window
    const auto days = usage_per_day(items, now, 30);
    ASSERT_EQ(days.size(), 30u);
    EXPECT_EQ(days.back().posted_mt, 1500);
    EXPECT_EQ(days.back().used_ms, 90000);
    EXPECT_EQ(days[28].posted_mt, 17);
    int64_t total = 0;
    for (const auto& d : days) total += d.posted_mt;
    EXPECT_EQ(total, 1517);
    const std::string svg = usage_chart_svg(days);
    size_t bars = 0;
    for (size_t p = svg.find("class=\"bar\""); p != std::string::npos;
         p = svg.find("class=\"bar\"", p + 1)) {
        ++bars;
    }
    EXPECT_EQ(bars, 30u);
    EXPECT_NE(svg.find("1.500 tokens"), std::string::npos);
}

TEST(PageText, EscapesAndSafeRedirects) {
    EXPECT_EQ(esc("<a href=\"x\">'&'</a>"),
              "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    EXPECT_EQ(safe_next("/device?user_code=AB"), "/device?user_code=AB");
    EXPECT_EQ(safe_next("//evil.example/"), "/account");
    EXPECT_EQ(safe_next("/\\evil.example/"), "/account");
    EXPECT_EQ(safe_next("https://evil.example/"), "/account");
    EXPECT_EQ(safe_next("/a\r\nSet-Cookie: x=1"), "/account");
    EXPECT_EQ(tokens_text(12345), "12.345");
    EXPECT_EQ(tokens_text(-5), "-0.005");
}

}  // namespace
}  // namespace stemsphere::service::testing
