#include "service/html.h"

#include <ctime>

namespace stemsphere::service {

std::string esc(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 16);
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

const std::string* FormErrors::for_field(const std::string& field) const {
    for (const auto& [name, message] : items_) {
        if (name == field) return &message;
    }
    return nullptr;
}

std::string field_html(const Field& f, const FormErrors& errors) {
    const std::string id = "f-" + f.name;
    const std::string* error = errors.for_field(f.name);
    std::string described;
    std::string out = "<div class=\"field" + std::string(error ? " has-error" : "") +
                      "\"><label for=\"" + esc(id) + "\">" + esc(f.label) + "</label>";
    if (!f.hint.empty()) {
        out += "<p class=\"hint\" id=\"" + esc(id) + "-hint\">" + esc(f.hint) + "</p>";
        described = id + "-hint";
    }
    if (error) {
        out += "<p class=\"field-error\" id=\"" + esc(id) + "-error\"><span class=\"sr-only\">" +
               "Error: </span>" + esc(*error) + "</p>";
        described += (described.empty() ? "" : " ") + id + "-error";
    }
    out +=
        "<input id=\"" + esc(id) + "\" name=\"" + esc(f.name) + "\" type=\"" + esc(f.type) + "\"";
    if (f.type != "password" && !f.value.empty()) out += " value=\"" + esc(f.value) + "\"";
    if (!f.autocomplete.empty()) out += " autocomplete=\"" + esc(f.autocomplete) + "\"";
    if (!f.inputmode.empty()) out += " inputmode=\"" + esc(f.inputmode) + "\"";
    if (f.required) out += " required";
    if (error) out += " aria-invalid=\"true\"";
    if (!described.empty()) out += " aria-describedby=\"" + esc(described) + "\"";
    out += "></div>";
    return out;
}

std::string error_summary(const FormErrors& errors) {
    if (errors.empty()) return {};
    std::string out =
        "<div class=\"error-summary\" role=\"alert\" tabindex=\"-1\" "
        "aria-labelledby=\"error-summary-title\"><h2 id=\"error-summary-title\">There is a "
        "problem</h2><ul>";
    for (const auto& [field, message] : errors.items()) {
        if (field.empty()) {
            out += "<li>" + esc(message) + "</li>";
        } else {
            out += "<li><a href=\"#f-" + esc(field) + "\">" + esc(message) + "</a></li>";
        }
    }
    return out + "</ul></div>";
}

std::string hidden_input(const std::string& name, const std::string& value) {
    return "<input type=\"hidden\" name=\"" + esc(name) + "\" value=\"" + esc(value) + "\">";
}

std::string page_html(const PageFrame& frame) {
    std::string nav;
    if (frame.account_name.empty()) {
        nav = "<a href=\"/signin\">Sign in</a><a href=\"/signup\">Create account</a>";
    } else {
        nav =
            "<a href=\"/account\">Account</a><a href=\"/device\">Approve a device</a>"
            "<form method=\"post\" action=\"/signout\" class=\"inline\">" +
            hidden_input("csrf", frame.signout_csrf) +
            "<button type=\"submit\" class=\"link\">Sign out</button></form>";
    }
    return "<!doctype html>\n<html lang=\"" + esc(frame.lang) +
           "\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
           "content=\"width=device-width, initial-scale=1\"><title>" +
           esc(frame.title) +
           " – Stemsphere</title><link rel=\"stylesheet\" href=\"/static/site.css\">"
           "<link rel=\"icon\" href=\"/static/icon.svg\" type=\"image/svg+xml\">"
           "<script src=\"/static/app.js\" defer></script></head><body>"
           "<a class=\"skip\" href=\"#main\">Skip to content</a><header class=\"top\">"
           "<a class=\"brand\" href=\"/account\">Stemsphere</a><nav aria-label=\"Main\">" +
           nav + "</nav></header><main id=\"main\" tabindex=\"-1\"><h1>" + esc(frame.title) +
           "</h1>" + frame.body +
           "</main><footer><p>Stemsphere account · <a href=\"/v1/health\">service "
           "status</a></p></footer></body></html>\n";
}

std::string tokens_text(int64_t mt) {
    const bool negative = mt < 0;
    const int64_t a = negative ? -mt : mt;
    std::string frac = std::to_string(a % 1000);
    frac.insert(0, 3 - frac.size(), '0');
    return (negative ? "-" : "") + std::to_string(a / 1000) + "." + frac;
}

std::string utc_text(int64_t unix_seconds, bool date_only) {
    const std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, date_only ? "%Y-%m-%d" : "%Y-%m-%d %H:%M UTC", &tm);
    return buf;
}

std::string duration_text(int64_t ms) {
    const int64_t s = (ms + 500) / 1000;
    if (s < 60) return std::to_string(s) + " s";
    if (s < 3600) return std::to_string(s / 60) + " min " + std::to_string(s % 60) + " s";
    return std::to_string(s / 3600) + " h " + std::to_string(s / 60 % 60) + " min";
}

}  // namespace stemsphere::service
