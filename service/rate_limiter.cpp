#include "service/rate_limiter.h"

#include <algorithm>
#include <cassert>

namespace stemsphere::service {

namespace {
constexpr size_t kMaxKeys = 200'000;  // bound memory under a flood of distinct keys
}

RateLimiter::RateLimiter(double per_minute, int burst)
    : interval_us_(static_cast<int64_t>(60e6 / std::max(per_minute, 1e-3))),
      tolerance_us_(interval_us_ * std::max(burst - 1, 0)) {
    assert(per_minute > 0 && burst >= 1);
}

int64_t RateLimiter::acquire(const std::string& key, int64_t now_us) {
    std::lock_guard lock(mutex_);
    if (tat_.size() > kMaxKeys) {
        for (auto it = tat_.begin(); it != tat_.end();) {
            it = it->second < now_us ? tat_.erase(it) : std::next(it);
        }
    }
    int64_t& tat = tat_[key];
    const int64_t start = std::max(tat, now_us);
    if (start - now_us > tolerance_us_) {
        return std::max<int64_t>(1, (start - now_us - tolerance_us_ + 999'999) / 1'000'000);
    }
    tat = start + interval_us_;
    return 0;
}

}  // namespace stemsphere::service
