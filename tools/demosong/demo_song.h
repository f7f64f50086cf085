#pragma once
// A deterministic synthetic song with its ground-truth stems: held-out material for the demo,
// tests and benchmarks (never real recordings). Same seed, rate and length -> same samples.
//
//  vocals: formant-synthesised sung melody (glottal saw, vowel formants, vibrato, syllables)
//  drums:  synthesised kick, snare, closed/open hats
//  bass:   plucked subtractive bass line on the chord roots
//  other:  a detuned saw pad and a piano-like arpeggio (inharmonic decaying partials)
// Vocals and bass are centred, the drum kit and the "other" parts are spread. The mixture is the
// exact sample sum of the four stems, peak-normalised to -1 dBFS.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace stemsphere::demosong {

struct DemoSongOptions {
    uint64_t seed = 1;
    double sample_rate = 44100;  // 8 kHz .. 384 kHz
    double seconds = 20;         // > 0, at most 600
};

struct StereoTrack {
    std::vector<float> left;
    std::vector<float> right;
};

struct DemoSong {
    double sample_rate = 0;
    double tempo_bpm = 0;
    std::string key;  // e.g. "D major"
    StereoTrack vocals, drums, bass, other;
    StereoTrack mixture;  // vocals + drums + bass + other, sample by sample

    static constexpr std::array<const char*, 4> kStemNames = {"vocals", "drums", "bass", "other"};
    // The stems in kStemNames order.
    std::array<const StereoTrack*, 4> stems() const { return {&vocals, &drums, &bass, &other}; }
};

// Checks the options; false with a one-line *error when they are out of range.
bool validate(const DemoSongOptions& options, std::string* error);

// Generates the song. The options must pass validate().
DemoSong generate_demo_song(const DemoSongOptions& options);

}  // namespace stemsphere::demosong
