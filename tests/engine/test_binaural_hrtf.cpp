// HRTF loading, validation and interpolation: properties T1-T6, T12, T13 of
// shared/docs/binaural.md section 6, on the MIT KEMAR set Debian's libmysofa ships.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "engine/binaural/binaural_metrics.h"
#include "engine/binaural/hrtf_set.h"
#include "engine/binaural/sphere_triangulation.h"

namespace stemsphere {
namespace {

const char* const kDefaultSofa = "/usr/share/libmysofa/default.sofa";

bool have_default_sofa() {
    return std::filesystem::exists(kDefaultSofa);
}

#define REQUIRE_DEFAULT_SOFA()                                                    \
    do {                                                                          \
        if (!have_default_sofa()) GTEST_SKIP() << "skipped: no " << kDefaultSofa; \
    } while (0)

// One prepared set per rate for the whole test program (loading is the slow part).
const HrtfSet& default_set(double rate) {
    static std::map<double, std::unique_ptr<HrtfSet>> cache;
    auto& slot = cache[rate];
    if (!slot) {
        std::string error;
        slot = HrtfSet::load(kDefaultSofa, rate, &error);
        if (!slot) ADD_FAILURE() << error;
    }
    return *slot;
}

struct FilterPair {
    std::vector<float> left, right;
};

FilterPair design(const HrtfSet& set, const Vec3& direction,
                  HrtfInterpolation mode = HrtfInterpolation::kBarycentric) {
    HrtfSet::Scratch scratch(set.filter_taps());
    FilterPair f{std::vector<float>(set.filter_taps()), std::vector<float>(set.filter_taps())};
    uint32_t hint = 0;
    set.design_filters(direction, mode, &hint, scratch, f.left.data(), f.right.data());
    return f;
}

FilterPair design(const HrtfSet& set, double az, double el) {
    return design(set, direction_from_degrees(az, el));
}

double itd_ms(const FilterPair& f, double rate) {
    return 1000.0 * interaural_time_difference(f.left, f.right, rate);
}

TEST(BinauralMetrics, ItdOfDelayedImpulseIsTheDelay) {
    std::vector<float> left(256, 0.0f), right(256, 0.0f);
    left[20] = 1.0f;
    right[51] = 0.5f;  // right ear lags by 31 samples
    EXPECT_NEAR(interaural_time_difference(left, right, 48000.0), 31.0 / 48000.0, 1.0 / 384000.0);
    EXPECT_NEAR(interaural_time_difference(right, left, 48000.0), -31.0 / 48000.0, 1.0 / 384000.0);
    EXPECT_NEAR(interaural_level_difference_db(left, right, 48000.0, 100.0, 10000.0),
                20.0 * std::log10(2.0), 1e-6);
}

TEST(SphereTriangulation, OctahedronLocatesWithExactWeights) {
    const std::vector<Vec3> dirs{{1, 0, 0},  {-1, 0, 0}, {0, 1, 0},
                                 {0, -1, 0}, {0, 0, 1},  {0, 0, -1}};
    std::string error;
    auto tri = SphereTriangulation::build(dirs, &error);
    ASSERT_TRUE(tri) << error;
    EXPECT_EQ(tri->triangle_count(), 8u);
    const auto loc = tri->locate(normalised({1, 2, 3}), 5);
    // Cone weights of (1,2,3) on the axes are (1,2,3); normalised to sum 1.
    std::vector<float> w(6, 0.0f);
    for (int i = 0; i < 3; ++i) w[loc.vertex[i]] = loc.weight[i];
    EXPECT_NEAR(w[0], 1.0 / 6, 1e-6);
    EXPECT_NEAR(w[2], 2.0 / 6, 1e-6);
    EXPECT_NEAR(w[4], 3.0 / 6, 1e-6);
}

TEST(SphereTriangulation, RejectsDegenerateInput) {
    std::string error;
    const std::vector<Vec3> ring{{1, 0, 0}, {0, 1, 0}, {-1, 0, 0}, {0, -1, 0}};
    EXPECT_FALSE(SphereTriangulation::build(ring, &error));
    EXPECT_NE(error.find("plane"), std::string::npos) << error;
    const std::vector<Vec3> dup{{1, 0, 0}, {1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0, 0, -1}, {-1, 0, 0}};
    EXPECT_FALSE(SphereTriangulation::build(dup, &error));
}

TEST(HrtfSet, DefaultSetLoadsWithFullHull) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = default_set(48000.0);
    EXPECT_EQ(set.measurement_count(), 710u);
    std::printf("MIT KEMAR at 48 kHz: %u-tap filters\n", set.filter_taps());
    // 710 measurements + a synthesised south pole (the set stops at -40 degrees).
    EXPECT_EQ(set.triangulation().vertex_count(), 711u);
    EXPECT_EQ(set.triangulation().triangle_count(), 2u * 711u - 4u);
    // Any direction, walked to from any hint, gets non-negative weights reproducing it.
    std::mt19937 rng(7);
    std::normal_distribution<double> g;
    for (int i = 0; i < 500; ++i) {
        const Vec3 d = normalised({g(rng), g(rng), g(rng)});
        const auto loc = set.triangulation().locate(d, static_cast<uint32_t>(i * 37 % 1418));
        Vec3 sum;
        for (int k = 0; k < 3; ++k) {
            EXPECT_GE(loc.weight[k], 0.0f);
            const Vec3& v = k < 3 && loc.vertex[k] < 710 ? set.measurement_direction(loc.vertex[k])
                                                         : Vec3{0, 0, -1};
            const double w = loc.weight[k];
            sum = {sum.x + w * v.x, sum.y + w * v.y, sum.z + w * v.z};
        }
        const Vec3 n = normalised(sum);
        EXPECT_GT(dot(n, d), 1.0 - 1e-6);  // float weights
    }
}

// T1: ITD at +-90 degrees, right ear lagging for a source on the left.
TEST(HrtfSet, ItdAtNinetyDegreesMatchesKemar) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = default_set(48000.0);
    const double left = itd_ms(design(set, 90, 0), 48000.0);
    const double right = itd_ms(design(set, -90, 0), 48000.0);
    std::printf("ITD +90: %.4f ms, -90: %.4f ms\n", left, right);
    EXPECT_NEAR(left, 0.70, 0.05);
    EXPECT_NEAR(right, -left, 0.010);
}

// T2: ITD grows monotonically from the front to the side, including between measurements.
TEST(HrtfSet, ItdGrowsMonotonicallyTowardsTheSide) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = default_set(48000.0);
    double previous = -1.0;
    for (int az = 0; az <= 90; az += 5) {
        const double itd = itd_ms(design(set, az, 0), 48000.0);
        if (az == 0) {
            EXPECT_NEAR(itd, 0.0, 0.010);
        } else if (az == 30) {
            EXPECT_TRUE(itd > 0.24 && itd < 0.31) << itd;
        } else if (az == 45) {
            EXPECT_TRUE(itd > 0.36 && itd < 0.55) << itd;
        }
        EXPECT_GE(itd, previous - 0.020) << "az " << az;
        previous = std::max(previous, itd);
    }
}

// T3: ILD grows with frequency and flips sign on the other side.
TEST(HrtfSet, IldAtNinetyDegrees) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = default_set(48000.0);
    const FilterPair f = design(set, 90, 0);
    auto octave = [&](const FilterPair& p, double fc) {
        return interaural_level_difference_db(p.left, p.right, 48000.0, fc / std::sqrt(2.0),
                                              fc * std::sqrt(2.0));
    };
    const double ild1k = octave(f, 1000.0), ild8k = octave(f, 8000.0);
    const double broadband = interaural_level_difference_db(f.left, f.right, 48000.0, 20, 20000);
    std::printf("ILD +90: 0.5k %.2f, 1k %.2f, 4k %.2f, 8k %.2f, broadband %.2f dB\n",
                octave(f, 500.0), ild1k, octave(f, 4000.0), ild8k, broadband);
    EXPECT_NEAR(ild1k, 6.0, 3.0);
    EXPECT_GE(ild8k, 15.0);
    EXPECT_GE(octave(f, 4000.0), 9.0);
    EXPECT_TRUE(broadband > 10.0 && broadband < 20.0) << broadband;
    EXPECT_NEAR(octave(design(set, -90, 0), 8000.0), -ild8k, 0.01);
}

// T12: MIT KEMAR normal pinna is mirrored, so the left filter at +az is the right one at -az.
TEST(HrtfSet, LeftRightMirrorSymmetry) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = default_set(48000.0);
    for (const auto& [az, el] :
         std::vector<std::pair<double, double>>{{30, 0}, {90, 0}, {135, 20}, {45, -30}, {10, 60}}) {
        const FilterPair a = design(set, az, el), b = design(set, -az, el);
        double peak = 0.0, diff = 0.0;
        for (size_t i = 0; i < a.left.size(); ++i) {
            peak = std::max(peak, double(std::fabs(a.left[i])));
            diff = std::max(diff, double(std::fabs(a.left[i] - b.right[i])));
            diff = std::max(diff, double(std::fabs(a.right[i] - b.left[i])));
        }
        EXPECT_LT(20.0 * std::log10(diff / peak + 1e-30), -100.0) << az << "/" << el;
    }
}

// T5: at measured directions the filters are the measured responses (alignment and delay split
// are lossless): same magnitude, same ITD.
TEST(HrtfSet, InterpolationHitsMeasuredData) {
    REQUIRE_DEFAULT_SOFA();
    HrtfMeasurements raw;
    std::string error;
    ASSERT_TRUE(HrtfSet::read_sofa(kDefaultSofa, &raw, &error)) << error;
    const HrtfSet& set = default_set(raw.sample_rate);
    double worst_sd = 0.0, worst_itd = 0.0;
    for (size_t m = 0; m < raw.count(); m += 23) {
        const FilterPair f = design(set, raw.directions[m]);
        const std::span<const float> l(raw.impulse_response(m, 0), raw.taps);
        const std::span<const float> r(raw.impulse_response(m, 1), raw.taps);
        worst_sd = std::max({worst_sd, spectral_distortion_db(l, f.left, raw.sample_rate),
                             spectral_distortion_db(r, f.right, raw.sample_rate)});
        const double itd_raw = interaural_time_difference(l, r, raw.sample_rate);
        const double itd_set = interaural_time_difference(f.left, f.right, raw.sample_rate);
        worst_itd = std::max(worst_itd, std::fabs(itd_raw - itd_set));
    }
    std::printf("measured directions: worst SD %.4f dB, worst ITD error %.3f us\n", worst_sd,
                worst_itd * 1e6);
    EXPECT_LT(worst_sd, 0.1);
    EXPECT_LT(worst_itd, 1e-6);
}

// T6: leave-one-out. Interpolating a removed measurement from its neighbours must stay within
// 2.5 dB spectral distortion on average and beat taking the nearest remaining measurement.
TEST(HrtfSet, LeaveOneOutInterpolationBeatsNearest) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& set = default_set(48000.0);
    std::vector<double> interp_sd, nearest_sd;
    size_t worse_than_nearest = 0;
    for (size_t out = 3; out < set.measurement_count(); out += 29) {
        std::vector<uint32_t> keep;
        for (uint32_t m = 0; m < set.measurement_count(); ++m) {
            if (m != out) keep.push_back(m);
        }
        std::string error;
        auto sparse = set.subset(keep, &error);
        ASSERT_TRUE(sparse) << error;
        const Vec3 d = set.measurement_direction(out);
        const FilterPair ref = design(set, d);
        const FilterPair interp = design(*sparse, d);
        const FilterPair near = design(*sparse, d, HrtfInterpolation::kNearest);
        const double si = 0.5 * (spectral_distortion_db(ref.left, interp.left, 48000.0) +
                                 spectral_distortion_db(ref.right, interp.right, 48000.0));
        const double sn = 0.5 * (spectral_distortion_db(ref.left, near.left, 48000.0) +
                                 spectral_distortion_db(ref.right, near.right, 48000.0));
        interp_sd.push_back(si);
        nearest_sd.push_back(sn);
        worse_than_nearest += si > sn ? 1 : 0;
    }
    auto mean = [](const std::vector<double>& v) {
        return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    };
    std::vector<double> sorted = interp_sd;
    std::sort(sorted.begin(), sorted.end());
    const double p95 = sorted[sorted.size() * 95 / 100];
    std::printf(
        "leave-one-out over %zu directions: interpolated SD mean %.2f dB (p95 %.2f), "
        "nearest %.2f dB; interpolation worse than nearest at %zu\n",
        interp_sd.size(), mean(interp_sd), p95, mean(nearest_sd), worse_than_nearest);
    EXPECT_LE(mean(interp_sd), 2.5);
    EXPECT_LE(p95, 4.5);
    EXPECT_LT(mean(interp_sd), mean(nearest_sd));
}

// T13: the 44.1 kHz measurements used at 48 and 96 kHz keep ITD, spectrum and level.
TEST(HrtfSet, ResamplingKeepsItdSpectrumAndLevel) {
    REQUIRE_DEFAULT_SOFA();
    const HrtfSet& base = default_set(44100.0);
    const FilterPair front44 = design(base, 0, 0), side44 = design(base, 60, 10);
    const double itd44 = itd_ms(side44, 44100.0);
    for (double rate : {48000.0, 96000.0}) {
        const HrtfSet& set = default_set(rate);
        const FilterPair front = design(set, 0, 0), side = design(set, 60, 10);
        EXPECT_NEAR(itd_ms(side, rate), itd44, 1000.0 / 44100.0) << rate;
        // Third-octave band levels up to 0.9 x the lower Nyquist frequency.
        double sum = 0.0;
        int bands = 0;
        for (double fc = 200.0; fc * std::pow(2.0, 1.0 / 6) < 0.9 * 22050.0;
             fc *= std::pow(2.0, 1.0 / 3)) {
            const double lo = fc / std::pow(2.0, 1.0 / 6), hi = fc * std::pow(2.0, 1.0 / 6);
            for (const auto* pair : {&side, &front}) {
                const auto* ref = pair == &side ? &side44 : &front44;
                for (int ear = 0; ear < 2; ++ear) {
                    const auto& a = ear == 0 ? ref->left : ref->right;
                    const auto& b = ear == 0 ? pair->left : pair->right;
                    const double d =
                        band_energy_db(a, 44100.0, lo, hi, 8192) -
                        band_energy_db(b, rate, lo, hi, 8192 * size_t(rate / 44100.0 + 0.5));
                    sum += d * d;
                    ++bands;
                }
            }
        }
        const double sd = std::sqrt(sum / bands);
        const double level_diff =
            band_energy_db(front44.left, 44100.0, 200, 16000, 8192) -
            band_energy_db(front.left, rate, 200, 16000, 8192 * size_t(rate / 44100.0 + 0.5));
        std::printf("%g Hz: ITD(60/10) %.4f vs %.4f ms, band SD %.3f dB, frontal level %+.3f dB\n",
                    rate, itd_ms(side, rate), itd44, sd, level_diff);
        EXPECT_LT(sd, 0.5) << rate;
        EXPECT_NEAR(level_diff, 0.0, 0.3) << rate;
    }
}

// ---- bad input: clear error, no crash -----------------------------------------------------------

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() /
            ("stemsphere-binaural-" + std::to_string(::getpid()) + "-" + name))
        .string();
}

std::vector<char> read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const std::vector<char>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string load_error(const std::string& path) {
    std::string error;
    auto set = HrtfSet::load(path, 48000.0, &error);
    EXPECT_FALSE(set) << path;
    EXPECT_FALSE(error.empty()) << path;
    return error;
}

TEST(HrtfSetErrors, MissingAndNonSofaFiles) {
    EXPECT_NE(load_error("/nonexistent/kemar.sofa").find("cannot open"), std::string::npos);
    const std::string text = temp_path("text.sofa");
    write_all(text, {'h', 'e', 'l', 'l', 'o', '\n'});
    EXPECT_NE(load_error(text).find("not a SOFA file"), std::string::npos);
    write_all(text, {});
    EXPECT_NE(load_error(text).find("not a SOFA file"), std::string::npos);
    EXPECT_FALSE(load_error(std::filesystem::temp_directory_path().string()).empty());
    std::filesystem::remove(text);
}

TEST(HrtfSetErrors, TruncatedFilesAreRejected) {
    REQUIRE_DEFAULT_SOFA();
    const std::vector<char> bytes = read_all(kDefaultSofa);
    const std::string path = temp_path("truncated.sofa");
    for (size_t length : {size_t{8}, size_t{100}, size_t{4096}, bytes.size() / 3, bytes.size() / 2,
                          bytes.size() - 1000, bytes.size() - 1}) {
        write_all(path, std::vector<char>(bytes.begin(), bytes.begin() + long(length)));
        const std::string error = load_error(path);
        EXPECT_NE(error.find("SOFA"), std::string::npos) << length << ": " << error;
    }
    std::filesystem::remove(path);
}

TEST(HrtfSetErrors, WrongConventionIsNamed) {
    REQUIRE_DEFAULT_SOFA();
    std::vector<char> bytes = read_all(kDefaultSofa);
    // The convention name is an uncompressed HDF5 attribute: patch it in a copy.
    const std::string from = "SimpleFreeFieldHRIR", to = "SimpleFreeFieldHRTF";
    auto at = std::search(bytes.begin(), bytes.end(), from.begin(), from.end());
    ASSERT_NE(at, bytes.end());
    std::copy(to.begin(), to.end(), at);
    const std::string path = temp_path("convention.sofa");
    write_all(path, bytes);
    EXPECT_EQ(load_error(path), "convention SimpleFreeFieldHRTF, need SimpleFreeFieldHRIR");
    std::filesystem::remove(path);
}

// Data.IR is deflate-compressed in SOFA files, so NaNs cannot be patched into a copy; the same
// validation runs on in-memory measurements.
HrtfMeasurements small_measurements() {
    HrtfMeasurements m;
    m.sample_rate = 48000.0;
    m.taps = 64;
    for (int el : {-60, 0, 60}) {
        for (int az = 0; az < 360; az += 45) m.directions.push_back(direction_from_degrees(az, el));
    }
    m.impulse_responses.assign(m.count() * 2 * m.taps, 0.0f);
    for (size_t i = 0; i < m.count(); ++i) {
        const double y = m.directions[i].y;  // left-right position drives a toy ITD
        m.impulse_responses[(i * 2 + 0) * m.taps + 10 + size_t(std::lround(4 - 4 * y))] = 1.0f;
        m.impulse_responses[(i * 2 + 1) * m.taps + 10 + size_t(std::lround(4 + 4 * y))] = 1.0f;
    }
    return m;
}

TEST(HrtfSetErrors, InvalidMeasurementsAreRejected) {
    std::string error;
    HrtfMeasurements good = small_measurements();
    ASSERT_TRUE(HrtfSet::from_measurements(good, 48000.0, &error)) << error;

    HrtfMeasurements nan = good;
    nan.impulse_responses[77] = std::nanf("");
    EXPECT_FALSE(HrtfSet::from_measurements(nan, 48000.0, &error));
    EXPECT_EQ(error.rfind("NaN in HRIR data", 0), 0u) << error;

    HrtfMeasurements inf = good;
    inf.impulse_responses[5] = INFINITY;
    EXPECT_FALSE(HrtfSet::from_measurements(inf, 48000.0, &error));
    EXPECT_EQ(error.rfind("Inf in HRIR data", 0), 0u) << error;

    HrtfMeasurements short_data = good;
    short_data.impulse_responses.pop_back();
    EXPECT_FALSE(HrtfSet::from_measurements(short_data, 48000.0, &error));
    EXPECT_NE(error.find("expected"), std::string::npos) << error;

    HrtfMeasurements rate = good;
    rate.sample_rate = 0.0;
    EXPECT_FALSE(HrtfSet::from_measurements(rate, 48000.0, &error));
    EXPECT_NE(error.find("sample rate"), std::string::npos) << error;
    EXPECT_FALSE(HrtfSet::from_measurements(good, -1.0, &error));

    HrtfMeasurements position = good;
    position.directions[3].z = std::nan("");
    EXPECT_FALSE(HrtfSet::from_measurements(position, 48000.0, &error));
    EXPECT_NE(error.find("NaN in source positions"), std::string::npos) << error;

    HrtfMeasurements silent = good;
    std::fill(silent.impulse_responses.begin(), silent.impulse_responses.end(), 0.0f);
    EXPECT_FALSE(HrtfSet::from_measurements(silent, 48000.0, &error));

    HrtfSet::Options too_short;
    too_short.filter_taps = 8;
    EXPECT_FALSE(HrtfSet::from_measurements(good, 48000.0, &error, too_short));
    EXPECT_NE(error.find("too short"), std::string::npos) << error;
}

// A set with only a few rings still triangulates (poles are synthesised) and renders its ITD.
TEST(HrtfSet, SparseSetGetsPolesAndItd) {
    std::string error;
    auto set = HrtfSet::from_measurements(small_measurements(), 48000.0, &error);
    ASSERT_TRUE(set) << error;
    EXPECT_EQ(set->triangulation().vertex_count(), set->measurement_count() + 2);
    const FilterPair f = design(*set, 90, 0);
    EXPECT_NEAR(interaural_time_difference(f.left, f.right, 48000.0), 8.0 / 48000.0, 1.0 / 48000.0);
}

}  // namespace
}  // namespace stemsphere
