// Neural back end: parity with PyTorch (fixtures written by models/export.py --fixtures), model
// file validation (corrupt / mismatched files give a clear error, never a crash), mixture
// consistency of the masks and look-ahead bookkeeping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/dsp_mask_estimator.h"
#include "engine/neural/neural_mask_estimator.h"
#include "engine/neural/neural_model.h"
#include "engine/processor.h"
#include "tests/engine/mask_checks.h"

namespace stemsphere {
namespace {

const std::string kFixtures = std::string(STEMSPHERE_SOURCE_DIR) + "/models/fixtures/";
const std::string kWeights = std::string(STEMSPHERE_SOURCE_DIR) + "/models/weights/";

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<float> read_floats(const std::string& path) {
    const std::vector<uint8_t> b = read_bytes(path);
    std::vector<float> f(b.size() / 4);
    for (size_t i = 0; i < f.size(); ++i) {
        const uint32_t u = static_cast<uint32_t>(b[4 * i]) |
                           (static_cast<uint32_t>(b[4 * i + 1]) << 8) |
                           (static_cast<uint32_t>(b[4 * i + 2]) << 16) |
                           (static_cast<uint32_t>(b[4 * i + 3]) << 24);
        std::memcpy(&f[i], &u, 4);
    }
    return f;
}

// The fixture input of models/export.py lcg_spectra(): bit-exact 24-bit uniforms from a 32-bit
// LCG, scaled by a power of two per frame. Returns [channel][frame][bin].
std::vector<std::vector<std::vector<std::complex<float>>>> lcg_spectra(size_t frames, size_t bins,
                                                                       uint32_t seed) {
    uint32_t state = seed;
    std::vector<std::vector<std::vector<std::complex<float>>>> out(
        2, std::vector<std::vector<std::complex<float>>>(frames,
                                                         std::vector<std::complex<float>>(bins)));
    for (size_t t = 0; t < frames; ++t) {
        const float scale = std::ldexp(64.0f, static_cast<int>(t % 7) - 3);
        for (size_t c = 0; c < 2; ++c) {
            for (size_t k = 0; k < bins; ++k) {
                float v[2];
                for (float& x : v) {
                    state = state * 1664525u + 1013904223u;
                    x = static_cast<float>((state >> 8) & 0xFFFFFFu) / 16777216.0f - 0.5f;
                }
                out[c][t][k] = {v[0] * scale, v[1] * scale};
            }
        }
    }
    return out;
}

// Runs `model` over the fixture input and returns the max |C++ − PyTorch| over all masks.
// after_lookahead: the model first runs its look-ahead's worth of frames more, uncompared (the
// fixture leaves them out, export.py), then `frames` compared ones.
float parity_error(const std::string& model_file, const std::string& expected_file, size_t fft_size,
                   size_t frames, uint32_t seed, bool after_lookahead = false) {
    std::string error;
    auto model = NeuralModel::load(model_file, &error);
    EXPECT_TRUE(model) << error;
    if (!model) return INFINITY;
    const size_t skip = after_lookahead ? model->lookahead : 0;
    frames += skip;
    StftFormat format{44100.0, fft_size, fft_size / 4};
    NeuralMaskEstimator estimator(model, format);
    const size_t bins = format.bins();
    const auto input = lcg_spectra(frames, bins, seed);
    const std::vector<float> expected = read_floats(expected_file);
    EXPECT_EQ(expected.size(), (frames - skip) * kStemCount * bins);
    if (expected.size() != (frames - skip) * kStemCount * bins) return INFINITY;
    std::vector<float> masks(kStemCount * bins);
    float worst = 0.0f;
    for (size_t t = 0; t < frames; ++t) {
        estimator.estimate(input[0][t].data(), input[1][t].data(), masks.data());
        if (t < skip) continue;
        for (size_t i = 0; i < masks.size(); ++i) {
            worst = std::max(worst, std::abs(masks[i] - expected[(t - skip) * masks.size() + i]));
        }
    }
    return worst;
}

TEST(NeuralEstimator, TinyModelMatchesPyTorch) {
    const float err =
        parity_error(kFixtures + "tiny.stsnn", kFixtures + "tiny_expected.f32", 128, 48, 7);
    std::printf("tiny model: max |C++ - PyTorch| = %.3g\n", static_cast<double>(err));
    EXPECT_LE(err, 1e-4f);
}

// A guided model runs the DSP back end inside; PyTorch got the same DSP masks from the engine
// (models/dsp_bridge.cpp), so this checks the feature, correction and per-bin softmax paths and
// the look-ahead ring that pairs each output with its frame's DSP masks.
TEST(NeuralEstimator, TinyGuidedModelMatchesPyTorch) {
    const float err = parity_error(kFixtures + "tiny_guided.stsnn",
                                   kFixtures + "tiny_guided_expected.f32", 128, 48, 7);
    std::printf("tiny guided model: max |C++ - PyTorch| = %.3g\n", static_cast<double>(err));
    EXPECT_LE(err, 1e-4f);
}

// The guided design's starting point: with zero corrections a guided network returns the DSP
// back end's masks, up to the floor that lets corrections revive a stem (m = (dsp + f)/(1 + 4f)),
// for the frame the output belongs to (look-ahead 2 here).
TEST(NeuralEstimator, GuidedModelWithZeroCorrectionsIsTheDspBackEnd) {
    std::string error;
    auto loaded = NeuralModel::load(kFixtures + "tiny_guided.stsnn", &error);
    ASSERT_TRUE(loaded) << error;
    auto zero = std::make_shared<NeuralModel>(*loaded);
    std::fill(zero->out_weight.begin(), zero->out_weight.end(), 0.0f);
    std::fill(zero->out_bias.begin(), zero->out_bias.end(), 0.0f);
    const StftFormat format{44100.0, 1024, 256};
    NeuralMaskEstimator guided(zero, format);
    DspMaskEstimator dsp(format);
    const size_t bins = format.bins(), frames = 30, ahead = zero->lookahead;
    ASSERT_EQ(ahead, 2u);
    const auto input = lcg_spectra(frames, bins, 9);
    std::vector<std::vector<float>> dsp_masks(frames, std::vector<float>(kStemCount * bins));
    std::vector<float> masks(kStemCount * bins);
    const float f = NeuralMaskEstimator::kGuideFloor;
    float worst = 0.0f;
    for (size_t t = 0; t < frames; ++t) {
        dsp.estimate(input[0][t].data(), input[1][t].data(), dsp_masks[t].data());
        guided.estimate(input[0][t].data(), input[1][t].data(), masks.data());
        if (t < ahead) continue;
        for (size_t i = 0; i < masks.size(); ++i) {
            const float want = (dsp_masks[t - ahead][i] + f) / (1.0f + 4.0f * f);
            worst = std::max(worst, std::abs(masks[i] - want));
        }
    }
    EXPECT_LE(worst, 1e-6f);
}

TEST(NeuralEstimator, ShippedModelsMatchPyTorch) {
    for (const char* variant : {"live", "studio", "render"}) {
        const std::string expected = kFixtures + variant + "_expected.f32";
        ASSERT_FALSE(read_bytes(expected).empty()) << "missing fixture " << expected;
        // Render compares the 12 frames after its long look-ahead has filled (export.py).
        const bool after_lookahead = std::string(variant) == "render";
        const float err =
            parity_error(kWeights + variant + ".stsnn", expected, 1024, 12, 11, after_lookahead);
        std::printf("%s model: max |C++ - PyTorch| = %.3g\n", variant, static_cast<double>(err));
        EXPECT_LE(err, 1e-4f) << variant;
    }
}

TEST(NeuralEstimator, MasksSumToOneAtEveryRate) {
    std::string error;
    auto model = NeuralModel::load(kWeights + "live.stsnn", &error);
    ASSERT_TRUE(model) << error;
    for (double rate : {22050.0, 44100.0, 48000.0, 96000.0, 192000.0}) {
        const size_t n = rate < 30000 ? 512 : rate < 60000 ? 1024 : rate < 120000 ? 2048 : 4096;
        StftFormat format{rate, n, n / 4};
        NeuralMaskEstimator estimator(model, format);
        const auto input = lcg_spectra(20, format.bins(), 3);
        std::vector<float> masks(kStemCount * format.bins());
        for (size_t t = 0; t < 20; ++t) {
            estimator.estimate(input[0][t].data(), input[1][t].data(), masks.data());
            ASSERT_TRUE(masks_partition_unity(masks.data(), format.bins(), 1e-5f))
                << "rate " << rate << " frame " << t;
        }
    }
}

TEST(NeuralEstimator, ResetForgetsHistoryAndNaNDoesNotPersist) {
    std::string error;
    auto model = NeuralModel::load(kWeights + "studio.stsnn", &error);
    ASSERT_TRUE(model) << error;
    StftFormat format{};
    NeuralMaskEstimator estimator(model, format);
    EXPECT_EQ(estimator.lookahead_frames(), model->lookahead);
    EXPECT_GT(estimator.lookahead_frames(), 0u);
    const size_t frames = 40;
    const auto input = lcg_spectra(frames, format.bins(), 5);
    std::vector<float> first(kStemCount * format.bins()), again(first.size());
    for (size_t t = 0; t < frames; ++t) {
        estimator.estimate(input[0][t].data(), input[1][t].data(), first.data());
    }
    // Poison the history with NaN frames, then reset: the same input must give the same masks.
    std::vector<std::complex<float>> nan_frame(format.bins(), {NAN, INFINITY});
    for (int i = 0; i < 3; ++i)
        estimator.estimate(nan_frame.data(), nan_frame.data(), again.data());
    for (float m : again) ASSERT_TRUE(std::isfinite(m));
    estimator.reset();
    for (size_t t = 0; t < frames; ++t) {
        estimator.estimate(input[0][t].data(), input[1][t].data(), again.data());
    }
    EXPECT_EQ(first, again);
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
    std::string error;
    auto model = NeuralModel::parse(bytes.data(), bytes.size(), &error);
    EXPECT_FALSE(model);
    return error;
}

// Rewrites the trailing checksum so a deliberately edited file passes the CRC and reaches the
// structural checks behind it.
void reseal(std::vector<uint8_t>& bytes) {
    const uint32_t crc = crc32(bytes.data(), bytes.size() - 4);
    for (int i = 0; i < 4; ++i) bytes[bytes.size() - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
}

TEST(NeuralModelFile, CorruptOrMismatchedFilesGiveClearErrors) {
    const std::vector<uint8_t> good = read_bytes(kFixtures + "tiny.stsnn");
    ASSERT_GT(good.size(), 64u);
    std::string error;
    ASSERT_TRUE(NeuralModel::parse(good.data(), good.size(), &error)) << error;

    EXPECT_NE(parse_error({}).find("bad magic"), std::string::npos);
    std::vector<uint8_t> bad = good;
    bad[0] = 'X';
    EXPECT_NE(parse_error(bad).find("bad magic"), std::string::npos);

    bad = good;
    bad[good.size() / 2] ^= 0x40;  // one flipped bit in the weights
    EXPECT_NE(parse_error(bad).find("checksum"), std::string::npos);

    bad.assign(good.begin(), good.end() - 100);  // truncated
    EXPECT_NE(parse_error(bad).find("checksum"), std::string::npos);

    bad = good;
    bad[8] = 3;  // a future format version
    reseal(bad);
    EXPECT_NE(parse_error(bad).find("format version 3"), std::string::npos);

    bad = good;
    bad[37] = 0x01;  // a flag this build does not know (bit 8)
    reseal(bad);
    EXPECT_NE(parse_error(bad).find("unknown flags"), std::string::npos);

    bad = good;
    bad[51] = 0x3F;  // a correction bound (1.5) on an unguided model
    bad[50] = 0xC0;
    reseal(bad);
    EXPECT_NE(parse_error(bad).find("correction bound"), std::string::npos);

    // Version 1 is still read, as an unguided model with the same tensors.
    // Version 1 has neither the flags (offset 36) nor the correction bound (offset 48).
    std::vector<uint8_t> v1(good.begin(), good.begin() + 36);
    v1.insert(v1.end(), good.begin() + 40, good.begin() + 48);
    v1.insert(v1.end(), good.begin() + 52, good.end());
    v1.at(8) = 1;
    reseal(v1);
    auto old_model = NeuralModel::parse(v1.data(), v1.size(), &error);
    auto same_model = NeuralModel::parse(good.data(), good.size(), &error);
    ASSERT_TRUE(old_model && same_model) << error;
    if (old_model && same_model) {  // spelled out for GCC's -Wnull-dereference
        EXPECT_FALSE(old_model->guided);
        EXPECT_EQ(old_model->in_weight, same_model->in_weight);
    }

    bad = good;
    bad[20] = 9;  // channels 8 -> 9: tensors no longer fit the header
    reseal(bad);
    EXPECT_NE(parse_error(bad).find("wrong size"), std::string::npos);

    bad = good;
    bad[16] = 0xFF;  // absurd band count
    bad[17] = 0xFF;
    reseal(bad);
    EXPECT_NE(parse_error(bad).find("out of range"), std::string::npos);

    // Every truncation point and every single-byte corruption fails cleanly (no crash, no model).
    for (size_t cut = 0; cut < good.size(); cut += 7) {
        std::vector<uint8_t> part(good.begin(), good.begin() + static_cast<long>(cut));
        std::string why;
        EXPECT_FALSE(NeuralModel::parse(part.data(), part.size(), &why));
        EXPECT_FALSE(why.empty());
    }

    EXPECT_FALSE(NeuralModel::load("/nonexistent/model.stsnn", &error));
    EXPECT_NE(error.find("cannot open"), std::string::npos);

    StftFormat format{};
    EXPECT_FALSE(make_neural_estimator(kFixtures + "tiny_expected.f32", format, &error));
    EXPECT_NE(error.find("model file"), std::string::npos);
}

TEST(NeuralModelFile, ShippedModelsDescribeThemselves) {
    std::string error;
    auto live = NeuralModel::load(kWeights + "live.stsnn", &error);
    ASSERT_TRUE(live) << error;
    auto studio = NeuralModel::load(kWeights + "studio.stsnn", &error);
    ASSERT_TRUE(studio) << error;
    EXPECT_EQ(live->variant, NeuralVariant::kLive);
    EXPECT_EQ(live->lookahead, 0u);  // Live: total latency = STFT only (≤ 25 ms)
    EXPECT_EQ(studio->variant, NeuralVariant::kStudio);
    // Studio look-ahead ≤ 1 s at 44.1 kHz including the STFT window.
    const StftFormat format{};
    EXPECT_LE(static_cast<double>(format.fft_size + studio->lookahead * format.hop) / 44100.0, 1.0);
    // Render sees further ahead than Studio, and as far behind (its look-ahead is the centre of
    // its receptive field).
    auto render = NeuralModel::load(kWeights + "render.stsnn", &error);
    ASSERT_TRUE(render) << error;
    EXPECT_EQ(render->variant, NeuralVariant::kRender);
    EXPECT_GT(render->lookahead, studio->lookahead);
    EXPECT_EQ(2 * render->lookahead + 1, render->receptive_field());
}

// Each neural mode loads only models made for the modes they are named after: a model file in
// the wrong place (a Live model named render.stsnn, ...) gives a clear error naming the mode and
// the file, never a processor with an unexpected latency.
TEST(NeuralModelFile, EachModeRefusesAnotherModesModel) {
    namespace fs = std::filesystem;
    const fs::path swapped = fs::path(::testing::TempDir()) / "stemsphere-swapped-models";
    fs::remove_all(swapped);
    fs::create_directories(swapped);
    fs::copy_file(kWeights + "studio.stsnn", swapped / "live.stsnn");
    fs::copy_file(kWeights + "render.stsnn", swapped / "studio.stsnn");
    fs::copy_file(kWeights + "live.stsnn", swapped / "render.stsnn");
    size_t previous_latency = 0;
    for (QualityMode mode :
         {QualityMode::kLiveNeural, QualityMode::kStudio, QualityMode::kRender}) {
        std::string error;
        EXPECT_FALSE(Processor::create(44100.0, mode, swapped.string(), &error));
        EXPECT_NE(error.find(quality_mode_name(mode)), std::string::npos) << error;
        EXPECT_NE(error.find("is not a"), std::string::npos) << error;
        error.clear();
        auto right = Processor::create(44100.0, mode, kWeights, &error);
        ASSERT_TRUE(right) << error;
        EXPECT_GT(right->latency(), previous_latency) << quality_mode_name(mode);
        previous_latency = right->latency();
    }
    fs::remove_all(swapped);
}

}  // namespace
}  // namespace stemsphere
