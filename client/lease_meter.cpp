#include "client/lease_meter.h"

#include <sodium.h>

#include <algorithm>
#include <ctime>
#include <filesystem>

namespace stemsphere::client {

namespace {

constexpr long kIdlePollMs = 30'000;
constexpr std::int64_t kAdoptEveryMs = 300'000;
constexpr std::int64_t kRetryOpenAfterRefusalMs = 60'000;
constexpr std::int64_t kShutdownBudgetMs = 10'000;
constexpr std::int64_t kMaxLeaseLifeS = 8 * 86400;

std::string minutes_text(std::int64_t ms) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f min", static_cast<double>(ms) / 60000.0);
    return buf;
}

std::string utc_clock(std::int64_t ms) {
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
    return buf;
}

std::optional<std::string> base64url_decode(const std::string& text) {
    std::string out(text.size(), '\0');
    size_t len = 0;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                          text.size(), nullptr, &len, nullptr,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        return std::nullopt;
    }
    out.resize(len);
    return out;
}

}  // namespace

std::unique_ptr<Meter> open_meter(const MeterOptions& options) {
    return std::make_unique<LeaseMeter>(options);
}

LeaseMeter::LeaseMeter(const MeterOptions& options) : options_(options) {
    if (sodium_init() < 0) setup_error_ = "libsodium failed to start";
    paths_ = resolve_paths(options_.config_dir);
    server_ = resolve_server_url(options_.server_url, paths_.config_file());
    if (setup_error_.empty()) setup_error_ = check_server_url(server_);
    if (options_.lease_ms < 1000) options_.lease_ms = 1000;
    HttpOptions h;
    h.request_timeout_ms = std::max(100L, options_.request_timeout_ms);
    h.connect_timeout_ms = std::min(3000L, h.request_timeout_ms);
    h.max_attempts = 2;  // poll() itself retries later with back-off
    h.max_backoff_ms = 2000;
    http_ = std::make_unique<HttpClient>(server_, h);
    session_ = std::make_unique<Session>(paths_, *http_);
    publish();
}

LeaseMeter::~LeaseMeter() {
    shutdown();
}

void LeaseMeter::set_compaction_bytes(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    compact_at_bytes_ = bytes;
}

std::string LeaseMeter::journal_path() {
    std::lock_guard lock(mutex_);
    return journal_ ? journal_->path() : std::string();
}

void LeaseMeter::note(const std::string& message, bool lasting) {
    (lasting ? lasting_note_ : transient_note_) = message;
}

bool LeaseMeter::write(Journal& journal, const Json::Value& record) {
    std::string error;
    if (journal.append(record, error)) {
        journal_error_.clear();
        return true;
    }
    journal_error_ = error;
    return false;
}

std::int64_t LeaseMeter::margin_ms(const Lease& lease) const {
    // Settle a little before the server's expiry, so journalled use is charged, not expired.
    const std::int64_t life_ms = (lease.expires_at - lease.created_at) * 1000;
    return std::clamp<std::int64_t>(life_ms / 10, 0, 60'000);
}

bool LeaseMeter::usable(const Lease& lease, std::int64_t now) const {
    return lease.opened && !lease.frozen() && lease.used_ms < lease.granted_ms &&
           now < lease.deadline_ms - margin_ms(lease);
}

bool LeaseMeter::ensure_journal() {
    const Credentials& c = session_->credentials();
    if (journal_ && (book_.header["account_id"].asString() != c.account_id ||
                     book_.header["device_id"].asString() != c.device_id)) {
        // Another sign-in: this journal's leases belong to the old one. Release it; it is
        // adopted again when that account signs in here.
        journal_.reset();
        book_ = LeaseBook{};
    }
    if (journal_) return true;
    std::string error;
    const Json::Value header = LeaseBook::begin_record(c.account_id, c.device_id, server_);
    journal_ = Journal::create(paths_.journal_dir(), header, error);
    if (!journal_) {
        journal_error_ = error;
        return false;
    }
    book_ = LeaseBook{};
    book_.apply(header, error);
    journal_error_.clear();
    next_adopt_ms_ = 0;
    return true;
}

bool LeaseMeter::ensure_lease_key(bool fresh) {
    if (!lease_key_.empty() && !fresh) return true;
    std::string text, error;
    Json::Value cached;
    if (!fresh && read_small_file(paths_.lease_key_file(), text, error) == ReadStatus::ok &&
        parse_json_object(text, cached, error) && cached["server"].asString() == server_ &&
        cached["public_key"].isString()) {
        if (auto key = base64url_decode(cached["public_key"].asString());
            key && key->size() == crypto_sign_PUBLICKEYBYTES) {
            lease_key_ = *key;
            return true;
        }
    }
    const HttpReply r = http_->get("/v1/keys/lease");
    if (!r.ok() || r.body["alg"].asString() != "Ed25519" || !r.body["public_key"].isString()) {
        note("cannot fetch the lease key: " +
                 (r.ok() ? std::string("malformed reply") : r.describe()),
             false);
        return false;
    }
    const auto key = base64url_decode(r.body["public_key"].asString());
    if (!key || key->size() != crypto_sign_PUBLICKEYBYTES) {
        note("the server's lease key is malformed", false);
        return false;
    }
    lease_key_ = *key;
    Json::Value store;
    store["server"] = server_;
    store["public_key"] = r.body["public_key"].asString();
    write_file_atomically(paths_.lease_key_file(), store.toStyledString(), error);
    return true;
}

bool LeaseMeter::verify_lease(const Json::Value& b, const Lease& lease, std::string& why) const {
    const Credentials& c = session_->credentials();
    if (b["lease_id"].asString() != lease.id) {
        why = "another lease id";
        return false;
    }
    if (b["device_id"].asString() != c.device_id) {
        why = "another device id";
        return false;
    }
    if (b["state"].asString() != "open") {
        why = "lease not open";
        return false;
    }
    if (!b["granted_ms"].isInt64() || b["granted_ms"].asInt64() < 1 ||
        b["granted_ms"].asInt64() > lease.want_ms) {
        why = "granted_ms out of range";
        return false;
    }
    if (!b["created_at"].isInt64() || !b["expires_at"].isInt64() ||
        b["expires_at"].asInt64() <= b["created_at"].asInt64() ||
        b["expires_at"].asInt64() - b["created_at"].asInt64() > kMaxLeaseLifeS) {
        why = "lease times out of range";
        return false;
    }
    const auto sig = base64url_decode(b["signature"].asString());
    if (!sig || sig->size() != crypto_sign_BYTES ||
        lease_key_.size() != crypto_sign_PUBLICKEYBYTES) {
        why = "no valid signature";
        return false;
    }
    const std::string message = "stemsphere-lease-v1|" + lease.id + "|" + c.account_id + "|" +
                                c.device_id + "|" + std::to_string(b["granted_ms"].asInt64()) +
                                "|" + std::to_string(b["expires_at"].asInt64());
    if (crypto_sign_verify_detached(
            reinterpret_cast<const unsigned char*>(sig->data()),
            reinterpret_cast<const unsigned char*>(message.data()), message.size(),
            reinterpret_cast<const unsigned char*>(lease_key_.data())) != 0) {
        why = "signature does not verify";
        return false;
    }
    return true;
}

LeaseMeter::Step LeaseMeter::read_balance() {
    const HttpReply r = session_->authed("GET", "/v1/balance", Json::Value());
    if (!r.answered() || r.status >= 500) return Step::unreachable;
    if (!r.ok() || !r.body["milli_tokens_per_minute"].isInt64() ||
        !r.body["available_mt"].isInt64() || r.body["milli_tokens_per_minute"].asInt64() < 1) {
        return Step::ok;  // not needed for metering: the lease is what counts
    }
    price_mt_per_minute_ = r.body["milli_tokens_per_minute"].asInt64();
    available_mt_ = r.body["available_mt"].asInt64();
    balance_due_ = false;
    return Step::ok;
}

LeaseMeter::Step LeaseMeter::resolve(Lease& lease, Journal& journal, const std::string& outcome,
                                     std::int64_t posted) {
    Lease done = lease;
    done.outcome = outcome;
    done.posted_mt = posted;
    if (!write(journal, LeaseBook::done_record(done))) return Step::bad_reply;
    lease = done;
    lease.resolved = true;
    return Step::ok;
}

LeaseMeter::Step LeaseMeter::send_open(Lease& lease) {
    Json::Value body;
    body["lease_id"] = lease.id;
    body["device_id"] = session_->credentials().device_id;
    body["want_ms"] = Json::Int64(lease.want_ms);
    if (lease.ttl_s > 0) body["ttl_s"] = Json::Int64(lease.ttl_s);
    const std::int64_t sent_ms = wall_ms();
    const HttpReply r = session_->authed("POST", "/v1/leases", body);
    if ((r.status == 201 || r.status == 200) && r.json_ok) {
        std::string why;
        bool valid = verify_lease(r.body, lease, why);
        if (!valid && why == "signature does not verify" && ensure_lease_key(true)) {
            valid = verify_lease(r.body, lease, why);  // the server may have a new key
        }
        if (!valid) {
            note("the server's lease failed verification (" + why +
                     "); it is released and the last good state kept",
                 false);
            Lease released = lease;
            released.void_id = make_id("v");
            if (write(*journal_, LeaseBook::void_record(released))) {
                lease = released;
                send_void(lease, *journal_);
            }
            next_open_ms_ = wall_ms() + kRetryOpenAfterRefusalMs;
            return Step::bad_reply;
        }
        Lease opened = lease;
        opened.opened = true;
        opened.granted_ms = r.body["granted_ms"].asInt64();
        opened.created_at = r.body["created_at"].asInt64();
        opened.expires_at = r.body["expires_at"].asInt64();
        // Local deadline from the lease's life counted from before the request left: never
        // later than the server's expiry, whatever the two clocks say.
        opened.deadline_ms = sent_ms + (opened.expires_at - opened.created_at) * 1000;
        opened.signature = r.body["signature"].asString();
        if (!write(*journal_, LeaseBook::open_record(opened))) {
            return Step::bad_reply;
        }
        lease = opened;
        exhausted_ = false;
        low_balance_ = opened.granted_ms < opened.want_ms;
        return Step::ok;
    }
    if (!r.answered() || r.status >= 500 || !r.json_ok) {
        if (r.answered()) note("the server sent a malformed reply to a lease request", false);
        return r.answered() && r.status < 500 ? Step::bad_reply : Step::unreachable;
    }
    const std::string code = r.error_code();
    if (r.status == 429) {
        next_open_ms_ = wall_ms() + std::max(1000L, r.retry_after_ms);
        return Step::ok;  // not stored by the server: the same id is asked again later
    }
    if (r.status == 402) {
        exhausted_ = true;
        balance_due_ = true;
        next_open_ms_ = wall_ms() + kRetryOpenAfterRefusalMs;
        return resolve(lease, *journal_, "failed:" + code, 0);
    }
    note("the server refused a lease: " + r.describe(), false);
    next_open_ms_ = wall_ms() + kRetryOpenAfterRefusalMs;
    const Step s = resolve(lease, *journal_, "failed:" + code, 0);
    return s == Step::ok ? Step::bad_reply : s;
}

LeaseMeter::Step LeaseMeter::send_settle(Lease& lease, Journal& journal) {
    Json::Value body;
    body["settle_id"] = lease.settle_id;
    body["used_ms"] = Json::Int64(lease.settle_used_ms);
    const HttpReply r = session_->authed("POST", "/v1/leases/" + lease.id + "/settle", body);
    if (r.ok()) {
        if (r.body["state"].asString() != "settled" || !r.body["posted_mt"].isInt64()) {
            note("the server sent a malformed settle reply; it is sent again later", false);
            return Step::bad_reply;
        }
        return resolve(lease, journal, "settled", r.body["posted_mt"].asInt64());
    }
    if (!r.answered() || r.status >= 500 || r.status == 429) return Step::unreachable;
    if (!r.json_ok || r.status == 401) {
        note("settling lease " + lease.id + " failed: " + r.describe() + "; sent again later",
             false);
        return Step::bad_reply;
    }
    const std::string code = r.error_code();
    if (r.status == 409 || r.status == 404) {  // resolved once already (or expired unsettled)
        return resolve(lease, journal, code.empty() ? "not_found" : code, 0);
    }
    note("the server refused to settle lease " + lease.id + ": " + r.describe(), true);
    return resolve(lease, journal, "failed:" + code, 0);
}

LeaseMeter::Step LeaseMeter::send_void(Lease& lease, Journal& journal) {
    Json::Value body;
    body["void_id"] = lease.void_id;
    const HttpReply r = session_->authed("POST", "/v1/leases/" + lease.id + "/void", body);
    if (r.ok()) {
        if (r.body["state"].asString() != "voided") {
            note("the server sent a malformed void reply; it is sent again later", false);
            return Step::bad_reply;
        }
        return resolve(lease, journal, "voided", 0);
    }
    if (!r.answered() || r.status >= 500 || r.status == 429) return Step::unreachable;
    if (!r.json_ok || r.status == 401) return Step::bad_reply;
    const std::string code = r.error_code();
    return resolve(lease, journal, code.empty() ? "failed" : code, 0);
}

LeaseMeter::Step LeaseMeter::advance(Lease& lease, Journal& journal, bool closing) {
    if (lease.resolved) return Step::ok;
    if (!lease.settle_id.empty()) return send_settle(lease, journal);
    if (!lease.void_id.empty()) return send_void(lease, journal);
    if (!lease.opened && !closing) {
        if (wall_ms() < next_open_ms_) return Step::ok;  // throttled: asked again later
        return send_open(lease);
    }
    const std::int64_t now = wall_ms();
    const bool finish = closing || !lease.opened || lease.used_ms >= lease.granted_ms ||
                        now >= lease.deadline_ms - margin_ms(lease);
    if (!finish) return Step::ok;
    Lease next = lease;
    if (lease.used_ms > 0) {
        next.settle_id = make_id("s");
        next.settle_used_ms = lease.used_ms;
        if (!write(journal, LeaseBook::settle_record(next))) return Step::bad_reply;
        lease = next;
        return send_settle(lease, journal);
    }
    next.void_id = make_id("v");
    if (!write(journal, LeaseBook::void_record(next))) return Step::bad_reply;
    lease = next;
    return send_void(lease, journal);
}

void LeaseMeter::compact_journal() {
    if (!journal_ || journal_->bytes() < compact_at_bytes_) return;
    // The new file is complete and fsync'd before the old one goes: a crash in between leaves
    // two journals with the same leases, ids and usage, whose second settle of a lease the
    // server refuses (a lease resolves once), so nothing is charged twice.
    const std::vector<Json::Value> records = book_.snapshot();
    std::string error;
    auto fresh = Journal::create(paths_.journal_dir(), records[0], error);
    if (!fresh) return;
    if (!fresh->append(std::vector<Json::Value>(records.begin() + 1, records.end()), error)) {
        fresh->remove();
        return;
    }
    journal_->remove();
    journal_ = std::move(fresh);
    LeaseBook rebuilt;
    for (const auto& r : records) rebuilt.apply(r, error);
    book_ = std::move(rebuilt);
}

void LeaseMeter::adopt_orphans() {
    std::error_code ec;
    std::filesystem::directory_iterator it(paths_.journal_dir(), ec);
    if (ec) return;
    const Credentials& c = session_->credentials();
    for (const auto& entry : it) {
        const std::string path = entry.path().string();
        if (entry.path().extension() == ".new") {
            Journal::discard_unfinished(path);  // a crash while creating: it holds no lease
            continue;
        }
        if (entry.path().extension() != ".jnl" || !entry.is_regular_file(ec)) continue;
        if (journal_ && path == journal_->path()) continue;
        const bool held = std::any_of(orphans_.begin(), orphans_.end(),
                                      [&](const Orphan& o) { return o.journal->path() == path; });
        if (held) continue;
        Journal::Adopted a = Journal::adopt(path);
        if (a.status == Journal::AdoptStatus::busy) continue;
        if (a.status == Journal::AdoptStatus::failed) {
            note(a.error, true);
            continue;
        }
        LeaseBook book;
        std::string error = a.error;
        bool sound = a.status == Journal::AdoptStatus::adopted;
        for (const auto& record : a.records) {
            if (!sound) break;
            sound = book.apply(record, error);
        }
        if (!sound) {
            std::string moved;
            a.journal->set_aside(paths_.corrupt_dir(), moved);
            note("usage journal " + path + " is corrupt (" + error + "); moved to " +
                     paths_.corrupt_dir() +
                     " and not replayed, so nothing in it is charged twice (its open leases "
                     "expire on the server)",
                 true);
            continue;
        }
        if (book.header["account_id"].asString() != c.account_id ||
            book.header["server"].asString() != server_) {
            continue;  // another sign-in's journal: left for it (the lock goes with `a`)
        }
        if (book.all_resolved()) {
            a.journal->remove();
            continue;
        }
        orphans_.push_back(Orphan{std::move(a.journal), std::move(book)});
    }
}

std::chrono::milliseconds LeaseMeter::poll() {
    std::lock_guard lock(mutex_);
    if (closed_) return std::chrono::milliseconds(kIdlePollMs);
    if (!setup_error_.empty()) {
        publish();
        return std::chrono::milliseconds(kIdlePollMs);
    }
    session_->reload_if_changed();
    if (!session_->signed_in() || !ensure_journal()) {
        publish();
        return std::chrono::milliseconds(kIdlePollMs);
    }
    std::int64_t now = wall_ms();
    if (now < retry_at_ms_) {
        publish();
        return std::chrono::milliseconds(retry_at_ms_ - now);
    }
    Step step = ensure_lease_key(false) ? Step::ok : Step::unreachable;
    if (step == Step::ok && balance_due_) step = read_balance();
    if (step == Step::ok && now >= next_adopt_ms_) {
        adopt_orphans();
        next_adopt_ms_ = now + kAdoptEveryMs;
    }
    for (auto& l : book_.leases) {
        if (step != Step::ok) break;
        step = advance(l, *journal_, false);
    }
    now = wall_ms();
    if (step == Step::ok && now >= next_open_ms_) {
        int usable_count = 0;
        bool half_used = false;
        bool pending = false;
        for (const auto& l : book_.leases) {
            if (usable(l, now)) {
                ++usable_count;
                half_used = l.used_ms * 2 >= l.granted_ms;
            }
            if (!l.resolved && !l.opened && !l.frozen()) pending = true;
        }
        if (!pending && (usable_count == 0 || (usable_count == 1 && half_used))) {
            Lease fresh;
            fresh.id = make_id("l");
            fresh.want_ms = options_.lease_ms;
            fresh.ttl_s = options_.lease_ttl_s;
            if (write(*journal_, LeaseBook::want_record(fresh))) {  // written before it is sent
                book_.leases.push_back(fresh);
                step = send_open(book_.leases.back());
            }
        }
    }
    for (auto& o : orphans_) {
        for (auto& l : o.book.leases) {
            if (step != Step::ok) break;
            step = advance(l, *o.journal, true);
        }
    }
    orphans_.erase(std::remove_if(orphans_.begin(), orphans_.end(),
                                  [](Orphan& o) {
                                      if (!o.book.all_resolved()) return false;
                                      o.journal->remove();
                                      return true;
                                  }),
                   orphans_.end());
    compact_journal();
    renew_due_ = false;
    offline_ = step == Step::unreachable;
    now = wall_ms();
    long delay = kIdlePollMs;
    if (step == Step::ok) {
        contacted_ = true;
        transient_note_.clear();
        backoff_ms_ = 0;
        retry_at_ms_ = 0;
        for (const auto& l : book_.leases) {
            if (usable(l, now)) {
                delay = std::min<long>(delay,
                                       static_cast<long>(l.deadline_ms - margin_ms(l) - now) + 1);
            }
        }
        if (next_open_ms_ > now)
            delay = std::min<long>(delay, static_cast<long>(next_open_ms_ - now));
    } else {
        backoff_ms_ = std::clamp(backoff_ms_ * 2, 1000L, 60'000L);
        delay = backoff_ms_ / 2 +
                static_cast<long>(randombytes_uniform(static_cast<uint32_t>(backoff_ms_ / 2 + 1)));
        retry_at_ms_ = now + delay;
    }
    publish();
    return std::chrono::milliseconds(std::max(10L, delay));
}

void LeaseMeter::record_usage(std::uint64_t milliseconds) {
    if (milliseconds == 0) return;
    std::lock_guard lock(mutex_);
    if (closed_ || !journal_) return;  // signed out: nothing is metered, nothing charged
    const std::int64_t now = wall_ms();
    std::int64_t left =
        static_cast<std::int64_t>(std::min<std::uint64_t>(milliseconds, std::uint64_t{1} << 40));
    std::vector<Json::Value> records;
    std::vector<std::pair<Lease*, std::int64_t>> takes;
    for (auto& l : book_.leases) {
        if (left == 0) break;
        if (!usable(l, now)) continue;
        const std::int64_t take = std::min(left, l.remaining_ms());
        records.push_back(LeaseBook::use_record(l.id, take));
        takes.emplace_back(&l, take);
        left -= take;
    }
    if (left > 0) {
        // Beyond every lease (the fade to DSP lags the licence by a block or a poll): put it on
        // the newest open lease, where the server records it as overage and never charges it.
        Lease* newest = nullptr;
        for (auto& l : book_.leases) {
            if (l.opened && !l.frozen()) newest = &l;
        }
        records.push_back(LeaseBook::use_record(newest ? newest->id : "", left));
        takes.emplace_back(newest, left);
    }
    std::string error;
    if (!journal_->append(records, error)) {
        journal_error_ = error;
        publish();
        return;
    }
    journal_error_.clear();
    for (auto& [l, ms] : takes) {
        if (!l) {
            book_.unleased_ms += ms;
            continue;
        }
        l->used_ms += ms;
        if (l->used_ms * 2 >= l->granted_ms) renew_due_ = true;
    }
    publish();
}

bool LeaseMeter::licensed() {
    return licensed_.load(std::memory_order_acquire) &&
           wall_ms() < licensed_until_ms_.load(std::memory_order_acquire);
}

MeterStatus LeaseMeter::status() {
    std::lock_guard lock(status_mutex_);
    MeterStatus s = status_;
    if (s.state != LicenceState::signed_out && licensed_.load() && !licensed()) {
        s.message = "The lease ran out of time; renewing. " + s.message;
        s.covered_ms = 0;
    }
    return s;
}

void LeaseMeter::publish() {
    MeterStatus s;
    bool covered_now = false;
    std::int64_t until = 0;
    const std::int64_t now = wall_ms();
    if (!setup_error_.empty()) {
        s.state = LicenceState::signed_out;
        s.message = setup_error_;
    } else if (!session_->signed_in()) {
        s.state = LicenceState::signed_out;
        s.message = session_->error();
    } else if (!journal_error_.empty()) {
        s.state = LicenceState::signed_out;
        s.message = "cannot keep the usage journal (" + journal_error_ +
                    "); metered modes run as Live (DSP)";
    } else {
        for (const auto& l : book_.leases) {
            if (!usable(l, now)) continue;
            covered_now = true;
            s.covered_ms += l.remaining_ms();
            until = std::max(until, l.deadline_ms - margin_ms(l));
        }
        if (covered_now && offline_) {
            s.state = LicenceState::offline_grace;
            s.message = "Server unreachable: working offline; the lease covers " +
                        minutes_text(s.covered_ms) + " until " + utc_clock(until);
        } else if (covered_now) {
            // A smaller grant than asked, or a refused renewal: the balance pays for less than
            // a lease's worth.
            const bool low = low_balance_ || exhausted_;
            s.state = low ? LicenceState::low_balance : LicenceState::active;
            s.message = std::string(low ? "Balance low: " : "Licensed: ") + "the lease covers " +
                        minutes_text(s.covered_ms) + " of metered audio";
        } else if (exhausted_) {
            s.state = LicenceState::exhausted;
            s.message = "No tokens left: metered modes run as Live (DSP)";
        } else if (offline_ || !contacted_) {
            s.state = LicenceState::offline_grace;
            s.message = contacted_ ? "Server unreachable and no lease left: metered modes run as "
                                     "Live (DSP) until it answers"
                                   : "Contacting the server for a lease";
        } else {
            s.state = LicenceState::active;
            s.message = "Renewing the lease";
        }
    }
    s.price_mt_per_minute = price_mt_per_minute_;
    s.available_mt = available_mt_;
    for (const auto& l : book_.leases) {
        if (l.resolved && l.outcome == "settled") {
            s.settled_ms += l.settle_used_ms;
            s.settled_mt += l.posted_mt;
        }
    }
    if (!lasting_note_.empty()) s.message += ". " + lasting_note_;
    if (!transient_note_.empty()) s.message += ". " + transient_note_;
    licensed_until_ms_.store(until, std::memory_order_release);
    licensed_.store(covered_now && s.state != LicenceState::signed_out, std::memory_order_release);
    std::lock_guard lock(status_mutex_);
    status_ = s;
}

void LeaseMeter::shutdown() {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    if (journal_ && session_->signed_in()) {
        http_->options().request_timeout_ms = std::min(http_->options().request_timeout_ms, 3000L);
        http_->options().max_attempts = 1;
        const std::int64_t give_up = wall_ms() + kShutdownBudgetMs;
        Step step = Step::ok;
        for (auto& l : book_.leases) {
            if (step == Step::unreachable || wall_ms() > give_up) break;
            step = advance(l, *journal_, true);
        }
        for (auto& o : orphans_) {
            for (auto& l : o.book.leases) {
                if (step == Step::unreachable || wall_ms() > give_up) break;
                step = advance(l, *o.journal, true);
            }
            if (o.book.all_resolved()) o.journal->remove();
        }
        // Settled and voided: nothing left to replay. Otherwise the file stays for the next
        // start (or another process) to finish.
        if (book_.all_resolved()) journal_->remove();
    }
    publish();  // the settled totals
    journal_.reset();
    orphans_.clear();
    licensed_.store(false);
    std::lock_guard status_lock(status_mutex_);
    status_.message = "Metering stopped";
    status_.covered_ms = 0;
}

}  // namespace stemsphere::client
