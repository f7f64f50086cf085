#include "service/web_session.h"

#include "service/crypto.h"

namespace stemsphere::service {

CookiePolicy cookie_policy(const std::string& public_url) {
    CookiePolicy p;
    // Browsers treat http://127.0.0.1 as a secure context but would drop Secure cookies there.
    const std::string local = "http://127.0.0.1";
    p.secure = !(public_url.rfind(local, 0) == 0 &&
                 (public_url.size() == local.size() || public_url[local.size()] == ':' ||
                  public_url[local.size()] == '/'));
    p.session_name = p.secure ? "__Host-stemsphere" : "stemsphere";
    p.pre_session_name = p.secure ? "__Host-stemsphere_pre" : "stemsphere_pre";
    return p;
}

std::string cookie_value(const httplib::Request& req, const std::string& name) {
    const std::string header = req.get_header_value("Cookie");
    size_t pos = 0;
    while (pos < header.size()) {
        while (pos < header.size() && (header[pos] == ' ' || header[pos] == ';')) ++pos;
        size_t end = header.find(';', pos);
        if (end == std::string::npos) end = header.size();
        const std::string pair = header.substr(pos, end - pos);
        const auto eq = pair.find('=');
        if (eq != std::string::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
        pos = end + 1;
    }
    return {};
}

std::string set_cookie(const CookiePolicy& policy, const std::string& name,
                       const std::string& value, int64_t max_age_s) {
    return name + "=" + value + "; Path=/; Max-Age=" + std::to_string(max_age_s) +
           "; HttpOnly; SameSite=Lax" + (policy.secure ? "; Secure" : "");
}

std::string csrf_token(const std::string& key, const std::string& binding) {
    return base64_encode(hmac_sha256(key, "csrf|" + binding), true);
}

bool csrf_ok(const std::string& key, const std::string& binding, const std::string& presented) {
    return !binding.empty() && !presented.empty() &&
           constant_time_equal(presented, csrf_token(key, binding));
}

std::string safe_next(const std::string& next) {
    // Only absolute paths of this site: not "//host", not "/\host", no scheme, no control bytes.
    if (next.size() < 1 || next.size() > 512 || next[0] != '/') return "/account";
    if (next.size() > 1 && (next[1] == '/' || next[1] == '\\')) return "/account";
    for (const unsigned char c : next) {
        if (c < 0x20 || c == 0x7f || c == '\\') return "/account";
    }
    return next;
}

}  // namespace stemsphere::service
