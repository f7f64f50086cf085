// Building blocks of the server-rendered account pages: escaping (every text that reaches a
// page goes through `esc`), the page frame, and form fields whose errors are tied to them
// (aria-invalid, aria-describedby, an error summary linking to each field).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stemsphere::service {

// Text or attribute value → HTML: & < > " ' are escaped.
std::string esc(std::string_view text);

// What went wrong with a form: per field (name as in the form) or for the whole form (field "").
class FormErrors {
  public:
    void add(const std::string& field, const std::string& message) {
        items_.emplace_back(field, message);
    }
    bool empty() const { return items_.empty(); }
    const std::string* for_field(const std::string& field) const;
    const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

  private:
    std::vector<std::pair<std::string, std::string>> items_;
};

struct Field {
    std::string name;
    std::string label;
    std::string type = "text";
    std::string value;         // echoed back (never for passwords)
    std::string autocomplete;  // e.g. "email", "current-password", "one-time-code"
    std::string hint;          // shown under the label, tied by aria-describedby
    std::string inputmode;
    bool required = true;
};

// A labelled input with its hint and error; the id is "f-<name>".
std::string field_html(const Field& field, const FormErrors& errors);
// role="alert" list of every error, each linking to its field; empty when there is none.
std::string error_summary(const FormErrors& errors);
std::string hidden_input(const std::string& name, const std::string& value);

struct PageFrame {
    std::string title;
    std::string body;          // HTML
    std::string lang = "en";   // <html lang>
    std::string account_name;  // empty: signed out
    std::string signout_csrf;  // CSRF token of the sign-out form in the header
};
std::string page_html(const PageFrame& frame);

// 12345 mt → "12.345"; amounts are integer milli-tokens.
std::string tokens_text(int64_t milli_tokens);
// Unix seconds → "2026-12-03 19:55 UTC"; `date_only` → "2026-12-03".
std::string utc_text(int64_t unix_seconds, bool date_only = false);
// 95000 ms → "1 min 35 s".
std::string duration_text(int64_t ms);

}  // namespace stemsphere::service
