// The synthetic demo song: deterministic, an exact sum of its stems, plausibly placed, and each
// stem sounds like its instrument family in the coarse ways that separation relies on.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "tools/demosong/demo_song.h"

namespace {

using stemsphere::demosong::DemoSong;
using stemsphere::demosong::DemoSongOptions;
using stemsphere::demosong::StereoTrack;

DemoSong make_song(uint64_t seed, double rate = 44100, double seconds = 6) {
    DemoSongOptions options;
    options.seed = seed;
    options.sample_rate = rate;
    options.seconds = seconds;
    return stemsphere::demosong::generate_demo_song(options);
}

double rms(const std::vector<float>& x) {
    double sum = 0;
    for (float v : x) sum += static_cast<double>(v) * static_cast<double>(v);
    return std::sqrt(sum / static_cast<double>(x.size()));
}

double side_to_mid_db(const StereoTrack& track) {
    double mid = 0, side = 0;
    for (size_t i = 0; i < track.left.size(); ++i) {
        const double l = track.left[i], r = track.right[i];
        mid += (l + r) * (l + r);
        side += (l - r) * (l - r);
    }
    return 10.0 * std::log10((side + 1e-30) / (mid + 1e-30));
}

// Fraction of the energy below `hz`, from a one-pole low-pass split (coarse but enough to tell
// a bass line from hi-hats).
double low_energy_fraction(const std::vector<float>& x, double hz, double rate) {
    const double a = std::exp(-2.0 * M_PI * hz / rate);
    double state = 0, low = 0, total = 0;
    for (float v : x) {
        state = (1.0 - a) * static_cast<double>(v) + a * state;
        low += state * state;
        total += static_cast<double>(v) * static_cast<double>(v);
    }
    return low / (total + 1e-30);
}

TEST(DemoSong, SameSeedSameSamplesOtherSeedOtherSong) {
    const DemoSong a = make_song(7);
    const DemoSong b = make_song(7);
    const DemoSong c = make_song(8);
    EXPECT_EQ(a.mixture.left, b.mixture.left);
    EXPECT_EQ(a.vocals.right, b.vocals.right);
    EXPECT_NE(a.mixture.left, c.mixture.left);
}

TEST(DemoSong, MixtureIsTheSumOfTheStemsAtMinusOneDbfs) {
    const DemoSong song = make_song(1, 48000, 5);
    ASSERT_EQ(song.mixture.left.size(), 240000u);
    float peak = 0;
    for (size_t i = 0; i < song.mixture.left.size(); ++i) {
        float l = 0, r = 0;
        for (const StereoTrack* stem : song.stems()) {
            l += stem->left[i];
            r += stem->right[i];
        }
        ASSERT_EQ(l, song.mixture.left[i]) << i;
        ASSERT_EQ(r, song.mixture.right[i]) << i;
        peak = std::max({peak, std::fabs(l), std::fabs(r)});
    }
    EXPECT_NEAR(20.0 * std::log10(static_cast<double>(peak)), -1.0, 0.01);
}

TEST(DemoSong, StemsArePresentAndPlacedLikeAMix) {
    const DemoSong song = make_song(2);
    for (const StereoTrack* stem : song.stems()) EXPECT_GT(rms(stem->left), 0.01);
    EXPECT_LT(side_to_mid_db(song.vocals), -100.0);  // centred
    EXPECT_LT(side_to_mid_db(song.bass), -100.0);
    EXPECT_GT(side_to_mid_db(song.other), -12.0);  // spread
    EXPECT_GT(side_to_mid_db(song.drums), -40.0);
    EXPECT_LT(side_to_mid_db(song.drums), -6.0);  // kick centred, hats to one side
}

TEST(DemoSong, BassIsLowAndDrumsAreBroadband) {
    const DemoSong song = make_song(3);
    const double rate = song.sample_rate;
    const double bass_low = low_energy_fraction(song.bass.left, 300, rate);
    EXPECT_GT(bass_low, 0.6);
    EXPECT_LT(low_energy_fraction(song.vocals.left, 150, rate), 0.2);
    // The kick dominates the drums' energy, but snare and hats reach far higher than the bass.
    const double drums_high = 1.0 - low_energy_fraction(song.drums.right, 4000, rate);
    const double bass_high = 1.0 - low_energy_fraction(song.bass.left, 4000, rate);
    EXPECT_GT(drums_high, 5.0 * bass_high);
}

TEST(DemoSong, WorksAtEveryRateAndReportsItsSpeed) {
    for (double rate : {22050.0, 44100.0, 96000.0, 192000.0}) {
        const auto start = std::chrono::steady_clock::now();
        const DemoSong song = make_song(4, rate, 20);
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("demo song: 20 s at %.0f Hz generated in %.3f s (%.0fx real time)\n", rate,
                    seconds, 20.0 / seconds);
        ASSERT_EQ(song.mixture.left.size(), static_cast<size_t>(20 * rate));
        for (float v : song.mixture.left) ASSERT_TRUE(std::isfinite(v));
    }
}

}  // namespace
