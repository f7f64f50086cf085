// stemsphere-bench-binaural: CPU cost of the binaural renderer for 4 stereo stems (8 virtual
// sources x 2 ears, 512-tap HRIRs) at 48 kHz, static and moving, side by side with a direct
// time-domain FIR of the same filters and with ZamHeadX2 (one instance per stem, through the
// project's lilv host), plus the click measure of a 180-degree jump for both renderers.
// Prints figures and ratios; no pass/fail.
#include <time.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/binaural/binaural_metrics.h"
#include "engine/binaural/binaural_renderer.h"
#include "engine/binaural/hrtf_set.h"
#include "tools/lv2host/plugin_host.h"

namespace {

using stemsphere::BinauralRenderer;
using stemsphere::HrtfSet;

constexpr double kRate = 48000.0;
constexpr uint32_t kTaps = 512;
constexpr int kSources = 8;
constexpr const char* kZamUri = "urn:zamaudio:ZamHeadX2";

struct Settings {
    std::string sofa = "/usr/share/libmysofa/default.sofa";
    // Loading only this bundle (no LV2_PATH scan) keeps other installed plugins out of the run.
    std::string zam_bundle = "/usr/lib/lv2/ZamHeadX2.lv2";
    double seconds = 10.0;
    int repeats = 3;  // minimum over repeats: other processes only ever add CPU time
};

// Process CPU time: ZamHeadX2's convolver may run partitions in its own threads.
double cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

std::vector<std::vector<float>> stems_signal(size_t frames) {
    std::mt19937 gen(1);
    std::normal_distribution<float> dist(0.0f, 0.1f);
    std::vector<std::vector<float>> x(kSources, std::vector<float>(frames));
    for (auto& ch : x) {
        for (float& v : ch) v = dist(gen);
    }
    return x;
}

// Azimuth of stem s at frame `pos`: static spread, or all stems circling at 90 degrees/s.
float azimuth(int stem, size_t pos, bool moving) {
    const double base = -135.0 + 90.0 * stem;
    return static_cast<float>(moving ? base + 90.0 * static_cast<double>(pos) / kRate : base);
}

// Fraction of one core: CPU seconds per second of audio.
double measure_renderer(const HrtfSet& set, uint32_t block, bool moving, bool every_block,
                        const std::vector<std::vector<float>>& x, size_t frames) {
    BinauralRenderer::Config c;
    c.sample_rate = kRate;
    c.block_frames = block;
    c.max_filter_taps = kTaps;
    if (every_block) c.min_update_interval_s = c.min_update_angle_deg = 0.0;
    BinauralRenderer r(c);
    r.set_hrtf(&set);
    std::vector<float> l(block), rr(block);
    std::array<const float*, kSources> in{};
    auto run = [&](size_t from, size_t to) {
        for (size_t pos = from; pos + block <= to; pos += block) {
            for (int s = 0; s < 4; ++s) r.set_source(s, azimuth(s, pos, moving), 0.0f, 1.5f, 40.0f);
            for (int v = 0; v < kSources; ++v)
                in[size_t(v)] = x[size_t(v)].data() + pos % (x[0].size() - block);
            r.process(in.data(), l.data(), rr.data(), block);
        }
    };
    run(0, static_cast<size_t>(kRate));  // warm-up
    const double start = cpu_seconds();
    run(0, frames);
    return (cpu_seconds() - start) / (static_cast<double>(frames / block * block) / kRate);
}

typedef float Float4 __attribute__((vector_size(16)));

// Direct-form FIR of the same 16 filters (8 sources x 2 ears): one 4-wide vectorised axpy per
// tap (a scalar loop would be an unfair peer).
double measure_direct_fir(const HrtfSet& set, uint32_t block,
                          const std::vector<std::vector<float>>& x, size_t frames) {
    HrtfSet::Scratch scratch(set.filter_taps());
    std::vector<std::vector<float>> h(2 * kSources, std::vector<float>(set.filter_taps()));
    for (int v = 0; v < kSources; ++v) {
        uint32_t hint = 0;
        const double az = double(azimuth(v / 2, 0, false)) + (v % 2 == 0 ? 20.0 : -20.0);
        set.design_filters(stemsphere::direction_from_degrees(az, 0.0),
                           stemsphere::HrtfInterpolation::kBarycentric, &hint, scratch,
                           h[size_t(2 * v)].data(), h[size_t(2 * v + 1)].data());
    }
    const size_t taps = set.filter_taps();
    // Per source: taps - 1 samples of history followed by the current block.
    std::vector<std::vector<float>> hist(kSources, std::vector<float>(taps - 1 + block, 0.0f));
    std::vector<float> out[2] = {std::vector<float>(block), std::vector<float>(block)};
    volatile float sink = 0.0f;
    auto run = [&](size_t from, size_t to) {
        for (size_t pos = from; pos + block <= to; pos += block) {
            std::fill(out[0].begin(), out[0].end(), 0.0f);
            std::fill(out[1].begin(), out[1].end(), 0.0f);
            for (int v = 0; v < kSources; ++v) {
                auto& buf = hist[size_t(v)];
                std::copy(buf.end() - long(taps - 1), buf.end(), buf.begin());
                const float* src = x[size_t(v)].data() + pos % (x[0].size() - block);
                std::copy(src, src + block, buf.begin() + long(taps - 1));
                for (int ear = 0; ear < 2; ++ear) {
                    const float* hv = h[size_t(2 * v + ear)].data();
                    float* y = out[ear].data();
                    for (size_t k = 0; k < taps; ++k) {
                        const float coef = hv[k];
                        const float* xs = buf.data() + (taps - 1 - k);
                        for (uint32_t n = 0; n < block; n += 4) {
                            Float4 acc, in4;
                            std::memcpy(&acc, y + n, sizeof acc);
                            std::memcpy(&in4, xs + n, sizeof in4);
                            acc += coef * in4;
                            std::memcpy(y + n, &acc, sizeof acc);
                        }
                    }
                }
            }
            sink = sink + out[0][0] + out[1][block - 1];
        }
    };
    run(0, static_cast<size_t>(kRate));
    const double start = cpu_seconds();
    run(0, frames);
    return (cpu_seconds() - start) / (static_cast<double>(frames / block * block) / kRate);
}

struct ZamResult {
    double cpu = NAN;
    std::string error;
};

std::string g_zam_bundle;

std::vector<std::unique_ptr<stemsphere::host::PluginHost>> zam_instances(uint32_t block, int count,
                                                                         std::string* error) {
    std::vector<std::unique_ptr<stemsphere::host::PluginHost>> hosts;
    stemsphere::host::HostOptions options;
    options.sample_rate = kRate;
    options.max_block = block;
    for (int i = 0; i < count; ++i) {
        auto h = stemsphere::host::PluginHost::create(g_zam_bundle, kZamUri, options, error);
        if (!h) return {};
        hosts.push_back(std::move(h));
    }
    return hosts;
}

// ZamHeadX2 has one stereo input per instance: one instance per stem.
ZamResult measure_zam(uint32_t block, bool moving, const std::vector<std::vector<float>>& x,
                      size_t frames) {
    ZamResult res;
    auto hosts = zam_instances(block, 4, &res.error);
    if (hosts.empty()) return res;
    std::vector<float> out[2] = {std::vector<float>(block), std::vector<float>(block)};
    float* outs[2] = {out[0].data(), out[1].data()};
    for (auto& h : hosts) h->activate();
    auto run = [&](size_t from, size_t to) {
        for (size_t pos = from; pos + block <= to; pos += block) {
            for (int s = 0; s < 4; ++s) {
                // ZamHeadX2 azimuth range is -90..270.
                float az = std::fmod(azimuth(s, pos, moving) + 450.0f, 360.0f) - 90.0f;
                hosts[size_t(s)]->set_control("az", az, nullptr);
                const size_t at = pos % (x[0].size() - block);
                const float* in[2] = {x[size_t(2 * s)].data() + at,
                                      x[size_t(2 * s + 1)].data() + at};
                hosts[size_t(s)]->run(in, outs, block);
            }
        }
    };
    run(0, static_cast<size_t>(kRate));
    const double start = cpu_seconds();
    run(0, frames);
    res.cpu = (cpu_seconds() - start) / (static_cast<double>(frames / block * block) / kRate);
    for (auto& h : hosts) h->deactivate();
    return res;
}

using Clicks = stemsphere::SwitchArtefacts;

// 500 Hz tone (amplitude 0.5) whose source jumps from -90 to +90 degrees azimuth at `at`.
Clicks click_measure(const std::vector<float>& l, const std::vector<float>& r, size_t at) {
    return stemsphere::switch_artefacts(l, r, at, kRate);
}

std::vector<float> tone(size_t frames) {
    std::vector<float> t(frames);
    for (size_t i = 0; i < frames; ++i) {
        t[i] =
            0.5f * static_cast<float>(std::sin(2.0 * std::numbers::pi * 500.0 * double(i) / kRate));
    }
    return t;
}

Clicks renderer_clicks(const HrtfSet& set, uint32_t block) {
    const size_t frames = 48 * 1024, jump = frames / 2;
    const auto t = tone(frames);
    BinauralRenderer::Config c;
    c.sample_rate = kRate;
    c.block_frames = block;
    c.max_filter_taps = kTaps;
    BinauralRenderer r(c);
    r.set_hrtf(&set);
    std::vector<float> l(frames), rr(frames);
    for (size_t pos = 0; pos < frames; pos += block) {
        r.set_source(0, pos >= jump ? 90.0f : -90.0f, 0.0f, 1.0f, 0.0f);
        const float* in[8] = {t.data() + pos, t.data() + pos};
        r.process(in, l.data() + pos, rr.data() + pos, block);
    }
    return click_measure(l, rr, jump + block / 2);
}

Clicks zam_clicks(uint32_t block, std::string* error) {
    const size_t frames = 48 * 1024, jump = frames / 2;
    const auto t = tone(frames);
    auto hosts = zam_instances(block, 1, error);
    if (hosts.empty()) return {NAN, NAN};
    auto& h = *hosts[0];
    h.set_control("width", 0.0f, nullptr);
    h.activate();
    std::vector<float> l(frames), r(frames);
    for (size_t pos = 0; pos < frames; pos += block) {
        h.set_control("az", pos >= jump ? 90.0f : -90.0f, nullptr);
        const float* in[2] = {t.data() + pos, t.data() + pos};
        float* out[2] = {l.data() + pos, r.data() + pos};
        h.run(in, out, block);
    }
    h.deactivate();
    return click_measure(l, r, jump + block / 2);
}

std::string pct(double fraction) {
    if (!std::isfinite(fraction)) return "n/a";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f %%", 100.0 * fraction);
    return buf;
}

std::string ratio(double a, double b) {
    if (!std::isfinite(a) || !std::isfinite(b) || b <= 0.0) return "n/a";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fx", a / b);
    return buf;
}

bool parse(int argc, char** argv, Settings* s) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) return false;
        const std::string v = argv[++i];
        char* end = nullptr;
        if (a == "--sofa") {
            s->sofa = v;
        } else if (a == "--zam-bundle") {
            s->zam_bundle = v;
        } else if (a == "--seconds") {
            s->seconds = std::strtod(v.c_str(), &end);
            if (*end != '\0' || !(s->seconds >= 1.0) || s->seconds > 3600) return false;
        } else if (a == "--repeat") {
            const long r = std::strtol(v.c_str(), &end, 10);
            if (*end != '\0' || r < 1 || r > 100) return false;
            s->repeats = static_cast<int>(r);
        } else {
            return false;
        }
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    Settings settings;
    if (!parse(argc, argv, &settings)) {
        std::fprintf(
            stderr,
            "usage: stemsphere-bench-binaural [--sofa FILE] [--zam-bundle DIR] [--seconds S] "
            "[--repeat N]\n");
        return 2;
    }
    g_zam_bundle = settings.zam_bundle;
    std::string error;
    auto set = HrtfSet::load(settings.sofa, kRate, &error, kTaps);
    if (!set) {
        std::fprintf(stderr, "cannot load HRTF: %s\n", error.c_str());
        return 1;
    }
    const size_t frames = static_cast<size_t>(settings.seconds * kRate);
    const auto x = stems_signal(frames + 2 * static_cast<size_t>(kRate));
    std::printf(
        "Binaural rendering of 4 stereo stems (8 virtual sources x 2 ears), %u-tap HRIRs "
        "(%s), 48 kHz, %.0f s of audio per cell, min of %d runs.\n"
        "%% of one core = process CPU time / audio time. Moving: all stems circle at "
        "90 deg/s, controls set every block.\n\n",
        set->filter_taps(), settings.sofa.c_str(), settings.seconds, settings.repeats);
    std::printf("%6s %12s %12s %12s %12s %12s %12s | %9s %9s %9s\n", "block", "static", "moving",
                "moving/blk", "direct FIR", "ZamHeadX2", "Zam moving", "FIR/stat", "Zam/stat",
                "mov/stat");
    for (uint32_t block : {64u, 256u, 1024u}) {
        double stat = INFINITY, moving = INFINITY, every = INFINITY, fir = INFINITY, zam = INFINITY,
               zam_moving = INFINITY;
        std::string zam_error;
        for (int rep = 0; rep < settings.repeats; ++rep) {
            stat = std::min(stat, measure_renderer(*set, block, false, false, x, frames));
            moving = std::min(moving, measure_renderer(*set, block, true, false, x, frames));
            every = std::min(every, measure_renderer(*set, block, true, true, x, frames));
            fir = std::min(fir, measure_direct_fir(*set, block, x, frames));
            const ZamResult zs = measure_zam(block, false, x, frames);
            const ZamResult zm = measure_zam(block, true, x, frames);
            zam = std::min(zam, zs.cpu);
            zam_moving = std::min(zam_moving, zm.cpu);
            if (!zs.error.empty()) zam_error = zs.error;
        }
        if (!zam_error.empty()) zam = zam_moving = NAN;
        std::printf("%6u %12s %12s %12s %12s %12s %12s | %9s %9s %9s\n", block, pct(stat).c_str(),
                    pct(moving).c_str(), pct(every).c_str(), pct(fir).c_str(), pct(zam).c_str(),
                    pct(zam_moving).c_str(), ratio(fir, stat).c_str(), ratio(zam, stat).c_str(),
                    ratio(moving, stat).c_str());
        if (!zam_error.empty())
            std::printf("       ZamHeadX2 unavailable: %s\n", zam_error.c_str());
        std::printf("       real time x per core: static %.0f, moving %.0f\n", 1.0 / stat,
                    1.0 / moving);
    }
    std::printf(
        "\nClick measure: 500 Hz tone, source jumps -90 -> +90 deg; HF = energy > 2 kHz / "
        "total in 4096 samples around the switch, step = largest sample step vs steady "
        "state (worse ear).\n");
    std::printf("%6s %22s %22s\n", "block", "Stemsphere HF / step", "ZamHeadX2 HF / step");
    for (uint32_t block : {64u, 256u, 1024u}) {
        const Clicks ours = renderer_clicks(*set, block);
        std::string zam_error;
        const Clicks zam = zam_clicks(block, &zam_error);
        char a[64], b[64];
        std::snprintf(a, sizeof a, "%.1f dB / %+.1f dB", ours.leakage_db, ours.step_db);
        std::snprintf(b, sizeof b, "%.1f dB / %+.1f dB", zam.leakage_db, zam.step_db);
        std::printf("%6u %22s %22s\n", block, a, zam_error.empty() ? b : "n/a");
    }
    return 0;
}
