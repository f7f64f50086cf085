#include "service/idempotency.h"

namespace stemsphere::service {

std::string to_json_text(const Json::Value& value) {
    Json::StreamWriterBuilder builder;
    builder["indentation"] = "";
    builder["emitUTF8"] = true;
    return Json::writeString(builder, value);
}

bool parse_json_text(const std::string& text, Json::Value& out, std::string& error) {
    Json::CharReaderBuilder builder;
    Json::CharReaderBuilder::strictMode(&builder.settings_);
    builder["stackLimit"] = 32;
    const std::unique_ptr<Json::CharReader> reader(builder.newCharReader());
    try {
        return reader->parse(text.data(), text.data() + text.size(), &out, &error);
    } catch (const Json::Exception& e) {  // jsoncpp throws past stackLimit
        error = e.what();
        return false;
    }
}

void lock_request(DbTx& tx, const std::string& key, const std::string& owner) {
    if (tx.dialect() != Dialect::kPostgres) return;
    // Keys live in the two-int4 advisory key space, owners in the bigint one: they never meet.
    // Queued: it goes out with the replay lookup that follows, which PostgreSQL runs after the
    // lock is granted, on a fresh snapshot (READ COMMITTED), so it sees the first try's record.
    if (owner.empty()) {
        tx.exec_later("SELECT pg_advisory_xact_lock(1, hashtext(?))", {key});
    } else {
        tx.exec_later(
            "SELECT pg_advisory_xact_lock(1, hashtext(?)), "
            "pg_advisory_xact_lock(hashtextextended(?, 0))",
            {key, owner});
    }
}

std::optional<Outcome> idempotency_replay(DbTx& tx, const std::string& key,
                                          const Json::Value& request) {
    const auto rows =
        tx.query("SELECT request, status, response FROM idempotency_record WHERE key = ?", {key});
    if (rows.empty()) return std::nullopt;
    Json::Value stored_request;
    std::string error;
    if (!parse_json_text(rows[0].text(0), stored_request, error)) {
        throw DbError("corrupt idempotency record " + key + ": " + error, false);
    }
    // Every member of either object is compared, in sorted order, so the named field is stable.
    std::vector<std::string> names = request.getMemberNames();
    for (const auto& n : stored_request.getMemberNames()) names.push_back(n);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
        if (request.get(name, Json::Value()) != stored_request.get(name, Json::Value())) {
            return error_outcome(422, "idempotency_mismatch",
                                 "this id was already used with a different '" + name + "'", name);
        }
    }
    Outcome replay;
    replay.status = static_cast<int>(rows[0].integer(1));
    if (!parse_json_text(rows[0].text(2), replay.body, error)) {
        throw DbError("corrupt idempotency response " + key + ": " + error, false);
    }
    return replay;
}

void idempotency_store(DbTx& tx, const std::string& key, const Json::Value& request,
                       const Outcome& outcome, int64_t now_us) {
    tx.exec_later(
        "INSERT INTO idempotency_record(key, request, status, response, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        {key, to_json_text(request), static_cast<int64_t>(outcome.status),
         to_json_text(outcome.body), now_us});
}

bool is_valid_client_id(const std::string& id) {
    if (id.empty() || id.size() > 128) return false;
    for (char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok) return false;
    }
    return true;
}

}  // namespace stemsphere::service
