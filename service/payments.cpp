#include "service/payments.h"

#include "service/crypto.h"
#include "service/idempotency.h"

namespace stemsphere::service {
namespace {

// Standard Webhooks secret: "whsec_<base64>" or raw text.
std::string webhook_key(const std::string& secret) {
    if (secret.rfind("whsec_", 0) == 0) {
        if (auto raw = base64_decode(secret.substr(6), false)) return *raw;
    }
    return secret;
}

// Several space-separated "v1,<base64>" signatures are accepted (secret rotation).
bool any_signature_matches(const std::string& signatures, const std::string& expected) {
    bool valid = false;
    size_t pos = 0;
    while (pos < signatures.size()) {
        size_t end = signatures.find(' ', pos);
        if (end == std::string::npos) end = signatures.size();
        const std::string one = signatures.substr(pos, end - pos);
        if (one.rfind("v1,", 0) == 0 && constant_time_equal(one.substr(3), expected)) valid = true;
        pos = end + 1;
    }
    return valid;
}

}  // namespace

Payments::Payments(Db& db, Ledger& ledger, Clock clock, PaymentsConfig config)
    : db_(db), ledger_(ledger), clock_(std::move(clock)), config_(std::move(config)) {}

Outcome Payments::receive(const std::string& id, const std::string& ts,
                          const std::string& signatures, const std::string& body) {
    if (config_.webhook_secret.empty()) {
        return error_outcome(503, "not_configured", "no webhook secret configured");
    }
    if (!is_valid_client_id(id) || ts.empty() || ts.size() > 12 || signatures.empty()) {
        return error_outcome(400, "invalid_signature",
                             "webhook-id, webhook-timestamp and webhook-signature are required");
    }
    int64_t when = 0;
    try {
        when = std::stoll(ts);
    } catch (const std::exception&) {
        return error_outcome(400, "invalid_signature", "bad webhook-timestamp");
    }
    const int64_t now_s = clock_() / 1'000'000;
    if (when < now_s - config_.tolerance_s || when > now_s + config_.tolerance_s) {
        return error_outcome(401, "timestamp_out_of_tolerance",
                             "webhook-timestamp is too far from the server clock");
    }
    const std::string expected = base64_encode(
        hmac_sha256(webhook_key(config_.webhook_secret), id + "." + ts + "." + body), false);
    if (!any_signature_matches(signatures, expected)) {
        return error_outcome(401, "invalid_signature", "signature mismatch");
    }
    Json::Value event;
    std::string error;
    if (!parse_json_text(body, event, error) || !event.isObject() || !event["type"].isString() ||
        !event["data"].isObject()) {
        return error_outcome(400, "invalid_json", "expected {\"type\": ..., \"data\": {...}}");
    }
    const std::string type = event["type"].asString();
    Outcome result;
    db_.write([&](DbTx& tx) {
        // A redelivery racing the first delivery waits for it, then finds its stored answer.
        lock_request(tx, "webhook:" + id);
        const auto seen = tx.query("SELECT status, response FROM webhook_event WHERE id = ?", {id});
        if (!seen.empty()) {
            result.status = static_cast<int>(seen[0].integer(0));
            std::string perr;
            parse_json_text(seen[0].text(1), result.body, perr);
            return;
        }
        bool malformed = false;
        result = apply(tx, id, type, event["data"], malformed);
        if (malformed) return;  // not stored: a corrected resend may follow
        tx.exec(
            "INSERT INTO webhook_event(id, type, status, response, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            {id, type, static_cast<int64_t>(result.status), to_json_text(result.body), clock_()});
    });
    return result;
}

Outcome Payments::apply(DbTx& tx, const std::string& id, const std::string& type,
                        const Json::Value& data, bool& malformed) {
    if (type == "subscription.renewed" || type == "credit_pack.purchased") {
        const bool sub = type == "subscription.renewed";
        if (!data["account_id"].isString() || !data["amount_mt"].isInt64()) {
            malformed = true;
            return error_outcome(400, "invalid_field",
                                 "data.account_id and data.amount_mt required");
        }
        GrantRequest g;
        g.grant_id = "evt:" + id;
        g.owner = data["account_id"].asString();
        g.amount_mt = data["amount_mt"].asInt64();
        g.category = sub ? "subscription" : "purchase";
        g.priority = sub ? 10 : 20;  // subscription tokens expire first: use them first
        g.effective_at_us = clock_();
        g.expires_at_us =
            data["expires_at"].isInt64() ? data["expires_at"].asInt64() * 1'000'000 : kNever;
        g.source_event_id = id;
        g.actor = "webhook";
        return ledger_.grant_in(tx, g);
    }
    if (type == "charge.refunded") {
        if (!data["refunded_event_id"].isString()) {
            malformed = true;
            return error_outcome(400, "invalid_field", "data.refunded_event_id required");
        }
        return ledger_.refund_in(tx, "evt:" + id, "evt:" + data["refunded_event_id"].asString(),
                                 "webhook");
    }
    Outcome ignored;
    ignored.body["ignored"] = true;
    return ignored;
}

}  // namespace stemsphere::service
