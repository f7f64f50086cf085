// The account pages' views: pure functions from what the services answered (the same JSON the
// API returns) to HTML bodies. Routes (routes_pages.cpp) choose the view; nothing here reads the
// database. Every text from a user or the database goes through esc().
#pragma once

#include <json/json.h>

#include <string>

#include "service/html.h"

namespace stemsphere::service::pages {

std::string signin(const FormErrors& errors, const std::string& email, const std::string& next,
                   const std::string& csrf, const std::string& notice);
std::string signup(const FormErrors& errors, const std::string& email, const std::string& name,
                   const std::string& csrf);
std::string signup_sent(const std::string& email);
std::string verify(const std::string& token, const std::string& csrf);
std::string verify_done(bool ok);

std::string device_entry(const FormErrors& errors, const std::string& user_code);
// `grant`: {user_code, client_id, device_name, expires_at} from Accounts::device_pending.
std::string device_confirm(const Json::Value& grant, const std::string& csrf);
std::string device_done(bool approved, const std::string& device_name);
std::string device_unknown();

struct AccountView {
    Json::Value me;        // Accounts::me
    Json::Value balance;   // Ledger::balance
    Json::Value usage;     // Ledger::usage items
    Json::Value leases;    // Ledger::leases
    Json::Value sessions;  // Accounts::sessions
    int64_t now_s = 0;
    std::string csrf;
    std::string notice;
    FormErrors errors;  // of the forms on the page (2FA off, language)
};
std::string account(const AccountView& view);

// `setup`: {secret, otpauth_uri}; the QR code is drawn here.
std::string totp_setup(const Json::Value& setup, const FormErrors& errors, const std::string& csrf);
std::string backup_codes(const Json::Value& codes);
std::string password(const FormErrors& errors, const std::string& csrf);
std::string delete_confirm(const FormErrors& errors, bool totp_enabled, const std::string& csrf);
std::string deleted();
std::string message(const std::string& text, const std::string& link, const std::string& label);

}  // namespace stemsphere::service::pages
