#include "service/pages.h"

#include "service/qr_svg.h"
#include "service/usage_chart.h"

namespace stemsphere::service::pages {
namespace {

std::string form_open(const std::string& action, const std::string& csrf) {
    return "<form method=\"post\" action=\"" + esc(action) + "\" novalidate>" +
           hidden_input("csrf", csrf);
}

std::string notice_html(const std::string& notice) {
    return notice.empty()
               ? ""
               : "<div class=\"notice\" role=\"status\"><p>" + esc(notice) + "</p></div>";
}

std::string td(const std::string& label, const std::string& html, bool numeric = false) {
    return "<td data-label=\"" + esc(label) + "\"" + (numeric ? " class=\"num\"" : "") + ">" +
           html + "</td>";
}

std::string category_text(const std::string& category) {
    if (category == "subscription") return "Subscription";
    if (category == "purchase") return "Purchased pack";
    if (category == "promo") return "Promotion";
    return category;
}

}  // namespace

std::string signin(const FormErrors& errors, const std::string& email, const std::string& next,
                   const std::string& csrf, const std::string& notice) {
    std::string out = notice_html(notice) + error_summary(errors) + "<div class=\"card narrow\">" +
                      form_open("/signin", csrf) + hidden_input("next", next);
    out += field_html({"email", "Email address", "email", email, "username", "", ""}, errors);
    out += field_html({"password", "Password", "password", "", "current-password", "", ""}, errors);
    Field code{"code",
               "Two-factor code (only if two-factor sign-in is on)",
               "text",
               "",
               "one-time-code",
               "The 6-digit code from your authenticator app, or a backup code.",
               "",
               false};
    out += field_html(code, errors);
    out += "<div class=\"actions\"><button type=\"submit\">Sign in</button></div></form></div>";
    out += "<p>No account yet? <a href=\"/signup\">Create one</a>.</p>";
    return out;
}

std::string signup(const FormErrors& errors, const std::string& email, const std::string& name,
                   const std::string& csrf) {
    std::string out =
        error_summary(errors) + "<div class=\"card narrow\">" + form_open("/signup", csrf);
    out += field_html({"name", "Your name", "text", name, "name", "", ""}, errors);
    out += field_html({"email", "Email address", "email", email, "email",
                       "We send a link to this address to confirm it.", ""},
                      errors);
    out += field_html(
        {"password", "Password", "password", "", "new-password", "At least 10 characters.", ""},
        errors);
    out +=
        "<div class=\"actions\"><button type=\"submit\">Create account</button></div></form>"
        "</div><p>Already have an account? <a href=\"/signin\">Sign in</a>.</p>";
    return out;
}

std::string signup_sent(const std::string& email) {
    return "<div class=\"notice\" role=\"status\"><p>We sent a message to <strong>" + esc(email) +
           "</strong>. Open the link in it to confirm your address, then sign in.</p></div>"
           "<p class=\"muted\">If this address already has an account, the message says so "
           "instead. Nothing arrived? Check the spam folder; the link works for 2 days.</p>"
           "<p><a href=\"/signin\">Go to sign-in</a></p>";
}

std::string verify(const std::string& token, const std::string& csrf) {
    return "<div class=\"card narrow\"><p>Confirm that this email address is yours.</p>" +
           form_open("/verify", csrf) + hidden_input("token", token) +
           "<div class=\"actions\"><button type=\"submit\">Confirm my email address</button>"
           "</div></form></div>";
}

std::string verify_done(bool ok) {
    if (ok) {
        return "<div class=\"notice\" role=\"status\"><p>Your email address is confirmed.</p>"
               "</div><p><a class=\"button\" href=\"/signin\">Sign in</a></p>";
    }
    return "<div class=\"warning\" role=\"alert\"><p>This link is unknown, already used or "
           "expired.</p></div><p>Links work once and for 2 days. If your address is already "
           "confirmed, <a href=\"/signin\">sign in</a>.</p>";
}

std::string device_entry(const FormErrors& errors, const std::string& user_code) {
    std::string out = error_summary(errors) +
                      "<div class=\"card narrow\"><p>Enter the code that your device or the "
                      "Stemsphere app shows.</p><form method=\"get\" action=\"/device\" "
                      "novalidate>";
    out += field_html(
        {"user_code", "Code", "text", user_code, "off", "8 letters, like BCDF-GHJK.", ""}, errors);
    out += "<div class=\"actions\"><button type=\"submit\">Continue</button></div></form></div>";
    return out;
}

std::string device_confirm(const Json::Value& grant, const std::string& csrf) {
    std::string out =
        "<div class=\"card\"><p>A device asks to sign in to your Stemsphere account.</p>"
        "<dl class=\"facts\"><dt>Device</dt><dd id=\"device-name\">" +
        esc(grant["device_name"].asString()) + "</dd><dt>Application</dt><dd id=\"client-id\">" +
        esc(grant["client_id"].asString()) + "</dd><dt>Code</dt><dd class=\"code\">" +
        esc(grant["user_code"].asString()) + "</dd><dt>Code expires</dt><dd>" +
        esc(utc_text(grant["expires_at"].asInt64())) +
        "</dd></dl></div><div class=\"warning\"><p>Approve only if you started this sign-in "
        "yourself and the code matches the one on your device. The device can then spend your "
        "tokens until you revoke it on your account page.</p></div>";
    out += form_open("/device", csrf) + hidden_input("user_code", grant["user_code"].asString()) +
           "<div class=\"actions\"><button type=\"submit\" name=\"decision\" value=\"approve\">"
           "Approve</button><button type=\"submit\" name=\"decision\" value=\"deny\" "
           "class=\"secondary\">Deny</button></div></form>";
    return out;
}

std::string device_done(bool approved, const std::string& device_name) {
    if (approved) {
        return "<div class=\"notice\" role=\"status\"><p><strong>" + esc(device_name) +
               "</strong> is signed in. You can close this page and return to the device.</p>"
               "</div><p><a href=\"/account\">Go to your account</a></p>";
    }
    return "<div class=\"notice\" role=\"status\"><p>You denied the sign-in of <strong>" +
           esc(device_name) +
           "</strong>. The device gets no access.</p></div><p><a href=\"/account\">Go to your "
           "account</a></p>";
}

std::string device_unknown() {
    return "<div class=\"warning\" role=\"alert\"><p>This code is unknown, already used or has "
           "expired.</p></div><p>Codes work for 10 minutes. Start the sign-in again on your "
           "device to get a new code, then <a href=\"/device\">enter it here</a>.</p>";
}

std::string account(const AccountView& v) {
    const Json::Value& me = v.me;
    const Json::Value& bal = v.balance;
    std::string out = notice_html(v.notice) + error_summary(v.errors);
    out += "<section class=\"card\" aria-labelledby=\"h-profile\"><h2 id=\"h-profile\">" +
           esc(me["name"].asString()) + "</h2><dl class=\"facts\"><dt>Email</dt><dd>" +
           esc(me["email"].asString()) + "</dd><dt>Account id</dt><dd>" +
           esc(me["account_id"].asString()) + "</dd><dt>Member since</dt><dd>" +
           esc(utc_text(me["created_at"].asInt64(), true)) + "</dd></dl></section>";

    // Balance and lots
    out +=
        "<section class=\"card\" aria-labelledby=\"h-balance\"><h2 id=\"h-balance\">Balance"
        "</h2><p class=\"big\" id=\"balance-available\">" +
        esc(tokens_text(bal["available_mt"].asInt64())) +
        " tokens</p><p class=\"muted\">Enough for " +
        esc(duration_text(bal["available_ms"].asInt64())) + " of audio at " +
        esc(tokens_text(bal["milli_tokens_per_minute"].asInt64())) +
        " tokens per minute. Held by open leases: " + esc(tokens_text(bal["held_mt"].asInt64())) +
        " tokens.</p>";
    if (bal["lots"].empty()) {
        out += "<p>You have no tokens yet.</p>";
    } else {
        out +=
            "<div class=\"table-wrap\"><table class=\"stack\" id=\"lots\"><caption "
            "class=\"sr-only\">Token lots, used in this order</caption><thead><tr><th>Kind"
            "</th><th class=\"num\">Granted</th><th class=\"num\">Left</th><th "
            "class=\"num\">Held</th><th>Expires</th></tr></thead><tbody>";
        for (const auto& lot : bal["lots"]) {
            const int64_t expires = lot["expires_at"].asInt64();
            out += "<tr>" + td("Kind", esc(category_text(lot["category"].asString()))) +
                   td("Granted", esc(tokens_text(lot["granted_mt"].asInt64())), true) +
                   td("Left", esc(tokens_text(lot["available_mt"].asInt64())), true) +
                   td("Held", esc(tokens_text(lot["held_mt"].asInt64())), true) +
                   td("Expires", expires >= 4102444800 ? "never" : esc(utc_text(expires))) +
                   "</tr>";
        }
        out += "</tbody></table></div>";
    }
    out += "</section>";

    // Usage
    const auto days = usage_per_day(v.usage, v.now_s, 30);
    out +=
        "<section class=\"card\" aria-labelledby=\"h-usage\"><h2 id=\"h-usage\">Usage, last "
        "30 days</h2>" +
        usage_chart_svg(days);
    std::string rows;
    for (auto it = days.rbegin(); it != days.rend(); ++it) {
        if (it->used_ms == 0 && it->posted_mt == 0) continue;
        rows += "<tr>" + td("Day", esc(utc_text(it->day_start_s, true))) +
                td("Audio", esc(duration_text(it->used_ms)), true) +
                td("Tokens", esc(tokens_text(it->posted_mt)), true) + "</tr>";
    }
    if (rows.empty()) {
        out += "<p>No metered use in the last 30 days.</p>";
    } else {
        out +=
            "<div class=\"table-wrap\"><table class=\"stack\" id=\"usage-table\"><caption "
            "class=\"sr-only\">Usage per day</caption><thead><tr><th>Day (UTC)</th><th "
            "class=\"num\">Audio</th><th class=\"num\">Tokens</th></tr></thead><tbody>" +
            rows + "</tbody></table></div>";
    }
    out += "</section>";

    // Open leases
    std::string lease_rows;
    for (const auto& l : v.leases) {
        if (l["state"].asString() != "open") continue;
        lease_rows += "<tr>" + td("Lease", esc(l["lease_id"].asString())) +
                      td("Device", esc(l["device_id"].asString())) +
                      td("Granted", esc(duration_text(l["granted_ms"].asInt64())), true) +
                      td("Held", esc(tokens_text(l["hold_mt"].asInt64())), true) +
                      td("Expires", esc(utc_text(l["expires_at"].asInt64()))) + "</tr>";
    }
    out +=
        "<section class=\"card\" aria-labelledby=\"h-leases\"><h2 id=\"h-leases\">Open "
        "leases</h2>";
    out += lease_rows.empty()
               ? "<p>No open leases. A lease holds tokens while a device renders.</p>"
               : "<div class=\"table-wrap\"><table class=\"stack\" id=\"leases\"><thead><tr><th>"
                 "Lease</th><th>Device</th><th class=\"num\">Granted</th><th "
                 "class=\"num\">Held</th><th>Expires</th></tr></thead><tbody>" +
                     lease_rows + "</tbody></table></div>";
    out += "</section>";

    // Devices and sessions
    out +=
        "<section class=\"card\" aria-labelledby=\"h-devices\"><h2 id=\"h-devices\">Devices "
        "and sessions</h2><div class=\"table-wrap\"><table class=\"stack\" "
        "id=\"sessions\"><thead><tr><th>Device</th><th>Application</th><th>Signed in</th>"
        "<th>Last used</th><th><span class=\"sr-only\">Action</span></th></tr></thead>"
        "<tbody>";
    for (const auto& s : v.sessions) {
        if (!s["revoked_at"].isNull()) continue;
        const bool current = s["current"].asBool();
        const std::string name = s["device_name"].asString();
        out += "<tr>" +
               td("Device", esc(name) + (current ? " <strong>(this browser)</strong>" : "")) +
               td("Application", esc(s["client_id"].asString())) +
               td("Signed in", esc(utc_text(s["created_at"].asInt64()))) +
               td("Last used", esc(utc_text(s["last_used_at"].asInt64()))) +
               td("Action", form_open("/account/sessions/revoke", v.csrf) +
                                hidden_input("session_id", s["session_id"].asString()) +
                                "<button type=\"submit\" class=\"secondary\" aria-label=\"" +
                                esc((current ? "Sign out this browser: " : "Revoke ") + name) +
                                "\">" + (current ? "Sign out" : "Revoke") + "</button></form>") +
               "</tr>";
    }
    out += "</tbody></table></div></section>";

    // Security
    const bool totp = me["totp_enabled"].asBool();
    out +=
        "<section class=\"card\" aria-labelledby=\"h-security\"><h2 id=\"h-security\">"
        "Security</h2><p>Two-factor sign-in is <strong id=\"totp-state\">" +
        std::string(totp ? "on" : "off") + "</strong>.</p>";
    if (totp) {
        out += form_open("/account/2fa/disable", v.csrf) +
               field_html({"code", "Code to turn two-factor sign-in off", "text", "",
                           "one-time-code", "A code from your app or a backup code.", ""},
                          v.errors) +
               "<div class=\"actions\"><button type=\"submit\" class=\"secondary\">Turn "
               "off</button></div></form>";
    } else {
        out += form_open("/account/2fa/setup", v.csrf) +
               "<div class=\"actions\"><button type=\"submit\">Set up two-factor sign-in"
               "</button></div></form>";
    }
    out += "<p><a href=\"/account/password\">Change your password</a></p></section>";

    // Language
    out +=
        "<section class=\"card\" aria-labelledby=\"h-language\"><h2 id=\"h-language\">"
        "Language</h2>" +
        form_open("/account/language", v.csrf) +
        "<div class=\"field\"><label for=\"f-language\">Language of these pages and of our "
        "mail</label>";
    if (const std::string* error = v.errors.for_field("language")) {
        out +=
            "<p class=\"field-error\" id=\"f-language-error\"><span class=\"sr-only\">Error: "
            "</span>" +
            esc(*error) + "</p>";
    }
    out += std::string("<select id=\"f-language\" name=\"language\"") +
           (v.errors.for_field("language")
                ? " aria-invalid=\"true\" aria-describedby=\"f-language-error\""
                : "") +
           ">";
    const std::string lang = me["language"].asString();
    for (const auto& [code, label] : {std::pair<const char*, const char*>{"en", "English"}}) {
        out += "<option value=\"" + std::string(code) + "\"" + (lang == code ? " selected" : "") +
               ">" + label + "</option>";
    }
    out +=
        "</select></div><div class=\"actions\"><button type=\"submit\" "
        "class=\"secondary\">Save</button></div></form></section>";

    // Data
    out +=
        "<section class=\"card\" aria-labelledby=\"h-data\"><h2 id=\"h-data\">Your data</h2>"
        "<p><a class=\"button secondary\" href=\"/account/export.json\" download>Download my "
        "data (JSON)</a></p><p>Everything we hold about you: account, devices, balance, "
        "usage, leases, ledger entries and the security log.</p>"
        "<p><a href=\"/account/delete\">Delete my account</a></p></section>";
    return out;
}

std::string totp_setup(const Json::Value& setup, const FormErrors& errors,
                       const std::string& csrf) {
    const std::string secret = setup["secret"].asString();
    std::string grouped;
    for (size_t i = 0; i < secret.size(); i += 4) {
        grouped += (i ? " " : "") + secret.substr(i, 4);
    }
    std::string out = error_summary(errors) +
                      "<div class=\"card\"><h2>1. Scan this code with your authenticator app</h2>" +
                      qr_svg(setup["otpauth_uri"].asString(), "QR code of your two-factor secret") +
                      "<p>Or type this key into the app:</p><p class=\"code\" id=\"totp-secret\">" +
                      esc(grouped) + "</p></div>";
    out +=
        "<div class=\"card\"><h2>2. Enter the code the app shows</h2>" +
        form_open("/account/2fa/enable", csrf) +
        field_html({"code", "6-digit code", "text", "", "one-time-code", "", "numeric"}, errors) +
        "<div class=\"actions\"><button type=\"submit\">Turn on two-factor sign-in</button>"
        "<a href=\"/account\">Cancel</a></div></form></div>";
    return out;
}

std::string backup_codes(const Json::Value& codes) {
    std::string out =
        "<div class=\"notice\" role=\"status\"><p>Two-factor sign-in is on.</p></div><div "
        "class=\"card\"><h2>Your backup codes</h2><p>Each code signs you in once when you do "
        "not have your phone. <strong>Save them now: they are shown only this once.</strong></p>"
        "<ol class=\"codes\" id=\"backup-codes\">";
    for (const auto& c : codes) out += "<li>" + esc(c.asString()) + "</li>";
    return out + "</ol></div><p><a class=\"button\" href=\"/account\">I saved them</a></p>";
}

std::string password(const FormErrors& errors, const std::string& csrf) {
    return error_summary(errors) + "<div class=\"card narrow\">" +
           form_open("/account/password", csrf) +
           field_html(
               {"current_password", "Current password", "password", "", "current-password", "", ""},
               errors) +
           field_html(
               {"new_password", "New password", "password", "", "new-password",
                "At least 10 characters. Your other devices and sessions are signed out.", ""},
               errors) +
           "<div class=\"actions\"><button type=\"submit\">Change password</button><a "
           "href=\"/account\">Cancel</a></div></form></div>";
}

std::string delete_confirm(const FormErrors& errors, bool totp_enabled, const std::string& csrf) {
    std::string out =
        error_summary(errors) +
        "<div class=\"card\"><h2>What happens</h2><p><strong>Erased at once:</strong> your "
        "email address, name, password, two-factor secret and backup codes, pending mail, your "
        "usage history and device names. Every device and browser is signed out.</p>"
        "<p><strong>Kept:</strong> ledger and payment records, anonymised under an opaque "
        "account number, for 5 years, because the law requires it; entries of the security "
        "log until their 3 months end.</p><p>Tokens left on the account are lost. This cannot "
        "be undone. You can later create a new account with the same email address.</p></div>";
    out += "<div class=\"card narrow\">" + form_open("/account/delete", csrf) +
           field_html({"password", "Your password", "password", "", "current-password", "", ""},
                      errors);
    if (totp_enabled) {
        out += field_html({"code", "Two-factor code", "text", "", "one-time-code",
                           "A code from your app or a backup code.", ""},
                          errors);
    }
    out +=
        "<div class=\"actions\"><button type=\"submit\" class=\"danger\">Delete my account"
        "</button><a href=\"/account\">Cancel</a></div></form></div>";
    return out;
}

std::string deleted() {
    return "<div class=\"notice\" role=\"status\"><p>Your account is deleted and you are signed "
           "out everywhere.</p></div><p><a href=\"/signup\">Create a new account</a></p>";
}

std::string message(const std::string& text, const std::string& link, const std::string& label) {
    return "<div class=\"warning\" role=\"alert\"><p>" + esc(text) + "</p></div><p><a href=\"" +
           esc(link) + "\">" + esc(label) + "</a></p>";
}

}  // namespace stemsphere::service::pages
