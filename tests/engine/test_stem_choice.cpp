// StemChoiceEstimator ("do no harm"): per stem a network/DSP share, the vocal agreement step,
// and the contract every back end keeps (masks in [0, 1] summing to 1, DSP aligned to the
// network's look-ahead).
#include <gtest/gtest.h>

#include <array>
#include <complex>
#include <memory>
#include <vector>

#include "engine/dsp_mask_estimator.h"
#include "engine/neural/stem_choice_estimator.h"
#include "tests/engine/mask_checks.h"

namespace stemsphere {
namespace {

// Emits the same masks every call (given per stem), or masks that identify the call.
class FixedEstimator final : public MaskEstimator {
  public:
    FixedEstimator(size_t bins, size_t lookahead, std::array<float, kStemCount> m)
        : bins_(bins), lookahead_(lookahead), m_(m) {}
    size_t lookahead_frames() const override { return lookahead_; }
    void estimate(const std::complex<float>*, const std::complex<float>*, float* masks) override {
        for (size_t s = 0; s < kStemCount; ++s) {
            for (size_t k = 0; k < bins_; ++k) masks[s * bins_ + k] = m_[s];
        }
    }
    void reset() override {}

  private:
    size_t bins_, lookahead_;
    std::array<float, kStemCount> m_;
};

// vocals = 1 / (2 + call), other = the rest.
class CountingEstimator final : public MaskEstimator {
  public:
    explicit CountingEstimator(size_t bins) : bins_(bins) {}
    size_t lookahead_frames() const override { return 0; }
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
    size_t bins_;
    int calls_ = 0;
};

constexpr std::array<float, kStemCount> kNet{0.6f, 0.2f, 0.1f, 0.1f};
constexpr std::array<float, kStemCount> kDsp{0.1f, 0.5f, 0.3f, 0.1f};

std::vector<float> run_once(const StemChoice& choice, size_t bins) {
    StemChoiceEstimator est(std::make_unique<FixedEstimator>(bins, 0, kNet),
                            std::make_unique<FixedEstimator>(bins, 0, kDsp), bins, choice);
    std::vector<std::complex<float>> spec(bins);
    std::vector<float> masks(kStemCount * bins);
    est.estimate(spec.data(), spec.data(), masks.data());
    return masks;
}

TEST(StemChoiceEstimator, EachStemComesFromTheBackEndItsTableNames) {
    const size_t bins = 3;
    StemChoice choice;
    choice.network_weight = {0.0f, 1.0f, 1.0f, 1.0f};  // vocals from DSP, the rest from the network
    const auto m = run_once(choice, bins);
    // Unnormalised: 0.1 / 0.2 / 0.1 / 0.1, sum 0.5: the stems keep their ratios and sum to 1.
    EXPECT_NEAR(m[0], 0.2f, 1e-6f);
    EXPECT_NEAR(m[bins], 0.4f, 1e-6f);
    EXPECT_NEAR(m[2 * bins], 0.2f, 1e-6f);
    EXPECT_NEAR(m[3 * bins], 0.2f, 1e-6f);
    EXPECT_TRUE(masks_partition_unity(m.data(), bins, 1e-6f));
    // All-network and all-DSP choices return that back end's masks.
    const auto net = run_once(StemChoice{}, bins);
    StemChoice all_dsp;
    all_dsp.network_weight = {0.0f, 0.0f, 0.0f, 0.0f};
    const auto dsp = run_once(all_dsp, bins);
    for (size_t s = 0; s < kStemCount; ++s) {
        EXPECT_NEAR(net[s * bins], kNet[s], 1e-6f);
        EXPECT_NEAR(dsp[s * bins], kDsp[s], 1e-6f);
    }
}

TEST(StemChoiceEstimator, VocalAgreementTakesTheSmallerVoiceAndHandsTheRestOn) {
    const size_t bins = 4;
    StemChoice choice;  // vocals from the network (0.6), DSP says 0.1
    choice.vocal_agreement = 1.0f;
    auto m = run_once(choice, bins);
    EXPECT_NEAR(m[0], 0.1f, 1e-6f);
    // The other stems grow in proportion (0.2 : 0.1 : 0.1 of 0.4 → of 0.9).
    EXPECT_NEAR(m[bins], 0.45f, 1e-6f);
    EXPECT_NEAR(m[2 * bins], 0.225f, 1e-6f);
    EXPECT_NEAR(m[3 * bins], 0.225f, 1e-6f);
    EXPECT_TRUE(masks_partition_unity(m.data(), bins, 1e-6f));
    choice.vocal_agreement = 0.5f;
    m = run_once(choice, bins);
    EXPECT_NEAR(m[0], 0.35f, 1e-6f);
    EXPECT_TRUE(masks_partition_unity(m.data(), bins, 1e-6f));
    // Agreement never raises the voice: a network quieter than DSP keeps its own vocal mask.
    StemChoiceEstimator quiet(
        std::make_unique<FixedEstimator>(bins, 0, std::array<float, 4>{0.05f, 0.45f, 0.25f, 0.25f}),
        std::make_unique<FixedEstimator>(bins, 0, kDsp), bins, choice);
    std::vector<std::complex<float>> spec(bins);
    quiet.estimate(spec.data(), spec.data(), m.data());
    EXPECT_NEAR(m[0], 0.05f, 1e-6f);
}

TEST(StemChoiceEstimator, ExpanderPushesDoubtfulVoiceDownWithoutADspBackEnd) {
    const size_t bins = 2;
    StemChoice choice;
    choice.vocal_expand_below = 0.3f;
    ASSERT_FALSE(choice.needs_dsp());
    std::vector<std::complex<float>> spec(bins);
    std::vector<float> m(kStemCount * bins);
    // A doubtful voice (0.15 < 0.3) halves (0.15² / 0.3); the others share what it gave up.
    StemChoiceEstimator doubtful(
        std::make_unique<FixedEstimator>(bins, 2, std::array<float, 4>{0.15f, 0.45f, 0.2f, 0.2f}),
        nullptr, bins, choice);
    EXPECT_EQ(doubtful.lookahead_frames(), 2u);
    doubtful.estimate(spec.data(), spec.data(), m.data());
    EXPECT_NEAR(m[0], 0.075f, 1e-6f);
    EXPECT_NEAR(m[bins], 0.45f * 0.925f / 0.85f, 1e-6f);
    EXPECT_TRUE(masks_partition_unity(m.data(), bins, 1e-6f));
    // A clear voice (0.6) stays as it is.
    StemChoiceEstimator clear(std::make_unique<FixedEstimator>(bins, 0, kNet), nullptr, bins,
                              choice);
    clear.estimate(spec.data(), spec.data(), m.data());
    for (size_t s = 0; s < kStemCount; ++s) EXPECT_NEAR(m[s * bins], kNet[s], 1e-6f);
    clear.reset();
}

TEST(StemChoiceEstimator, DelaysTheDspMasksToTheNetworksFrame) {
    const size_t bins = 2;
    StemChoice choice;
    choice.network_weight = {0.0f, 0.0f, 0.0f, 0.0f};
    StemChoiceEstimator est(std::make_unique<FixedEstimator>(bins, 3, kNet),
                            std::make_unique<CountingEstimator>(bins), bins, choice);
    EXPECT_EQ(est.lookahead_frames(), 3u);
    std::vector<std::complex<float>> spec(bins);
    std::vector<float> masks(kStemCount * bins);
    for (int call = 0; call < 10; ++call) {
        est.estimate(spec.data(), spec.data(), masks.data());
        const float want = call >= 3 ? 1.0f / static_cast<float>(2 + call - 3) : 0.25f;
        EXPECT_NEAR(masks[0], want, 1e-6f) << call;
        EXPECT_TRUE(masks_partition_unity(masks.data(), bins, 1e-6f)) << call;
    }
    est.reset();
    est.estimate(spec.data(), spec.data(), masks.data());
    EXPECT_NEAR(masks[0], 0.25f, 1e-6f);
}

TEST(StemChoiceEstimator, RealBackEndsKeepTheContract) {
    const StftFormat format{};
    const size_t bins = format.bins();
    StemChoice choice;
    choice.network_weight = {0.0f, 1.0f, 0.5f, 1.0f};
    choice.vocal_agreement = 0.7f;
    DspTuning other_tuning;
    other_tuning.percussive_margin = 2.0f;
    StemChoiceEstimator est(std::make_unique<DspMaskEstimator>(format, other_tuning),
                            std::make_unique<DspMaskEstimator>(format), bins, choice);
    std::vector<std::complex<float>> left(bins), right(bins);
    std::vector<float> masks(kStemCount * bins);
    for (int t = 0; t < 40; ++t) {
        for (size_t k = 0; k < bins; ++k) {
            left[k] = {static_cast<float>((k * 7 + static_cast<size_t>(t)) % 11), 0.5f};
            right[k] = {1.0f, static_cast<float>((k + static_cast<size_t>(t) * 3) % 5)};
        }
        if (t == 20) left[3] = {0.0f, 0.0f}, right[3] = {0.0f, 0.0f};
        est.estimate(left.data(), right.data(), masks.data());
        ASSERT_TRUE(masks_partition_unity(masks.data(), bins, 1e-5f)) << t;
    }
}

}  // namespace
}  // namespace stemsphere
