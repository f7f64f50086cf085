// Metering in the plugin (plugin/metering.h), through the lilv host: what the audio thread
// meters, that run() stays free of heap calls with metering on, what a metered mode plays
// without a lease (Live (DSP) at the mode's own latency), the fade when the balance runs out
// and back, the status port and the log. The scripted bundle's meter is driven through its
// control file (tests/plugin/scripted_meter.cpp); the shipped bundle is checked signed out.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/meter.h"
#include "tests/host/heap_counter.h"
#include "tools/lv2host/plugin_host.h"

namespace {

namespace fs = std::filesystem;
using stemsphere::client::LicenceState;
using stemsphere::host::HostOptions;
using stemsphere::host::PluginHost;

constexpr const char* kUri = "https://stemsphere.dev/plugins/stemsphere";
constexpr float kLiveDsp = 0, kLiveNeural = 1, kStudio = 2;

// The scripted meter's control file in a private folder, named by $STEMSPHERE_SCRIPTED_METER
// for the instances created while it lives.
class MeterScript {
  public:
    MeterScript() {
        char pattern[] = "/tmp/stemsphere-meter-XXXXXX";
        dir_ = mkdtemp(pattern);
        path_ = (fs::path(dir_) / "meter").string();
        setenv("STEMSPHERE_SCRIPTED_METER", path_.c_str(), 1);
    }
    ~MeterScript() {
        unsetenv("STEMSPHERE_SCRIPTED_METER");
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    void write(const std::string& text) const {
        const std::string tmp = path_ + ".tmp";
        std::ofstream(tmp) << text;
        fs::rename(tmp, path_);  // the client thread never reads half a file
    }
    // Milliseconds the plugin has recorded so far (0 before the first record).
    bool opened() const { return fs::exists(path_ + ".opened"); }
    long long used_ms() const {
        std::ifstream in(path_ + ".used");
        std::string word;
        in >> word;
        return word.rfind("used_ms=", 0) == 0 ? std::atoll(word.c_str() + 8) : 0;
    }

  private:
    std::string dir_;
    std::string path_;
};

std::unique_ptr<PluginHost> make_host(const char* bundle, double rate, float quality,
                                      float binaural = 1.0f) {
    HostOptions opts;
    opts.sample_rate = rate;
    opts.max_block = 4096;
    std::string error;
    auto host = PluginHost::create(bundle, kUri, opts, &error);
    EXPECT_NE(host, nullptr) << error;
    if (!host) return host;
    EXPECT_TRUE(host->set_control("quality", quality, &error)) << error;
    EXPECT_TRUE(host->set_control("binaural", binaural, &error)) << error;
    return host;
}

struct Outputs {
    std::vector<std::vector<float>> ch;  // audio outputs in port order
    std::vector<float> status;           // the status port after each block
    std::vector<size_t> block_start;     // first frame of each block
};

// Plays l/r through the host in blocks of `block`; with `paced`, no faster than real time (the
// client thread then sees the usage as a DAW would make it). `at_frame` runs before the block
// that starts at or after its frame.
Outputs play(PluginHost& host, const std::vector<float>& l, const std::vector<float>& r,
             uint32_t block, bool paced = false,
             const std::function<void(size_t)>& before_block = nullptr) {
    Outputs res;
    res.ch.assign(host.audio_output_count(), std::vector<float>(l.size(), 0.0f));
    std::vector<float*> outs(host.audio_output_count());
    const auto started = std::chrono::steady_clock::now();
    for (size_t start = 0; start < l.size(); start += block) {
        if (before_block) before_block(start);
        if (paced) {
            std::this_thread::sleep_until(
                started + std::chrono::microseconds(static_cast<int64_t>(
                              1e6 * static_cast<double>(start) / host.sample_rate())));
        }
        const auto n = static_cast<uint32_t>(std::min<size_t>(block, l.size() - start));
        const float* in[2] = {l.data() + start, r.data() + start};
        for (size_t c = 0; c < outs.size(); ++c) outs[c] = res.ch[c].data() + start;
        host.run(in, outs.data(), n);
        res.status.push_back(host.control("status"));
        res.block_start.push_back(start);
    }
    return res;
}

// Like a renderer: run silence until the metering client has answered (status no longer
// "Checking"), then start from a clean state so the first frame already plays what the licence
// allows. Returns the status.
float settle(PluginHost& host) {
    host.activate();
    std::vector<float> silence(256, 0.0f);
    std::vector<std::vector<float>> scratch(host.audio_output_count(), silence);
    std::vector<float*> outs;
    for (auto& c : scratch) outs.push_back(c.data());
    const float* in[2] = {silence.data(), silence.data()};
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
        host.run(in, outs.data(), 256);
        if (host.control("status") != -1.0f) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    host.deactivate();
    host.activate();
    return host.control("status");
}

// Two low tones (plus a quieter third): their third differences are far below -60 dBFS, so any
// step in the output stands out.
std::vector<float> tones(size_t frames, double rate, double pan) {
    std::vector<float> x(frames);
    for (size_t i = 0; i < frames; ++i) {
        const double t = static_cast<double>(i) / rate;
        x[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * 98.0 * t) +
                                  0.2 * pan * std::sin(2 * M_PI * 147.0 * t + 0.3) +
                                  0.1 * std::sin(2 * M_PI * 196.0 * t + 1.0));
    }
    return x;
}

// Music-like test signal (never digital silence).
std::vector<float> music(size_t frames, double rate, unsigned seed) {
    std::vector<float> x(frames);
    uint32_t state = seed * 2654435761u + 1;
    for (size_t i = 0; i < frames; ++i) {
        state = state * 1664525u + 1013904223u;
        const double noise = static_cast<double>(state >> 8) / 16777216.0 - 0.5;
        const double t = static_cast<double>(i) / rate;
        x[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * 220.0 * t) +
                                  0.3 * std::exp(-std::fmod(t, 0.25) * 40.0) * noise + 0.01);
    }
    return x;
}

// The largest step in x[from, to): half the largest third difference (a step of height h gives
// a third difference of 2h; smooth signals give almost none). In dBFS.
double step_dbfs(const std::vector<float>& x, size_t from, size_t to) {
    double worst = 0.0;
    for (size_t i = std::max<size_t>(from, 3); i < std::min(to, x.size()); ++i) {
        const auto at = [&](size_t k) { return static_cast<double>(x[k]); };
        const double d3 = at(i) - 3.0 * at(i - 1) + 3.0 * at(i - 2) - at(i - 3);
        worst = std::max(worst, std::abs(d3) / 2.0);
    }
    return 20.0 * std::log10(worst + 1e-30);
}

size_t first_difference(const std::vector<float>& a, const std::vector<float>& b, size_t from,
                        float tolerance) {
    for (size_t i = from; i < std::min(a.size(), b.size()); ++i) {
        if (std::abs(a[i] - b[i]) > tolerance) return i;
    }
    return a.size();
}

bool log_contains(const PluginHost& host, const std::string& text) {
    for (const std::string& line : host.log_lines()) {
        if (line.find(text) != std::string::npos) return true;
    }
    return false;
}

int thread_count() {
    std::error_code ec;
    int n = 0;
    for (auto it = fs::directory_iterator("/proc/self/task", ec); !ec && it != fs::end(it);
         it.increment(ec)) {
        ++n;
    }
    return n;
}

// Every millisecond of non-silent audio played in a metered mode is recorded once, whatever the
// block size; silence and the free mode are not metered; all instances of a process share one
// client thread, which ends with the last of them.
TEST(PluginMetering, RecordsExactlyTheMeteredAudioOfAllInstancesOnOneThread) {
    MeterScript script;
    script.write("state=1\n");
    const int threads_before = thread_count();
    const double rate = 48000;
    auto a = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kLiveNeural);
    const int threads_with_one = thread_count();
    auto b = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kLiveNeural);
    auto free_one = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kLiveDsp);
    EXPECT_EQ(thread_count(), threads_with_one) << "one client thread per process";
    EXPECT_EQ(threads_with_one, threads_before + 1);
    ASSERT_EQ(settle(*a), static_cast<float>(LicenceState::active));
    ASSERT_EQ(settle(*b), static_cast<float>(LicenceState::active));
    EXPECT_EQ(settle(*free_one), static_cast<float>(LicenceState::free_mode));

    // 7.5 s of music and 1 s of digital silence in 333-frame blocks (not a whole number of
    // milliseconds per block), and 2.5 s in 64-frame blocks on the second instance.
    auto song = music(static_cast<size_t>(7.5 * rate), rate, 1);
    song.resize(song.size() + static_cast<size_t>(rate), 0.0f);
    play(*a, song, song, 333);
    const auto other = music(static_cast<size_t>(2.5 * rate), rate, 2);
    play(*b, other, other, 64);
    play(*free_one, other, other, 512);
    a.reset();  // its last milliseconds are recorded as it goes
    EXPECT_GT(thread_count(), threads_before) << "the thread serves the remaining instances";
    b.reset();
    free_one.reset();
    EXPECT_EQ(script.used_ms(), 10000);
    EXPECT_EQ(thread_count(), threads_before) << "the last instance stops the client thread";
}

// A session that only plays the free mode never opens the meter (no account, file or network
// access), and says "Free mode".
TEST(PluginMetering, TheFreeModeNeverOpensTheMeter) {
    MeterScript script;
    script.write("state=1\n");
    const double rate = 48000;
    auto host = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kLiveDsp);
    EXPECT_EQ(settle(*host), static_cast<float>(LicenceState::free_mode));
    const auto song = music(static_cast<size_t>(rate), rate, 7);
    play(*host, song, song, 256);
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // > one idle wake-up
    host.reset();
    EXPECT_FALSE(script.opened());
    EXPECT_EQ(script.used_ms(), 0);
}

// run() makes no heap call with metering on: metered modes, usage pushed every block, the
// licence lost and regained while playing, controls and modes moving.
TEST(PluginMetering, RunNeverTouchesTheHeapWithMeteringOn) {
    if (!stemsphere::test::HeapCounter::available()) GTEST_SKIP() << "allocator not interposable";
    MeterScript script;
    script.write("state=1\n");
    const double rate = 48000;
    auto host = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kStudio);
    ASSERT_EQ(settle(*host), static_cast<float>(LicenceState::active));
    const auto l = music(static_cast<size_t>(3 * rate), rate, 3);
    stemsphere::test::HeapCounter counter;
    const uint32_t blocks[] = {1, 17, 64, 256, 1000, 4096};
    std::vector<std::vector<float>> bufs(host->audio_output_count(), std::vector<float>(4096));
    std::vector<float*> outs;
    for (auto& b : bufs) outs.push_back(b.data());
    std::string error;
    size_t pos = 0;
    // Phases: licensed; lease gone (fade to DSP) until run() sees it; licensed again until run()
    // sees that; a few more blocks. Bounded in time.
    int phase = 0;
    int blocks_in_phase = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (int i = 0; phase < 4 && std::chrono::steady_clock::now() < deadline; ++i) {
        const float status = host->control("status");
        ++blocks_in_phase;
        if (phase == 0 && blocks_in_phase > 40) {
            script.write("state=0\n");
            phase = 1;
        } else if (phase == 1 && status == static_cast<float>(LicenceState::signed_out)) {
            script.write("state=1\n");
            phase = 2;
        } else if (phase == 2 && status == static_cast<float>(LicenceState::active)) {
            phase = 3;
            blocks_in_phase = 0;
        } else if (phase == 3 && blocks_in_phase > 40) {
            phase = 4;
        }
        ASSERT_TRUE(
            host->set_control("quality", (i / 60) % 2 == 0 ? kStudio : kLiveNeural, &error));
        ASSERT_TRUE(host->set_control("vocals_gain", static_cast<float>(-(i % 13)), &error));
        const uint32_t n = blocks[i % 6];
        if (pos + n > l.size()) pos = 0;
        const float* in[2] = {l.data() + pos, l.data() + pos};
        host->run(in, outs.data(), n);
        pos += n;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let the client thread run
    }
    EXPECT_EQ(phase, 4) << "the licence changes did not reach run() in 20 s";
    EXPECT_EQ(counter.calls_in_run(), 0u);
    EXPECT_GT(counter.runs(), 100u);
    host.reset();
    EXPECT_GT(script.used_ms(), 0) << "metering was not on";
}

// Without a lease a metered mode plays exactly what Live (DSP) plays, delayed to the mode's
// own latency (delay compensation never jumps), says "Signed out" and meters nothing.
TEST(PluginMetering, WithoutALeaseAMeteredModePlaysDspAtItsOwnLatency) {
    MeterScript script;
    script.write("state=0\n");
    const double rate = 44100;
    const auto l = music(static_cast<size_t>(2 * rate), rate, 4);
    const auto r = music(static_cast<size_t>(2 * rate), rate, 5);
    auto studio = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kStudio);
    EXPECT_EQ(settle(*studio), static_cast<float>(LicenceState::signed_out));
    const Outputs fallback = play(*studio, l, r, 512);
    auto dsp = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kLiveDsp);
    settle(*dsp);
    const Outputs reference = play(*dsp, l, r, 512);
    const auto studio_latency = static_cast<size_t>(studio->latency());
    const auto dsp_latency = static_cast<size_t>(dsp->latency());
    ASSERT_GT(studio_latency, dsp_latency + 10000) << "Studio reports its look-ahead";
    const size_t shift = studio_latency - dsp_latency;
    for (size_t c = 0; c < fallback.ch.size(); ++c) {
        double worst = 0.0;
        for (size_t i = studio_latency; i < l.size(); ++i) {
            worst = std::max(worst, std::abs(static_cast<double>(fallback.ch[c][i]) -
                                             static_cast<double>(reference.ch[c][i - shift])));
        }
        EXPECT_LT(worst, 1e-5) << "output " << c;
    }
    EXPECT_TRUE(log_contains(*studio, "Signed out")) << "the log says why";
    EXPECT_EQ(fallback.status.back(), static_cast<float>(LicenceState::signed_out));
    EXPECT_EQ(reference.status.back(), static_cast<float>(LicenceState::free_mode));
    studio.reset();
    dsp.reset();
    EXPECT_EQ(script.used_ms(), 0);
}

// The balance runs out while playing in real time: the plugin cross-fades to Live (DSP) soon
// after the last covered millisecond, keeps its latency, shows no step above -60 dBFS at the
// switch, says "Exhausted"; after a top-up it fades back to exactly the networks' output.
TEST(PluginMetering, RunningOutFadesToDspWithoutAStepAndBackAfterATopUp) {
    const double rate = 48000;
    const uint32_t block = 480;  // 10 ms
    const auto l = tones(static_cast<size_t>(6 * rate), rate, 1.0);
    const auto r = tones(static_cast<size_t>(6 * rate), rate, -0.5);
    const size_t balance_ms = 1500;
    const size_t top_up_at = static_cast<size_t>(3.2 * rate);

    Outputs reference;  // never runs out
    {
        MeterScript script;
        script.write("state=1\n");
        auto host = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kStudio);
        ASSERT_EQ(settle(*host), static_cast<float>(LicenceState::active));
        reference = play(*host, l, r, block);
    }
    Outputs unlicensed;  // Live (DSP) at Studio's latency throughout
    {
        MeterScript script;
        script.write("state=0\n");
        auto host = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kStudio);
        ASSERT_EQ(settle(*host), static_cast<float>(LicenceState::signed_out));
        unlicensed = play(*host, l, r, block);
    }
    MeterScript script;
    script.write("state=1\nbalance_ms=" + std::to_string(balance_ms) + "\n");
    auto host = make_host(STEMSPHERE_SCRIPTED_BUNDLE_DIR, rate, kStudio);
    ASSERT_EQ(settle(*host), static_cast<float>(LicenceState::active));
    const float latency = host->latency();
    const Outputs out = play(*host, l, r, block, true, [&](size_t start) {
        if (start == top_up_at) script.write("state=1\nbalance_ms=100000000\n");
    });
    EXPECT_EQ(host->latency(), latency) << "latency never changes";

    // The fade starts where the output leaves the licensed reference.
    const size_t ran_out = balance_ms * static_cast<size_t>(rate) / 1000;
    size_t fade = l.size();
    for (size_t c = 2; c < out.ch.size(); ++c) {  // the stems (the mix may hide it)
        fade = std::min(fade, first_difference(out.ch[c], reference.ch[c], 0, 1e-6f));
    }
    ASSERT_LT(fade, l.size()) << "never faded to DSP";
    // The masks switch in the run() that sees the flag, and that shows in the output within a
    // hop or two: the fade is applied to the masks of the frame leaving the look-ahead, not to
    // the input entering it. So output frames and metered input frames line up here.
    ASSERT_GE(fade + 2048, ran_out) << "faded before the balance ran out";
    const double delay_ms =
        1000.0 * (static_cast<double>(fade) - static_cast<double>(ran_out)) / rate;
    std::printf("[ figure ] ran out -> fade start: %.1f ms of audio played in real time\n",
                delay_ms);
    // The audio thread stops metered use itself when the covered total is reached: one block
    // (10 ms) plus a hop or two, whatever the client thread is doing.
    EXPECT_LT(delay_ms, 50.0);

    bool said_exhausted = false;
    for (float s : out.status) said_exhausted = said_exhausted || s == 4.0f;
    EXPECT_TRUE(said_exhausted) << "status never said Exhausted";
    EXPECT_TRUE(log_contains(*host, "Exhausted"));

    // No step at either switch, on any output (binaural mix and stems). For scale: the step a
    // hard switch from the networks to DSP at the same frame would make.
    const size_t back = first_difference(out.ch[2], reference.ch[2], top_up_at, 1e-6f);
    double worst_fade = -200.0;
    double worst_hard = -200.0;
    for (size_t c = 0; c < out.ch.size(); ++c) {
        const double at_fade = step_dbfs(out.ch[c], fade - 2048, fade + 16384);
        const double baseline = step_dbfs(reference.ch[c], fade - 2048, fade + 16384);
        std::vector<float> hard(reference.ch[c].begin(), reference.ch[c].begin() + fade);
        hard.insert(hard.end(), unlicensed.ch[c].begin() + fade, unlicensed.ch[c].end());
        const double hard_step = step_dbfs(hard, fade - 2048, fade + 16384);
        std::printf(
            "[ figure ] output %zu: step at the fade %.1f dBFS (licensed, same span: "
            "%.1f; a hard switch: %.1f)\n",
            c, at_fade, baseline, hard_step);
        worst_fade = std::max(worst_fade, at_fade);
        worst_hard = std::max(worst_hard, hard_step);
        EXPECT_LT(at_fade, -60.0) << "output " << c;
        EXPECT_LT(step_dbfs(out.ch[c], top_up_at, l.size()), -60.0) << "output " << c;
    }
    EXPECT_GT(worst_hard, worst_fade + 6.0) << "the measure would not see a hard switch";
    // After the top-up the networks play again, bit for bit what they would have played. With
    // no metered audio flowing the client thread wakes once a second: allow 1.5 s.
    const size_t settled = top_up_at + static_cast<size_t>(1.5 * rate);
    for (size_t c = 0; c < out.ch.size(); ++c) {
        EXPECT_EQ(first_difference(out.ch[c], reference.ch[c], settled, 0.0f), l.size())
            << "output " << c;
    }
    EXPECT_LT(back, settled);
    host.reset();
    // Metered: the covered part, what played before the flag flipped and after the top-up;
    // never the DSP stretch in between.
    const auto dsp_stretch_ms = static_cast<long long>(1000 * (top_up_at - fade) / 48000);
    EXPECT_LE(script.used_ms(), 6000 - dsp_stretch_ms);
    EXPECT_GE(script.used_ms(), static_cast<long long>(balance_ms));
}

// The shipped bundle without a sign-in: Signed out, and it keeps playing (Live (DSP) at the
// mode's latency). XDG_CONFIG_HOME points at an empty folder, the server at a closed port.
TEST(PluginMetering, ShippedPluginSignedOutKeepsPlaying) {
    char pattern[] = "/tmp/stemsphere-config-XXXXXX";
    const std::string config = mkdtemp(pattern);
    setenv("XDG_CONFIG_HOME", config.c_str(), 1);
    setenv("STEMSPHERE_SERVER", "http://127.0.0.1:9", 1);
    const double rate = 48000;
    auto host = make_host(STEMSPHERE_BUNDLE_DIR, rate, kStudio);
    ASSERT_TRUE(host);
    EXPECT_EQ(settle(*host), static_cast<float>(LicenceState::signed_out));
    const auto l = music(static_cast<size_t>(rate), rate, 6);
    const Outputs out = play(*host, l, l, 512);
    double energy = 0.0;
    for (size_t i = static_cast<size_t>(host->latency()); i < l.size(); ++i) {
        energy += static_cast<double>(out.ch[2][i] * out.ch[2][i]);
    }
    EXPECT_GT(energy, 0.0) << "audio keeps playing";
    EXPECT_TRUE(log_contains(*host, "Signed out"));
    host.reset();
    std::error_code ec;
    fs::remove_all(config, ec);
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("STEMSPHERE_SERVER");
}

}  // namespace
