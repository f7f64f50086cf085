#include "service/rate_limiter.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace stemsphere::service {

namespace {
constexpr size_t kMaxKeys = 200'000;  // bound memory under a flood of distinct keys
}

RateLimiter::RateLimiter(std::string name, double per_minute, int burst, Db* shared)
    : name_(std::move(name)),
      // In floating point first: at very high rates the interval rounds to 0 µs, and the burst
      // allowance must not round away with it (concurrent requests read the clock in any order).
      interval_us_(std::max<int64_t>(1, std::llround(60e6 / std::max(per_minute, 1e-3)))),
      tolerance_us_(std::llround(60e6 / std::max(per_minute, 1e-3) * std::max(burst - 1, 0))),
      shared_(shared) {
    assert(per_minute > 0 && burst >= 1);
}

int64_t RateLimiter::wait_seconds(int64_t tat, int64_t now_us) const {
    return std::max<int64_t>(1, (tat - now_us - tolerance_us_ + 999'999) / 1'000'000);
}

int64_t RateLimiter::acquire(const std::string& key, int64_t now_us) {
    if (shared_) return acquire_shared(key, now_us);
    std::lock_guard lock(mutex_);
    if (tat_.size() > kMaxKeys) {
        for (auto it = tat_.begin(); it != tat_.end();) {
            it = it->second < now_us ? tat_.erase(it) : std::next(it);
        }
    }
    int64_t& tat = tat_[key];
    const int64_t start = std::max(tat, now_us);
    if (start - now_us > tolerance_us_) return wait_seconds(start, now_us);
    tat = start + interval_us_;
    return 0;
}

// One statement decides and counts: the upsert moves the TAT only when the request conforms,
// under the row lock, so concurrent requests on any node are counted exactly once each. The
// time is the database server's, read once the row lock is held (`clock_timestamp()`): one
// clock for every node, and requests judged in the order they are counted. (With each node's
// clock read before its transaction, a request that waited for a connection or the CPU looked
// like it came early, and high rates refused bursts they allow.)
int64_t RateLimiter::acquire_shared(const std::string& key, int64_t now_us) {
    const std::string k = name_ + ":" + key;
    int64_t wait = 0;
    shared_->write([&](DbTx& tx) {
        const bool pg = tx.dialect() == Dialect::kPostgres;
        std::vector<DbRow> counted;
        if (pg) {
            // A limiter row lost in a crash costs at most one burst; no need to wait for fsync.
            tx.exec_later("SET LOCAL synchronous_commit = off", {});
            const std::string now = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint";
            counted = tx.query(
                "INSERT INTO rate_limit(key, tat) VALUES (?, " + now +
                    " + ?) ON CONFLICT (key) DO UPDATE SET tat = GREATEST(rate_limit.tat, " + now +
                    ") + ? WHERE GREATEST(rate_limit.tat, " + now + ") - " + now +
                    " <= ? RETURNING tat",
                {k, interval_us_, interval_us_, tolerance_us_});
            if (!counted.empty()) return;
            const auto rows =
                tx.query("SELECT tat, " + now + " FROM rate_limit WHERE key = ?", {k});
            wait = rows.empty() ? 1 : wait_seconds(rows[0].integer(0), rows[0].integer(1));
            return;
        }
        counted = tx.query(
            "INSERT INTO rate_limit(key, tat) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET tat = "
            "MAX(rate_limit.tat, ?) + ? WHERE MAX(rate_limit.tat, ?) - ? <= ? RETURNING tat",
            {k, now_us + interval_us_, now_us, interval_us_, now_us, now_us, tolerance_us_});
        if (!counted.empty()) return;
        const auto rows = tx.query("SELECT tat FROM rate_limit WHERE key = ?", {k});
        wait = rows.empty() ? 1 : wait_seconds(rows[0].integer(0), now_us);
    });
    return wait;
}

int64_t RateLimiter::purge(Db& db, int64_t now_us) {
    int64_t removed = 0;
    db.write([&](DbTx& tx) {
        // The database's clock on PostgreSQL, the one the shared arrival times are kept in.
        removed = tx.dialect() == Dialect::kPostgres
                      ? tx.exec(
                            "DELETE FROM rate_limit WHERE tat < "
                            "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint")
                      : tx.exec("DELETE FROM rate_limit WHERE tat < ?", {now_us});
    });
    return removed;
}

}  // namespace stemsphere::service
