// End-to-end tests of the JSON API over loopback HTTP on real SQLite and real PostgreSQL:
// sign-up/verification/sign-in, refresh rotation and reuse, TOTP (RFC 6238 vectors, replay),
// backup codes, device sign-in (RFC 8628), lease idempotency, isolation between users, rate
// limits, the payment webhook, export, deletion, retention, and hostile input.
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "service/crypto.h"
#include "tests/service/api_fixture.h"

namespace stemsphere::service::testing {
namespace {

// --- pure functions -------------------------------------------------------------------------

TEST(Totp, Rfc6238AppendixBVectorsSha1) {
    const std::string key = "12345678901234567890";
    const std::pair<int64_t, const char*> vectors[] = {
        {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
        {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
    };
    for (const auto& [t, code] : vectors) EXPECT_EQ(totp_code(key, t, 8), code) << t;
}

TEST(Totp, AcceptsOneStepEitherSideOnly) {
    const std::string key = "12345678901234567890";
    const int64_t t = 1'700'000'000;
    EXPECT_EQ(totp_match(key, totp_code(key, t - 30), t), t / 30 - 1);
    EXPECT_EQ(totp_match(key, totp_code(key, t + 30), t), t / 30 + 1);
    EXPECT_FALSE(totp_match(key, totp_code(key, t - 90), t));
    EXPECT_FALSE(totp_match(key, "12345", t));
}

TEST(Codec, Base32RoundTripAndUserCodes) {
    const std::string raw = random_bytes(20);
    EXPECT_EQ(base32_decode(base32_encode(raw)), raw);
    EXPECT_EQ(base32_encode("foobar"), "MZXW6YTBOI");  // RFC 4648 §10
    EXPECT_FALSE(base32_decode("ab1!"));
    EXPECT_EQ(Accounts::normalize_user_code("bcdf-ghjk"), "BCDFGHJK");
    EXPECT_EQ(Accounts::normalize_user_code(" BCDF GHJK "), "BCDFGHJK");
    EXPECT_FALSE(Accounts::normalize_user_code("BCDF-GHJA"));  // vowels never appear
    EXPECT_FALSE(Accounts::normalize_user_code("BCDFGHJ"));
}

TEST(LeaseSignature, VerifiesAndRejectsTampering) {
    crypto_init();
    LeaseSigner signer(LeaseSigner::generate_secret_key());
    const std::string sig = signer.sign("stemsphere-lease-v1|l|a|d|60000|99");
    EXPECT_TRUE(
        LeaseSigner::verify(signer.public_key(), "stemsphere-lease-v1|l|a|d|60000|99", sig));
    EXPECT_FALSE(
        LeaseSigner::verify(signer.public_key(), "stemsphere-lease-v1|l|a|d|60001|99", sig));
}

// --- over HTTP, per back end ------------------------------------------------------------------

class Api : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        std::string why;
        url_ = fresh_database_url(GetParam(), why);
        if (url_.empty()) GTEST_SKIP() << "skipped: " << why;
    }
    std::unique_ptr<TestServer> start(ServerConfig config = {}) {
        return std::make_unique<TestServer>(url_, config);
    }
    std::string url_;
};

Json::Value obj(std::initializer_list<std::pair<const char*, Json::Value>> fields) {
    Json::Value v(Json::objectValue);
    for (const auto& [k, val] : fields) v[k] = val;
    return v;
}

TEST_P(Api, SignUpVerifySignInAndErrors) {
    auto s = start();
    const Reply weak =
        s->post("/v1/accounts", obj({{"email", "w@x.org"}, {"name", "W"}, {"password", "short"}}));
    EXPECT_EQ(weak.status, 400);
    EXPECT_EQ(weak.body["error"], "weak_password");
    const Reply bad_email = s->post(
        "/v1/accounts", obj({{"email", "nope"}, {"name", "N"}, {"password", "0123456789"}}));
    EXPECT_EQ(bad_email.body["field"], "email");

    const Reply created =
        s->post("/v1/accounts",
                obj({{"email", "Ann@Example.org"}, {"name", "Ann"}, {"password", "0123456789"}}));
    ASSERT_EQ(created.status, 202);
    EXPECT_EQ(created.body["email"], "ann@example.org");
    const std::string token = s->mailed_token("ann@example.org");
    // A taken address gets the same answer (no enumeration); its owner is told by mail.
    const Reply dup =
        s->post("/v1/accounts",
                obj({{"email", "ann@example.org"}, {"name", "A"}, {"password", "0123456789"}}));
    EXPECT_EQ(dup.status, 202);
    EXPECT_EQ(dup.body, created.body);
    EXPECT_EQ(s->mailed_token("ann@example.org"), "") << "the latest mail carries no new token";

    const Json::Value creds = obj({{"email", "ann@example.org"}, {"password", "0123456789"}});
    EXPECT_EQ(s->post("/v1/sessions", creds).body["error"], "email_not_verified");
    EXPECT_EQ(s->post("/v1/accounts/verify", obj({{"token", "forged"}})).status, 400);
    ASSERT_EQ(s->post("/v1/accounts/verify", obj({{"token", token}})).status, 200);
    const Reply wrong =
        s->post("/v1/sessions", obj({{"email", "ann@example.org"}, {"password", "0123456789x"}}));
    EXPECT_EQ(wrong.status, 401);
    EXPECT_EQ(wrong.body["error"], "invalid_credentials");
    const Reply unknown =
        s->post("/v1/sessions", obj({{"email", "nobody@example.org"}, {"password", "0123456789"}}));
    EXPECT_EQ(unknown.body["error"], "invalid_credentials");  // same answer: no enumeration
    const Reply ok = s->post("/v1/sessions", creds);
    ASSERT_EQ(ok.status, 200);
    const Reply me = s->get("/v1/me", ok.body["access_token"].asString());
    EXPECT_EQ(me.status, 200);
    EXPECT_EQ(me.body["email"], "ann@example.org");
    EXPECT_EQ(s->get("/v1/me").status, 401);
    EXPECT_EQ(s->get("/v1/me", "v1.forged.token").status, 401);
}

TEST_P(Api, RefreshRotatesAndReuseRevokesTheSession) {
    auto s = start();
    const auto u = s->make_user("rot@x.org");
    const Reply first = s->post("/v1/sessions/refresh", obj({{"refresh_token", u.refresh_token}}));
    ASSERT_EQ(first.status, 200);
    const std::string next = first.body["refresh_token"].asString();
    EXPECT_NE(next, u.refresh_token);
    EXPECT_EQ(s->get("/v1/me", first.body["access_token"].asString()).status, 200);
    // The old token comes back: someone else holds a copy. The whole session ends.
    const Reply reuse = s->post("/v1/sessions/refresh", obj({{"refresh_token", u.refresh_token}}));
    EXPECT_EQ(reuse.status, 401);
    EXPECT_EQ(reuse.body["error"], "refresh_token_reused");
    EXPECT_EQ(s->post("/v1/sessions/refresh", obj({{"refresh_token", next}})).status, 401);
    EXPECT_EQ(s->get("/v1/me", first.body["access_token"].asString()).status, 401);
    EXPECT_EQ(s->get("/v1/me", u.access_token).status, 401);
}

TEST_P(Api, TotpEnableReplayAndBackupCodes) {
    ServerConfig config;
    config.signin_per_minute_account = 1000;
    auto s = start(config);
    const auto u = s->make_user("otp@x.org");
    const Reply setup =
        s->post("/v1/me/totp/setup", Json::Value(Json::objectValue), u.access_token);
    ASSERT_EQ(setup.status, 200);
    const std::string key = *base32_decode(setup.body["secret"].asString());
    const auto code_now = [&] { return totp_code(key, s->now() / 1'000'000); };
    std::string wrong = "000000";  // a code of none of the three accepted steps
    while (totp_match(key, wrong, s->now() / 1'000'000)) wrong[5]++;
    EXPECT_EQ(s->post("/v1/me/totp/enable", obj({{"code", wrong}}), u.access_token).status, 400);
    const std::string enable_code = code_now();
    const Reply enabled =
        s->post("/v1/me/totp/enable", obj({{"code", enable_code}}), u.access_token);
    ASSERT_EQ(enabled.status, 200) << enabled.body;
    ASSERT_EQ(enabled.body["backup_codes"].size(), 10u);

    Json::Value creds = obj({{"email", u.email}, {"password", u.password}});
    EXPECT_EQ(s->post("/v1/sessions", creds).body["error"], "totp_required");
    // The code used to enable cannot sign in (its step was used: replay), whenever this runs.
    creds["totp_code"] = enable_code;
    EXPECT_EQ(s->post("/v1/sessions", creds).body["error"], "invalid_totp");
    s->advance_seconds(30);
    creds["totp_code"] = code_now();
    EXPECT_EQ(s->post("/v1/sessions", creds).status, 200);
    EXPECT_EQ(s->post("/v1/sessions", creds).body["error"], "invalid_totp");  // replay
    creds.removeMember("totp_code");
    creds["backup_code"] = enabled.body["backup_codes"][0];
    EXPECT_EQ(s->post("/v1/sessions", creds).status, 200);
    EXPECT_EQ(s->post("/v1/sessions", creds).body["error"], "invalid_totp");  // single use
    // The security log saw it all.
    int64_t events = 0;
    s->db().read([&](DbTx& tx) {
        events = tx.query(
                       "SELECT COUNT(*) FROM security_log WHERE account_id = ? AND event IN "
                       "('2fa_enabled', 'sign_in_failed')",
                       {u.account_id})
                     .at(0)
                     .integer(0);
    });
    EXPECT_GE(events, 3);
}

TEST_P(Api, DeviceFlowPendingSlowDownApproveOnce) {
    auto s = start();
    const auto u = s->make_user("dev@x.org");
    const Reply auth =
        s->post("/v1/device/authorize",
                obj({{"client_id", "stemsphere-plugin"}, {"device_name", "Studio PC"}}));
    ASSERT_EQ(auth.status, 200);
    EXPECT_EQ(auth.body["interval"], 5);
    const std::string user_code = auth.body["user_code"].asString();
    ASSERT_EQ(user_code.size(), 9u);
    const Json::Value poll = obj({{"grant_type", "urn:ietf:params:oauth:grant-type:device_code"},
                                  {"device_code", auth.body["device_code"]},
                                  {"client_id", "stemsphere-plugin"}});
    EXPECT_EQ(s->post("/v1/device/token", poll).body["error"], "authorization_pending");
    const Reply fast = s->post("/v1/device/token", poll);
    EXPECT_EQ(fast.body["error"], "slow_down");
    EXPECT_EQ(fast.body["interval"], 10);
    Json::Value other_client = poll;
    other_client["client_id"] = "someone-else";
    EXPECT_EQ(s->post("/v1/device/token", other_client).body["error"], "invalid_grant");

    std::string lower = user_code;
    for (auto& c : lower) c = static_cast<char>(std::tolower(c));
    const Reply approved = s->post("/v1/device/approve",
                                   obj({{"user_code", lower}, {"approve", true}}), u.access_token);
    ASSERT_EQ(approved.status, 200) << approved.body;
    EXPECT_EQ(approved.body["device_name"], "Studio PC");
    s->advance_seconds(11);
    const Reply tokens = s->post("/v1/device/token", poll);
    ASSERT_EQ(tokens.status, 200) << tokens.body;
    EXPECT_EQ(s->get("/v1/me", tokens.body["access_token"].asString()).body["account_id"],
              u.account_id);
    EXPECT_EQ(s->post("/v1/device/token", poll).body["error"], "invalid_grant");  // only once

    EXPECT_EQ(s->post("/v1/device/approve", obj({{"user_code", "AEIO-UUUU"}}), u.access_token)
                  .body["error"],
              "invalid_user_code");
    const Reply denied_auth = s->post("/v1/device/authorize", obj({{"client_id", "c"}}));
    Json::Value denied_poll = poll;
    denied_poll["device_code"] = denied_auth.body["device_code"];
    denied_poll["client_id"] = "c";
    s->post("/v1/device/approve",
            obj({{"user_code", denied_auth.body["user_code"]}, {"approve", false}}),
            u.access_token);
    EXPECT_EQ(s->post("/v1/device/token", denied_poll).body["error"], "access_denied");

    const Reply late_auth = s->post("/v1/device/authorize", obj({{"client_id", "c"}}));
    Json::Value late_poll = denied_poll;
    late_poll["device_code"] = late_auth.body["device_code"];
    s->advance_seconds(601);
    EXPECT_EQ(s->post("/v1/device/token", late_poll).body["error"], "expired_token");
    // ...and the 10-minute access token of the approving user has expired meanwhile.
    EXPECT_EQ(s->post("/v1/device/approve", obj({{"user_code", "BCDF-GHJK"}}), u.access_token)
                  .body["error"],
              "unauthorized");
}

TEST_P(Api, LeaseIdempotencyAndIsolationBetweenUsers) {
    auto s = start();
    const auto a = s->make_user("a@x.org");
    const auto b = s->make_user("b@x.org");
    s->grant(a.account_id, 10'000, "ga");
    const Json::Value open =
        obj({{"lease_id", "lease-1"}, {"device_id", "dev-1"}, {"want_ms", 120000}});
    const Reply first = s->post("/v1/leases", open, a.access_token);
    ASSERT_EQ(first.status, 201) << first.body;
    EXPECT_EQ(first.body["hold_mt"], 2000);
    const Reply replay = s->post("/v1/leases", open, a.access_token);
    EXPECT_EQ(replay.status, 201);
    EXPECT_EQ(replay.body, first.body);  // same stored result, signature included
    Json::Value changed = open;
    changed["want_ms"] = 60000;
    const Reply mismatch = s->post("/v1/leases", changed, a.access_token);
    EXPECT_EQ(mismatch.status, 422);
    EXPECT_EQ(mismatch.body["error"], "idempotency_mismatch");
    EXPECT_EQ(mismatch.body["field"], "want_ms");
    const Reply key = s->get("/v1/keys/lease");
    EXPECT_TRUE(LeaseSigner::verify(key.body["public_key"].asString(),
                                    lease_signing_text(first.body, a.account_id),
                                    first.body["signature"].asString()));

    // User b can neither see, settle, void nor reuse the id of a's lease.
    EXPECT_EQ(s->get("/v1/leases/lease-1", b.access_token).status, 404);
    const Json::Value settle = obj({{"settle_id", "settle-1"}, {"used_ms", 30000}});
    EXPECT_EQ(s->post("/v1/leases/lease-1/settle", settle, b.access_token).status, 404);
    EXPECT_EQ(s->post("/v1/leases/lease-1/void", obj({{"void_id", "v-b"}}), b.access_token).status,
              404);
    EXPECT_EQ(s->post("/v1/leases", open, b.access_token).body["error"], "id_conflict");
    EXPECT_EQ(s->get("/v1/balance", b.access_token).body["available_mt"], 0);
    EXPECT_EQ(s->get("/v1/balance", a.access_token).body["available_mt"], 8000);

    const Reply settled = s->post("/v1/leases/lease-1/settle", settle, a.access_token);
    ASSERT_EQ(settled.status, 200) << settled.body;
    EXPECT_EQ(settled.body["posted_mt"], 500);
    EXPECT_EQ(s->post("/v1/leases/lease-1/settle", settle, a.access_token).body, settled.body);
    const Reply second = s->post("/v1/leases/lease-1/settle",
                                 obj({{"settle_id", "settle-2"}, {"used_ms", 1}}), a.access_token);
    EXPECT_EQ(second.status, 409);
    EXPECT_EQ(second.body["error"], "lease_already_settled");
    EXPECT_EQ(s->get("/v1/balance", a.access_token).body["available_mt"], 9500);
    const Reply usage = s->get("/v1/usage", a.access_token);
    ASSERT_EQ(usage.body["items"].size(), 1u);
    EXPECT_EQ(usage.body["items"][0]["used_ms"], 30000);
    EXPECT_EQ(s->get("/v1/usage", b.access_token).body["items"].size(), 0u);

    const Reply broke = s->post("/v1/leases",
                                obj({{"lease_id", "lease-2"},
                                     {"device_id", "d"},
                                     {"want_ms", 1'000'000},
                                     {"min_ms", 1'000'000}}),
                                a.access_token);
    EXPECT_EQ(broke.status, 402);
    EXPECT_EQ(broke.body["error"], "insufficient_tokens");
    EXPECT_TRUE(s->server().ledger().reconcile().empty());
}

TEST_P(Api, LeasesExpireAndReleaseTheirHold) {
    ServerConfig config;
    config.sweep_interval_ms = 20;
    auto s = start(config);
    const auto a = s->make_user("exp@x.org");
    s->grant(a.account_id, 3000, "g-exp");
    ASSERT_EQ(
        s->post("/v1/leases",
                obj({{"lease_id", "short"}, {"device_id", "d"}, {"want_ms", 60000}, {"ttl_s", 5}}),
                a.access_token)
            .status,
        201);
    EXPECT_EQ(s->get("/v1/balance", a.access_token).body["available_mt"], 2000);
    s->advance_seconds(6);
    std::string state;
    for (int i = 0; i < 1000 && state != "expired"; ++i) {  // the sweeper runs every 20 ms
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        state = s->get("/v1/leases/short", a.access_token).body["state"].asString();
    }
    EXPECT_EQ(state, "expired");
    EXPECT_EQ(s->get("/v1/balance", a.access_token).body["available_mt"], 3000);
    const Reply late = s->post("/v1/leases/short/settle",
                               obj({{"settle_id", "late"}, {"used_ms", 1000}}), a.access_token);
    EXPECT_EQ(late.body["error"], "lease_already_expired");
}

// docs/api.md: a lease's ttl_s is 1..604800 when given (0 is not "the default"); a non-empty body
// must be application/json (the device endpoints also take a form), else 415 and nothing changes.
TEST_P(Api, ServerKeepsTheDocumentedBodyAndTtlRules) {
    auto s = start();
    const auto u = s->make_user("rules@x.org");
    s->grant(u.account_id, 100'000, "g-rules");
    const Reply zero = s->post(
        "/v1/leases", obj({{"lease_id", "z"}, {"device_id", "d"}, {"want_ms", 1000}, {"ttl_s", 0}}),
        u.access_token);
    EXPECT_EQ(zero.status, 400);
    EXPECT_EQ(zero.body["error"], "invalid_field");
    EXPECT_EQ(zero.body["field"], "ttl_s");
    const Reply dflt =
        s->post("/v1/leases", obj({{"lease_id", "d"}, {"device_id", "d"}, {"want_ms", 1000}}),
                u.access_token);
    ASSERT_EQ(dflt.status, 201);
    EXPECT_EQ(dflt.body["expires_at"].asInt64() - dflt.body["created_at"].asInt64(), 86400);

    httplib::Client cli("127.0.0.1", s->port());
    const httplib::Headers auth = {{"Authorization", "Bearer " + u.access_token}};
    const std::string lease = R"({"lease_id":"ct","device_id":"d","want_ms":1000})";
    for (const char* type :
         {"text/plain", "application/x-www-form-urlencoded", "application/jsonx", "text/json"}) {
        auto res = cli.Post("/v1/leases", auth, lease, type);
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 415) << type;
        EXPECT_NE(res->body.find("unsupported_media_type"), std::string::npos) << res->body;
    }
    {  // no Content-Type header at all
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/leases";
        req.headers = auth;
        req.body = lease;
        auto res = cli.send(req);
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 415);
    }
    EXPECT_EQ(s->get("/v1/leases/ct", u.access_token).status, 404) << "a refused body acted";
    auto ok = cli.Post("/v1/leases", auth, lease, "Application/JSON; charset=utf-8");
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 201) << ok->body;
    {  // a body-less POST needs no Content-Type
        httplib::Request req;
        req.method = "POST";
        req.path = "/v1/me/totp/setup";
        req.headers = auth;
        auto res = cli.send(req);
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 200) << res->body;
    }

    // Device endpoints take the OAuth form too (RFC 8628 §3.1, §3.4).
    auto authz = cli.Post("/v1/device/authorize", "client_id=plugin&device_name=Studio",
                          "application/x-www-form-urlencoded");
    ASSERT_TRUE(authz);
    EXPECT_EQ(authz->status, 200) << authz->body;
    Json::Value granted;
    std::string err;
    ASSERT_TRUE(parse_json_text(authz->body, granted, err));
    auto poll = cli.Post("/v1/device/token",
                         "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code"
                         "&client_id=plugin&device_code=" +
                             granted["device_code"].asString(),
                         "application/x-www-form-urlencoded");
    ASSERT_TRUE(poll);
    EXPECT_NE(poll->body.find("authorization_pending"), std::string::npos) << poll->body;
    auto plain = cli.Post("/v1/device/authorize", "client_id=plugin", "text/plain");
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->status, 415);
}

TEST_P(Api, SignInRateLimitAnswers429WithRetryAfter) {
    auto s = start();
    s->make_user("rl@x.org");
    const Json::Value wrong = obj({{"email", "rl@x.org"}, {"password", "not the password"}});
    int limited = 0;
    std::string retry;
    for (int i = 0; i < 8; ++i) {
        const Reply r = s->post("/v1/sessions", wrong);
        if (r.status == 429) {
            ++limited;
            retry = r.retry_after;
            EXPECT_EQ(r.body["error"], "rate_limited");
        } else {
            EXPECT_EQ(r.status, 401);
        }
    }
    EXPECT_GE(limited, 3);  // burst of 5 per account per minute (one was the sign-in above)
    EXPECT_FALSE(retry.empty());
    EXPECT_GE(std::stoi(retry), 1);
}

TEST_P(Api, HostileInputGets4xxNeverACrash) {
    auto s = start();
    const auto u = s->make_user("fuzz@x.org");
    const std::string routes[] = {
        "/v1/accounts",         "/v1/accounts/verify",  "/v1/sessions",
        "/v1/sessions/refresh", "/v1/device/authorize", "/v1/device/token",
        "/v1/device/approve",   "/v1/leases",           "/v1/leases/x/settle",
        "/v1/leases/x/void",    "/v1/me/totp/enable",   "/v1/webhooks/payments"};
    const std::string bodies[] = {
        "{",
        "[]",
        "null",
        "\"text\"",
        "{\"email\": 5}",
        "{\"want_ms\": \"many\"}",
        "{\"lease_id\": \"../../etc\", \"device_id\": \"d\", \"want_ms\": 1}",
        "{\"lease_id\": \"l\", \"device_id\": \"d\", \"want_ms\": -5}",
        "{\"lease_id\": \"l\", \"device_id\": \"d\", \"want_ms\": 1e300}",
        "{\"a\": 1, \"a\": 2}",
        std::string(200, '[') + std::string(200, ']'),
        "{\"email\": \"\\u0000@x.org\", \"name\": \"n\", \"password\": \"0123456789\"}",
        "\xff\xfe\xfd",
        std::string(70 * 1024, 'x')};
    std::mt19937 rng(7);
    for (const auto& route : routes) {
        for (const auto& body : bodies) {
            const Reply r = s->call("POST", route, body, u.access_token);
            EXPECT_GE(r.status, 400) << route << " " << body.substr(0, 40);
            EXPECT_LT(r.status, 500) << route << " " << body.substr(0, 40);
        }
        for (int i = 0; i < 10; ++i) {
            std::string noise(static_cast<size_t>(rng() % 300), '\0');
            for (auto& c : noise) c = static_cast<char>(rng() % 256);
            const Reply r = s->call("POST", route, noise, u.access_token);
            EXPECT_GE(r.status, 400) << route;
            EXPECT_LT(r.status, 500) << route;
        }
    }
    EXPECT_EQ(s->call("POST", "/v1/leases", std::string(70 * 1024, 'x'), u.access_token).status,
              413);
    EXPECT_EQ(s->get("/v1/usage?limit=abc", u.access_token).status, 400);
    EXPECT_EQ(s->get("/v1/health").status, 200);  // still serving
    EXPECT_TRUE(s->server().ledger().reconcile().empty());
}

httplib::Headers signed_headers(const std::string& id, int64_t ts, const std::string& body,
                                const std::string& secret_b64) {
    const std::string key = *base64_decode(secret_b64.substr(6), false);
    const std::string sig =
        base64_encode(hmac_sha256(key, id + "." + std::to_string(ts) + "." + body), false);
    return {{"webhook-id", id},
            {"webhook-timestamp", std::to_string(ts)},
            {"webhook-signature", "v1," + sig}};
}

TEST_P(Api, PaymentWebhookGrantsOnceAndRefundsReverse) {
    auto s = start();
    const auto u = s->make_user("pay@x.org");
    const int64_t now_s = s->now() / 1'000'000;
    const std::string body =
        to_json_text(obj({{"type", "credit_pack.purchased"},
                          {"data", obj({{"account_id", u.account_id}, {"amount_mt", 50000}})}}));
    const auto h = signed_headers("evt_1", now_s, body, TestServer::kWebhookSecret);
    const Reply first = s->call("POST", "/v1/webhooks/payments", body, "", h);
    ASSERT_EQ(first.status, 201) << first.body;
    const Reply again = s->call("POST", "/v1/webhooks/payments", body, "", h);
    EXPECT_EQ(again.status, 201);
    EXPECT_EQ(again.body, first.body);
    EXPECT_EQ(s->get("/v1/balance", u.access_token).body["available_mt"], 50000);

    auto forged = h;
    forged.erase("webhook-signature");
    forged.emplace("webhook-signature", "v1,AAAA");
    EXPECT_EQ(s->call("POST", "/v1/webhooks/payments", body, "", forged).body["error"],
              "invalid_signature");
    const auto stale = signed_headers("evt_2", now_s - 3600, body, TestServer::kWebhookSecret);
    EXPECT_EQ(s->call("POST", "/v1/webhooks/payments", body, "", stale).body["error"],
              "timestamp_out_of_tolerance");

    // Spend some, then the purchase is refunded: what is left goes back, the rest is reported.
    ASSERT_EQ(
        s->post("/v1/leases", obj({{"lease_id", "p1"}, {"device_id", "d"}, {"want_ms", 600000}}),
                u.access_token)
            .status,
        201);
    s->post("/v1/leases/p1/settle", obj({{"settle_id", "p1s"}, {"used_ms", 600000}}),
            u.access_token);
    const std::string refund = to_json_text(
        obj({{"type", "charge.refunded"}, {"data", obj({{"refunded_event_id", "evt_1"}})}}));
    const Reply refunded =
        s->call("POST", "/v1/webhooks/payments", refund, "",
                signed_headers("evt_3", now_s, refund, TestServer::kWebhookSecret));
    ASSERT_EQ(refunded.status, 200) << refunded.body;
    EXPECT_EQ(refunded.body["refunded_mt"], 40000);
    EXPECT_EQ(refunded.body["shortfall_mt"], 10000);
    EXPECT_EQ(s->get("/v1/balance", u.access_token).body["available_mt"], 0);
    EXPECT_TRUE(s->server().ledger().reconcile().empty());
}

TEST_P(Api, ExportThenDeleteErasesPersonalDataKeepsLedger) {
    auto s = start();
    const auto u = s->make_user("gone@x.org");
    s->grant(u.account_id, 5000, "g-gone");
    s->post("/v1/leases", obj({{"lease_id", "gl"}, {"device_id", "d"}, {"want_ms", 60000}}),
            u.access_token);
    s->post("/v1/leases/gl/settle", obj({{"settle_id", "gls"}, {"used_ms", 60000}}),
            u.access_token);
    const Reply exported = s->get("/v1/me/export", u.access_token);
    ASSERT_EQ(exported.status, 200);
    EXPECT_EQ(exported.body["account"]["email"], "gone@x.org");
    EXPECT_EQ(exported.body["usage"].size(), 1u);
    ASSERT_EQ(exported.body["leases"].size(), 1u);
    EXPECT_EQ(exported.body["leases"][0]["state"], "settled");
    EXPECT_GE(exported.body["ledger_transfers"].size(), 2u);
    EXPECT_GE(exported.body["security_log"].size(), 2u);

    EXPECT_EQ(s->call("DELETE", "/v1/me", to_json_text(obj({{"password", "wrong password!"}})),
                      u.access_token)
                  .status,
              401);
    const Reply deleted =
        s->call("DELETE", "/v1/me", to_json_text(obj({{"password", u.password}})), u.access_token);
    ASSERT_EQ(deleted.status, 200) << deleted.body;
    EXPECT_EQ(s->get("/v1/me", u.access_token).status, 401);
    EXPECT_EQ(s->post("/v1/sessions", obj({{"email", u.email}, {"password", u.password}})).status,
              401);
    s->db().read([&](DbTx& tx) {
        const auto acc =
            tx.query("SELECT email, name, password_hash FROM account WHERE id = ?", {u.account_id});
        ASSERT_EQ(acc.size(), 1u);
        EXPECT_TRUE(acc[0].is_null(0) && acc[0].is_null(1) && acc[0].is_null(2));
        EXPECT_EQ(tx.query("SELECT COUNT(*) FROM usage_event WHERE owner = ?", {u.account_id})
                      .at(0)
                      .integer(0),
                  0);
        EXPECT_EQ(tx.query("SELECT COUNT(*) FROM ledger_transfer WHERE debit_account = "
                           "'lot:g-gone' OR credit_account = 'lot:g-gone'")
                      .at(0)
                      .integer(0),
                  3);  // grant, hold, post
    });
    // The address can be used again by a new person.
    EXPECT_EQ(s->post("/v1/accounts",
                      obj({{"email", u.email}, {"name", "New"}, {"password", "0123456789"}}))
                  .status,
              202);
    EXPECT_NE(s->mailed_token(u.email), "") << "a new account, so a verification link";
    EXPECT_TRUE(s->server().ledger().reconcile().empty());
}

TEST_P(Api, RetentionPurgesUnverifiedAccountsAndOldLogs) {
    auto s = start();
    s->post("/v1/accounts",
            obj({{"email", "lazy@x.org"}, {"name", "L"}, {"password", "0123456789"}}));
    const auto kept = s->make_user("kept@x.org");
    s->advance_seconds(8 * 24 * 3600);
    s->server().accounts().purge();
    s->db().read([&](DbTx& tx) {
        EXPECT_TRUE(tx.query("SELECT 1 FROM account WHERE email = 'lazy@x.org'").empty());
        EXPECT_FALSE(tx.query("SELECT 1 FROM account WHERE email = 'kept@x.org'").empty());
        EXPECT_FALSE(
            tx.query("SELECT 1 FROM security_log WHERE account_id = ?", {kept.account_id}).empty());
    });
    s->advance_seconds(90 * 24 * 3600);
    s->server().accounts().purge();
    s->db().read([&](DbTx& tx) {
        EXPECT_TRUE(
            tx.query("SELECT 1 FROM security_log WHERE account_id = ?", {kept.account_id}).empty());
    });
}

// service/openapi.yaml and the server agree: every documented path and method is routed (the
// generic 404 `not_found` means "no such route"), and every route answers JSON.
TEST(ApiDocs, EveryDocumentedOperationIsServed) {
    std::ifstream spec(std::string(STEMSPHERE_SOURCE_DIR) + "/service/openapi.yaml");
    ASSERT_TRUE(spec) << "service/openapi.yaml missing";
    std::string url_why;
    TestServer s(fresh_database_url("sqlite", url_why));
    std::string line, path;
    int operations = 0;
    while (std::getline(spec, line)) {
        if (line.rfind("  /v1/", 0) == 0) {
            path = line.substr(2, line.find(':') - 2);
            for (auto pos = path.find('{'); pos != std::string::npos; pos = path.find('{')) {
                path.replace(pos, path.find('}') - pos + 1, "some-id");
            }
            continue;
        }
        for (const char* method : {"get", "post", "delete"}) {
            if (line == std::string("    ") + method + ":") {
                std::string upper = method;
                for (auto& c : upper) c = static_cast<char>(std::toupper(c));
                const Reply r = s.call(upper, path, "{}");
                EXPECT_NE(r.status, 0) << upper << " " << path;
                EXPECT_TRUE(r.body.isObject()) << upper << " " << path;
                EXPECT_NE(r.body["error"].asString(), "not_found") << upper << " " << path;
                ++operations;
            }
        }
    }
    EXPECT_GE(operations, 24);
}

INSTANTIATE_TEST_SUITE_P(Backends, Api, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace stemsphere::service::testing
