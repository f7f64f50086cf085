// Client-made ids as idempotency keys, stored in the same transaction as the effect they guard
// (Brandur Leach's rule for local ACID state). A replay returns the stored outcome; the same key
// with a different request is rejected naming the first differing field; a terminal business
// rejection is stored too, so the id stays burned (TigerBeetle's `id_already_failed`).
#pragma once

#include <optional>
#include <string>

#include "service/db.h"
#include "service/outcome.h"

namespace stemsphere::service {

// Serialises the requests that carry `key` (and, when `owner` is given, every write of that
// owner's lots) until the transaction ends, so a retry that arrives while the first try still
// runs waits for it and then replays its stored answer. One round trip, key first, then owner:
// every caller takes them in that order. PostgreSQL only; SQLite has a single writer.
void lock_request(DbTx& tx, const std::string& key, const std::string& owner = {});

// The stored outcome for `key`, or a 422 `idempotency_mismatch` naming the field, or nothing
// when the key is new. `request` must be a JSON object of the fields that define the request.
std::optional<Outcome> idempotency_replay(DbTx& tx, const std::string& key,
                                          const Json::Value& request);

void idempotency_store(DbTx& tx, const std::string& key, const Json::Value& request,
                       const Outcome& outcome, int64_t now_us);

// Client ids: 1..128 chars of [A-Za-z0-9._:-] (UUIDs, ULIDs and friends).
bool is_valid_client_id(const std::string& id);

}  // namespace stemsphere::service
