// Routes: the account pages (sign-up, verification, sign-in and -out, device approval, the
// account page and its forms). They call the same Accounts and Ledger operations as the JSON
// routes, under the same rate limiters; views are in pages.cpp.
#include <httplib.h>

#include <cctype>
#include <cstdio>

#include "service/crypto.h"
#include "service/http_api.h"
#include "service/pages.h"
#include "service/web_assets.h"
#include "service/web_session.h"

namespace stemsphere::service {
namespace {

using httplib::Request;
using httplib::Response;

// No inline script or style anywhere; nothing from elsewhere; never framed.
constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

void security_headers(Response& res) {
    res.set_header("Content-Security-Policy", kCsp);
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Referrer-Policy", "no-referrer");  // user codes and tokens sit in URLs
    res.set_header("Cross-Origin-Opener-Policy", "same-origin");
    res.set_header("Cache-Control", "no-store");
}

std::string url_encode(const std::string& s) {
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

// A form or query field, cut at `max_len` bytes (longer input is an error of its own field).
std::string param(const Request& req, const char* name, size_t max_len = 1024) {
    std::string v = req.has_param(name) ? req.get_param_value(name) : std::string();
    if (v.size() > max_len) v.resize(max_len);
    return v;
}

// "Firefox on Linux": enough for a user to tell their browsers apart in the sessions list.
std::string browser_name(const std::string& ua) {
    auto has = [&ua](const char* s) { return ua.find(s) != std::string::npos; };
    const char* browser = has("Firefox/")    ? "Firefox"
                          : has("Edg/")      ? "Edge"
                          : has("Chromium/") ? "Chromium"
                          : has("Chrome/")   ? "Chrome"
                          : has("Safari/")   ? "Safari"
                                             : "Web browser";
    const char* os = has("Android")                        ? "Android"
                     : has("iPhone") || has("iPad")        ? "iOS"
                     : has("Windows")                      ? "Windows"
                     : has("Mac OS X") || has("Macintosh") ? "macOS"
                     : has("Linux")                        ? "Linux"
                                                           : "";
    return std::string(browser) + (*os ? std::string(" on ") + os : "");
}

// A code typed into a "two-factor code" field: six digits are TOTP, anything else a backup code.
void split_second_factor(const std::string& code, std::string& totp, std::string& backup) {
    std::string digits;
    for (const char c : code) {
        if (c != ' ') digits += c;
    }
    const bool numeric =
        digits.size() == 6 && digits.find_first_not_of("0123456789") == std::string::npos;
    (numeric ? totp : backup) = numeric ? digits : code;
}

const char* notice_text(const std::string& key) {
    if (key == "signed_out") return "You are signed out.";
    if (key == "password_changed") {
        return "Your password is changed. Your other devices and sessions are signed out.";
    }
    if (key == "2fa_off") return "Two-factor sign-in is off.";
    if (key == "language_saved") return "Your language is saved.";
    if (key == "session_revoked")
        return "The device is signed out and can no longer use your account.";
    if (key == "2fa_on") return "Two-factor sign-in is already on.";
    return "";
}

void redirect(Response& res, const std::string& to) {
    res.status = 303;
    res.set_header("Location", to);
}

// Shows a limiter's answer on a form page: 429 with Retry-After; returns the status.
int limited(Response& res, int64_t wait, FormErrors& errors) {
    res.set_header("Retry-After", std::to_string(wait));
    errors.add("", "Too many attempts. Wait " + std::to_string(wait) + " seconds and try again.");
    return 429;
}

}  // namespace

void render_error_page(Response& res) {
    security_headers(res);
    PageFrame frame;
    frame.title = res.status == 404 ? "Page not found" : "Request not accepted";
    frame.body = pages::message(
        res.status == 404 ? "There is no page at this address." : "This request cannot be handled.",
        "/account", "Go to your account");
    res.set_content(page_html(frame), "text/html; charset=utf-8");
}

// What a page request knows about its browser: the signed-in session, if any, and the CSRF
// binding of its forms.
struct ApiServer::PageContext {
    std::optional<Principal> who;
    Json::Value me;
    std::string csrf;     // token for forms of this request's page
    std::string binding;  // what the CSRF token is bound to
    std::string lang = "en";
};

void ApiServer::install_page_routes() {
    auto& s = *http_;
    const CookiePolicy cookies = cookie_policy(config_.auth.public_url);
    const std::string csrf_key = accounts_->derived_key("csrf");

    for (const WebAsset* a = web_assets_begin(); a != web_assets_end(); ++a) {
        const WebAsset asset = *a;
        s.Get(std::string(asset.path), [asset](const Request&, Response& res) {
            res.set_header("X-Content-Type-Options", "nosniff");
            res.set_header("Cache-Control", "no-cache");
            res.set_content(std::string(asset.body), std::string(asset.content_type));
        });
    }

    using PageHandler = std::function<void(const Request&, Response&, PageContext&)>;
    // Every page runs through here: session and CSRF context, headers, error pages.
    auto page = [this, cookies, csrf_key](bool needs_session, PageHandler handler) {
        return [this, cookies, csrf_key, needs_session, handler](const Request& req,
                                                                 Response& res) {
            security_headers(res);
            PageContext ctx;
            try {
                const std::string token = cookie_value(req, cookies.session_name);
                if (!token.empty()) {
                    ctx.who = accounts_->authenticate_web(token);
                    if (ctx.who) {
                        const Outcome me = accounts_->me(*ctx.who);
                        if (me.ok()) {
                            ctx.me = me.body;
                            ctx.lang = me.body["language"].asString();
                        } else {
                            ctx.who.reset();
                        }
                    }
                }
                if (ctx.who) {
                    ctx.binding = ctx.who->session_id;
                } else {
                    std::string pre = cookie_value(req, cookies.pre_session_name);
                    if (pre.size() < 16 || pre.size() > 64) {
                        pre = random_token(18);
                        res.set_header("Set-Cookie",
                                       set_cookie(cookies, cookies.pre_session_name, pre, 86400));
                    }
                    ctx.binding = "pre:" + pre;
                }
                ctx.csrf = csrf_token(csrf_key, ctx.binding);
                if (needs_session && !ctx.who) {
                    std::string target = req.path;
                    if (req.method == "GET" && req.has_param("user_code")) {
                        target += "?user_code=" + url_encode(param(req, "user_code", 32));
                    }
                    res.status = 303;
                    res.set_header("Location", "/signin?next=" + url_encode(target));
                    return;
                }
                if (req.method == "POST" &&
                    !csrf_ok(csrf_key, ctx.binding, param(req, "csrf", 128))) {
                    render(res, ctx, "Form expired", 403,
                           pages::message("This form was not sent from this page or has expired. "
                                          "Nothing was changed. Go back, reload the page and try "
                                          "again.",
                                          req.path, "Reload the page"));
                    return;
                }
                handler(req, res, ctx);
            } catch (const DbError& e) {
                std::fprintf(stderr, "page %s: database error: %s\n", req.path.c_str(), e.what());
                render(res, ctx, "Try again", e.transient() ? 503 : 500,
                       pages::message("The service is busy. Nothing was changed; try again in a "
                                      "moment.",
                                      req.path, "Try again"));
            } catch (const std::exception& e) {
                std::fprintf(stderr, "page %s: internal error: %s\n", req.path.c_str(), e.what());
                render(res, ctx, "Something went wrong", 500,
                       pages::message("Something went wrong on our side. Try again later.", "/",
                                      "Home"));
            }
        };
    };
    s.Get("/", page(false, [](const Request&, Response& res, PageContext& ctx) {
              redirect(res, ctx.who ? "/account" : "/signin");
          }));

    // --- sign-in, sign-up, verification, sign-out
    s.Get("/signin", page(false, [this](const Request& req, Response& res, PageContext& ctx) {
              if (ctx.who) return redirect(res, safe_next(param(req, "next", 512)));
              render(res, ctx, "Sign in", 200,
                     pages::signin({}, "", safe_next(param(req, "next", 512)), ctx.csrf,
                                   notice_text(param(req, "notice", 32))));
          }));
    s.Post(
        "/signin",
        page(false, [this, cookies](const Request& req, Response& res, PageContext& ctx) {
            const std::string email = param(req, "email", 254);
            const std::string password = param(req, "password");
            const std::string next = safe_next(param(req, "next", 512));
            std::string totp, backup;
            split_second_factor(param(req, "code", 32), totp, backup);
            FormErrors errors;
            int status = 200;
            const int64_t now = clock_();
            if (email.empty()) errors.add("email", "Enter your email address.");
            if (password.empty()) errors.add("password", "Enter your password.");
            if (errors.empty()) {
                if (auto wait = signin_ip_.acquire(req.remote_addr, now)) {
                    status = limited(res, wait, errors);
                } else if (auto wait2 = signin_account_.acquire(email, now)) {
                    status = limited(res, wait2, errors);
                }
            }
            if (errors.empty()) {
                const Outcome out = accounts_->sign_in(
                    email, password, totp, backup, browser_name(req.get_header_value("User-Agent")),
                    "web", req.remote_addr);
                if (out.ok()) {
                    res.set_header("Set-Cookie", set_cookie(cookies, cookies.session_name,
                                                            accounts_->issue_web_token(
                                                                out.body["account_id"].asString(),
                                                                out.body["session_id"].asString()),
                                                            accounts_->config().web_session_ttl_s));
                    return redirect(res, next);
                }
                status = out.status;
                const std::string code = out.body["error"].asString();
                if (code == "invalid_credentials") {
                    errors.add("password", "The email address or the password is wrong.");
                } else if (code == "email_not_verified") {
                    errors.add("email",
                               "Confirm your email address first: open the link we sent you.");
                } else if (code == "totp_required") {
                    errors.add("code",
                               "Two-factor sign-in is on: enter your password again "
                               "with a code from your authenticator app or a backup code.");
                } else if (code == "invalid_totp") {
                    errors.add("code", "This code is wrong, expired or already used.");
                } else {
                    errors.add("", "The service is busy. Try again in a moment.");
                }
            } else if (status == 200) {
                status = 400;
            }
            render(res, ctx, "Sign in", status, pages::signin(errors, email, next, ctx.csrf, ""));
        }));
    s.Get("/signup", page(false, [this](const Request&, Response& res, PageContext& ctx) {
              render(res, ctx, "Create an account", 200, pages::signup({}, "", "", ctx.csrf));
          }));
    s.Post("/signup", page(false, [this](const Request& req, Response& res, PageContext& ctx) {
               const std::string email = param(req, "email", 300);
               const std::string name = param(req, "name", 300);
               const std::string password = param(req, "password", 2000);
               FormErrors errors;
               int status = 400;
               if (name.empty()) errors.add("name", "Enter your name.");
               if (email.empty()) errors.add("email", "Enter your email address.");
               if (password.size() < 10) {
                   errors.add("password", "Choose a password of at least 10 characters.");
               }
               if (errors.empty()) {
                   if (auto wait = signup_ip_.acquire(req.remote_addr, clock_())) {
                       status = limited(res, wait, errors);
                   }
               }
               if (errors.empty()) {
                   const Outcome out = accounts_->sign_up(email, name, password, req.remote_addr);
                   if (out.ok()) {
                       return render(res, ctx, "Check your email", 200,
                                     pages::signup_sent(out.body["email"].asString()));
                   }
                   status = out.status;
                   const std::string field = out.body["field"].asString();
                   if (field == "email") {
                       errors.add("email", "Enter an email address like name@example.org.");
                   } else if (field == "name") {
                       errors.add("name", "Your name can have at most 200 characters.");
                   } else if (field == "password") {
                       errors.add("password", "Choose a password of 10 to 1024 characters.");
                   } else {
                       errors.add("", "The service is busy. Try again in a moment.");
                   }
               }
               render(res, ctx, "Create an account", status,
                      pages::signup(errors, email, name, ctx.csrf));
           }));
    s.Get("/verify", page(false, [this](const Request& req, Response& res, PageContext& ctx) {
              render(res, ctx, "Confirm your email address", 200,
                     pages::verify(param(req, "token", 256), ctx.csrf));
          }));
    s.Post("/verify", page(false, [this](const Request& req, Response& res, PageContext& ctx) {
               const Outcome out = accounts_->verify_email(param(req, "token", 256));
               render(res, ctx, out.ok() ? "Email address confirmed" : "Link not valid",
                      out.ok() ? 200 : 400, pages::verify_done(out.ok()));
           }));
    s.Post("/signout", page(true, [this, cookies](const Request&, Response& res, PageContext& ctx) {
               accounts_->sign_out(*ctx.who);
               res.set_header("Set-Cookie", set_cookie(cookies, cookies.session_name, "", 0));
               redirect(res, "/signin?notice=signed_out");
           }));

    // --- device approval (RFC 8628 verification URI)
    s.Get("/device", page(true, [this](const Request& req, Response& res, PageContext& ctx) {
              const std::string entered = param(req, "user_code", 64);
              if (!req.has_param("user_code")) {
                  return render(res, ctx, "Approve a device", 200, pages::device_entry({}, ""));
              }
              FormErrors errors;
              if (auto wait = signin_account_.acquire("approve:" + ctx.who->account_id, clock_())) {
                  const int status = limited(res, wait, errors);
                  return render(res, ctx, "Approve a device", status,
                                pages::device_entry(errors, entered));
              }
              const Outcome grant = accounts_->device_pending(entered);
              if (grant.status == 400) {
                  errors.add("user_code", "Enter the 8 letters your device shows, like BCDF-GHJK.");
                  return render(res, ctx, "Approve a device", 400,
                                pages::device_entry(errors, entered));
              }
              if (!grant.ok()) {
                  return render(res, ctx, "Code not valid", 404, pages::device_unknown());
              }
              render(res, ctx, "Approve this device?", 200,
                     pages::device_confirm(grant.body, ctx.csrf));
          }));
    s.Post(
        "/device", page(true, [this](const Request& req, Response& res, PageContext& ctx) {
            const std::string decision = param(req, "decision", 16);
            if (decision != "approve" && decision != "deny") {
                return render(res, ctx, "Approve a device", 400,
                              pages::message("Choose Approve or Deny.", "/device", "Back"));
            }
            FormErrors errors;
            if (auto wait = signin_account_.acquire("approve:" + ctx.who->account_id, clock_())) {
                const int status = limited(res, wait, errors);
                return render(res, ctx, "Approve a device", status,
                              pages::device_entry(errors, param(req, "user_code", 64)));
            }
            const Outcome out = accounts_->device_approve(*ctx.who, param(req, "user_code", 64),
                                                          decision == "approve", req.remote_addr);
            if (!out.ok()) {
                return render(res, ctx, "Code not valid", 404, pages::device_unknown());
            }
            render(res, ctx, decision == "approve" ? "Device approved" : "Sign-in denied", 200,
                   pages::device_done(out.body["approved"].asBool(),
                                      out.body["device_name"].asString()));
        }));

    // --- the account page and its forms
    s.Get("/account", page(true, [this](const Request& req, Response& res, PageContext& ctx) {
              render_account(res, ctx, notice_text(param(req, "notice", 32)), {}, 200);
          }));
    s.Post("/account/sessions/revoke",
           page(true, [this, cookies](const Request& req, Response& res, PageContext& ctx) {
               const std::string id = param(req, "session_id", 64);
               const Outcome out = accounts_->revoke_session(*ctx.who, id, req.remote_addr);
               if (!out.ok()) {
                   return render(res, ctx, "Not found", 404,
                                 pages::message("This session is not one of yours or is already "
                                                "signed out. Nothing was changed.",
                                                "/account", "Back to your account"));
               }
               if (id == ctx.who->session_id) {
                   res.set_header("Set-Cookie", set_cookie(cookies, cookies.session_name, "", 0));
                   return redirect(res, "/signin?notice=signed_out");
               }
               redirect(res, "/account?notice=session_revoked");
           }));
    s.Post("/account/2fa/setup",
           page(true, [this](const Request&, Response& res, PageContext& ctx) {
               const Outcome out = accounts_->totp_setup(*ctx.who);
               if (!out.ok()) return redirect(res, "/account?notice=2fa_on");
               render(res, ctx, "Set up two-factor sign-in", 200,
                      pages::totp_setup(out.body, {}, ctx.csrf));
           }));
    s.Post("/account/2fa/enable",
           page(true, [this](const Request& req, Response& res, PageContext& ctx) {
               FormErrors errors;
               int status = 400;
               if (auto wait = signin_account_.acquire(ctx.who->account_id, clock_())) {
                   status = limited(res, wait, errors);
               } else {
                   const Outcome out =
                       accounts_->totp_enable(*ctx.who, param(req, "code", 16), req.remote_addr);
                   if (out.ok()) {
                       return render(res, ctx, "Save your backup codes", 200,
                                     pages::backup_codes(out.body["backup_codes"]));
                   }
                   if (out.status == 409) return redirect(res, "/account?notice=2fa_on");
                   errors.add("code",
                              "This code is wrong or expired. Enter the code the app "
                              "shows now.");
               }
               const Outcome pending = accounts_->totp_pending(*ctx.who);
               if (!pending.ok()) return redirect(res, "/account");
               render(res, ctx, "Set up two-factor sign-in", status,
                      pages::totp_setup(pending.body, errors, ctx.csrf));
           }));
    s.Post("/account/2fa/disable",
           page(true, [this](const Request& req, Response& res, PageContext& ctx) {
               FormErrors errors;
               int status = 400;
               if (auto wait = signin_account_.acquire(ctx.who->account_id, clock_())) {
                   status = limited(res, wait, errors);
               } else {
                   std::string totp, backup;
                   split_second_factor(param(req, "code", 32), totp, backup);
                   const Outcome out =
                       accounts_->totp_disable(*ctx.who, totp, backup, req.remote_addr);
                   if (out.ok() || out.status == 409)
                       return redirect(res, "/account?notice=2fa_off");
                   errors.add("code", "This code is wrong, expired or already used.");
               }
               render_account(res, ctx, "", errors, status);
           }));
    s.Get("/account/password", page(true, [this](const Request&, Response& res, PageContext& ctx) {
              render(res, ctx, "Change your password", 200, pages::password({}, ctx.csrf));
          }));
    s.Post("/account/password",
           page(true, [this](const Request& req, Response& res, PageContext& ctx) {
               const std::string current = param(req, "current_password", 2000);
               const std::string next = param(req, "new_password", 2000);
               FormErrors errors;
               int status = 400;
               if (current.empty()) errors.add("current_password", "Enter your current password.");
               if (next.size() < 10) {
                   errors.add("new_password", "Choose a new password of at least 10 characters.");
               }
               if (errors.empty()) {
                   if (auto wait = signin_account_.acquire(ctx.who->account_id, clock_())) {
                       status = limited(res, wait, errors);
                   } else {
                       const Outcome out =
                           accounts_->change_password(*ctx.who, current, next, req.remote_addr);
                       if (out.ok()) return redirect(res, "/account?notice=password_changed");
                       status = out.status;
                       if (out.body["error"].asString() == "invalid_credentials") {
                           errors.add("current_password", "Your current password is wrong.");
                       } else if (out.body["error"].asString() == "weak_password") {
                           errors.add("new_password", "Choose 10 to 1024 characters.");
                       } else {
                           errors.add("", "The service is busy. Try again in a moment.");
                       }
                   }
               }
               render(res, ctx, "Change your password", status, pages::password(errors, ctx.csrf));
           }));
    s.Post("/account/language",
           page(true, [this](const Request& req, Response& res, PageContext& ctx) {
               const Outcome out = accounts_->set_language(*ctx.who, param(req, "language", 16));
               if (!out.ok()) {
                   FormErrors errors;
                   errors.add("language", "Choose one of the listed languages.");
                   return render_account(res, ctx, "", errors, 400);
               }
               redirect(res, "/account?notice=language_saved");
           }));
    s.Get("/account/export.json",
          page(true, [this](const Request&, Response& res, PageContext& ctx) {
              const Outcome out = accounts_->export_data(*ctx.who, *ledger_);
              res.status = out.status;
              res.set_header("Content-Disposition",
                             "attachment; filename=\"stemsphere-my-data.json\"");
              res.set_content(out.body.toStyledString(), "application/json");
          }));
    s.Get("/account/delete", page(true, [this](const Request&, Response& res, PageContext& ctx) {
              render(res, ctx, "Delete your account", 200,
                     pages::delete_confirm({}, ctx.me["totp_enabled"].asBool(), ctx.csrf));
          }));
    s.Post("/account/delete",
           page(true, [this, cookies](const Request& req, Response& res, PageContext& ctx) {
               const std::string password = param(req, "password", 2000);
               std::string totp, backup;
               split_second_factor(param(req, "code", 32), totp, backup);
               const bool totp_on = ctx.me["totp_enabled"].asBool();
               FormErrors errors;
               int status = 400;
               if (password.empty()) errors.add("password", "Enter your password.");
               if (totp_on && totp.empty() && backup.empty()) {
                   errors.add("code", "Enter a code from your authenticator app or a backup code.");
               }
               if (errors.empty()) {
                   if (auto wait = signin_account_.acquire(ctx.who->account_id, clock_())) {
                       status = limited(res, wait, errors);
                   } else {
                       const Outcome out = accounts_->delete_account(*ctx.who, password, totp,
                                                                     backup, req.remote_addr);
                       if (out.ok()) {
                           res.set_header("Set-Cookie",
                                          set_cookie(cookies, cookies.session_name, "", 0));
                           PageContext gone;
                           return render(res, gone, "Account deleted", 200, pages::deleted());
                       }
                       status = out.status;
                       const std::string code = out.body["error"].asString();
                       if (code == "invalid_credentials") {
                           errors.add("password", "Your password is wrong.");
                       } else if (code == "totp_required" || code == "invalid_totp") {
                           errors.add("code", "This code is wrong, expired or already used.");
                       } else {
                           errors.add("", "The service is busy. Try again in a moment.");
                       }
                   }
               }
               render(res, ctx, "Delete your account", status,
                      pages::delete_confirm(errors, totp_on, ctx.csrf));
           }));
}

void ApiServer::render(Response& res, const PageContext& ctx, const std::string& title, int status,
                       const std::string& body) {
    PageFrame frame;
    frame.title = title;
    frame.body = body;
    frame.lang = ctx.lang.empty() ? "en" : ctx.lang;
    if (ctx.who) {
        frame.account_name = ctx.me["name"].asString();
        frame.signout_csrf = ctx.csrf;
    }
    res.status = status;
    res.set_content(page_html(frame), "text/html; charset=utf-8");
}

void ApiServer::render_account(Response& res, const PageContext& ctx, const std::string& notice,
                               const FormErrors& errors, int status) {
    const std::string& owner = ctx.who->account_id;
    pages::AccountView view;
    view.me = ctx.me;
    view.now_s = clock_() / 1'000'000;
    view.balance = ledger_->balance(owner);
    // The chart covers 30 days: page through the usage history until it is older than that.
    view.usage = Json::Value(Json::arrayValue);
    int64_t before = kNever;
    for (int pages_read = 0; pages_read < 20; ++pages_read) {
        const Json::Value items = ledger_->usage(owner, 1000, before)["items"];
        for (const auto& item : items) view.usage.append(item);
        if (items.size() < 1000 ||
            items[items.size() - 1]["at"].asInt64() < view.now_s - 31 * 86400) {
            break;
        }
        before = items[items.size() - 1]["at_us"].asInt64();
    }
    view.leases = ledger_->leases(owner);
    view.sessions = accounts_->sessions(*ctx.who).body["sessions"];
    view.csrf = ctx.csrf;
    view.notice = notice;
    view.errors = errors;
    render(res, ctx, "Your account", status, pages::account(view));
}

}  // namespace stemsphere::service
