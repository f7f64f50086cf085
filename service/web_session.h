// Browser sessions and CSRF for the account pages. The session cookie carries a signed token
// bound to a session row (Accounts::issue_web_token), so revoking that row ends the cookie. Forms
// carry a synchronizer token: an HMAC of the session id when signed in, or of a random
// pre-session cookie before (sign-in, sign-up, verification), compared in constant time.
#pragma once

#include <httplib.h>

#include <string>

namespace stemsphere::service {

struct CookiePolicy {
    bool secure = true;            // false only when the public URL is http://127.0.0.1
    std::string session_name;      // "__Host-stemsphere" when secure
    std::string pre_session_name;  // "__Host-stemsphere_pre" when secure
};

CookiePolicy cookie_policy(const std::string& public_url);

// The value of cookie `name` in the request, or "".
std::string cookie_value(const httplib::Request& req, const std::string& name);
// A Set-Cookie value: Path=/; HttpOnly; SameSite=Lax; Secure unless relaxed. max_age_s 0 deletes.
std::string set_cookie(const CookiePolicy& policy, const std::string& name,
                       const std::string& value, int64_t max_age_s);

// The CSRF token of forms for `binding` (a session id, or "pre:" + the pre-session cookie).
std::string csrf_token(const std::string& key, const std::string& binding);
bool csrf_ok(const std::string& key, const std::string& binding, const std::string& presented);

// Answers an error status (404, 405, 413, ...) of a non-API path with an HTML page under the
// pages' security headers.
void render_error_page(httplib::Response& res);

// A path inside this site to go to after sign-in ("/account" when `next` is anything else).
std::string safe_next(const std::string& next);

}  // namespace stemsphere::service
