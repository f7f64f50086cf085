// GCRA (generic cell rate algorithm) per key, in memory per server node: one timestamp per key.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace stemsphere::service {

class RateLimiter {
  public:
    // `per_minute` requests per minute on average, bursts of up to `burst`.
    RateLimiter(double per_minute, int burst);
    // 0 when allowed (and counted); otherwise the seconds to wait (≥ 1) before a retry.
    int64_t acquire(const std::string& key, int64_t now_us);

  private:
    int64_t interval_us_;
    int64_t tolerance_us_;
    std::mutex mutex_;
    std::unordered_map<std::string, int64_t> tat_;  // theoretical arrival time per key
};

}  // namespace stemsphere::service
