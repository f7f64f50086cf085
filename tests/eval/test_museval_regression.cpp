// museval's own regression vector: v4 frame scores of seeded random estimates on the
// "Music Delta - 80s Rock" preview (museval tests/test_regression.py). Reproducing numpy's
// np.random.seed(0); np.random.random(shape) bit-exactly makes the comparison meaningful.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "tests/eval/json_lite.h"
#include "tools/eval/metrics.h"
#include "tools/eval/scoring.h"

namespace stemsphere::eval {
namespace {

const std::filesystem::path kShared = STEMSPHERE_SHARED_DIR;
const std::filesystem::path kTrack = kShared / "stems/musdb18-previews/Music Delta - 80s Rock";
const std::filesystem::path kVector =
    kShared / "stems/metric-vectors/museval/Music Delta - 80s Rock.json";

// numpy's legacy random_sample(): MT19937 seeded with init_genrand, 53-bit doubles
// ((a >> 5)·2^26 + (b >> 6)) / 2^53. std::mt19937(0) produces the same 32-bit stream.
double numpy_random(std::mt19937& gen) {
    const auto a = static_cast<uint32_t>(gen()) >> 5;
    const auto b = static_cast<uint32_t>(gen()) >> 6;
    return (static_cast<double>(a) * 67108864.0 + static_cast<double>(b)) / 9007199254740992.0;
}

Audio random_like(const Audio& like, std::mt19937& gen) {
    Audio out = like;
    for (double& v : out.samples) v = numpy_random(gen);  // row-major (N, 2) = interleaved
    return out;
}

struct Fixture {
    std::vector<Audio> refs;  // vocals, accompaniment
    std::vector<Audio> ests;
    test::JsonValue expected;
};

Fixture load_fixture() {
    Fixture f;
    StemSet stems = load_stems(kTrack.string(), four_stems());
    add_accompaniment(stems);
    f.refs = {stems.at("vocals"), stems.at("accompaniment")};
    std::mt19937 gen(0);
    for (const Audio& r : f.refs) f.ests.push_back(random_like(r, gen));
    std::ifstream in(kVector);
    std::stringstream text;
    text << in.rdbuf();
    f.expected = test::JsonParser(text.str()).parse();
    return f;
}

std::vector<double> expected_frames(const test::JsonValue& json, size_t target,
                                    const std::string& metric) {
    std::vector<double> out;
    for (const auto& frame : json["targets"][target]["frames"].items) {
        out.push_back(frame["metrics"][metric].number);
    }
    return out;
}

TEST(MusevalRegression, V4SdrFramesMatchMuseval) {
    if (!std::filesystem::exists(kVector) || !std::filesystem::exists(kTrack)) {
        GTEST_SKIP() << "skipped: " << kVector << " not available";
    }
    const Fixture f = load_fixture();
    const auto sdr =
        framewise_sdr_v4({&f.refs[0], &f.refs[1]}, {&f.ests[0], &f.ests[1]}, 44100, 44100);
    double worst = 0.0;
    for (size_t j = 0; j < 2; ++j) {
        const auto want = expected_frames(f.expected, j, "SDR");
        ASSERT_EQ(sdr[j].size(), want.size());
        for (size_t t = 0; t < want.size(); ++t) {
            EXPECT_NEAR(sdr[j][t], want[t], 1e-4) << "target " << j << " frame " << t;
            worst = std::max(worst, std::abs(sdr[j][t] - want[t]));
        }
    }
    std::cout << "museval v4 SDR: max |ours - museval| = " << worst << " dB\n";
}

}  // namespace
}  // namespace stemsphere::eval
