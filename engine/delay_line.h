#pragma once
// A plain delay of whole frames for several channels at once, in place. The plugin pads the Live
// modes' output with it so that they report and apply the Studio latency (the "Report Studio
// latency in Live modes" option): then a mode switch never moves the host's delay compensation.
//
// Real-time contract: the constructor allocates the largest delay; set_delay() and process()
// never allocate, lock or block.
#include <algorithm>
#include <cstddef>
#include <vector>

namespace stemsphere {

class DelayLine {
  public:
    DelayLine(size_t channels, size_t max_delay)
        : channels_(channels), max_delay_(max_delay), ring_(channels * max_delay, 0.0f) {}

    size_t max_delay() const { return max_delay_; }
    size_t delay() const { return delay_; }

    // 0 .. max_delay() frames (larger values are clamped). A new delay starts from silence.
    void set_delay(size_t frames) {
        delay_ = std::min(frames, max_delay_);
        reset();
    }
    // Forgets the delayed audio: the next delay() frames out are silence.
    void reset() {
        std::fill(ring_.begin(), ring_.end(), 0.0f);
        pos_ = 0;
    }

    // Delays `n` frames of each channel in place; null channels are skipped (they still count as
    // played, so all channels stay aligned).
    void process(float* const* channels, size_t n) {
        if (delay_ == 0) return;
        const size_t start = pos_;
        for (size_t c = 0; c < channels_; ++c) {
            float* x = channels[c];
            if (x == nullptr) continue;
            float* ring = ring_.data() + c * max_delay_;
            size_t p = start;
            for (size_t i = 0; i < n; ++i) {
                const float delayed = ring[p];
                ring[p] = x[i];
                x[i] = delayed;
                if (++p == delay_) p = 0;
            }
        }
        pos_ = (start + n) % delay_;
    }

  private:
    size_t channels_;
    size_t max_delay_;
    std::vector<float> ring_;  // channels × max_delay; the first delay() frames of each are used
    size_t delay_ = 0;
    size_t pos_ = 0;
};

}  // namespace stemsphere
