// Separation engine contracts: masks sum to 1, stems sum to the delayed input, latency is
// exact, any host block length gives the same output, NaN/Inf cannot poison the state.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "engine/dsp_mask_estimator.h"
#include "engine/processor.h"
#include "tests/engine/mask_checks.h"

namespace stemsphere {
namespace {

// A short stereo test signal with harmonic, percussive, centred and panned content.
std::vector<float> music_like(size_t frames, double rate, unsigned seed, size_t channel) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    std::vector<float> x(frames);
    const double pan = channel == 0 ? 0.8 : 0.3;
    for (size_t i = 0; i < frames; ++i) {
        const double t = static_cast<double>(i) / rate;
        double v = 0.3 * std::sin(2 * M_PI * 220.0 * t) + 0.2 * std::sin(2 * M_PI * 55.0 * t);
        v += pan * 0.2 * std::sin(2 * M_PI * 660.0 * t + 0.3);
        const double beat = std::fmod(t, 0.25);
        v += 0.5 * std::exp(-beat * 60.0) * static_cast<double>(noise(rng));
        x[i] = static_cast<float>(v);
    }
    return x;
}

struct Outputs {
    std::vector<std::vector<float>> ch;
    explicit Outputs(size_t frames) : ch(kOutputChannels, std::vector<float>(frames, 0.0f)) {}
};

Outputs run(Processor& p, const std::vector<float>& l, const std::vector<float>& r, size_t block) {
    Outputs o(l.size());
    for (size_t start = 0; start < l.size(); start += block) {
        const size_t n = std::min(block, l.size() - start);
        float* out[kOutputChannels];
        for (size_t c = 0; c < kOutputChannels; ++c) out[c] = o.ch[c].data() + start;
        p.process(l.data() + start, r.data() + start, out, n);
    }
    return o;
}

// Every option of DspTuning keeps the contract, and reset() replays the same masks.
TEST(DspMaskEstimator, EveryTuningOptionKeepsTheContract) {
    const StftFormat f = stft_format_for_rate(48000.0);
    std::vector<DspTuning> tunings(6);
    tunings[0].percussive_margin = 2.0f;
    tunings[1].vocal_margin = 3.0f;
    tunings[2].centre_seconds = 0.05;
    tunings[3].vocal_hold_seconds = 0.15;
    tunings[4].vocal_threshold = 0.3f;
    tunings[5].percussive_margin = 1.5f;
    tunings[5].centre_power = 3.0f;
    tunings[5].vocal_hold_seconds = 0.1;
    for (size_t i = 0; i < tunings.size(); ++i) {
        DspMaskEstimator est(f, tunings[i]);
        std::vector<std::vector<float>> first;
        for (int pass = 0; pass < 2; ++pass) {
            std::mt19937 rng(5);
            std::normal_distribution<float> d(0.0f, 1.0f);
            std::vector<std::complex<float>> l(f.bins()), r(f.bins());
            std::vector<float> masks(kStemCount * f.bins());
            for (int frame = 0; frame < 40; ++frame) {
                for (size_t k = 0; k < f.bins(); ++k) {
                    l[k] = {d(rng), d(rng)};
                    r[k] = frame % 4 == 0 ? l[k] : std::complex<float>{d(rng), d(rng)};
                }
                if (frame == 9) {  // silence
                    std::fill(l.begin(), l.end(), std::complex<float>{});
                    std::fill(r.begin(), r.end(), std::complex<float>{});
                }
                est.estimate(l.data(), r.data(), masks.data());
                ASSERT_TRUE(masks_partition_unity(masks.data(), f.bins(), 1e-6f))
                    << "tuning " << i << " frame " << frame;
                if (pass == 0) {
                    first.push_back(masks);
                } else {
                    ASSERT_EQ(first[static_cast<size_t>(frame)], masks) << i;
                }
            }
            est.reset();
        }
    }
}

TEST(DspMaskEstimator, MasksAreInUnitRangeAndSumToOne) {
    const StftFormat f = stft_format_for_rate(44100.0);
    DspMaskEstimator est(f);
    std::mt19937 rng(3);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<std::complex<float>> l(f.bins()), r(f.bins());
    std::vector<float> masks(kStemCount * f.bins());
    for (int frame = 0; frame < 50; ++frame) {
        for (size_t k = 0; k < f.bins(); ++k) {
            l[k] = {d(rng), d(rng)};
            r[k] = frame % 3 == 0 ? l[k] : std::complex<float>{d(rng), d(rng)};
        }
        if (frame == 10) std::fill(l.begin(), l.end(), std::complex<float>{});  // silence
        est.estimate(l.data(), r.data(), masks.data());
        ASSERT_TRUE(masks_partition_unity(masks.data(), f.bins(), 1e-6f)) << "frame " << frame;
    }
}

TEST(Processor, LatencyIsUnder25msAndScalesWithRate) {
    for (double rate : {22050.0, 32000.0, 44100.0, 48000.0, 88200.0, 96000.0, 176400.0, 192000.0}) {
        auto p = Processor::with_dsp_backend(rate);
        const double ms = 1000.0 * static_cast<double>(p->latency()) / rate;
        EXPECT_LE(ms, 25.0) << rate;
        EXPECT_GE(ms, 10.0) << rate;
    }
}

TEST(Processor, ImpulseComesOutExactlyLatencyLater) {
    for (double rate : {44100.0, 48000.0, 96000.0}) {
        auto p = Processor::with_dsp_backend(rate);
        const size_t lat = p->latency();
        std::vector<float> l(lat * 4, 0.0f), r(lat * 4, 0.0f);
        const size_t at = 100;
        l[at] = r[at] = 1.0f;
        Outputs o = run(*p, l, r, 64);
        size_t peak = 0;
        for (size_t i = 0; i < o.ch[0].size(); ++i) {
            if (std::abs(o.ch[0][i]) > std::abs(o.ch[0][peak])) peak = i;
        }
        EXPECT_EQ(peak, at + lat) << rate;
        EXPECT_NEAR(o.ch[0][peak], 1.0f, 1e-5f);
    }
}

TEST(Processor, StemsSumToDelayedInputAndMainEqualsIt) {
    const double rate = 44100.0;
    auto p = Processor::with_dsp_backend(rate);
    const size_t frames = 44100;
    auto l = music_like(frames, rate, 1, 0);
    auto r = music_like(frames, rate, 1, 1);
    Outputs o = run(*p, l, r, 1000);
    const size_t lat = p->latency();
    double max_err_sum = 0.0, max_err_main = 0.0;
    for (size_t i = lat; i < frames; ++i) {
        for (size_t ch = 0; ch < 2; ++ch) {
            const float in = (ch == 0 ? l : r)[i - lat];
            float sum = 0.0f;
            for (size_t s = 0; s < kStemCount; ++s) sum += o.ch[2 + 2 * s + ch][i];
            max_err_sum = std::max(max_err_sum, static_cast<double>(std::abs(sum - in)));
            max_err_main = std::max(max_err_main, static_cast<double>(std::abs(o.ch[ch][i] - in)));
        }
    }
    EXPECT_LT(20.0 * std::log10(max_err_sum + 1e-30), -90.0);
    EXPECT_LT(20.0 * std::log10(max_err_main + 1e-30), -90.0);
}

TEST(Processor, EveryStemCarriesSignal) {
    const double rate = 44100.0;
    auto p = Processor::with_dsp_backend(rate);
    const size_t frames = 44100;
    auto l = music_like(frames, rate, 2, 0);
    auto r = music_like(frames, rate, 2, 1);
    Outputs o = run(*p, l, r, 512);
    for (size_t s = 0; s < kStemCount; ++s) {
        double energy = 0.0;
        for (size_t i = 0; i < frames; ++i) energy += std::pow(o.ch[2 + 2 * s][i], 2);
        EXPECT_GT(energy, 1e-3) << kStemNames[s];
    }
}

TEST(Processor, OddBlockSizesGiveIdenticalOutput) {
    const double rate = 48000.0;
    const size_t frames = 20000;
    auto l = music_like(frames, rate, 5, 0);
    auto r = music_like(frames, rate, 5, 1);
    auto ref_p = Processor::with_dsp_backend(rate);
    Outputs ref = run(*ref_p, l, r, 256);
    for (size_t block : {1u, 17u, 63u, 64u, 1000u, 4096u}) {
        auto p = Processor::with_dsp_backend(rate);
        Outputs o = run(*p, l, r, block);
        for (size_t c = 0; c < kOutputChannels; ++c) {
            ASSERT_EQ(o.ch[c], ref.ch[c]) << "block " << block << " channel " << c;
        }
    }
}

TEST(Processor, NanAndInfDoNotPoisonState) {
    const double rate = 44100.0;
    auto p = Processor::with_dsp_backend(rate);
    const size_t frames = 20000;
    auto l = music_like(frames, rate, 9, 0);
    auto r = music_like(frames, rate, 9, 1);
    for (size_t i = 5000; i < 5100; ++i) {
        l[i] = std::numeric_limits<float>::quiet_NaN();
        r[i] = std::numeric_limits<float>::infinity();
    }
    Outputs o = run(*p, l, r, 100);
    for (const auto& ch : o.ch) {
        for (float v : ch) ASSERT_TRUE(std::isfinite(v));
    }
    // After the bad block has passed through the latency, main equals the delayed input again.
    const size_t lat = p->latency();
    for (size_t i = 5100 + lat + p->format().fft_size; i < frames; ++i) {
        ASSERT_NEAR(o.ch[0][i], l[i - lat], 1e-5f) << i;
    }
}

TEST(Processor, MuteSoloAndBypass) {
    const double rate = 44100.0;
    const size_t frames = 30000;
    auto l = music_like(frames, rate, 4, 0);
    auto r = music_like(frames, rate, 4, 1);
    auto p = Processor::with_dsp_backend(rate);
    ProcessorControls c;
    c.stems[static_cast<size_t>(Stem::kDrums)].solo = true;
    p->set_controls(c);
    p->reset();
    Outputs o = run(*p, l, r, 256);
    // Settled solo: main == drums stem.
    for (size_t i = frames / 2; i < frames; ++i) {
        ASSERT_NEAR(o.ch[0][i], o.ch[2 + 2 * static_cast<size_t>(Stem::kDrums)][i], 1e-6f);
    }
    ProcessorControls bypass;
    bypass.enabled = false;
    bypass.stems[0].mute = true;
    auto q = Processor::with_dsp_backend(rate);
    q->set_controls(bypass);
    q->reset();
    Outputs b = run(*q, l, r, 256);
    const size_t lat = q->latency();
    for (size_t i = lat; i < frames; ++i) ASSERT_NEAR(b.ch[0][i], l[i - lat], 1e-6f);
}

}  // namespace
}  // namespace stemsphere
