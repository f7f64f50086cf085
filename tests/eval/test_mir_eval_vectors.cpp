// mir_eval's BSS Eval v3 vectors (tests/data/separation, MATLAB BSS_Eval results): sources,
// framewise sources, images and framewise images, with the images built from the mono signals
// exactly as mir_eval's test does (extra channels = gain × the first), tolerance 1e-2 as there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "tests/eval/json_lite.h"
#include "tools/eval/bss_eval.h"

namespace stemsphere::eval {
namespace {

const std::filesystem::path kVectors =
    std::filesystem::path(STEMSPHERE_SHARED_DIR) / "stems/metric-vectors/mir_eval";
constexpr double kTolerance = 1e-2;  // mir_eval's A_TOL

// mir_eval.io.load_wav(mono=True) for every <dir>/<k>.wav: channel mean.
std::vector<Audio> load_mono_dir(const std::filesystem::path& dir) {
    std::vector<Audio> out;
    for (size_t k = 0;; ++k) {
        const auto path = dir / (std::to_string(k) + ".wav");
        if (!std::filesystem::exists(path)) break;
        const Audio a = read_audio(path.string());
        Audio mono{a.sample_rate, 1, std::vector<double>(a.frames(), 0.0)};
        for (size_t n = 0; n < a.frames(); ++n) {
            for (size_t c = 0; c < a.channels; ++c) mono.samples[n] += a.at(n, c);
            mono.samples[n] /= static_cast<double>(a.channels);
        }
        out.push_back(mono);
    }
    return out;
}

// mir_eval's __generate_multichannel: channel 0 = the signal, channels 1.. = gain × signal.
// mir_eval's test applies gain (and "reverse", which reverses the list of the identical extra
// channels and so changes nothing) to the estimates only: references get nchan equal channels.
// Checked against the vectors: with gain 0 the image SDR is 10·log10(2S / (E + S)).
std::vector<Audio> multichannel(const std::vector<Audio>& mono, size_t nchan, double gain) {
    std::vector<Audio> out;
    for (const Audio& m : mono) {
        Audio a{m.sample_rate, nchan, std::vector<double>(m.frames() * nchan)};
        for (size_t n = 0; n < m.frames(); ++n) {
            for (size_t c = 0; c < nchan; ++c) {
                a.samples[n * nchan + c] = c == 0 ? m.samples[n] : gain * m.samples[n];
            }
        }
        out.push_back(a);
    }
    return out;
}

test::JsonValue load_json(const std::filesystem::path& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return test::JsonParser(text.str()).parse();
}

// Largest finite |ours − expected| seen in the current test, printed at its end.
double g_worst = 0.0;

void expect_close(const std::vector<double>& ours, const std::vector<double>& want,
                  const std::string& what) {
    ASSERT_EQ(ours.size(), want.size()) << what;
    for (size_t i = 0; i < want.size(); ++i) {
        if (std::isinf(want[i])) {
            EXPECT_EQ(ours[i], want[i]) << what << " [" << i << "]";
        } else {
            EXPECT_NEAR(ours[i], want[i], kTolerance) << what << " [" << i << "]";
            g_worst = std::max(g_worst, std::abs(ours[i] - want[i]));
        }
    }
}

void expect_close_2d(const std::vector<std::vector<double>>& ours, const test::JsonValue& want,
                     const std::string& what) {
    ASSERT_EQ(ours.size(), want.items.size()) << what;
    for (size_t j = 0; j < ours.size(); ++j) {
        expect_close(ours[j], want[j].numbers(), what + " source " + std::to_string(j));
    }
}

std::vector<double> as_doubles(const std::vector<size_t>& v) {
    return {v.begin(), v.end()};
}

class MirEvalVectors : public ::testing::TestWithParam<const char*> {
  protected:
    void SetUp() override {
        if (!std::filesystem::exists(kVectors)) {
            GTEST_SKIP() << "skipped: " << kVectors << " not available";
        }
        refs_ = load_mono_dir(kVectors / (std::string("ref") + GetParam()));
        ests_ = load_mono_dir(kVectors / (std::string("est") + GetParam()));
        expected_ = load_json(kVectors / (std::string("output") + GetParam() + ".json"));
        ASSERT_FALSE(refs_.empty());
        ASSERT_EQ(refs_.size(), ests_.size());
        g_worst = 0.0;
    }
    void TearDown() override {
        if (!IsSkipped()) std::cout << "max |ours - MATLAB BSS_Eval| = " << g_worst << " dB\n";
    }
    std::vector<Audio> refs_, ests_;
    test::JsonValue expected_;
};

TEST_P(MirEvalVectors, Sources) {
    const auto& want = expected_["Sources"];
    const BssScores s = bss_eval_sources(refs_, ests_, true);
    expect_close(s.sdr, want["Source to Distortion"].numbers(), "SDR");
    expect_close(s.sir, want["Source to Interference"].numbers(), "SIR");
    expect_close(s.sar, want["Source to Artifact"].numbers(), "SAR");
    expect_close(as_doubles(s.permutation), want["Source permutation"].numbers(), "permutation");
}

TEST_P(MirEvalVectors, SourcesFramewise) {
    const auto& want = expected_["Framewise"];
    const auto s = bss_eval_sources_framewise(refs_, ests_, static_cast<size_t>(want["win"].number),
                                              static_cast<size_t>(want["hop"].number));
    expect_close_2d(s.sdr, want["Source to Distortion"], "SDR");
    expect_close_2d(s.sir, want["Source to Interference"], "SIR");
    expect_close_2d(s.sar, want["Source to Artifact"], "SAR");
}

TEST_P(MirEvalVectors, Images) {
    const auto& want = expected_["Images"];
    const auto nchan = static_cast<size_t>(want["nchan"].number);
    const BssScores s = bss_eval_images(multichannel(refs_, nchan, 1.0),
                                        multichannel(ests_, nchan, want["gain"].number), true);
    expect_close(s.sdr, want["Source to Distortion"].numbers(), "SDR");
    expect_close(s.isr, want["Image to Spatial"].numbers(), "ISR");
    expect_close(s.sir, want["Source to Interference"].numbers(), "SIR");
    expect_close(s.sar, want["Source to Artifact"].numbers(), "SAR");
    expect_close(as_doubles(s.permutation), want["Source permutation"].numbers(), "permutation");
}

TEST_P(MirEvalVectors, ImagesFramewise) {
    const auto& want = expected_["Images Framewise"];
    const auto nchan = static_cast<size_t>(want["nchan"].number);
    const auto s = bss_eval_images_framewise(
        multichannel(refs_, nchan, 1.0), multichannel(ests_, nchan, want["gain"].number),
        static_cast<size_t>(want["win"].number), static_cast<size_t>(want["hop"].number));
    expect_close_2d(s.sdr, want["Source to Distortion"], "SDR");
    expect_close_2d(s.isr, want["Image to Spatial"], "ISR");
    expect_close_2d(s.sir, want["Source to Interference"], "SIR");
    expect_close_2d(s.sar, want["Source to Artifact"], "SAR");
}

INSTANTIATE_TEST_SUITE_P(Cases, MirEvalVectors,
                         ::testing::Values("01", "02", "03", "05", "06", "07", "08", "09"));

}  // namespace
}  // namespace stemsphere::eval
