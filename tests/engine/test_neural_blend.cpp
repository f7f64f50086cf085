// BlendedMaskEstimator: convex blend of two back ends, with the secondary's masks delayed to the
// primary's look-ahead so both describe the same frame.
#include <gtest/gtest.h>

#include <complex>
#include <memory>
#include <vector>

#include "engine/dsp_mask_estimator.h"
#include "engine/neural/blended_mask_estimator.h"
#include "tests/engine/mask_checks.h"

namespace stemsphere {
namespace {

// Emits masks that identify the call: vocals = 1 / (2 + call), other = the rest; look-ahead is
// whatever the test asks for.
class CountingEstimator final : public MaskEstimator {
  public:
    CountingEstimator(size_t bins, size_t lookahead) : bins_(bins), lookahead_(lookahead) {}
    size_t lookahead_frames() const override { return lookahead_; }
    void estimate(const std::complex<float>*, const std::complex<float>*, float* masks) override {
        const float v = 1.0f / static_cast<float>(2 + calls_++);
        for (size_t k = 0; k < bins_; ++k) {
            masks[k] = v;
            masks[bins_ + k] = 0.0f;
            masks[2 * bins_ + k] = 0.0f;
            masks[3 * bins_ + k] = 1.0f - v;
        }
    }
    void reset() override { calls_ = 0; }

  private:
    size_t bins_, lookahead_;
    int calls_ = 0;
};

TEST(BlendedMaskEstimator, AlignsTheSecondaryToThePrimaryLookahead) {
    const size_t bins = 5;
    BlendedMaskEstimator blend(std::make_unique<CountingEstimator>(bins, 3),
                               std::make_unique<CountingEstimator>(bins, 0), bins, 0.25f);
    EXPECT_EQ(blend.lookahead_frames(), 3u);
    std::vector<std::complex<float>> spec(bins);
    std::vector<float> masks(kStemCount * bins);
    for (int call = 0; call < 12; ++call) {
        blend.estimate(spec.data(), spec.data(), masks.data());
        const float primary = 1.0f / static_cast<float>(2 + call);
        // The secondary's frame `call − 3`; before it exists, an even split.
        const float secondary = call >= 3 ? 1.0f / static_cast<float>(2 + call - 3) : 0.25f;
        for (size_t k = 0; k < bins; ++k) {
            EXPECT_NEAR(masks[k], 0.75f * primary + 0.25f * secondary, 1e-6f) << call;
        }
        EXPECT_TRUE(masks_partition_unity(masks.data(), bins, 1e-6f)) << call;
    }
    // reset() replays the same sequence.
    blend.reset();
    blend.estimate(spec.data(), spec.data(), masks.data());
    EXPECT_NEAR(masks[0], 0.75f * 0.5f + 0.25f * 0.25f, 1e-6f);
}

TEST(BlendedMaskEstimator, WeightZeroAndOneSelectOneBackEnd) {
    const StftFormat format{};
    const size_t bins = format.bins();
    std::vector<std::complex<float>> left(bins), right(bins);
    for (size_t k = 0; k < bins; ++k) {
        left[k] = {static_cast<float>(k % 7), 1.0f};
        right[k] = {1.0f, static_cast<float>(k % 5)};
    }
    std::vector<float> dsp_only(kStemCount * bins), blended(kStemCount * bins);
    DspMaskEstimator reference(format);
    BlendedMaskEstimator all_dsp(std::make_unique<CountingEstimator>(bins, 0),
                                 std::make_unique<DspMaskEstimator>(format), bins, 1.0f);
    for (int i = 0; i < 4; ++i) {
        reference.estimate(left.data(), right.data(), dsp_only.data());
        all_dsp.estimate(left.data(), right.data(), blended.data());
    }
    EXPECT_EQ(dsp_only, blended);

    BlendedMaskEstimator no_dsp(std::make_unique<CountingEstimator>(bins, 0),
                                std::make_unique<DspMaskEstimator>(format), bins, 0.0f);
    no_dsp.estimate(left.data(), right.data(), blended.data());
    EXPECT_FLOAT_EQ(blended[0], 0.5f);
    EXPECT_FLOAT_EQ(blended[3 * bins], 0.5f);
}

}  // namespace
}  // namespace stemsphere
