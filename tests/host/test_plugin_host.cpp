// The host library against the fixture plugins (tests/host/fixture): what a plugin sees and what
// a caller gets back, including clear errors for everything a host can refuse.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/host/heap_counter.h"
#include "tools/lv2host/plugin_host.h"

namespace {

using stemsphere::host::HostOptions;
using stemsphere::host::PluginHost;

constexpr const char* kStems = "urn:stemsphere:fixture:stems";
constexpr const char* kLeaky = "urn:stemsphere:fixture:leaky";
constexpr const char* kPathProperty = "https://stemsphere.dev/plugins/stemsphere#hrtf_file";
constexpr uint32_t kMaxBlock = 1024;

std::unique_ptr<PluginHost> make_host(const char* uri, HostOptions options = {}) {
    options.max_block = kMaxBlock;
    std::string error;
    auto host = PluginHost::create(HOST_FIXTURE_BUNDLE, uri, options, &error);
    EXPECT_NE(host, nullptr) << error;
    return host;
}

// The stems fixture, activated, with its worker run synchronously or on the host's own thread.
std::unique_ptr<PluginHost> make_active_host(bool threaded_worker) {
    HostOptions options;
    options.threaded_worker = threaded_worker;
    auto host = make_host(kStems, options);
    if (host) host->activate();
    return host;
}

// One buffer of `frames` per audio output, and the pointer array run() takes.
struct OutputBuffers {
    OutputBuffers(size_t outputs, size_t frames) : channels(outputs, std::vector<float>(frames)) {
        for (auto& channel : channels) pointers.push_back(channel.data());
    }
    std::vector<std::vector<float>> channels;
    std::vector<float*> pointers;
};

std::string create_error(const std::string& bundle, const char* uri, HostOptions options = {}) {
    std::string error;
    auto host = PluginHost::create(bundle, uri, options, &error);
    EXPECT_EQ(host, nullptr);
    return error;
}

// Plays `input` (both channels) through the host in blocks of `block`; returns every output.
std::vector<std::vector<float>> play(PluginHost& host, const std::vector<float>& input,
                                     uint32_t block) {
    std::vector<std::vector<float>> out(host.audio_output_count(),
                                        std::vector<float>(input.size(), 0.0f));
    std::vector<float*> outs(out.size());
    for (size_t start = 0; start < input.size(); start += block) {
        const auto n = static_cast<uint32_t>(std::min<size_t>(block, input.size() - start));
        const float* in[2] = {input.data() + start, input.data() + start};
        for (size_t c = 0; c < outs.size(); ++c) outs[c] = out[c].data() + start;
        host.run(in, outs.data(), n);
    }
    return out;
}

std::vector<float> impulse_at(size_t frames, size_t at) {
    std::vector<float> x(frames, 0.0f);
    x[at] = 1.0f;
    return x;
}

size_t peak_position(const std::vector<float>& x) {
    size_t best = 0;
    for (size_t i = 1; i < x.size(); ++i) {
        if (std::fabs(x[i]) > std::fabs(x[best])) best = i;
    }
    return best;
}

std::vector<float> test_signal(size_t frames) {
    std::vector<float> x(frames);
    for (size_t i = 0; i < frames; ++i) {
        const double t = static_cast<double>(i);
        x[i] = static_cast<float>(0.5 * std::sin(0.01 * t) + 0.25 * std::sin(0.173 * t));
    }
    return x;
}

// A small file the fixture reads as its "scale"; removed again at the end of the test. Named per
// process: other checkouts may run the same tests on the same machine at once.
class TempFile {
  public:
    TempFile(const std::string& name, const std::string& content)
        : path_((std::filesystem::temp_directory_path() / (std::to_string(getpid()) + "-" + name))
                    .string()) {
        std::ofstream(path_) << content;
    }
    ~TempFile() { std::filesystem::remove(path_); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    operator const std::string&() const { return path_; }

  private:
    std::string path_;
};

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

TEST(PluginHost, RefusesWhatItCannotHostAndSaysWhy) {
    EXPECT_TRUE(contains(create_error("/nonexistent/x.lv2", kStems), "not a directory"));
    EXPECT_TRUE(contains(create_error("/tmp", kStems), "manifest.ttl not found"));
    const std::string unknown = create_error(HOST_FIXTURE_BUNDLE, "urn:nope");
    EXPECT_TRUE(contains(unknown, "<urn:nope> not found")) << unknown;
    EXPECT_TRUE(contains(unknown, kStems)) << unknown;  // lists what the bundle has
    const std::string feature =
        create_error(HOST_FIXTURE_BUNDLE, "urn:stemsphere:fixture:needs-feature");
    EXPECT_TRUE(contains(feature, "urn:stemsphere:fixture#unobtainable")) << feature;
    const std::string refused = create_error(HOST_FIXTURE_BUNDLE, "urn:stemsphere:fixture:refuses");
    EXPECT_TRUE(contains(refused, "failed to instantiate at 48000 Hz")) << refused;
    EXPECT_TRUE(contains(refused, "never instantiates")) << refused;  // the plugin's own log line

    HostOptions no_worker;
    no_worker.provide_worker = false;
    const std::string worker =
        create_error(HOST_FIXTURE_BUNDLE, "urn:stemsphere:fixture:needs-worker", no_worker);
    EXPECT_TRUE(contains(worker, LV2_WORKER__schedule)) << worker;
    HostOptions no_options;
    no_options.provide_options = false;
    const std::string options =
        create_error(HOST_FIXTURE_BUNDLE, "urn:stemsphere:fixture:needs-worker", no_options);
    EXPECT_TRUE(contains(options, LV2_OPTIONS__options)) << options;
    EXPECT_NE(make_host("urn:stemsphere:fixture:needs-worker"), nullptr);
}

TEST(PluginHost, FindsTheBundleWithOrWithoutTrailingSlash) {
    std::string error;
    for (const std::string& dir :
         {std::string(HOST_FIXTURE_BUNDLE), HOST_FIXTURE_BUNDLE + std::string("/")}) {
        EXPECT_NE(PluginHost::create(dir, kStems, HostOptions{}, &error), nullptr) << error;
    }
}

TEST(PluginHost, DescribesThePortsInOrder) {
    auto host = make_host(kStems);
    ASSERT_TRUE(host);
    EXPECT_TRUE(host->verify());
    EXPECT_EQ(host->required_features(), std::vector<std::string>{LV2_URID__map});
    EXPECT_EQ(host->audio_input_symbols(), (std::vector<std::string>{"in_l", "in_r"}));
    EXPECT_EQ(host->audio_output_count(), 10u);
    EXPECT_EQ(host->audio_output_symbols()[2], "vocals_l");
    EXPECT_EQ(host->control_input_symbols(), (std::vector<std::string>{"enabled", "gain", "mode"}));
    EXPECT_EQ(host->latency_port_index(), std::optional<uint32_t>(15));
    EXPECT_TRUE(host->has_atom_control_input());
    EXPECT_EQ(host->control("enabled"), 1.0f);  // TTL default
    const auto mode = host->control_info("mode");
    ASSERT_TRUE(mode);
    EXPECT_TRUE(mode->enumeration);
    ASSERT_EQ(mode->scale_points.size(), 2u);
    EXPECT_EQ(mode->scale_points[1].second, "Long");
}

TEST(PluginHost, RejectsBadControlValuesAndKeepsTheOldOne) {
    auto host = make_host(kStems);
    ASSERT_TRUE(host);
    std::string error;
    ASSERT_TRUE(host->set_control("gain", -6.0f, &error)) << error;
    EXPECT_FALSE(host->set_control("volume", 1.0f, &error));
    EXPECT_TRUE(contains(error, "unknown control 'volume'") && contains(error, "gain")) << error;
    EXPECT_FALSE(host->set_control("gain", 30.0f, &error));
    EXPECT_TRUE(contains(error, "outside its range [-60, 12]")) << error;
    EXPECT_FALSE(host->set_control("gain", std::nanf(""), &error));
    EXPECT_FALSE(host->set_control("mode", 2.0f, &error));  // in range, not a scale point
    EXPECT_TRUE(contains(error, "1 (Long)")) << error;
    EXPECT_FALSE(host->set_control("mode", 0.5f, &error));
    EXPECT_FALSE(host->set_control("enabled", 0.5f, &error));
    EXPECT_FALSE(host->set_control("latency", 1.0f, &error));  // an output
    EXPECT_EQ(host->control("gain"), -6.0f);
    EXPECT_EQ(host->control("mode"), 0.0f);
    EXPECT_TRUE(std::isnan(host->control("volume")));
}

TEST(PluginHost, ReportedLatencyIsTheMeasuredDelayForEveryBlockSize) {
    for (float mode : {0.0f, 1.0f}) {
        for (uint32_t block : {1u, 17u, 63u, 64u, 256u, 1000u, kMaxBlock}) {
            auto host = make_host(kStems);
            ASSERT_TRUE(host);
            ASSERT_TRUE(host->set_control("mode", mode, nullptr));
            host->activate();
            const auto out = play(*host, impulse_at(4000, 100), block);
            const auto latency = static_cast<size_t>(host->latency());
            EXPECT_EQ(latency, mode == 0.0f ? 64u : 1000u);
            for (const auto& channel : out) EXPECT_EQ(peak_position(channel), 100 + latency);
        }
    }
}

TEST(PluginHost, NullBuffersMeanSilenceInAndDiscardedOut) {
    auto host = make_host(kStems);
    ASSERT_TRUE(host);
    host->activate();
    std::vector<float> out_l(256, 1.0f);
    std::vector<float*> outs = {out_l.data()};
    outs.resize(host->audio_output_count(), nullptr);
    for (int i = 0; i < 4; ++i) host->run(nullptr, outs.data(), 256);
    EXPECT_TRUE(std::all_of(out_l.begin(), out_l.end(), [](float v) { return v == 0.0f; }));
}

TEST(PluginHost, AppliesPresetsToInputControlsOnly) {
    auto host = make_host(kStems);
    ASSERT_TRUE(host);
    EXPECT_EQ(host->preset_labels(), (std::vector<std::string>{"Long latency", "Quiet"}));
    std::string error;
    ASSERT_TRUE(host->apply_preset("Quiet", &error)) << error;
    EXPECT_EQ(host->control("gain"), -20.0f);
    EXPECT_NE(host->control("latency"), 999.0f);  // stored in the preset, but an output
    EXPECT_FALSE(host->apply_preset("Loud", &error));
    EXPECT_TRUE(contains(error, "unknown preset 'Loud'") && contains(error, "Quiet")) << error;
    ASSERT_TRUE(host->apply_preset("Long latency", &error)) << error;
    host->activate();
    play(*host, test_signal(512), 512);
    EXPECT_EQ(host->latency(), 1000.0f);
    EXPECT_EQ(host->control("gain"), -20.0f);  // untouched by a preset that does not set it
}

TEST(PluginHost, PathParameterReachesThePluginThroughTheWorker) {
    auto host = make_host(kStems);
    ASSERT_TRUE(host);
    host->activate();
    const TempFile file("stemsphere-host-scale-half.txt", "0.5\n");
    std::string error;
    ASSERT_TRUE(host->set_path_parameter(kPathProperty, file, &error)) << error;
    const auto input = test_signal(2048);
    const auto out = play(*host, input, 512);
    EXPECT_GE(host->worker_jobs(), 1u);
    EXPECT_EQ(host->notified_path(kPathProperty), std::optional<std::string>(file));
    // The file is read in the first block; from the second on the mix is scaled by 0.5.
    for (size_t i = 512; i < input.size(); ++i) ASSERT_FLOAT_EQ(out[0][i], 0.5f * input[i - 64]);

    EXPECT_FALSE(host->set_path_parameter("urn:not-writable", file, &error));
    EXPECT_TRUE(contains(error, "patch:writable <urn:not-writable>")) << error;
    auto leaky = make_host(kLeaky);
    ASSERT_TRUE(leaky);
    EXPECT_FALSE(leaky->set_path_parameter(kPathProperty, file, &error));
    EXPECT_TRUE(contains(error, "no atom control input")) << error;

    host->clear_log();
    ASSERT_TRUE(host->set_path_parameter(kPathProperty, "/nonexistent/scale.txt", &error));
    play(*host, input, 512);
    const auto log = host->log_lines();
    ASSERT_FALSE(log.empty());
    EXPECT_EQ(log.back(), "error: fixture: cannot read '/nonexistent/scale.txt'");
}

TEST(PluginHost, StateRoundTripGivesBitIdenticalOutput) {
    const TempFile file("stemsphere-host-scale-quarter.txt", "0.25\n");
    const auto input = test_signal(6000);
    auto host = make_host(kStems);
    ASSERT_TRUE(host);
    std::string error;
    ASSERT_TRUE(host->set_control("gain", -3.0f, &error));
    ASSERT_TRUE(host->set_control("mode", 1.0f, &error));
    ASSERT_TRUE(host->set_path_parameter(kPathProperty, file, &error)) << error;
    host->activate();
    play(*host, input, 256);  // delivers the path
    const std::string state = host->save_state_string();
    EXPECT_TRUE(contains(state, file)) << state;

    auto restored = make_host(kStems);
    ASSERT_TRUE(restored);
    ASSERT_TRUE(restored->restore_state_string(state, &error)) << error;
    EXPECT_EQ(restored->control("gain"), -3.0f);
    EXPECT_EQ(restored->control("mode"), 1.0f);
    auto fresh = make_host(kStems);
    ASSERT_TRUE(fresh);
    ASSERT_TRUE(fresh->restore_state_string(state, &error)) << error;
    fresh->activate();
    restored->activate();
    EXPECT_EQ(play(*fresh, input, 100), play(*restored, input, 333));
    const auto out = play(*restored, input, 256);
    EXPECT_FLOAT_EQ(out[0][2000], 0.25f * std::pow(10.0f, -3.0f / 20.0f) * input[1000]);

    EXPECT_FALSE(restored->restore_state_string("this is not turtle", &error));
    EXPECT_FALSE(error.empty());
    EXPECT_EQ(restored->control("gain"), -3.0f);
}

TEST(PluginHost, ThreadedWorkerGivesTheSameOutputAsTheSynchronousOne) {
    const TempFile file("stemsphere-host-scale-threaded.txt", "0.75\n");
    const auto input = test_signal(8192);
    std::vector<std::vector<std::vector<float>>> results;
    for (bool threaded : {false, true}) {
        auto host = make_active_host(threaded);
        ASSERT_TRUE(host);
        std::string error;
        ASSERT_TRUE(host->set_path_parameter(kPathProperty, file, &error)) << error;
        const float* in[2] = {input.data(), input.data()};
        OutputBuffers first(host->audio_output_count(), 64);
        host->run(in, first.pointers.data(), 64);  // the plugin schedules the load here
        host->wait_for_worker();
        results.push_back(play(*host, input, 512));
    }
    EXPECT_EQ(results[0], results[1]);
}

TEST(PluginHost, PluginWorksWithUridMapAlone) {
    HostOptions bare;
    bare.provide_worker = bare.provide_options = bare.provide_bounded_block = bare.provide_log =
        bare.provide_state_paths = false;
    auto host = make_host(kStems, bare);
    ASSERT_TRUE(host);
    EXPECT_EQ(host->provided_features(),
              (std::vector<std::string>{LV2_URID__map, LV2_URID__unmap}));
    EXPECT_TRUE(host->log_lines().empty());  // nothing to log to
    host->activate();
    const auto out = play(*host, impulse_at(1000, 10), 77);
    EXPECT_EQ(peak_position(out[0]), 10 + static_cast<size_t>(host->latency()));
    auto full = make_host(kStems);
    ASSERT_TRUE(full);
    // The notify port's rsz:minimumSize (100000) raises the announced atom buffer size.
    EXPECT_EQ(
        full->log_lines(),
        std::vector<std::string>{"note: fixture: instantiated at 48000 Hz, sequence size 100000"});
}

TEST(PluginHost, HeapCounterCatchesTheLeakyPluginAndClearsTheCleanOne) {
    if (!stemsphere::test::HeapCounter::available()) GTEST_SKIP() << "skipped: sanitizer build";
    const auto input = test_signal(4096);
    auto leaky = make_host(kLeaky);
    ASSERT_TRUE(leaky);
    leaky->activate();
    {
        stemsphere::test::HeapCounter counter;
        play(*leaky, input, 256);
        EXPECT_EQ(counter.runs(), 16u);
        EXPECT_EQ(counter.calls_in_run(), 32u);  // one malloc and one free per block
    }
    auto clean = make_host(kStems);
    ASSERT_TRUE(clean);
    clean->activate();
    const TempFile file("stemsphere-host-scale-heap.txt", "0.5\n");
    ASSERT_TRUE(clean->set_path_parameter(kPathProperty, file, nullptr));
    stemsphere::test::HeapCounter counter;
    play(*clean, input, 256);  // includes a synchronous work() with file I/O: not run()'s
    EXPECT_EQ(clean->notified_path(kPathProperty), std::optional<std::string>(file));
    EXPECT_EQ(counter.runs(), 16u);
    EXPECT_EQ(counter.calls_in_run(), 0u);
}

TEST(PluginHost, ItsOwnRunPathDoesNotTouchTheHeap) {
    if (!stemsphere::test::HeapCounter::available()) GTEST_SKIP() << "skipped: sanitizer build";
    for (bool threaded : {false, true}) {
        auto host = make_active_host(threaded);
        ASSERT_TRUE(host);
        const auto input = test_signal(kMaxBlock);
        OutputBuffers out(host->audio_output_count(), kMaxBlock);
        const float* in[2] = {input.data(), nullptr};
        stemsphere::test::HeapCounter counter;
        PluginHost::set_run_observer(nullptr, nullptr);  // count the whole of run(), by hand
        stemsphere::test::heap_counting_enter();
        for (uint32_t n : {1u, 63u, 500u, kMaxBlock}) host->run(in, out.pointers.data(), n);
        stemsphere::test::heap_counting_leave();
        EXPECT_EQ(counter.calls_in_run(), 0u) << (threaded ? "threaded" : "synchronous");
    }
}

TEST(PluginHost, LoadsFromLv2PathLikeOtherHosts) {
    const std::string dir = std::filesystem::path(HOST_FIXTURE_BUNDLE).parent_path().string();
    ASSERT_EQ(setenv("LV2_PATH", dir.c_str(), 1), 0);
    std::string error;
    auto host = PluginHost::create_from_lv2_path(kStems, HostOptions{}, &error);
    EXPECT_NE(host, nullptr) << error;
    EXPECT_EQ(PluginHost::create_from_lv2_path("urn:nope", HostOptions{}, &error), nullptr);
    EXPECT_TRUE(contains(error, "not found in LV2_PATH")) << error;
}

}  // namespace
