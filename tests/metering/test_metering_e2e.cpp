// Metering end to end, as a user meets it: stemsphere-render and the shipped plugin spend
// through the real metering client against a real stemsphere-server (loopback, its own SQLite
// file, started by each test; tests/client/server_harness.h). The ledger is the judge:
// - a render of N seconds is debited ceil(N s × price / 60 s) exactly, once (docs/api.md);
// - kill -9 of the renderer mid-render: the next process replays the journal and settles the
//   dead one's lease once, with what was journalled; nothing is charged twice;
// - the server stops mid-render: the audio goes on under the lease (offline grace) and the
//   usage settles once the server is back;
// - the balance runs out while playing: the plugin cross-fades to Live (DSP) without a step
//   above -60 dBFS and its status says Exhausted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sndfile.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/meter.h"
#include "tests/client/server_harness.h"
#include "tools/lv2host/plugin_host.h"

namespace {

namespace fs = std::filesystem;
using namespace stemsphere::client::testing;
using stemsphere::client::LicenceState;
using stemsphere::host::HostOptions;
using stemsphere::host::PluginHost;

constexpr const char* kUri = "https://stemsphere.dev/plugins/stemsphere";
constexpr int kRate = 44100;

// Stereo noise with an offset: no digital silence anywhere (silence is never metered).
void write_noise(const std::string& path, double seconds) {
    SF_INFO info{};
    info.samplerate = kRate;
    info.channels = 2;
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
    ASSERT_NE(f, nullptr);
    const auto frames = static_cast<size_t>(std::llround(seconds * kRate));
    std::vector<float> buf(2 * frames);
    uint32_t state = 11;
    for (float& v : buf) {
        state = state * 1664525u + 1013904223u;
        v = 0.05f + 0.2f * static_cast<float>(state >> 8) / 16777216.0f;
    }
    sf_writef_float(f, buf.data(), static_cast<sf_count_t>(frames));
    sf_close(f);
}

// One signed-in, funded user and the environment a renderer or plugin of theirs runs in.
class MeteringE2e : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }
    void start(int64_t price_mt, int64_t grant_mt) {
        server_ = std::make_unique<ServerProcess>(dir_.path() + "/ledger.db", price_mt);
        ASSERT_TRUE(server_->start());
        user_ = make_user(*server_, "user@example.org");
        grant(*server_, user_, grant_mt, "grant-1");
        config_ = dir_.path() + "/config";
        sign_in_client(*server_, user_, config_ + "/stemsphere");
    }
    std::string env() const {
        return "XDG_CONFIG_HOME='" + config_ + "' STEMSPHERE_SERVER='" + server_->url() + "'";
    }
    std::string path(const std::string& name) const { return dir_.path() + "/" + name; }
    // Runs stemsphere-render to the end; its exit status, output in *out.
    int render(const std::string& args, std::string* out) const {
        return run_command(env() + " '" + STEMSPHERE_RENDER_EXE + "' --bundle '" +
                               STEMSPHERE_BUNDLE_DIR + "' " + args + " 2>&1",
                           *out);
    }
    // Starts stemsphere-render in the background, output to `log`.
    pid_t render_in_background(const std::string& args, const std::string& log) const {
        const std::string command = env() + " exec '" + STEMSPHERE_RENDER_EXE + "' --bundle '" +
                                    STEMSPHERE_BUNDLE_DIR + "' " + args + " >'" + log + "' 2>&1";
        const pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        return pid;
    }
    static std::string read_text(const std::string& file) {
        std::ifstream in(file);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    // Waits (bounded) until `file` contains `text`.
    static bool wait_for_text(const std::string& file, const std::string& text, int seconds) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        while (std::chrono::steady_clock::now() < until) {
            if (read_text(file).find(text) != std::string::npos) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return false;
    }
    // The settles of the user's leases: lease_id → (used_ms, posted_mt).
    std::map<std::string, std::pair<int64_t, int64_t>> settles(int* count) const {
        stemsphere::client::HttpClient http(server_->url());
        const auto r = http.get("/v1/usage?limit=1000", user_.tokens["access_token"].asString());
        EXPECT_TRUE(r.ok()) << r.describe();
        std::map<std::string, std::pair<int64_t, int64_t>> out;
        *count = 0;
        for (const auto& it : r.body["items"]) {
            ++*count;
            out[it["lease_id"].asString()] = {it["used_ms"].asInt64(), it["posted_mt"].asInt64()};
        }
        return out;
    }

    TempDir dir_;
    std::unique_ptr<ServerProcess> server_;
    TestUser user_;
    std::string config_;
};

// N seconds rendered in a metered mode are debited ceil(N × price / 60 s), exactly once; an
// odd price makes the rounding show. The renderer prints the estimate and the settled cost.
TEST_F(MeteringE2e, ARenderIsDebitedExactlyItsLengthAtThePrice) {
    const int64_t price = 1001;  // milli-tokens per minute
    start(price, 100000);
    write_noise(path("song.wav"), 45.5);
    std::string out;
    ASSERT_EQ(render("--quality live --out '" + path("out") + "' '" + path("song.wav") + "'", &out),
              0)
        << out;
    const int64_t expected = price_of(45500, price);  // 45 545.5 / 60 → 760 mt
    EXPECT_EQ(expected, 760);
    int count = 0;
    const auto done = settles(&count);
    ASSERT_EQ(count, 1) << "one lease, settled once";
    EXPECT_EQ(done.begin()->second.first, 45500) << "used_ms";
    EXPECT_EQ(done.begin()->second.second, expected) << "posted_mt";
    EXPECT_EQ(posted_total(*server_, user_), expected);
    EXPECT_NE(out.find("0:45.5 of audio, about 0.760 tokens at 1.001 tokens per minute"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("spent: 0.760 tokens (settled"), std::string::npos) << out;
    std::printf("[ figure ] 45.5 s at 1001 mt/min: debited %lld mt, expected %lld mt\n",
                static_cast<long long>(done.begin()->second.second),
                static_cast<long long>(expected));
}

// kill -9 of the renderer mid-render; the next render replays the dead one's journal: its lease
// is settled once with what was journalled, the new render's own once, and a third run
// charges neither again.
TEST_F(MeteringE2e, KillNineMidRenderSettlesOnceAfterRestart) {
    const int64_t price = 1000;
    start(price, 1000000);
    write_noise(path("long.wav"), 240.0);
    write_noise(path("short.wav"), 2.0);
    const pid_t pid = render_in_background(
        "--quality live --out '" + path("long-out") + "' '" + path("long.wav") + "'",
        path("long.log"));
    ASSERT_TRUE(wait_for_text(path("long.log"), "is metered", 60)) << read_text(path("long.log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // usage journalled
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the render ended before the kill: make long.wav longer";

    std::string out;
    ASSERT_EQ(render("--quality live --out '" + path("o2") + "' '" + path("short.wav") + "'", &out),
              0)
        << out;
    int count = 0;
    auto after_restart = settles(&count);
    ASSERT_EQ(count, 2) << "the dead render's lease and the new one, once each";
    int64_t dead_used = 0;
    for (const auto& [lease, used_posted] : after_restart) {
        EXPECT_EQ(used_posted.second, price_of(used_posted.first, price)) << lease;
        if (used_posted.first != 2000) dead_used = used_posted.first;
    }
    EXPECT_GT(dead_used, 0) << "the journalled usage of the killed render was settled";
    EXPECT_LT(dead_used, 240000);
    ASSERT_EQ(render("--quality live --out '" + path("o3") + "' '" + path("short.wav") + "'", &out),
              0)
        << out;
    const auto third = settles(&count);
    EXPECT_EQ(count, 3) << "no lease settled twice";
    for (const auto& [lease, used_posted] : after_restart) {
        ASSERT_EQ(third.count(lease), 1u);
        EXPECT_EQ(third.at(lease), used_posted);
    }
    EXPECT_EQ(posted_total(*server_, user_),
              price_of(dead_used, price) + 2 * price_of(2000, price));
    std::printf("[ figure ] kill -9 after %lld ms journalled: settled once, %lld mt\n",
                static_cast<long long>(dead_used),
                static_cast<long long>(price_of(dead_used, price)));
}

// The server goes away mid-render: the render finishes under its lease (offline grace), says
// the cost is not known yet; once the server is back the next process settles it, once.
TEST_F(MeteringE2e, ServerDownMidRenderPlaysOnInGraceAndSettlesLater) {
    const int64_t price = 1000;
    start(price, 1000000);
    write_noise(path("song.wav"), 60.0);
    write_noise(path("short.wav"), 1.0);
    const pid_t pid = render_in_background(
        "--quality live --out '" + path("out") + "' '" + path("song.wav") + "'", path("song.log"));
    ASSERT_TRUE(wait_for_text(path("song.log"), "is metered", 60)) << read_text(path("song.log"));
    server_->stop();
    int status = 0;
    waitpid(pid, &status, 0);
    const std::string log = read_text(path("song.log"));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log;
    EXPECT_EQ(log.find("lease ran out"), std::string::npos) << "no fall-back to DSP: " << log;
    EXPECT_NE(log.find("spent: not known yet"), std::string::npos) << log;
    SF_INFO info{};
    SNDFILE* f = sf_open((path("out") + "/vocals.wav").c_str(), SFM_READ, &info);
    ASSERT_NE(f, nullptr);
    sf_close(f);
    EXPECT_EQ(info.frames, 60 * kRate) << "the whole song was rendered";

    ASSERT_TRUE(server_->restart());
    std::string out;
    ASSERT_EQ(render("--quality live --out '" + path("o2") + "' '" + path("short.wav") + "'", &out),
              0)
        << out;
    int count = 0;
    const auto done = settles(&count);
    EXPECT_EQ(count, 2);
    int64_t used_total = 0;
    for (const auto& [lease, used_posted] : done) {
        used_total += used_posted.first;
        EXPECT_EQ(used_posted.second, price_of(used_posted.first, price)) << lease;
    }
    EXPECT_EQ(used_total, 61000) << "the offline render's 60 s and the next one's 1 s";
}

// The balance runs out while the shipped plugin plays in real time: it cross-fades to Live
// (DSP) without a step above -60 dBFS, says Exhausted, and the ledger takes exactly what the
// balance held (usage past the lease is overage, never charged).
TEST_F(MeteringE2e, RunningOutFadesToDspAndSaysExhausted) {
    const int64_t price = 1000;
    start(price, 50);  // 3 s of metered audio
    setenv("XDG_CONFIG_HOME", config_.c_str(), 1);
    setenv("STEMSPHERE_SERVER", server_->url().c_str(), 1);
    const double rate = 48000;
    const uint32_t block = 480;
    const auto frames = static_cast<size_t>(7 * rate);
    std::vector<float> l(frames), r(frames);
    for (size_t i = 0; i < frames; ++i) {
        const double t = static_cast<double>(i) / rate;
        l[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * 98.0 * t) +
                                  0.1 * std::sin(2 * M_PI * 196.0 * t + 1.0));
        r[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * 98.0 * t) -
                                  0.1 * std::sin(2 * M_PI * 147.0 * t + 0.3));
    }
    // Plays through a bundle, paced at real time; outputs and the status per block.
    auto play = [&](const char* bundle, std::vector<std::vector<float>>* out,
                    std::vector<float>* status, std::string* log) {
        HostOptions opts;
        opts.sample_rate = rate;
        std::string error;
        auto host = PluginHost::create(bundle, kUri, opts, &error);
        ASSERT_TRUE(host) << error;
        ASSERT_TRUE(host->set_control("quality", 1.0f, &error)) << error;  // Live (neural)
        host->activate();
        std::vector<float> silence(block, 0.0f);
        std::vector<std::vector<float>> scratch(host->audio_output_count(), silence);
        std::vector<float*> outs;
        for (auto& c : scratch) outs.push_back(c.data());
        const float* quiet[2] = {silence.data(), silence.data()};
        for (int i = 0; i < 2000 && host->control("status") == -1.0f; ++i) {
            host->run(quiet, outs.data(), block);
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        const float first = host->control("status");
        ASSERT_TRUE(first == static_cast<float>(LicenceState::active) ||
                    first == static_cast<float>(LicenceState::low_balance))
            << first << ": " << error;
        host->deactivate();
        host->activate();
        out->assign(host->audio_output_count(), std::vector<float>(frames));
        const auto started = std::chrono::steady_clock::now();
        for (size_t start = 0; start < frames; start += block) {
            std::this_thread::sleep_until(started + std::chrono::microseconds(static_cast<int64_t>(
                                                        1e6 * static_cast<double>(start) / rate)));
            const float* in[2] = {l.data() + start, r.data() + start};
            for (size_t c = 0; c < outs.size(); ++c) outs[c] = (*out)[c].data() + start;
            host->run(in, outs.data(), block);
            status->push_back(host->control("status"));
        }
        for (const auto& line : host->log_lines()) *log += line;
    };
    std::vector<std::vector<float>> metered, reference;
    std::vector<float> status, reference_status;
    std::string log, reference_log;
    play(STEMSPHERE_BUNDLE_DIR, &metered, &status, &log);
    unsetenv("STEMSPHERE_SCRIPTED_METER");  // the scripted bundle: licensed throughout
    play(STEMSPHERE_SCRIPTED_BUNDLE_DIR, &reference, &reference_status, &reference_log);
    ASSERT_FALSE(metered.empty());

    size_t fade = frames;
    for (size_t c = 2; c < metered.size(); ++c) {
        for (size_t i = 0; i < frames && i < fade; ++i) {
            if (std::abs(metered[c][i] - reference[c][i]) > 1e-6f) fade = i;
        }
    }
    ASSERT_LT(fade, frames) << "never faded: " << log;
    const double delay_ms = 1000.0 * (static_cast<double>(fade) - 3.0 * rate) / rate;
    std::printf("[ figure ] real client: balance out -> fade start %.1f ms\n", delay_ms);
    EXPECT_GT(delay_ms, -50.0) << "faded before the lease was used up";
    EXPECT_LT(delay_ms, 50.0) << "one 10 ms block and a hop or two";
    double worst = 0.0;
    for (size_t c = 0; c < metered.size(); ++c) {
        for (size_t i = fade > 2048 ? fade - 2048 : 3; i < std::min(frames, fade + 16384); ++i) {
            const auto at = [&](size_t k) { return static_cast<double>(metered[c][k]); };
            worst =
                std::max(worst, std::abs(at(i) - 3 * at(i - 1) + 3 * at(i - 2) - at(i - 3)) / 2);
        }
    }
    const double step_db = 20.0 * std::log10(worst + 1e-30);
    std::printf("[ figure ] real client: largest step at the fade %.1f dBFS\n", step_db);
    EXPECT_LT(step_db, -60.0);
    bool exhausted = false;
    for (float s : status)
        exhausted = exhausted || s == static_cast<float>(LicenceState::exhausted);
    EXPECT_TRUE(exhausted) << "last status " << status.back() << ": " << log;
    EXPECT_NE(log.find("Exhausted"), std::string::npos) << log;
    EXPECT_EQ(posted_total(*server_, user_), 50) << "exactly the balance, no overage charged";
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("STEMSPHERE_SERVER");
}

}  // namespace
