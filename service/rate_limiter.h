// GCRA (generic cell rate algorithm) per key: one theoretical arrival time (TAT) per key.
// In memory for one process, or in the database's `rate_limit` table, where every replica on
// that database shares it (one atomic upsert per request), so N nodes do not give N times the
// limit.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "service/db.h"

namespace stemsphere::service {

class RateLimiter {
  public:
    // `per_minute` requests per minute on average, bursts of up to `burst`. With `shared`, the
    // state lives in that database under keys prefixed with `name`; without, in this process.
    RateLimiter(std::string name, double per_minute, int burst, Db* shared = nullptr);
    // 0 when allowed (and counted); otherwise the seconds to wait (≥ 1) before a retry.
    int64_t acquire(const std::string& key, int64_t now_us);

    // Removes shared rows whose arrival time has passed (they hold no state). Returns rows.
    static int64_t purge(Db& db, int64_t now_us);

  private:
    int64_t acquire_shared(const std::string& key, int64_t now_us);
    int64_t wait_seconds(int64_t tat, int64_t now_us) const;

    std::string name_;
    int64_t interval_us_;
    int64_t tolerance_us_;
    Db* shared_;
    std::mutex mutex_;
    std::unordered_map<std::string, int64_t> tat_;  // theoretical arrival time per key
};

}  // namespace stemsphere::service
