// The Stemsphere bundle as a host sees it, through the project's lilv host: features, TTL,
// reported latency vs measured impulse delay, mixture consistency, real-time safety (heap calls
// counted inside run()), robustness to NaN/Inf and activate/deactivate, presets, state, bypass.
// The scripted bundle is the plugin built with the scripted meter (tests/plugin/scripted_meter.cpp,
// licensed unless a test says otherwise), so the metered neural modes run their networks here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/mask_estimator.h"
#include "tests/host/heap_counter.h"
#include "tools/lv2host/plugin_host.h"

namespace {

using stemsphere::host::HostOptions;
using stemsphere::host::PluginHost;

// Stemsphere Stems (the original URI: main pair + 4 stem pairs) and Stemsphere (stereo out).
constexpr const char* kUri = "https://stemsphere.dev/plugins/stemsphere";
constexpr const char* kStereoUri = "https://stemsphere.dev/plugins/stemsphere-stereo";
constexpr uint32_t kMaxBlock = 4096;
const auto& kStems = stemsphere::kStemNames;  // the engine's stem order, also the ports'.

std::unique_ptr<PluginHost> make_host(double rate, HostOptions opts = {}, const char* uri = kUri) {
    opts.sample_rate = rate;
    opts.max_block = kMaxBlock;
    std::string error;
    auto host = PluginHost::create(STEMSPHERE_SCRIPTED_BUNDLE_DIR, uri, opts, &error);
    EXPECT_NE(host, nullptr) << error;
    return host;
}

// Binaural off: the main output is the plain sum of the stems (mixture-consistency tests).
void plain_sum(PluginHost& host) {
    std::string error;
    ASSERT_TRUE(host.set_control("binaural", 0.0f, &error)) << error;
}

// Plays a stereo signal through the plugin in blocks of `block`; returns all outputs.
struct Render {
    std::vector<std::vector<float>> out;  // audio outputs in port order
};

Render play(PluginHost& host, const std::vector<float>& l, const std::vector<float>& r,
            uint32_t block) {
    Render res;
    res.out.assign(host.audio_output_count(), std::vector<float>(l.size(), 0.0f));
    std::vector<float*> outs(host.audio_output_count());
    for (size_t start = 0; start < l.size(); start += block) {
        const auto n = static_cast<uint32_t>(std::min<size_t>(block, l.size() - start));
        const float* in[2] = {l.data() + start, r.data() + start};
        for (size_t c = 0; c < outs.size(); ++c) outs[c] = res.out[c].data() + start;
        host.run(in, outs.data(), n);
    }
    return res;
}

std::vector<float> test_music(size_t frames, double rate, unsigned seed, double pan) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> noise(0.0, 1.0);
    std::vector<float> x(frames);
    for (size_t i = 0; i < frames; ++i) {
        const double t = static_cast<double>(i) / rate;
        double v = 0.25 * std::sin(2 * M_PI * 196.0 * t) + 0.2 * std::sin(2 * M_PI * 49.0 * t);
        v += pan * 0.2 * std::sin(2 * M_PI * 523.0 * t);
        v += 0.4 * std::exp(-std::fmod(t, 0.3) * 50.0) * noise(rng);
        x[i] = static_cast<float>(v);
    }
    return x;
}

double peak_error_db(const std::vector<float>& a, const std::vector<float>& delayed_ref,
                     size_t latency) {
    double err = 0.0;
    for (size_t i = latency; i < a.size(); ++i) {
        err = std::max(err, std::abs(static_cast<double>(a[i]) -
                                     static_cast<double>(delayed_ref[i - latency])));
    }
    return 20.0 * std::log10(err + 1e-30);
}

TEST(Plugin, RequiredFeaturesAreProvidedAndTtlVerifies) {
    auto host = make_host(48000);
    ASSERT_TRUE(host);
    EXPECT_TRUE(host->verify());
    const auto& provided = host->provided_features();
    for (const auto& f : host->required_features()) {
        EXPECT_NE(std::find(provided.begin(), provided.end(), f), provided.end()) << f;
    }
    EXPECT_EQ(host->required_features(),
              std::vector<std::string>{"http://lv2plug.in/ns/ext/urid#map"});
    EXPECT_EQ(host->audio_input_count(), 2u);
    EXPECT_EQ(host->audio_output_count(), 10u);
    const std::vector<std::string> outs = {"out_l",   "out_r",  "vocals_l", "vocals_r", "drums_l",
                                           "drums_r", "bass_l", "bass_r",   "other_l",  "other_r"};
    EXPECT_EQ(host->audio_output_symbols(), outs);
    EXPECT_TRUE(host->latency_port_index().has_value());
}

TEST(Plugin, RunsInAHostThatOffersOnlyUridMap) {
    HostOptions bare;
    bare.provide_worker = false;
    bare.provide_options = false;
    bare.provide_bounded_block = false;
    bare.provide_log = false;
    bare.provide_state_paths = false;
    auto host = make_host(44100, bare);
    ASSERT_TRUE(host);
    host->activate();
    auto l = test_music(8192, 44100, 1, 0.5);
    Render r = play(*host, l, l, 333);
    EXPECT_GT(host->latency(), 0.0f);
    for (const auto& ch : r.out) {
        for (float v : ch) ASSERT_TRUE(std::isfinite(v));
    }
}

// For every quality mode (scale points of "quality") and every block size a host may use, an
// impulse comes out exactly `latency` frames later on the main output.
TEST(Plugin, ReportedLatencyIsTheMeasuredImpulseDelay) {
    for (double rate : {44100.0, 48000.0}) {
        auto probe = make_host(rate);
        ASSERT_TRUE(probe);
        auto info = probe->control_info("quality");
        ASSERT_TRUE(info.has_value());
        ASSERT_FALSE(info->scale_points.empty());
        for (const auto& [mode, label] : info->scale_points) {
            float reported_first = -1.0f;
            for (uint32_t block : {1u, 17u, 63u, 64u, 256u, 1000u, kMaxBlock}) {
                auto host = make_host(rate);
                plain_sum(*host);
                std::string error;
                ASSERT_TRUE(host->set_control("quality", mode, &error)) << error;
                host->activate();
                const bool live = label.rfind("Live", 0) == 0;
                const bool render = label.rfind("Render", 0) == 0;
                const size_t frames = (render ? 5 : 3) * static_cast<size_t>(rate) / 2;
                std::vector<float> l(frames, 0.0f);
                const size_t at = block;  // start of the second block
                l[at] = 1.0f;
                Render r = play(*host, l, l, block);
                const float reported = host->latency();
                size_t peak = 0;
                for (size_t i = 0; i < frames; ++i) {
                    if (std::abs(r.out[0][i]) > std::abs(r.out[0][peak])) peak = i;
                }
                EXPECT_EQ(peak - at, static_cast<size_t>(reported))
                    << label << " rate " << rate << " block " << block;
                EXPECT_NEAR(r.out[1][peak], 1.0f, 1e-4f);
                if (reported_first < 0) reported_first = reported;
                EXPECT_EQ(reported, reported_first) << "latency must not depend on block size";
                // Live modes stay under 25 ms, Studio under 1 s; Render is offline, and its
                // description promises about 1.5 s.
                EXPECT_LE(1000.0 * static_cast<double>(reported) / rate, live     ? 25.0
                                                                         : render ? 1600.0
                                                                                  : 1000.0)
                    << label;
            }
        }
    }
}

// The host's block size is invisible in the output: the engine works in its own hops.
TEST(Plugin, EveryBlockSizeGivesTheSameOutput) {
    const double rate = 44100;
    auto l = test_music(20000, rate, 13, 0.8);
    auto r = test_music(20000, rate, 14, 0.1);
    std::vector<Render> renders;
    for (uint32_t block : {1u, 17u, 256u, kMaxBlock}) {
        auto host = make_host(rate);
        host->activate();
        renders.push_back(play(*host, l, r, block));
    }
    for (size_t k = 1; k < renders.size(); ++k) {
        for (size_t c = 0; c < renders[0].out.size(); ++c) {
            ASSERT_EQ(renders[k].out[c], renders[0].out[c]) << "render " << k << " output " << c;
        }
    }
}

// In every quality mode (the neural ones blend several networks' masks).
TEST(Plugin, StemsSumToTheDelayedInputAndTheMixEqualsIt) {
    const double rate = 44100;
    auto l = test_music(3 * 44100, rate, 2, 0.9);
    auto r = test_music(3 * 44100, rate, 3, 0.2);
    for (float mode : {0.0f, 1.0f, 2.0f, 3.0f}) {
        auto host = make_host(rate);
        plain_sum(*host);
        std::string error;
        ASSERT_TRUE(host->set_control("quality", mode, &error)) << error;
        host->activate();
        Render out = play(*host, l, r, 512);
        const auto lat = static_cast<size_t>(host->latency());
        ASSERT_LT(lat + 44100, l.size()) << "mode " << mode;
        for (size_t ch = 0; ch < 2; ++ch) {
            const auto& in = ch == 0 ? l : r;
            std::vector<float> sum(in.size(), 0.0f);
            for (size_t s = 0; s < 4; ++s) {
                for (size_t i = 0; i < in.size(); ++i) sum[i] += out.out[2 + 2 * s + ch][i];
            }
            EXPECT_LT(peak_error_db(sum, in, lat), -90.0) << "mode " << mode << " channel " << ch;
            EXPECT_LT(peak_error_db(out.out[ch], in, lat), -90.0)
                << "mode " << mode << " channel " << ch;
        }
    }
}

TEST(Plugin, RunNeverTouchesTheHeapEvenWhileControlsMove) {
    auto host = make_host(48000);
    host->activate();
    auto l = test_music(48000, 48000, 4, 0.3);
    stemsphere::test::HeapCounter counter;
    std::vector<float*> outs(host->audio_output_count());
    std::vector<std::vector<float>> bufs(outs.size(), std::vector<float>(kMaxBlock));
    for (size_t c = 0; c < outs.size(); ++c) outs[c] = bufs[c].data();
    size_t pos = 0;
    uint32_t blocks[] = {1, 17, 63, 64, 256, 1000, kMaxBlock};
    std::string error;
    for (int i = 0; pos + kMaxBlock < l.size(); ++i) {
        const uint32_t n = blocks[i % 7];
        ASSERT_TRUE(host->set_control(std::string(kStems[i % 4]) + "_gain",
                                      static_cast<float>(-(i % 13)), &error))
            << error;
        ASSERT_TRUE(host->set_control(std::string(kStems[i % 4]) + "_mute",
                                      static_cast<float>(i % 2), &error));
        ASSERT_TRUE(host->set_control(std::string(kStems[(i + 1) % 4]) + "_solo",
                                      static_cast<float>(i % 3 == 0), &error));
        ASSERT_TRUE(host->set_control("enabled", static_cast<float>(i % 5 != 0), &error));
        ASSERT_TRUE(host->set_control(std::string(kStems[i % 4]) + "_azimuth",
                                      static_cast<float>((i * 37) % 360 - 180), &error));
        ASSERT_TRUE(host->set_control(std::string(kStems[(i + 2) % 4]) + "_distance",
                                      0.25f + static_cast<float>(i % 7), &error));
        ASSERT_TRUE(
            host->set_control("head_yaw", static_cast<float>((i * 11) % 360 - 180), &error));
        ASSERT_TRUE(host->set_control("binaural", static_cast<float>(i % 11 != 0), &error));
        ASSERT_TRUE(host->set_control("studio_latency", static_cast<float>(i % 17 < 8), &error));
        // A mode switch now and then, through every mode: the worker builds the new back end,
        // run() only swaps.
        ASSERT_TRUE(host->set_control("quality", static_cast<float>((i / 10) % 4), &error));
        const float* in[2] = {l.data() + pos, l.data() + pos};
        host->run(in, outs.data(), n);
        pos += n;
    }
    EXPECT_EQ(counter.calls_in_run(), 0u);
    EXPECT_GT(counter.runs(), 0u);
}

TEST(Plugin, NanAndInfInputCannotPoisonTheOutput) {
    const double rate = 44100;
    auto host = make_host(rate);
    plain_sum(*host);
    host->activate();
    auto l = test_music(44100, rate, 5, 0.5);
    auto r = l;
    for (size_t i = 10000; i < 10256; ++i) {
        l[i] = std::numeric_limits<float>::quiet_NaN();
        r[i] = -std::numeric_limits<float>::infinity();
    }
    Render out = play(*host, l, r, 256);
    for (const auto& ch : out.out) {
        for (float v : ch) ASSERT_TRUE(std::isfinite(v));
    }
    // Once the bad block has left the STFT window, the mix is the delayed input again.
    const auto lat = static_cast<size_t>(host->latency());
    for (size_t i = 10256 + 2 * lat; i < l.size(); ++i) {
        ASSERT_NEAR(out.out[0][i], l[i - lat], 1e-5f) << i;
    }
}

// activate() forgets all audio history: every later cycle plays exactly like the one before, and
// with the plain sum (no binaural filter fade-in on the first run) like a fresh instance.
TEST(Plugin, ActivateDeactivateCyclesStartFromSilence) {
    const double rate = 48000;
    auto l = test_music(20000, rate, 6, 0.4);
    for (bool binaural : {false, true}) {
        auto fresh = make_host(rate);
        if (!binaural) plain_sum(*fresh);
        fresh->activate();
        Render ref = play(*fresh, l, l, 100);
        auto host = make_host(rate);
        if (!binaural) plain_sum(*host);
        for (int cycle = 0; cycle < 4; ++cycle) {
            host->activate();
            Render r = play(*host, l, l, 100);
            host->deactivate();
            if (binaural && cycle < 2) {
                ref = r;  // the very first run fades the HRTF filters in from nothing
                continue;
            }
            for (size_t c = 0; c < ref.out.size(); ++c) {
                ASSERT_EQ(r.out[c], ref.out[c])
                    << "binaural " << binaural << " cycle " << cycle << " output " << c;
            }
        }
    }
}

TEST(Plugin, BypassKeepsTheLatencyAndPassesTheInput) {
    const double rate = 44100;
    auto host = make_host(rate);
    std::string error;
    ASSERT_TRUE(host->set_control("enabled", 0.0f, &error)) << error;
    ASSERT_TRUE(host->set_control("vocals_mute", 1.0f, &error)) << error;
    host->activate();
    auto l = test_music(30000, rate, 7, 0.6);
    Render out = play(*host, l, l, 64);
    const auto lat = static_cast<size_t>(host->latency());
    EXPECT_LT(peak_error_db(out.out[0], l, lat), -90.0);
}

double squared(float v) {
    return static_cast<double>(v) * static_cast<double>(v);
}

// Factory presets (presets/presets.ttl), each applied through lilv_state_restore like a DAW
// does, and checked for what it promises on the output.
std::unique_ptr<PluginHost> host_with_preset(const std::string& label, double rate) {
    auto host = make_host(rate);
    if (!host) return host;
    std::string error;
    EXPECT_TRUE(host->apply_preset(label, &error)) << error;
    return host;
}

// Level presets, binaural off: the main pair equals the sum of the kept stems of an instance
// without preset (the separation does not depend on levels), so the removed stems are absent
// from it, sample by sample after the latency.
TEST(PluginPresets, LevelPresetsKeepOrRemoveTheirStems) {
    const double rate = 44100;
    struct Case {
        const char* label;
        std::vector<int> kept;  // stem indices (kStems) that stay in the main pair
    };
    const Case cases[] = {{"Karaoke", {1, 2, 3}},
                          {"A cappella", {0}},
                          {"Drum practice", {0, 2, 3}},
                          {"Bass practice", {0, 1, 3}},
                          {"Drums only", {1}}};
    auto l = test_music(30000, rate, 8, 0.5);
    auto r = test_music(30000, rate, 18, 0.2);
    auto reference = make_host(rate);
    plain_sum(*reference);
    reference->activate();
    const Render ref = play(*reference, l, r, 256);
    for (const auto& c : cases) {
        auto host = host_with_preset(c.label, rate);
        ASSERT_TRUE(host);
        plain_sum(*host);
        host->activate();
        Render out = play(*host, l, r, 256);
        // Past the 10 ms level smoothing from the default levels a fresh instance starts with.
        const auto from = static_cast<size_t>(host->latency()) + 8192;
        double removed_energy = 0.0;
        for (size_t ch = 0; ch < 2; ++ch) {
            for (size_t i = from; i < l.size(); ++i) {
                float kept = 0.0f, dropped = 0.0f;
                for (int s = 0; s < 4; ++s) {
                    const float v = ref.out[2 + 2 * static_cast<size_t>(s) + ch][i];
                    const bool keeps = std::find(c.kept.begin(), c.kept.end(), s) != c.kept.end();
                    (keeps ? kept : dropped) += v;
                }
                removed_energy += squared(dropped);
                ASSERT_NEAR(out.out[ch][i], kept, 1e-5f) << c.label << " ch " << ch << " " << i;
            }
        }
        EXPECT_GT(removed_energy, 1.0) << c.label << ": the removed stems carried no signal";
    }
}

// Where one soloed stem is heard in the binaural main pair after the latency: the level
// difference left minus right (dB), the lag of the right ear behind the left (frames; positive
// when the source is on the left: the near ear hears it first, as low notes show too, whose level
// differences are small), and the left channel's level (dB).
struct Heard {
    double ild_db = 0.0;
    int itd_frames = 0;
    double left_db = 0.0;
};

Heard heard(PluginHost& host, const char* stem, double rate) {
    std::string error;
    EXPECT_TRUE(host.set_control(std::string(stem) + "_solo", 1.0f, &error)) << error;
    host.activate();
    auto l = test_music(40000, rate, 21, 0.5);
    Render out = play(host, l, l, 512);
    const auto lat = static_cast<size_t>(host.latency()) + 2048;  // past the fade-in
    const auto& L = out.out[0];
    const auto& R = out.out[1];
    double e[2] = {1e-30, 1e-30};
    for (size_t i = lat; i < l.size(); ++i) {
        e[0] += squared(L[i]);
        e[1] += squared(R[i]);
    }
    Heard h;
    h.ild_db = 10.0 * std::log10(e[0] / e[1]);
    h.left_db = 10.0 * std::log10(e[0]);
    const int max_lag = static_cast<int>(0.0012 * rate);
    double best = -1e300;
    for (int k = -max_lag; k <= max_lag; ++k) {
        double c = 0.0;
        for (size_t i = lat + static_cast<size_t>(max_lag);
             i + static_cast<size_t>(max_lag) < l.size(); ++i) {
            c += static_cast<double>(L[i]) *
                 static_cast<double>(R[static_cast<size_t>(static_cast<long>(i) + k)]);
        }
        if (c > best) {
            best = c;
            h.itd_frames = k;
        }
    }
    return h;
}

Heard heard_with_preset(const std::string& preset, const char* stem, double rate) {
    auto host = host_with_preset(preset, rate);
    return heard(*host, stem, rate);
}

// Stage presets switch the binaural mix on and move the stems: what a listener hears is where
// the preset says.
TEST(PluginPresets, StagePresetsPlaceTheStems) {
    const double rate = 44100;
    for (const char* label : {"Wide stage", "Front row", "Headphone check"}) {
        auto host = host_with_preset(label, rate);
        ASSERT_TRUE(host);
        EXPECT_EQ(host->control("binaural"), 1.0f) << label;
    }
    const int itd_min = static_cast<int>(0.0002 * rate);  // 0.2 ms: clearly off-centre
    for (const char* label : {"Wide stage", "Headphone check"}) {
        auto host = host_with_preset(label, rate);
        float lo = 1e9f, hi = -1e9f;
        for (const char* s : kStems) {
            const float az = host->control(std::string(s) + "_azimuth");
            lo = std::min(lo, az);
            hi = std::max(hi, az);
        }
        EXPECT_GE(hi - lo, 90.0f) << label << ": azimuths not spread";
        const Heard drums = heard_with_preset(label, "drums", rate);
        const Heard bass = heard_with_preset(label, "bass", rate);
        EXPECT_GT(drums.ild_db, 3.0) << label << ": drums should be left";
        EXPECT_GE(drums.itd_frames, itd_min) << label << ": drums should be left";
        EXPECT_LE(bass.itd_frames, -itd_min) << label << ": bass should be right";
        EXPECT_LT(bass.ild_db, 0.0) << label << ": bass should be right";
    }
    {
        // Front row: the singer at half a metre is louder than at the default metre (1/r law),
        // and centred.
        const Heard front = heard_with_preset("Front row", "vocals", rate);
        auto plain = make_host(rate);
        const Heard normal = heard(*plain, "vocals", rate);
        EXPECT_GT(front.left_db - normal.left_db, 4.0) << "Front row: vocals not closer";
        EXPECT_LT(std::abs(front.ild_db), 1.5) << "Front row: vocals not centred";
        EXPECT_EQ(front.itd_frames, 0) << "Front row: vocals not centred";
    }
}

// A level preset leaves the stage alone and a stage preset the levels: they combine.
TEST(PluginPresets, LevelAndStagePresetsCombine) {
    auto host = make_host(48000);
    std::string error;
    ASSERT_TRUE(host->apply_preset("Karaoke", &error)) << error;
    ASSERT_TRUE(host->apply_preset("Wide stage", &error)) << error;
    EXPECT_EQ(host->control("vocals_mute"), 1.0f);
    EXPECT_EQ(host->control("drums_azimuth"), 60.0f);
    ASSERT_TRUE(host->apply_preset("Drum practice", &error)) << error;
    EXPECT_EQ(host->control("vocals_mute"), 0.0f);
    EXPECT_EQ(host->control("drums_mute"), 1.0f);
    EXPECT_EQ(host->control("drums_azimuth"), 60.0f);
    const auto labels = host->preset_labels();
    EXPECT_GE(labels.size(), 8u);
}

// Every mode's latency, even Render at 192 kHz, lies inside the latency port's declared range
// (hosts that trust the range would otherwise clip it).
TEST(Plugin, LatencyOfEveryModeFitsTheDeclaredRange) {
    auto probe = make_host(192000);
    ASSERT_TRUE(probe);
    const auto info = probe->control_info("latency");
    ASSERT_TRUE(info.has_value());
    for (float mode : {0.0f, 1.0f, 2.0f, 3.0f}) {
        auto host = make_host(192000);
        std::string error;
        ASSERT_TRUE(host->set_control("quality", mode, &error)) << error;
        host->activate();
        std::vector<float> silence(4096, 0.0f);
        play(*host, silence, silence, 4096);
        const float latency = host->latency();
        EXPECT_GT(latency, 0.0f);
        EXPECT_LE(latency, info->maximum) << "mode " << mode;
        EXPECT_EQ(static_cast<float>(static_cast<uint32_t>(latency)), latency);
    }
}

TEST(Plugin, StateRoundTripRestoresTheControls) {
    auto host = make_host(48000);
    std::string error;
    ASSERT_TRUE(host->set_control("drums_gain", -6.0f, &error)) << error;
    ASSERT_TRUE(host->set_control("bass_solo", 1.0f, &error)) << error;
    const std::string state = host->save_state_string();
    auto other = make_host(48000);
    ASSERT_TRUE(other->restore_state_string(state, &error)) << error;
    EXPECT_EQ(other->control("drums_gain"), -6.0f);
    EXPECT_EQ(other->control("bass_solo"), 1.0f);
    host->activate();
    other->activate();
    auto l = test_music(10000, 48000, 9, 0.5);
    Render a = play(*host, l, l, 128);
    Render b = play(*other, l, l, 128);
    EXPECT_EQ(a.out, b.out);
}

TEST(Plugin, WorksAtEveryCommonSampleRate) {
    for (double rate : {22050.0, 32000.0, 44100.0, 48000.0, 88200.0, 96000.0, 192000.0}) {
        auto host = make_host(rate);
        ASSERT_TRUE(host) << rate;
        plain_sum(*host);
        host->activate();
        auto l = test_music(static_cast<size_t>(rate / 2), rate, 10, 0.5);
        Render out = play(*host, l, l, 512);
        const auto lat = static_cast<size_t>(host->latency());
        EXPECT_LE(1000.0 * static_cast<double>(lat) / rate, 25.0) << rate;
        EXPECT_LT(peak_error_db(out.out[0], l, lat), -90.0) << rate;
    }
}

// A copy of the bundle whose Live model file is damaged: choosing Live (neural) must log a
// clear error and keep the DSP back end running (same latency, audio continues).
TEST(PluginQuality, ACorruptModelFallsBackToTheDspBackEnd) {
    namespace fs = std::filesystem;
    const fs::path bundle = fs::path(::testing::TempDir()) / "stemsphere-corrupt-model.lv2";
    fs::remove_all(bundle);
    fs::copy(STEMSPHERE_BUNDLE_DIR, bundle, fs::copy_options::recursive);
    {
        std::fstream f(bundle / "models" / "live.stsnn",
                       std::ios::in | std::ios::out | std::ios::binary);
        ASSERT_TRUE(f.good());
        f.seekp(300);
        const char junk[16] = "corrupt!corrupt";
        f.write(junk, sizeof junk);
    }
    const double rate = 44100;
    for (bool threaded : {false, true}) {
        HostOptions opts;
        opts.sample_rate = rate;
        opts.max_block = kMaxBlock;
        opts.threaded_worker = threaded;
        std::string error;
        auto host = PluginHost::create(bundle.string() + "/", kUri, opts, &error);
        ASSERT_TRUE(host) << error;
        plain_sum(*host);
        host->activate();
        auto l = test_music(30000, rate, 15, 0.5);
        play(*host, l, l, 512);
        const float dsp_latency = host->latency();
        ASSERT_TRUE(host->set_control("quality", 1.0f, &error)) << error;
        Render out = play(*host, l, l, 512);
        host->wait_for_worker();
        out = play(*host, l, l, 512);
        EXPECT_EQ(host->latency(), dsp_latency);
        bool logged = false;
        for (const auto& line : host->log_lines()) {
            logged = logged || (line.rfind("error:", 0) == 0 &&
                                line.find("Live (neural)") != std::string::npos &&
                                line.find("live.stsnn") != std::string::npos);
        }
        EXPECT_TRUE(logged) << "no clear error about the damaged model";
        const auto lat = static_cast<size_t>(dsp_latency);
        EXPECT_LT(peak_error_db(out.out[0], l, lat), -90.0) << "audio must continue unchanged";
    }
    fs::remove_all(bundle);
}

// Switching modes while playing (threaded worker, like jalv) changes the reported latency to the
// mode's, and the impulse still comes out exactly that late.
TEST(PluginQuality, SwitchingModeWhilePlayingReportsTheNewLatency) {
    const double rate = 48000;
    HostOptions opts;
    opts.threaded_worker = true;
    auto host = make_host(rate, opts);
    plain_sum(*host);
    host->activate();
    auto silence = std::vector<float>(4096, 0.0f);
    play(*host, silence, silence, 256);
    const float live = host->latency();
    std::string error;
    ASSERT_TRUE(host->set_control("quality", 2.0f, &error)) << error;
    play(*host, silence, silence, 256);
    host->wait_for_worker();
    play(*host, silence, silence, 256);
    const float studio = host->latency();
    EXPECT_GT(studio, live);
    EXPECT_LE(static_cast<double>(studio) / rate, 1.0);
    std::vector<float> l(static_cast<size_t>(studio) + 8192, 0.0f);
    l[100] = 1.0f;
    Render out = play(*host, l, l, 256);
    size_t peak = 0;
    for (size_t i = 0; i < l.size(); ++i) {
        if (std::abs(out.out[0][i]) > std::abs(out.out[0][peak])) peak = i;
    }
    EXPECT_EQ(peak, 100 + static_cast<size_t>(studio));
}

// --- Stemsphere (stereo out): the same plugin as Stemsphere Stems without the stem outputs.

double rms(const std::vector<float>& x, size_t from);

std::unique_ptr<PluginHost> make_stereo_host(double rate, HostOptions opts = {}) {
    return make_host(rate, opts, kStereoUri);
}

TEST(StereoPlugin, HasTwoOutputsAndEveryControlOfTheStemsPlugin) {
    auto stereo = make_stereo_host(48000);
    auto stems = make_host(48000);
    ASSERT_TRUE(stereo && stems);
    EXPECT_TRUE(stereo->verify());
    EXPECT_EQ(stereo->required_features(), stems->required_features());
    EXPECT_EQ(stereo->audio_input_symbols(), (std::vector<std::string>{"in_l", "in_r"}));
    EXPECT_EQ(stereo->audio_output_symbols(), (std::vector<std::string>{"out_l", "out_r"}));
    EXPECT_EQ(stereo->control_input_symbols(), stems->control_input_symbols());
    EXPECT_EQ(stereo->control_output_symbols(), stems->control_output_symbols());
    EXPECT_TRUE(stereo->latency_port_index().has_value());
    EXPECT_EQ(stereo->preset_labels(), stems->preset_labels());
    EXPECT_GE(stereo->preset_labels().size(), 8u);
}

// Same code, same controls: the stereo plugin's output is the Stems plugin's main pair, bit for
// bit (binaural on, controls moved), so everything tested on the Stems plugin's main pair holds
// for it. Live (DSP): the metered modes cross-fade from DSP until the metering thread's first
// answer, whose timing differs from instance to instance (the other StereoPlugin tests cover
// every mode).
TEST(StereoPlugin, OutputIsTheStemsPluginsMainPair) {
    const double rate = 44100;
    auto l = test_music(2 * 44100, rate, 31, 0.7);
    auto r = test_music(2 * 44100, rate, 32, 0.3);
    auto stereo = make_stereo_host(rate);
    auto stems = make_host(rate);
    std::string error;
    for (PluginHost* h : {stereo.get(), stems.get()}) {
        ASSERT_TRUE(h->set_control("drums_azimuth", 70.0f, &error)) << error;
        ASSERT_TRUE(h->set_control("bass_gain", -4.0f, &error)) << error;
        ASSERT_TRUE(h->set_control("vocals_distance", 3.0f, &error)) << error;
        h->activate();
    }
    const Render a = play(*stereo, l, r, 333);
    const Render b = play(*stems, l, r, 333);
    EXPECT_EQ(stereo->latency(), stems->latency());
    EXPECT_EQ(a.out[0], b.out[0]);
    EXPECT_EQ(a.out[1], b.out[1]);
    EXPECT_GT(rms(a.out[0], 4410), 0.01);
}

// Latency exact: an impulse comes out exactly `latency` frames later, every mode, odd blocks.
TEST(StereoPlugin, ReportedLatencyIsTheMeasuredImpulseDelay) {
    const double rate = 48000;
    for (float mode : {0.0f, 1.0f, 2.0f, 3.0f}) {
        for (uint32_t block : {1u, 63u, 1000u, kMaxBlock}) {
            if (block == 1 && mode == 3.0f) continue;  // Render at 1-frame blocks: minutes
            auto host = make_stereo_host(rate);
            plain_sum(*host);
            std::string error;
            ASSERT_TRUE(host->set_control("quality", mode, &error)) << error;
            host->activate();
            const size_t frames = (mode == 3.0f ? 5 : 3) * static_cast<size_t>(rate) / 2;
            std::vector<float> l(frames, 0.0f);
            const size_t at = block;
            l[at] = 1.0f;
            Render out = play(*host, l, l, block);
            size_t peak = 0;
            for (size_t i = 0; i < frames; ++i) {
                if (std::abs(out.out[0][i]) > std::abs(out.out[0][peak])) peak = i;
            }
            EXPECT_EQ(peak - at, static_cast<size_t>(host->latency()))
                << "mode " << mode << " block " << block;
            EXPECT_NEAR(out.out[1][peak], 1.0f, 1e-4f);
        }
    }
}

// Mixture consistency: with the plain sum, the stereo output is the input delayed by the
// latency, in every mode (the stems it drops still add up to the input inside).
TEST(StereoPlugin, PlainSumIsTheDelayedInputInEveryMode) {
    const double rate = 44100;
    auto l = test_music(3 * 44100, rate, 33, 0.9);
    auto r = test_music(3 * 44100, rate, 34, 0.2);
    for (float mode : {0.0f, 1.0f, 2.0f, 3.0f}) {
        auto host = make_stereo_host(rate);
        plain_sum(*host);
        std::string error;
        ASSERT_TRUE(host->set_control("quality", mode, &error)) << error;
        host->activate();
        Render out = play(*host, l, r, 512);
        const auto lat = static_cast<size_t>(host->latency());
        ASSERT_LT(lat + 44100, l.size()) << "mode " << mode;
        EXPECT_LT(peak_error_db(out.out[0], l, lat), -90.0) << "mode " << mode;
        EXPECT_LT(peak_error_db(out.out[1], r, lat), -90.0) << "mode " << mode;
    }
}

TEST(StereoPlugin, RunNeverTouchesTheHeapEvenWhileControlsMove) {
    auto host = make_stereo_host(48000);
    host->activate();
    auto l = test_music(48000, 48000, 35, 0.3);
    stemsphere::test::HeapCounter counter;
    std::vector<std::vector<float>> bufs(host->audio_output_count(), std::vector<float>(kMaxBlock));
    std::vector<float*> outs;
    for (auto& b : bufs) outs.push_back(b.data());
    const uint32_t blocks[] = {1, 17, 63, 64, 256, 1000, kMaxBlock};
    std::string error;
    size_t pos = 0;
    for (int i = 0; pos + kMaxBlock < l.size(); ++i) {
        ASSERT_TRUE(host->set_control(std::string(kStems[i % 4]) + "_gain",
                                      static_cast<float>(-(i % 13)), &error));
        ASSERT_TRUE(host->set_control(std::string(kStems[(i + 1) % 4]) + "_solo",
                                      static_cast<float>(i % 3 == 0), &error));
        ASSERT_TRUE(host->set_control(std::string(kStems[i % 4]) + "_azimuth",
                                      static_cast<float>((i * 37) % 360 - 180), &error));
        ASSERT_TRUE(host->set_control("binaural", static_cast<float>(i % 11 != 0), &error));
        ASSERT_TRUE(host->set_control("quality", static_cast<float>((i / 10) % 4), &error));
        const float* in[2] = {l.data() + pos, l.data() + pos};
        host->run(in, outs.data(), blocks[i % 7]);
        pos += blocks[i % 7];
    }
    EXPECT_EQ(counter.calls_in_run(), 0u);
    EXPECT_GT(counter.runs(), 0u);
}

// Shared presets and state: the factory presets apply to the stereo plugin too (same symbols),
// and its saved state (controls by symbol) restores into a fresh instance that sounds the same.
// (lilv, like hosts, restores a state only into the plugin URI that saved it.)
TEST(StereoPlugin, PresetsAndStateWorkLikeTheStemsPlugins) {
    const double rate = 48000;
    auto stereo = make_stereo_host(rate);
    std::string error;
    ASSERT_TRUE(stereo->apply_preset("Karaoke", &error)) << error;
    ASSERT_TRUE(stereo->apply_preset("Wide stage", &error)) << error;
    EXPECT_EQ(stereo->control("vocals_mute"), 1.0f);
    EXPECT_EQ(stereo->control("drums_azimuth"), 60.0f);
    ASSERT_TRUE(stereo->set_control("other_gain", -6.0f, &error)) << error;
    auto restored = make_stereo_host(rate);
    ASSERT_TRUE(restored->restore_state_string(stereo->save_state_string(), &error)) << error;
    EXPECT_EQ(restored->control("vocals_mute"), 1.0f);
    EXPECT_EQ(restored->control("drums_azimuth"), 60.0f);
    EXPECT_EQ(restored->control("other_gain"), -6.0f);
    // The same preset on the Stems plugin gives its main pair the same sound.
    auto stems = make_host(rate);
    ASSERT_TRUE(stems->apply_preset("Karaoke", &error)) << error;
    ASSERT_TRUE(stems->apply_preset("Wide stage", &error)) << error;
    ASSERT_TRUE(stems->set_control("other_gain", -6.0f, &error)) << error;
    restored->activate();
    stems->activate();
    auto l = test_music(12000, rate, 36, 0.5);
    const Render a = play(*restored, l, l, 256);
    const Render b = play(*stems, l, l, 256);
    EXPECT_EQ(a.out[0], b.out[0]);
    EXPECT_EQ(a.out[1], b.out[1]);
}

// --- "Report Studio latency in Live modes" (studio_latency): Live modes pad their output.

// The frames an impulse at the start of the second block comes out after, and the latency the
// plugin reported meanwhile (both plugins, any mode, option on or off).
struct Lag {
    size_t measured = 0;
    float reported = 0.0f;
};
Lag impulse_lag(const char* uri, float mode, bool studio_latency, uint32_t block, double rate) {
    auto host = make_host(rate, {}, uri);
    plain_sum(*host);
    std::string error;
    EXPECT_TRUE(host->set_control("quality", mode, &error)) << error;
    EXPECT_TRUE(host->set_control("studio_latency", studio_latency ? 1.0f : 0.0f, &error));
    host->activate();
    const size_t frames = (mode == 3.0f ? 5 : 3) * static_cast<size_t>(rate) / 2;
    std::vector<float> l(frames, 0.0f);
    l[block] = 1.0f;
    Render out = play(*host, l, l, block);
    size_t peak = 0;
    for (size_t i = 0; i < frames; ++i) {
        if (std::abs(out.out[0][i]) > std::abs(out.out[0][peak])) peak = i;
    }
    EXPECT_NEAR(out.out[1][peak], 1.0f, 1e-4f);
    return {peak - block, host->latency()};
}

// With the option on, Live (DSP), Live (neural) and Studio all report the Studio latency and an
// impulse comes out exactly that late; Render keeps its own. Off: every mode its own.
TEST(PluginLatencyOption, LiveModesReportAndApplyTheStudioLatency) {
    const double rate = 44100;
    const float studio = impulse_lag(kUri, 2.0f, false, 256, rate).reported;
    const float render = impulse_lag(kUri, 3.0f, false, 256, rate).reported;
    const float live = impulse_lag(kUri, 0.0f, false, 256, rate).reported;
    ASSERT_GT(studio, live);
    ASSERT_GT(render, studio);
    for (const char* uri : {kUri, kStereoUri}) {
        for (float mode : {0.0f, 1.0f, 2.0f, 3.0f}) {
            for (uint32_t block : {63u, 256u, 1000u}) {
                const Lag on = impulse_lag(uri, mode, true, block, rate);
                EXPECT_EQ(on.measured, static_cast<size_t>(on.reported))
                    << uri << " mode " << mode << " block " << block;
                EXPECT_EQ(on.reported, mode == 3.0f ? render : studio)
                    << uri << " mode " << mode << " block " << block;
                if (block != 256) continue;
                const Lag off = impulse_lag(uri, mode, false, block, rate);
                EXPECT_EQ(off.measured, static_cast<size_t>(off.reported)) << uri << mode;
                EXPECT_EQ(off.reported, mode == 3.0f ? render : (mode == 2.0f ? studio : live))
                    << uri << " mode " << mode;
            }
        }
    }
}

// The point of the option: switching Live (DSP) -> Live (neural) -> Studio -> Live (DSP) while
// playing (threaded worker, like jalv) never changes the reported latency, and after each switch
// the output is still exactly that late.
TEST(PluginLatencyOption, ModeSwitchesWhilePlayingNeverMoveTheLatency) {
    const double rate = 48000;
    HostOptions opts;
    opts.threaded_worker = true;
    auto host = make_stereo_host(rate, opts);
    plain_sum(*host);
    std::string error;
    ASSERT_TRUE(host->set_control("studio_latency", 1.0f, &error)) << error;
    host->activate();
    auto silence = std::vector<float>(4096, 0.0f);
    play(*host, silence, silence, 256);
    const float fixed = host->latency();
    for (float mode : {1.0f, 2.0f, 0.0f}) {
        ASSERT_TRUE(host->set_control("quality", mode, &error)) << error;
        for (int i = 0; i < 3; ++i) {
            play(*host, silence, silence, 256);
            EXPECT_EQ(host->latency(), fixed) << "mode " << mode;
            host->wait_for_worker();
        }
        std::vector<float> l(static_cast<size_t>(fixed) + 8192, 0.0f);
        l[100] = 1.0f;
        Render out = play(*host, l, l, 256);
        EXPECT_EQ(host->latency(), fixed) << "mode " << mode;
        size_t peak = 0;
        for (size_t i = 0; i < l.size(); ++i) {
            if (std::abs(out.out[0][i]) > std::abs(out.out[0][peak])) peak = i;
        }
        EXPECT_EQ(peak, 100 + static_cast<size_t>(fixed)) << "mode " << mode;
    }
}

// Off by default, a plain toggle (hosts must not automate it: it moves the latency).
TEST(PluginLatencyOption, IsAToggleThatDefaultsToOff) {
    for (const char* uri : {kUri, kStereoUri}) {
        auto host = make_host(48000, {}, uri);
        const auto info = host->control_info("studio_latency");
        ASSERT_TRUE(info.has_value()) << uri;
        EXPECT_TRUE(info->is_input);
        EXPECT_TRUE(info->toggled);
        EXPECT_EQ(info->default_value, 0.0f);
        EXPECT_EQ(info->name, "Report Studio latency in Live modes");
    }
}

constexpr const char* kHrtfFile = "https://stemsphere.dev/plugins/stemsphere#hrtf_file";
constexpr const char* kDefaultSofa = "/usr/share/libmysofa/default.sofa";

// Runs a few blocks of silence so queued patch messages, worker jobs and notifications flow.
void settle(PluginHost& host) {
    std::vector<float> zeros(256, 0.0f);
    std::vector<std::vector<float>> bufs(host.audio_output_count(), std::vector<float>(256));
    std::vector<float*> outs;
    for (auto& b : bufs) outs.push_back(b.data());
    const float* in[2] = {zeros.data(), zeros.data()};
    for (int i = 0; i < 4; ++i) host.run(in, outs.data(), 256);
    host.wait_for_worker();
    for (int i = 0; i < 2; ++i) host.run(in, outs.data(), 256);
}

double rms(const std::vector<float>& x, size_t from) {
    double e = 0.0;
    for (size_t i = from; i < x.size(); ++i)
        e += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    return std::sqrt(e / static_cast<double>(x.size() - from));
}

TEST(PluginBinaural, DefaultKemarSetIsLoadedAndAnnounced) {
    auto host = make_host(48000);
    host->activate();
    settle(*host);
    EXPECT_EQ(host->notified_path(kHrtfFile).value_or(""), kDefaultSofa);
}

TEST(PluginBinaural, AStemOnTheLeftIsLouderInTheLeftEar) {
    const double rate = 48000;
    auto host = make_host(rate);
    std::string error;
    for (const char* s : kStems) {
        ASSERT_TRUE(host->set_control(std::string(s) + "_azimuth", 90.0f, &error)) << error;
        ASSERT_TRUE(host->set_control(std::string(s) + "_width", 0.0f, &error)) << error;
    }
    host->activate();
    auto l = test_music(48000, rate, 11, 0.5);
    Render out = play(*host, l, l, 256);
    const double left = rms(out.out[0], 4800), right = rms(out.out[1], 4800);
    EXPECT_GT(20.0 * std::log10(left / right), 6.0);
    // The stem outputs stay dry: still the plain separation, equal in both channels here.
    EXPECT_NEAR(rms(out.out[2], 4800), rms(out.out[3], 4800), 1e-6);
}

TEST(PluginBinaural, BadSofaFilesAreRejectedAndThePreviousSetStays) {
    const double rate = 44100;
    HostOptions threaded;
    threaded.threaded_worker = true;
    auto host = make_host(rate, threaded);
    host->activate();
    settle(*host);
    ASSERT_EQ(host->notified_path(kHrtfFile).value_or(""), kDefaultSofa);

    // A truncated copy of the default set, a file that is not SOFA at all, a missing file.
    const std::string dir = ::testing::TempDir();
    const std::string truncated = dir + "truncated.sofa";
    const std::string garbage = dir + "garbage.sofa";
    {
        FILE* in = std::fopen(kDefaultSofa, "rb");
        ASSERT_NE(in, nullptr);
        std::vector<char> bytes(200000);
        const size_t got = std::fread(bytes.data(), 1, bytes.size(), in);
        std::fclose(in);
        FILE* out = std::fopen(truncated.c_str(), "wb");
        std::fwrite(bytes.data(), 1, got, out);
        std::fclose(out);
        out = std::fopen(garbage.c_str(), "wb");
        std::fputs("this is not an HDF5 file\n", out);
        std::fclose(out);
    }
    auto l = test_music(20000, rate, 12, 0.5);
    for (const std::string& bad : {truncated, garbage, dir + "missing.sofa"}) {
        host->clear_log();
        std::string error;
        ASSERT_TRUE(host->set_path_parameter(kHrtfFile, bad, &error)) << error;
        settle(*host);
        Render out = play(*host, l, l, 300);
        EXPECT_EQ(host->notified_path(kHrtfFile).value_or(""), kDefaultSofa) << bad;
        bool logged = false;
        for (const auto& line : host->log_lines()) {
            logged =
                logged || (line.rfind("error:", 0) == 0 && line.find(bad) != std::string::npos);
        }
        EXPECT_TRUE(logged) << "no clear error logged for " << bad;
        EXPECT_GT(rms(out.out[0], 10000), 1e-3) << "output must not go silent";
        for (float v : out.out[0]) ASSERT_TRUE(std::isfinite(v));
    }
}

TEST(PluginBinaural, HrtfFileIsSavedWithTheSessionAndRestored) {
    const double rate = 48000;
    const std::string copy = ::testing::TempDir() + "my-hrtf.sofa";
    {
        FILE* in = std::fopen(kDefaultSofa, "rb");
        ASSERT_NE(in, nullptr);
        FILE* out = std::fopen(copy.c_str(), "wb");
        std::vector<char> buf(1 << 16);
        size_t got;
        while ((got = std::fread(buf.data(), 1, buf.size(), in)) > 0)
            std::fwrite(buf.data(), 1, got, out);
        std::fclose(in);
        std::fclose(out);
    }
    auto host = make_host(rate);
    host->activate();
    std::string error;
    ASSERT_TRUE(host->set_path_parameter(kHrtfFile, copy, &error)) << error;
    settle(*host);
    ASSERT_EQ(host->notified_path(kHrtfFile).value_or(""), copy);
    const std::string state = host->save_state_string();
    auto restored = make_host(rate);
    ASSERT_TRUE(restored->restore_state_string(state, &error)) << error;
    restored->activate();
    settle(*restored);
    EXPECT_EQ(restored->notified_path(kHrtfFile).value_or(""), copy);
}

}  // namespace
