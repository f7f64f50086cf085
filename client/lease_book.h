// What a usage journal says about its leases: the journal's records folded into per-lease
// state. Folding checks that the records tell a possible story (usage only on an open lease,
// a settle for exactly the usage recorded, ...); a journal that does not is corrupt.
#pragma once

#include <json/value.h>

#include <cstdint>
#include <string>
#include <vector>

namespace stemsphere::client {

struct Lease {
    std::string id;
    std::int64_t want_ms = 0;
    std::int64_t ttl_s = 0;
    bool opened = false;  // the server granted it and its signature verified
    std::int64_t granted_ms = 0;
    std::int64_t created_at = 0, expires_at = 0;  // server clock, Unix seconds
    std::int64_t deadline_ms = 0;                 // local wall clock: use it until then
    std::string signature;                        // the server's, kept for the record
    std::int64_t used_ms = 0;                     // journalled usage on this lease
    std::string settle_id;                        // settle written (and maybe sent): frozen
    std::int64_t settle_used_ms = 0;
    std::string void_id;  // void written (and maybe sent): frozen
    bool resolved = false;
    std::string outcome;  // settled, voided, lease_already_expired, not_found, failed:<code>
    std::int64_t posted_mt = 0;

    bool frozen() const { return resolved || !settle_id.empty() || !void_id.empty(); }
    std::int64_t remaining_ms() const { return used_ms >= granted_ms ? 0 : granted_ms - used_ms; }
};

struct LeaseBook {
    Json::Value header;
    std::vector<Lease> leases;     // in the order they were asked for
    std::int64_t unleased_ms = 0;  // usage recorded while no lease covered it (never charged)

    Lease* find(const std::string& id);
    // Applies one record; false (and `error`) when it contradicts what came before.
    bool apply(const Json::Value& record, std::string& error);
    bool all_resolved() const;
    // The records that rebuild this book's unresolved leases (for a compacted journal): the
    // same ids, usage summed per lease, pending settles and voids kept as they were.
    std::vector<Json::Value> snapshot() const;

    // Record builders (the one place that spells the journal's record names).
    static Json::Value begin_record(const std::string& account_id, const std::string& device_id,
                                    const std::string& server);
    static Json::Value want_record(const Lease& l);
    static Json::Value open_record(const Lease& l);
    static Json::Value use_record(const std::string& lease_id, std::int64_t ms);
    static Json::Value settle_record(const Lease& l);
    static Json::Value void_record(const Lease& l);
    static Json::Value done_record(const Lease& l);
};

}  // namespace stemsphere::client
