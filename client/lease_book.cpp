#include "client/lease_book.h"

#include "client/files.h"

namespace stemsphere::client {

namespace {

bool int_field(const Json::Value& r, const char* name, std::int64_t min, std::int64_t& out,
               std::string& error) {
    const Json::Value& v = r[name];
    if (!v.isInt64() || v.asInt64() < min) {
        error = std::string("record field '") + name + "' is missing or out of range";
        return false;
    }
    out = v.asInt64();
    return true;
}

bool text_field(const Json::Value& r, const char* name, std::string& out, std::string& error) {
    const Json::Value& v = r[name];
    if (!v.isString() || v.asString().empty() || v.asString().size() > 128) {
        error = std::string("record field '") + name + "' is missing";
        return false;
    }
    out = v.asString();
    return true;
}

}  // namespace

Lease* LeaseBook::find(const std::string& id) {
    for (auto& l : leases) {
        if (l.id == id) return &l;
    }
    return nullptr;
}

bool LeaseBook::all_resolved() const {
    for (const auto& l : leases) {
        if (!l.resolved) return false;
    }
    return true;
}

bool LeaseBook::apply(const Json::Value& r, std::string& error) {
    const std::string t = r["t"].asString();
    if (header.isNull()) {
        if (t != "begin" || !r["account_id"].isString() || !r["server"].isString()) {
            error = "the first record is not a header";
            return false;
        }
        header = r;
        return true;
    }
    if (t == "use") {
        std::int64_t ms = 0;
        if (!int_field(r, "ms", 1, ms, error) || !r["lease"].isString()) return false;
        if (r["lease"].asString().empty()) {
            unleased_ms += ms;
            return true;
        }
        Lease* l = find(r["lease"].asString());
        if (!l || !l->opened || l->frozen()) {
            error = "usage on a lease that is not open";
            return false;
        }
        l->used_ms += ms;
        return true;
    }
    std::string id;
    if (!text_field(r, "lease", id, error)) return false;
    Lease* l = find(id);
    if (t == "want") {
        if (l) {
            error = "lease " + id + " asked for twice";
            return false;
        }
        Lease fresh;
        fresh.id = id;
        if (!int_field(r, "want_ms", 1, fresh.want_ms, error) ||
            !int_field(r, "ttl_s", 0, fresh.ttl_s, error)) {
            return false;
        }
        leases.push_back(fresh);
        return true;
    }
    if (!l) {
        error = "record for unknown lease " + id;
        return false;
    }
    if (t == "open") {
        if (l->opened || l->frozen()) {
            error = "lease " + id + " opened twice";
            return false;
        }
        if (!int_field(r, "granted_ms", 1, l->granted_ms, error) ||
            !int_field(r, "created_at", 0, l->created_at, error) ||
            !int_field(r, "expires_at", 0, l->expires_at, error) ||
            !int_field(r, "deadline_ms", 0, l->deadline_ms, error)) {
            return false;
        }
        l->signature = r["signature"].asString();
        l->opened = true;
        return true;
    }
    if (t == "settle") {
        std::int64_t used = 0;
        if (!l->opened || l->frozen() || !text_field(r, "settle_id", l->settle_id, error) ||
            !int_field(r, "used_ms", 1, used, error)) {
            if (error.empty()) error = "settle of lease " + id + " that is not open";
            return false;
        }
        if (used != l->used_ms) {
            error = "settle of lease " + id + " for " + std::to_string(used) + " ms, but " +
                    std::to_string(l->used_ms) + " ms were recorded";
            return false;
        }
        l->settle_used_ms = used;
        return true;
    }
    if (t == "void") {
        if (l->frozen() || l->used_ms != 0 || !text_field(r, "void_id", l->void_id, error)) {
            if (error.empty()) error = "void of lease " + id + " that is used or resolved";
            return false;
        }
        return true;
    }
    if (t == "done") {
        if (l->resolved || !r["outcome"].isString()) {
            error = "lease " + id + " resolved twice";
            return false;
        }
        l->resolved = true;
        l->outcome = r["outcome"].asString();
        l->posted_mt = r["posted_mt"].isInt64() ? r["posted_mt"].asInt64() : 0;
        return true;
    }
    error = "unknown record type '" + t + "'";
    return false;
}

std::vector<Json::Value> LeaseBook::snapshot() const {
    std::vector<Json::Value> out{header};
    out[0]["at_ms"] = Json::Int64(wall_ms());
    for (const auto& l : leases) {
        if (l.resolved) continue;
        out.push_back(want_record(l));
        if (l.opened) out.push_back(open_record(l));
        if (l.used_ms > 0) out.push_back(use_record(l.id, l.used_ms));
        if (!l.settle_id.empty()) out.push_back(settle_record(l));
        if (!l.void_id.empty()) out.push_back(void_record(l));
    }
    if (unleased_ms > 0) out.push_back(use_record("", unleased_ms));
    return out;
}

Json::Value LeaseBook::begin_record(const std::string& account_id, const std::string& device_id,
                                    const std::string& server) {
    Json::Value r;
    r["t"] = "begin";
    r["v"] = 1;
    r["account_id"] = account_id;
    r["device_id"] = device_id;
    r["server"] = server;
    r["at_ms"] = Json::Int64(wall_ms());
    return r;
}

Json::Value LeaseBook::want_record(const Lease& l) {
    Json::Value r;
    r["t"] = "want";
    r["lease"] = l.id;
    r["want_ms"] = Json::Int64(l.want_ms);
    r["ttl_s"] = Json::Int64(l.ttl_s);
    return r;
}

Json::Value LeaseBook::open_record(const Lease& l) {
    Json::Value r;
    r["t"] = "open";
    r["lease"] = l.id;
    r["granted_ms"] = Json::Int64(l.granted_ms);
    r["created_at"] = Json::Int64(l.created_at);
    r["expires_at"] = Json::Int64(l.expires_at);
    r["deadline_ms"] = Json::Int64(l.deadline_ms);
    r["signature"] = l.signature;
    return r;
}

Json::Value LeaseBook::use_record(const std::string& lease_id, std::int64_t ms) {
    Json::Value r;
    r["t"] = "use";
    r["lease"] = lease_id;
    r["ms"] = Json::Int64(ms);
    return r;
}

Json::Value LeaseBook::settle_record(const Lease& l) {
    Json::Value r;
    r["t"] = "settle";
    r["lease"] = l.id;
    r["settle_id"] = l.settle_id;
    r["used_ms"] = Json::Int64(l.settle_used_ms);
    return r;
}

Json::Value LeaseBook::void_record(const Lease& l) {
    Json::Value r;
    r["t"] = "void";
    r["lease"] = l.id;
    r["void_id"] = l.void_id;
    return r;
}

Json::Value LeaseBook::done_record(const Lease& l) {
    Json::Value r;
    r["t"] = "done";
    r["lease"] = l.id;
    r["outcome"] = l.outcome;
    r["posted_mt"] = Json::Int64(l.posted_mt);
    return r;
}

}  // namespace stemsphere::client
