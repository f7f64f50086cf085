#include "tools/demosong/demo_song.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numbers>

namespace stemsphere::demosong {

namespace {

constexpr double kTwoPi = 2.0 * std::numbers::pi;

// splitmix64: the same numbers on every platform and standard library (std:: distributions are
// implementation-defined, which would break "same seed -> same song").
class Rng {
  public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next() {
        uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    double noise() { return 2.0 * uniform() - 1.0; }                            // [-1, 1)
    int below(int n) { return static_cast<int>(uniform() * n); }
    bool chance(double p) { return uniform() < p; }

  private:
    uint64_t state_;
};

double midi_to_hz(double note) {
    return 440.0 * std::pow(2.0, (note - 69.0) / 12.0);
}

// RBJ cookbook biquad, direct form I.
class Biquad {
  public:
    static Biquad lowpass(double f, double q, double rate) { return make(f, q, rate, 0); }
    static Biquad highpass(double f, double q, double rate) { return make(f, q, rate, 1); }
    static Biquad bandpass(double f, double q, double rate) { return make(f, q, rate, 2); }
    double process(double x) {
        const double y = b0_ * x + b1_ * x1_ + b2_ * x2_ - a1_ * y1_ - a2_ * y2_;
        x2_ = x1_;
        x1_ = x;
        y2_ = y1_;
        y1_ = y;
        return y;
    }

  private:
    static Biquad make(double f, double q, double rate, int kind) {
        const double w = kTwoPi * std::min(f, 0.45 * rate) / rate;
        const double alpha = std::sin(w) / (2.0 * q);
        const double c = std::cos(w);
        const double a0 = 1.0 + alpha;
        Biquad bq;
        if (kind == 0) {
            bq.b0_ = (1.0 - c) / 2.0 / a0;
            bq.b1_ = (1.0 - c) / a0;
            bq.b2_ = bq.b0_;
        } else if (kind == 1) {
            bq.b0_ = (1.0 + c) / 2.0 / a0;
            bq.b1_ = -(1.0 + c) / a0;
            bq.b2_ = bq.b0_;
        } else {
            bq.b0_ = alpha / a0;
            bq.b1_ = 0.0;
            bq.b2_ = -alpha / a0;
        }
        bq.a1_ = -2.0 * c / a0;
        bq.a2_ = (1.0 - alpha) / a0;
        return bq;
    }
    double b0_ = 1, b1_ = 0, b2_ = 0, a1_ = 0, a2_ = 0;
    double x1_ = 0, x2_ = 0, y1_ = 0, y2_ = 0;
};

// Band-limited sawtooth (polyBLEP): cheap and without audible aliasing at these pitches.
class Saw {
  public:
    explicit Saw(double phase = 0) : phase_(phase) {}
    double next(double hz, double rate) {
        const double dt = std::min(hz / rate, 0.5);
        double value = 2.0 * phase_ - 1.0;
        if (phase_ < dt) {
            const double t = phase_ / dt;
            value -= t + t - t * t - 1.0;
        } else if (phase_ > 1.0 - dt) {
            const double t = (phase_ - 1.0) / dt;
            value -= t * t + t + t + 1.0;
        }
        phase_ += dt;
        if (phase_ >= 1.0) phase_ -= 1.0;
        return value;
    }

  private:
    double phase_;
};

// Trapezoidal state-variable low-pass (Simper), stable under fast cutoff sweeps.
class SweptLowpass {
  public:
    double process(double x, double cutoff, double q, double rate) {
        const double g = std::tan(std::numbers::pi * std::min(cutoff, 0.45 * rate) / rate);
        const double k = 1.0 / q;
        const double a1 = 1.0 / (1.0 + g * (g + k));
        const double v3 = x - ic2_;
        const double v1 = a1 * ic1_ + g * a1 * v3;
        const double v2 = ic2_ + g * v1;
        ic1_ = 2.0 * v1 - ic1_;
        ic2_ = 2.0 * v2 - ic2_;
        return v2;
    }

  private:
    double ic1_ = 0, ic2_ = 0;
};

// Adds a mono voice into a stereo track with constant-power panning (-1 left .. +1 right).
class Placer {
  public:
    Placer(StereoTrack& track, double pan)
        : track_(track),
          gain_left_(std::cos((pan + 1.0) * std::numbers::pi / 4.0)),
          gain_right_(std::sin((pan + 1.0) * std::numbers::pi / 4.0)) {}
    void add(size_t frame, double value) {
        if (frame >= track_.left.size()) return;
        track_.left[frame] += static_cast<float>(gain_left_ * value);
        track_.right[frame] += static_cast<float>(gain_right_ * value);
    }
    size_t frames() const { return track_.left.size(); }

  private:
    StereoTrack& track_;
    double gain_left_, gain_right_;
};

struct Timeline {
    double rate;
    double step_seconds;  // one eighth note
    int steps_per_bar = 8;
    int bars;
    size_t frame_of(double step) const {
        return static_cast<size_t>(std::llround(step * step_seconds * rate));
    }
};

struct Harmony {
    int tonic;                                   // MIDI note of the key's tonic, octave 3
    std::vector<std::array<int, 3>> bar_chords;  // per bar: chord tones as semitones from tonic
};

constexpr std::array<int, 7> kMajorScale = {0, 2, 4, 5, 7, 9, 11};
constexpr std::array<const char*, 12> kNoteNames = {"C",  "C#", "D",  "D#", "E",  "F",
                                                    "F#", "G",  "G#", "A",  "A#", "B"};

int scale_semitones(int degree) {
    const int octave = degree >= 0 ? degree / 7 : -((-degree + 6) / 7);
    const int index = degree - 7 * octave;
    return 12 * octave + kMajorScale[static_cast<size_t>(index)];
}

Harmony make_harmony(Rng& rng, int bars) {
    static const std::array<std::array<int, 4>, 4> kProgressions = {
        {{0, 4, 5, 3}, {5, 3, 0, 4}, {0, 5, 3, 4}, {0, 3, 4, 3}}};
    Harmony harmony;
    harmony.tonic = 48 + rng.below(12);
    const auto& progression = kProgressions[static_cast<size_t>(rng.below(4))];
    for (int bar = 0; bar < bars; ++bar) {
        const int degree = progression[static_cast<size_t>(bar % 4)];
        harmony.bar_chords.push_back(
            {scale_semitones(degree), scale_semitones(degree + 2), scale_semitones(degree + 4)});
    }
    return harmony;
}

void render_kick(Placer& out, size_t start, double velocity, double rate, Rng& rng) {
    const auto length = static_cast<size_t>(0.45 * rate);
    double phase = 0;
    for (size_t i = 0; i < length; ++i) {
        const double t = static_cast<double>(i) / rate;
        phase += kTwoPi * (48.0 + 110.0 * std::exp(-t * 28.0)) / rate;
        const double body = std::sin(phase) * std::exp(-t * 7.0);
        const double click = 0.25 * rng.noise() * std::exp(-t * 400.0);
        out.add(start + i, velocity * (body + click));
    }
}

void render_snare(Placer& out, size_t start, double velocity, double rate, Rng& rng) {
    const auto length = static_cast<size_t>(0.3 * rate);
    Biquad band = Biquad::bandpass(2200.0, 0.6, rate);
    for (size_t i = 0; i < length; ++i) {
        const double t = static_cast<double>(i) / rate;
        const double tone = 0.45 * std::sin(kTwoPi * 185.0 * t) * std::exp(-t * 22.0);
        const double rattle = 1.6 * band.process(rng.noise()) * std::exp(-t * 13.0);
        out.add(start + i, velocity * (tone + rattle));
    }
}

void render_hat(Placer& out, size_t start, double velocity, bool open, double rate, Rng& rng) {
    const auto length = static_cast<size_t>((open ? 0.35 : 0.06) * rate);
    Biquad high = Biquad::highpass(std::min(7500.0, 0.35 * rate), 0.7, rate);
    const double decay = open ? 9.0 : 70.0;
    for (size_t i = 0; i < length; ++i) {
        const double t = static_cast<double>(i) / rate;
        out.add(start + i, velocity * 0.5 * high.process(rng.noise()) * std::exp(-t * decay));
    }
}

void render_drums(StereoTrack& track, const Timeline& time, Rng& rng) {
    Placer kick(track, 0.0), snare(track, -0.15), hats(track, 0.4);
    for (int bar = 0; bar < time.bars; ++bar) {
        const bool extra_kick = rng.chance(0.4);
        for (int step = 0; step < time.steps_per_bar; ++step) {
            const double at = bar * time.steps_per_bar + step;
            const size_t frame = time.frame_of(at);
            if (step == 0 || step == 4 || (extra_kick && step == 5)) {
                render_kick(kick, frame, step == 5 ? 0.6 : 0.9, time.rate, rng);
            }
            if (step == 2 || step == 6) render_snare(snare, frame, 0.7, time.rate, rng);
            const bool open = step == 7 && rng.chance(0.3);
            render_hat(hats, frame, step % 2 == 0 ? 0.35 : 0.22, open, time.rate, rng);
        }
    }
}

void render_bass(StereoTrack& track, const Timeline& time, const Harmony& harmony, Rng& rng) {
    Placer out(track, 0.0);
    constexpr std::array<int, 8> kPattern = {1, 0, 1, 1, 1, 0, 1, 1};  // which eighths sound
    for (int bar = 0; bar < time.bars; ++bar) {
        const int root = harmony.tonic - 12 + harmony.bar_chords[static_cast<size_t>(bar)][0];
        for (int step = 0; step < time.steps_per_bar; ++step) {
            if (kPattern[static_cast<size_t>(step)] == 0) continue;
            const int note = root + ((step == 3 || step == 7) && rng.chance(0.5) ? 12 : 0);
            const double hz = midi_to_hz(note);
            const size_t start = time.frame_of(bar * time.steps_per_bar + step);
            const auto length = static_cast<size_t>(0.92 * time.step_seconds * time.rate);
            Saw saw(rng.uniform());
            SweptLowpass filter;
            for (size_t i = 0; i < length; ++i) {
                const double t = static_cast<double>(i) / time.rate;
                const double remaining = static_cast<double>(length - i) / time.rate;
                const double env = std::min(1.0, t / 0.003) * (0.55 + 0.45 * std::exp(-t * 9.0)) *
                                   std::min(1.0, remaining / 0.015);
                const double cutoff = 180.0 + 1600.0 * std::exp(-t * 14.0);
                out.add(
                    start + i,
                    0.5 * env * filter.process(saw.next(hz, time.rate), cutoff, 0.9, time.rate));
            }
        }
    }
}

void render_pad(StereoTrack& track, const Timeline& time, const Harmony& harmony, Rng& rng) {
    const double bar_seconds = time.step_seconds * time.steps_per_bar;
    for (int bar = 0; bar < time.bars; ++bar) {
        const size_t start = time.frame_of(bar * time.steps_per_bar);
        const auto length = static_cast<size_t>((bar_seconds + 0.3) * time.rate);
        for (int tone : harmony.bar_chords[static_cast<size_t>(bar)]) {
            // Two detuned voices per note, one per side: a wide pad.
            for (int side = 0; side < 2; ++side) {
                Placer out(track, side == 0 ? -0.8 : 0.8);
                const double hz = midi_to_hz(harmony.tonic + 12 + tone) *
                                  std::pow(2.0, (side == 0 ? -7.0 : 7.0) / 1200.0);
                Saw saw(rng.uniform());
                Biquad soft = Biquad::lowpass(1400.0, 0.7, time.rate);
                for (size_t i = 0; i < length; ++i) {
                    const double t = static_cast<double>(i) / time.rate;
                    const double env = std::min(1.0, t / 0.25) *
                                       std::clamp((bar_seconds + 0.3 - t) / 0.3, 0.0, 1.0);
                    out.add(start + i, 0.045 * env * soft.process(saw.next(hz, time.rate)));
                }
            }
        }
    }
}

void render_piano(StereoTrack& track, const Timeline& time, const Harmony& harmony, Rng& rng) {
    Placer out(track, -0.4);
    constexpr int kPartials = 6;
    constexpr double kInharmonicity = 0.0004;
    for (int bar = 0; bar < time.bars; ++bar) {
        const auto& chord = harmony.bar_chords[static_cast<size_t>(bar)];
        for (int step = 0; step < time.steps_per_bar; ++step) {
            if (rng.chance(0.15)) continue;  // a few gaps keep it from sounding mechanical
            const int tone = chord[static_cast<size_t>(step % 3)] + (step >= 4 ? 12 : 0);
            const double hz = midi_to_hz(harmony.tonic + 24 + tone);
            const size_t start = time.frame_of(bar * time.steps_per_bar + step);
            const auto length = static_cast<size_t>(1.2 * time.rate);
            const double velocity = 0.1 + 0.04 * rng.uniform();
            // Each partial is a decaying phasor advanced by one complex multiply per sample.
            std::array<double, kPartials> re{}, im{}, rot_re{}, rot_im{};
            for (size_t k = 0; k < kPartials; ++k) {
                const double n = static_cast<double>(k) + 1.0;
                const double f = n * hz * std::sqrt(1.0 + kInharmonicity * n * n);
                const double w = f < 0.45 * time.rate ? kTwoPi * f / time.rate : 0.0;
                const double shrink = std::exp(-(2.5 + 1.2 * n) / time.rate);
                rot_re[k] = shrink * std::cos(w);
                rot_im[k] = shrink * std::sin(w);
                re[k] = 0.0;
                im[k] = w > 0.0 ? 1.0 / std::pow(n, 1.4) : 0.0;
            }
            const auto attack = static_cast<double>(static_cast<size_t>(0.002 * time.rate) + 1);
            for (size_t i = 0; i < length; ++i) {
                double v = 0;
                for (size_t k = 0; k < kPartials; ++k) {
                    const double next_re = re[k] * rot_re[k] - im[k] * rot_im[k];
                    im[k] = re[k] * rot_im[k] + im[k] * rot_re[k];
                    re[k] = next_re;
                    v += im[k];
                }
                out.add(start + i, velocity * std::min(1.0, static_cast<double>(i) / attack) * v);
            }
        }
    }
}

struct Vowel {
    std::array<double, 3> formant_hz;
    std::array<double, 3> gain;
};
constexpr std::array<Vowel, 5> kVowels = {{
    {{800, 1150, 2900}, {1.0, 0.5, 0.25}},  // a
    {{400, 1600, 2700}, {1.0, 0.4, 0.2}},   // e
    {{350, 1700, 2700}, {1.0, 0.3, 0.2}},   // i (sung, softened)
    {{450, 800, 2830}, {1.0, 0.35, 0.1}},   // o
    {{325, 700, 2530}, {1.0, 0.25, 0.08}},  // u
}};

struct SungNote {
    double start_step;
    double length_steps;
    int note;
};

// A melody over the chords: chord tones on strong beats, scale steps between, a breath at the
// end of every second bar.
std::vector<SungNote> compose_melody(const Timeline& time, const Harmony& harmony, Rng& rng) {
    std::vector<SungNote> notes;
    int degree = 4 + 2 * rng.below(2);  // scale degree above the tonic
    for (int bar = 0; bar < time.bars; ++bar) {
        const auto& chord = harmony.bar_chords[static_cast<size_t>(bar)];
        const int last_step = bar % 2 == 1 ? 6 : 8;
        for (int step = 0; step < last_step;) {
            const int length = (step % 4 == 0 && rng.chance(0.5)) ? 2 : 1;
            if (step % 2 == 0) {
                // Snap to the nearest chord tone (in scale degrees) on strong eighths.
                int best = degree;
                int best_distance = 99;
                for (int candidate = degree - 3; candidate <= degree + 3; ++candidate) {
                    const int pitch = scale_semitones(candidate) % 12;
                    for (int tone : chord) {
                        if (pitch == tone % 12 && std::abs(candidate - degree) < best_distance) {
                            best = candidate;
                            best_distance = std::abs(candidate - degree);
                        }
                    }
                }
                degree = best;
            } else {
                degree += rng.chance(0.5) ? 1 : -1;
            }
            degree = std::clamp(degree, 2, 10);  // about 165 .. 660 Hz: a singer's range
            notes.push_back({static_cast<double>(bar * time.steps_per_bar + step),
                             static_cast<double>(length), harmony.tonic + scale_semitones(degree)});
            step += length;
        }
    }
    return notes;
}

void render_vocals(StereoTrack& track, const Timeline& time, const Harmony& harmony, Rng& rng) {
    Placer out(track, 0.0);
    const auto melody = compose_melody(time, harmony, rng);
    double previous_hz = midi_to_hz(melody.empty() ? 60 : melody.front().note);
    for (const SungNote& sung : melody) {
        const double hz = midi_to_hz(sung.note);
        const size_t start = time.frame_of(sung.start_step);
        const double seconds = sung.length_steps * time.step_seconds * 0.95;
        const auto length = static_cast<size_t>(seconds * time.rate);
        const Vowel& vowel = kVowels[static_cast<size_t>(rng.below(5))];
        const bool consonant = rng.chance(0.5);
        std::array<Biquad, 3> formants = {Biquad::bandpass(vowel.formant_hz[0], 6.0, time.rate),
                                          Biquad::bandpass(vowel.formant_hz[1], 9.0, time.rate),
                                          Biquad::bandpass(vowel.formant_hz[2], 12.0, time.rate)};
        Biquad hiss = Biquad::highpass(std::min(5000.0, 0.3 * time.rate), 0.7, time.rate);
        Biquad glottal_tilt = Biquad::lowpass(1800.0, 0.6, time.rate);
        Saw glottis(rng.uniform());
        const double vibrato_rate = 5.2 + 0.8 * rng.uniform();
        for (size_t i = 0; i < length; ++i) {
            const double t = static_cast<double>(i) / time.rate;
            // Glide from the previous note, then vibrato fading in after 150 ms.
            const double glide = std::exp(-t / 0.03);
            const double vibrato_depth = 0.35 * std::clamp((t - 0.15) / 0.2, 0.0, 1.0);
            const double semitones = vibrato_depth * std::sin(kTwoPi * vibrato_rate * t);
            const double f0 = (hz + (previous_hz - hz) * glide) * std::pow(2.0, semitones / 12.0);
            const double source =
                glottal_tilt.process(glottis.next(f0, time.rate)) + 0.02 * rng.noise();  // breath
            double voiced = 0;
            for (size_t k = 0; k < formants.size(); ++k) {
                voiced += vowel.gain[k] * formants[k].process(source);
            }
            const double env = std::min(1.0, t / 0.03) *
                               std::clamp((seconds - t) / 0.06, 0.0, 1.0) *
                               (1.0 - 0.15 * std::exp(-t * 6.0));
            double value = 2.2 * env * voiced;
            if (consonant && t < 0.04) value += 0.25 * hiss.process(rng.noise()) * (1.0 - t / 0.04);
            out.add(start + i, value);
        }
        previous_hz = hz;
    }
}

void fade_edges(StereoTrack& track, double rate) {
    const size_t frames = track.left.size();
    const auto fade_in = std::min(frames, static_cast<size_t>(0.01 * rate));
    const auto fade_out = std::min(frames, static_cast<size_t>(1.0 * rate));
    for (size_t i = 0; i < frames; ++i) {
        double g = 1.0;
        if (i < fade_in) g = static_cast<double>(i) / static_cast<double>(fade_in);
        if (frames - i <= fade_out) {
            g = std::min(g, static_cast<double>(frames - i - 1) / static_cast<double>(fade_out));
        }
        track.left[i] *= static_cast<float>(g);
        track.right[i] *= static_cast<float>(g);
    }
}

}  // namespace

bool validate(const DemoSongOptions& options, std::string* error) {
    if (!(options.sample_rate >= 8000 && options.sample_rate <= 384000)) {
        *error = "sample rate must be between 8000 and 384000 Hz";
        return false;
    }
    if (!(options.seconds > 0 && options.seconds <= 600)) {
        *error = "length must be more than 0 and at most 600 seconds";
        return false;
    }
    return true;
}

DemoSong generate_demo_song(const DemoSongOptions& options) {
    std::string error;
    assert(validate(options, &error));
    Rng rng(options.seed);
    DemoSong song;
    song.sample_rate = options.sample_rate;
    song.tempo_bpm = 96.0 + 4.0 * rng.below(8);  // 96 .. 124
    const auto frames = static_cast<size_t>(std::llround(options.seconds * options.sample_rate));
    Timeline time{options.sample_rate, 30.0 / song.tempo_bpm, 8, 0};
    time.bars = static_cast<int>(std::ceil(options.seconds / (8 * time.step_seconds)));
    const Harmony harmony = make_harmony(rng, time.bars);
    song.key = std::string(kNoteNames[static_cast<size_t>(harmony.tonic % 12)]) + " major";

    for (StereoTrack* track : {&song.vocals, &song.drums, &song.bass, &song.other}) {
        track->left.assign(frames, 0.0f);
        track->right.assign(frames, 0.0f);
    }
    // Each part draws from its own generator so that changing one part leaves the others alone.
    Rng drums_rng(rng.next()), bass_rng(rng.next()), other_rng(rng.next()), vocal_rng(rng.next());
    render_drums(song.drums, time, drums_rng);
    render_bass(song.bass, time, harmony, bass_rng);
    render_pad(song.other, time, harmony, other_rng);
    render_piano(song.other, time, harmony, other_rng);
    render_vocals(song.vocals, time, harmony, vocal_rng);

    for (StereoTrack* track : {&song.vocals, &song.drums, &song.bass, &song.other}) {
        fade_edges(*track, options.sample_rate);
    }
    float peak = 1e-9f;
    for (size_t i = 0; i < frames; ++i) {
        float l = 0, r = 0;
        for (const StereoTrack* stem : song.stems()) {
            l += stem->left[i];
            r += stem->right[i];
        }
        peak = std::max({peak, std::fabs(l), std::fabs(r)});
    }
    const float gain = 0.891f / peak;  // -1 dBFS
    song.mixture.left.assign(frames, 0.0f);
    song.mixture.right.assign(frames, 0.0f);
    for (StereoTrack* track : {&song.vocals, &song.drums, &song.bass, &song.other}) {
        for (size_t i = 0; i < frames; ++i) {
            track->left[i] *= gain;
            track->right[i] *= gain;
            song.mixture.left[i] += track->left[i];
            song.mixture.right[i] += track->right[i];
        }
    }
    return song;
}

}  // namespace stemsphere::demosong
