// Payment-provider webhooks (Standard Webhooks / Stripe style): checks the HMAC-SHA256 signature
// over "id.timestamp.body", maps each event to a ledger grant or refund, and keeps the answer per
// event id in `webhook_event` so a redelivery gets the stored answer and changes nothing.
#pragma once

#include <string>

#include "service/db.h"
#include "service/ledger.h"
#include "service/outcome.h"

namespace stemsphere::service {

struct PaymentsConfig {
    std::string webhook_secret;  // "whsec_<base64>" or raw text; empty: 503 not_configured
    int64_t tolerance_s = 300;   // how far webhook-timestamp may be from the server clock
};

class Payments {
  public:
    Payments(Db& db, Ledger& ledger, Clock clock, PaymentsConfig config);

    // One delivery: the three webhook headers and the raw body. Throws DbError on database
    // failures (the caller maps them like every other route).
    Outcome receive(const std::string& id, const std::string& timestamp,
                    const std::string& signatures, const std::string& body);

  private:
    // The ledger effect of one verified event, inside the transaction that records it.
    // `malformed`: the event lacks its data fields; that answer is not recorded.
    Outcome apply(DbTx& tx, const std::string& id, const std::string& type, const Json::Value& data,
                  bool& malformed);

    Db& db_;
    Ledger& ledger_;
    Clock clock_;
    PaymentsConfig config_;
};

}  // namespace stemsphere::service
