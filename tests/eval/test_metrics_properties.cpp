// Properties of the metrics that hold for any signal (no shared material needed).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tools/eval/bss_eval.h"
#include "tools/eval/cholesky.h"
#include "tools/eval/metrics.h"
#include "tools/eval/oracle.h"
#include "tools/eval/scoring.h"

namespace stemsphere::eval {
namespace {

constexpr int kRate = 8000;

Audio noise(size_t frames, size_t channels, unsigned seed, double amplitude = 0.3) {
    std::mt19937 gen(seed);
    std::normal_distribution<double> dist(0.0, amplitude);
    Audio a{kRate, channels, std::vector<double>(frames * channels)};
    for (double& v : a.samples) v = dist(gen);
    return a;
}

Audio scaled_sum(const Audio& a, double ga, const Audio& b, double gb) {
    Audio out = a;
    for (size_t i = 0; i < out.samples.size(); ++i) {
        out.samples[i] = ga * a.samples[i] + gb * b.samples[i];
    }
    return out;
}

double energy(const Audio& a, size_t begin, size_t end) {
    double e = 0.0;
    for (size_t i = begin * a.channels; i < end * a.channels; ++i) e += a.samples[i] * a.samples[i];
    return e;
}

TEST(V4Sdr, PerfectEstimateIsInfiniteAndUsdrVeryHigh) {
    const Audio ref = noise(3 * kRate, 2, 1);
    const auto frames = framewise_sdr_v4({&ref}, {&ref}, kRate, kRate);
    ASSERT_EQ(frames[0].size(), 3u);
    for (double v : frames[0]) EXPECT_TRUE(std::isinf(v) && v > 0);
    EXPECT_GT(usdr(ref, ref), 100.0);
    EXPECT_TRUE(std::isinf(si_sdr(ref, ref)));
}

TEST(V4Sdr, FrameValueIsThePerSecondSnr) {
    // Error energy set per second so that each frame's SNR is a chosen value.
    const Audio ref = noise(2 * kRate, 2, 2);
    const Audio err = noise(2 * kRate, 2, 3);
    Audio est = ref;
    const double want[2] = {6.0, -3.0};
    for (size_t t = 0; t < 2; ++t) {
        const size_t b = t * kRate;
        const size_t e = b + kRate;
        const double g =
            std::sqrt(energy(ref, b, e) / energy(err, b, e) / std::pow(10.0, want[t] / 10));
        for (size_t i = b * 2; i < e * 2; ++i) est.samples[i] += g * err.samples[i];
    }
    const auto frames = framewise_sdr_v4({&ref}, {&est}, kRate, kRate);
    EXPECT_NEAR(frames[0][0], want[0], 1e-9);
    EXPECT_NEAR(frames[0][1], want[1], 1e-9);
    EXPECT_NEAR(nan_median(frames[0]), 0.5 * (want[0] + want[1]), 1e-9);
}

TEST(V4Sdr, TrailingPartialSecondIsDropped) {
    const Audio ref = noise(kRate * 5 / 2, 2, 4);
    const Audio est = scaled_sum(ref, 1.0, noise(kRate * 5 / 2, 2, 5), 0.5);
    EXPECT_EQ(framewise_sdr_v4({&ref}, {&est}, kRate, kRate)[0].size(), 2u);
    // A window longer than the signal scores the whole signal once.
    EXPECT_EQ(frame_grid(100, 1000, 1000).count, 1u);
    EXPECT_EQ(frame_grid(100, 1000, 1000).window, 100u);
}

TEST(V4Sdr, SilentSecondInOneReferenceIsNanForAllTargets) {
    Audio vocals = noise(3 * kRate, 2, 6);
    const Audio drums = noise(3 * kRate, 2, 7);
    for (size_t i = kRate * 2; i < 2 * kRate * 2; ++i) vocals.samples[i] = 0.0;  // second 1
    const Audio ev = scaled_sum(vocals, 1.0, noise(3 * kRate, 2, 8), 0.1);
    const Audio ed = scaled_sum(drums, 1.0, noise(3 * kRate, 2, 9), 0.1);
    const auto frames = framewise_sdr_v4({&vocals, &drums}, {&ev, &ed}, kRate, kRate);
    for (size_t j = 0; j < 2; ++j) {
        EXPECT_TRUE(std::isnan(frames[j][1])) << "target " << j;
        EXPECT_FALSE(std::isnan(frames[j][0]));
        EXPECT_FALSE(std::isnan(frames[j][2]));
    }
    // Scored alone, drums keep that second.
    EXPECT_FALSE(std::isnan(framewise_sdr_v4({&drums}, {&ed}, kRate, kRate)[0][1]));
    // The median skips the NaN frame.
    EXPECT_DOUBLE_EQ(nan_median(frames[1]), 0.5 * (frames[1][0] + frames[1][2]));
}

TEST(V4Sdr, SilenceIsJudgedOnTheChannelSumAsMusevalDoes) {
    // L = −R everywhere: museval sums channels before testing for silence.
    Audio ref = noise(kRate, 2, 10);
    for (size_t n = 0; n < ref.frames(); ++n) ref.samples[n * 2 + 1] = -ref.samples[n * 2];
    const Audio est = noise(kRate, 2, 11);
    EXPECT_TRUE(any_signal_silent({&ref}, 0, kRate));
    EXPECT_TRUE(std::isnan(framewise_sdr_v4({&ref}, {&est}, kRate, kRate)[0][0]));
}

TEST(Metrics, EstimateLengthIsPaddedOrTruncatedToTheReference) {
    const Audio ref = noise(2 * kRate, 2, 12);
    const Audio est = scaled_sum(ref, 0.8, noise(2 * kRate, 2, 13), 0.2);
    Audio longer = fit_length(est, 3 * kRate);
    for (size_t i = 2 * kRate * 2; i < longer.samples.size(); ++i) longer.samples[i] = 5.0;
    const Audio back = fit_length(longer, ref.frames());
    EXPECT_EQ(back.samples, est.samples);
    const Audio shorter = fit_length(est, kRate);
    const Audio padded = fit_length(shorter, ref.frames());
    ASSERT_EQ(padded.frames(), ref.frames());
    for (size_t i = kRate * 2; i < padded.samples.size(); ++i) EXPECT_EQ(padded.samples[i], 0.0);
    // Scoring applies that rule: the padded second is a silent estimate, which museval's rule
    // excludes from v4 SDR, while the whole-signal uSDR counts the missing second as error.
    StemSet refs{{"vocals", ref}};
    const TrackScore cut = score_track(refs, {{"vocals", shorter}}, {"vocals"});
    const TrackScore full = score_track(refs, {{"vocals", est}}, {"vocals"});
    EXPECT_TRUE(std::isnan(cut.targets[0].sdr_v4_frames[1]));
    EXPECT_DOUBLE_EQ(cut.targets[0].sdr_v4_frames[0], full.targets[0].sdr_v4_frames[0]);
    EXPECT_LT(cut.targets[0].usdr, full.targets[0].usdr - 5.0);
}

TEST(Metrics, SiSdrIgnoresGainButV4SdrDoesNot) {
    const Audio ref = noise(2 * kRate, 2, 14);
    const Audio est = scaled_sum(ref, 1.0, noise(2 * kRate, 2, 15), 0.3);
    const Audio louder = scaled_sum(est, 4.0, est, 0.0);
    EXPECT_NEAR(si_sdr(ref, est), si_sdr(ref, louder), 1e-9);
    EXPECT_GT(usdr(ref, est) - usdr(ref, louder), 5.0);
    // DC offsets are removed before SI-SDR.
    Audio offset = est;
    for (double& v : offset.samples) v += 0.25;
    EXPECT_NEAR(si_sdr(ref, est), si_sdr(ref, offset), 1e-9);
    // A silent reference has no defined scale.
    EXPECT_TRUE(std::isnan(si_sdr(scaled_sum(ref, 0.0, ref, 0.0), est)));
}

TEST(Metrics, ScoreTrackRejectsRateAndChannelMismatch) {
    const Audio ref = noise(kRate, 2, 16);
    Audio other_rate = ref;
    other_rate.sample_rate = 16000;
    const Audio mono = noise(kRate, 1, 17);
    StemSet refs{{"vocals", ref}};
    EXPECT_THROW(score_track(refs, {{"vocals", other_rate}}, {"vocals"}), std::runtime_error);
    EXPECT_THROW(score_track(refs, {{"vocals", mono}}, {"vocals"}), std::runtime_error);
}

TEST(Metrics, ScoreTrackCouplesVocalsOnlyWithAccompaniment) {
    // museval's grouping: a silent vocal second drops that second from D/B/O as well, and the
    // accompaniment group is scored separately.
    Audio vocals = noise(3 * kRate, 2, 18);
    for (size_t i = 0; i < kRate * 2; ++i) vocals.samples[i] = 0.0;  // second 0
    StemSet refs{{"vocals", vocals},
                 {"drums", noise(3 * kRate, 2, 19)},
                 {"bass", noise(3 * kRate, 2, 20)},
                 {"other", noise(3 * kRate, 2, 21)}};
    add_accompaniment(refs);
    StemSet ests;
    unsigned seed = 30;
    for (const auto& [name, a] : refs)
        ests[name] = scaled_sum(a, 1.0, noise(3 * kRate, 2, seed++), 0.2);
    const TrackScore s =
        score_track(refs, ests, {"vocals", "drums", "bass", "other", "accompaniment"});
    ASSERT_EQ(s.targets.size(), 5u);
    for (const auto& t : s.targets) EXPECT_TRUE(std::isnan(t.sdr_v4_frames[0])) << t.name;
    EXPECT_NEAR(s.mean_sdr_v4,
                (s.targets[0].sdr_v4 + s.targets[1].sdr_v4 + s.targets[2].sdr_v4 +
                 s.targets[3].sdr_v4 + s.targets[4].sdr_v4) /
                    5.0,
                1e-12);
}

TEST(Cholesky, DependentColumnsAreDroppedAndSolveStaysExact) {
    // Vectors v0, v1, v2 = 2·v0 (dependent), v3; Gram matrix A = VᵀV, rhs = Vᵀy.
    const std::vector<std::vector<double>> v{
        {1, 2, 0, 1, 3}, {0, 1, 1, -1, 2}, {2, 4, 0, 2, 6}, {1, 0, 0, 0, 1}};
    const std::vector<double> y{1, 0, 2, 1, -1};
    auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
        double s = 0;
        for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
        return s;
    };
    const SemidefiniteCholesky chol(4, [&](size_t i, size_t j) { return dot(v[i], v[j]); });
    EXPECT_EQ(chol.rank(), 3u);
    std::vector<double> rhs;
    for (const auto& vi : v) rhs.push_back(dot(vi, y));
    const auto x = chol.solve(rhs);
    EXPECT_EQ(x[2], 0.0);
    // Normal equations hold: Vᵀ(Vx − y) = 0.
    std::vector<double> residual(5, 0.0);
    for (size_t i = 0; i < 4; ++i) {
        for (size_t n = 0; n < 5; ++n) residual[n] += x[i] * v[i][n];
    }
    for (size_t n = 0; n < 5; ++n) residual[n] -= y[n];
    for (const auto& vi : v) EXPECT_NEAR(dot(vi, residual), 0.0, 1e-9);
}

TEST(BssEval, PermutedEstimatesAreMatchedAndScoredHigh) {
    const size_t n = 2000;
    const size_t taps = 32;
    const std::vector<Audio> refs{noise(n, 2, 40), noise(n, 2, 41)};
    const std::vector<Audio> ests{scaled_sum(refs[1], 1.0, noise(n, 2, 42), 0.01),
                                  scaled_sum(refs[0], 1.0, noise(n, 2, 43), 0.01)};
    const BssScores s = bss_eval_images(refs, ests, true, taps);
    EXPECT_EQ(s.permutation, (std::vector<size_t>{1, 0}));
    for (size_t j = 0; j < 2; ++j) {
        EXPECT_NEAR(s.sdr[j], 40.0, 1.0);  // 1 % noise
        EXPECT_GT(s.sir[j], 45.0);         // only the noise's projection leaks
    }
    const BssScores fixed = bss_eval_images(refs, ests, false, taps);
    EXPECT_LT(fixed.sdr[0], 0.0);
}

TEST(BssEval, FilteredReferenceIsSpatialDistortionNotArtefact) {
    // ŝ = s delayed by 3 samples: within the 32-tap span, so SAR and SIR are high and the
    // error counts as spatial distortion (low ISR, SDR ≈ ISR). The 3 samples delayed past the
    // end are the only artefact (≈ −28 dB).
    const size_t n = 2000;
    const std::vector<Audio> refs{noise(n, 1, 50), noise(n, 1, 51)};
    std::vector<Audio> ests = refs;
    for (size_t k = n; k-- > 3;) ests[0].samples[k] = refs[0].samples[k - 3];
    for (size_t k = 0; k < 3; ++k) ests[0].samples[k] = 0.0;
    const BssScores s = bss_eval_images(refs, ests, false, 32);
    EXPECT_GT(s.sar[0], 20.0);
    EXPECT_GT(s.sir[0], 30.0);
    EXPECT_LT(s.isr[0], 3.0);
    EXPECT_NEAR(s.sdr[0], s.isr[0], 0.5);
    const BssScores src = bss_eval_sources(refs, ests, false, 32);
    EXPECT_GT(src.sdr[0], 20.0);  // sources mode forgives the filter
}

TEST(Oracle, MasksSumToTheMixtureAndBeatTheFloor) {
    const size_t n = 3 * kRate;
    // A tone and noise: well separable in the STFT.
    Audio tone{kRate, 2, std::vector<double>(n * 2)};
    for (size_t i = 0; i < n; ++i) {
        tone.samples[i * 2] = tone.samples[i * 2 + 1] =
            0.5 * std::sin(0.3 * static_cast<double>(i));
    }
    StemSet refs{{"vocals", tone}, {"accompaniment", noise(n, 2, 60, 0.05)}};
    const std::vector<std::string> names{"vocals", "accompaniment"};
    const StemSet oracle = oracle_ratio_mask(refs, names, 1024, 256);
    const Audio mix = mixture_of(refs, names);
    const Audio sum = mixture_of(oracle, names);
    double worst = 0.0;
    for (size_t i = 0; i < mix.samples.size(); ++i) {
        worst = std::max(worst, std::abs(mix.samples[i] - sum.samples[i]));
    }
    EXPECT_LT(worst, 1e-5);
    const StemSet floor = mixture_share(refs, names);
    const TrackScore o = score_track(refs, oracle, names);
    const TrackScore f = score_track(refs, floor, names);
    EXPECT_GT(o.mean_sdr_v4, f.mean_sdr_v4 + 10.0);
    EXPECT_THROW(oracle_ratio_mask(refs, names, 1024, 300), std::invalid_argument);
}

}  // namespace
}  // namespace stemsphere::eval
