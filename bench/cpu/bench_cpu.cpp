// stemsphere-bench-cpu: real-time factor (CPU seconds per second of audio, this thread only, via
// CLOCK_THREAD_CPUTIME_ID) of the Stemsphere plugin run through the project's lilv host
// (tools/lv2host) at several rates and block sizes. Every configuration is measured side by side
// with two baselines in the same run:
//   host loop   the timing loop itself with the plugin call left out (harness overhead)
//   bypass      the same plugin with enabled = 0 (its delay-line pass-through)
// Scenarios are rows of one table (kScenarios): new back ends (binaural, neural) add a row.
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tools/lv2host/plugin_host.h"

namespace {

using stemsphere::host::HostOptions;
using stemsphere::host::PluginHost;

constexpr const char* kPluginUri = "https://stemsphere.dev/plugins/stemsphere";

struct Scenario {
    std::string label;
    bool call_plugin = true;
    std::vector<std::pair<std::string, float>> controls;
};

// Rows of the table; the first plugin row after the baselines is the reference for ratios.
const std::vector<Scenario> kScenarios{
    {"host loop (no plugin call)", false, {}},
    // Bypass keeps separating (so re-enabling is seamless): it costs what the plugin costs.
    {"bypass (enabled=0)", true, {{"enabled", 0.0f}, {"binaural", 0.0f}}},
    {"DSP separation, plain sum", true, {{"enabled", 1.0f}, {"quality", 0.0f}, {"binaural", 0.0f}}},
    {"DSP separation + binaural", true, {{"enabled", 1.0f}, {"quality", 0.0f}, {"binaural", 1.0f}}},
    {"Live (neural), plain sum", true, {{"enabled", 1.0f}, {"quality", 1.0f}, {"binaural", 0.0f}}},
    {"Studio (neural), plain sum",
     true,
     {{"enabled", 1.0f}, {"quality", 2.0f}, {"binaural", 0.0f}}},
    {"Render (neural), plain sum",
     true,
     {{"enabled", 1.0f}, {"quality", 3.0f}, {"binaural", 0.0f}}},
};
constexpr size_t kBypassRow = 1;

struct Settings {
    std::string bundle = STEMSPHERE_DEFAULT_BUNDLE;
    double seconds = 10.0;
    // Each cell is measured this many times, interleaved across the scenarios, and the minimum
    // is printed: other processes only ever add CPU time (cache and frequency interference).
    int repeats = 3;
    std::vector<double> rates{44100.0, 48000.0};
    std::vector<uint32_t> blocks{64, 256, 1024};
};

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

template <typename T>
bool parse_list(const std::string& text, std::vector<T>* out) {
    out->clear();
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        char* end = nullptr;
        const double v = std::strtod(item.c_str(), &end);
        if (end == item.c_str() || *end != '\0' || !(v > 0) || v > 1e6) return false;
        out->push_back(static_cast<T>(v));
    }
    return !out->empty();
}

bool parse(int argc, char** argv, Settings* s) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) return false;
        const std::string v = argv[++i];
        if (a == "--bundle") {
            s->bundle = v;
        } else if (a == "--seconds") {
            char* end = nullptr;
            s->seconds = std::strtod(v.c_str(), &end);
            if (*end != '\0' || !(s->seconds > 0) || s->seconds > 3600) return false;
        } else if (a == "--repeat") {
            char* end = nullptr;
            const long r = std::strtol(v.c_str(), &end, 10);
            if (*end != '\0' || r < 1 || r > 100) return false;
            s->repeats = static_cast<int>(r);
        } else if (a == "--rates") {
            if (!parse_list(v, &s->rates)) return false;
        } else if (a == "--blocks") {
            if (!parse_list(v, &s->blocks)) return false;
        } else {
            return false;
        }
    }
    return true;
}

// Deterministic stereo noise at about −12 dBFS RMS (content barely matters for DSP cost).
std::vector<std::vector<float>> test_signal(size_t frames) {
    std::mt19937 gen(1);
    std::normal_distribution<float> dist(0.0f, 0.25f);
    std::vector<std::vector<float>> x(2, std::vector<float>(frames));
    for (auto& ch : x) {
        for (float& v : ch) v = std::fmax(-1.0f, std::fmin(1.0f, dist(gen)));
    }
    return x;
}

struct Measurement {
    double cpu_per_audio_second = NAN;
    std::string error;
};

Measurement measure(const Settings& s, const Scenario& scenario, double rate, uint32_t block,
                    const std::vector<std::vector<float>>& signal) {
    Measurement m;
    HostOptions options;
    options.sample_rate = rate;
    options.max_block = block;
    std::string error;
    auto host = PluginHost::create(s.bundle, kPluginUri, options, &error);
    if (!host) {
        m.error = error;
        return m;
    }
    for (const auto& [symbol, value] : scenario.controls) {
        if (!host->set_control(symbol, value, &error)) {
            m.error = error;
            return m;
        }
    }
    std::vector<std::vector<float>> out(host->audio_output_count(), std::vector<float>(block));
    std::vector<float*> out_ptrs;
    for (auto& o : out) out_ptrs.push_back(o.data());
    const size_t frames = signal[0].size();
    // Timed part: `seconds` of audio (at least one block), taken from the start of the signal.
    const size_t timed =
        std::min(frames, std::max<size_t>(block, static_cast<size_t>(s.seconds * rate)));
    host->activate();
    // Warm-up (not timed): one second, so worker set-up and cache warming are done.
    for (size_t pos = 0; pos + block <= static_cast<size_t>(rate); pos += block) {
        const float* in[2] = {signal[0].data() + pos % (frames - block),
                              signal[1].data() + pos % (frames - block)};
        host->run(in, out_ptrs.data(), block);
    }
    host->wait_for_worker();
    volatile float sink = 0.0f;  // keeps the no-plugin loop from being optimised away
    const double start = thread_cpu_seconds();
    size_t processed = 0;
    for (size_t pos = 0; pos + block <= timed; pos += block) {
        const float* in[2] = {signal[0].data() + pos, signal[1].data() + pos};
        if (scenario.call_plugin) {
            host->run(in, out_ptrs.data(), block);
        } else {
            sink = sink + in[0][0];
        }
        processed += block;
    }
    const double cpu = thread_cpu_seconds() - start;
    host->deactivate();
    m.cpu_per_audio_second = cpu / (static_cast<double>(processed) / rate);
    return m;
}

std::string cell(double v, int decimals) {
    if (!std::isfinite(v)) return "n/a";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    Settings settings;
    if (!parse(argc, argv, &settings)) {
        std::fprintf(stderr,
                     "usage: stemsphere-bench-cpu [--bundle DIR] [--seconds S] "
                     "[--repeat N] [--rates 44100,48000] [--blocks 64,256,1024]\n");
        return 2;
    }
    std::printf(
        "CPU seconds per second of audio (CLOCK_THREAD_CPUTIME_ID, one thread), %.1f s of "
        "stereo noise per cell, plugin %s via tools/lv2host\n",
        settings.seconds, settings.bundle.c_str());
    std::printf("%-28s %8s %6s %14s %10s %12s\n", "scenario", "rate", "block", "CPU s/audio s",
                "% of core", "x bypass");
    int failures = 0;
    for (double rate : settings.rates) {
        const auto signal = test_signal(static_cast<size_t>(settings.seconds * rate) +
                                        2 * static_cast<size_t>(rate));
        for (uint32_t block : settings.blocks) {
            std::vector<Measurement> row(kScenarios.size());
            for (int r = 0; r < settings.repeats; ++r) {
                for (size_t i = 0; i < kScenarios.size(); ++i) {
                    const Measurement m = measure(settings, kScenarios[i], rate, block, signal);
                    if (!m.error.empty()) {
                        row[i].error = m.error;
                    } else if (!(m.cpu_per_audio_second >= row[i].cpu_per_audio_second)) {
                        row[i].cpu_per_audio_second = m.cpu_per_audio_second;  // min (NaN first)
                    }
                }
            }
            for (size_t i = 0; i < kScenarios.size(); ++i) {
                const Measurement& m = row[i];
                if (!m.error.empty()) {
                    std::printf("%-28s %8.0f %6u  error: %s\n", kScenarios[i].label.c_str(), rate,
                                block, m.error.c_str());
                    ++failures;
                    continue;
                }
                const double bypass = row[kBypassRow].cpu_per_audio_second;
                std::printf("%-28s %8.0f %6u %14s %10s %12s\n", kScenarios[i].label.c_str(), rate,
                            block, cell(m.cpu_per_audio_second, 5).c_str(),
                            cell(100.0 * m.cpu_per_audio_second, 2).c_str(),
                            cell(m.cpu_per_audio_second / bypass, 1).c_str());
            }
        }
    }
    return failures == 0 ? 0 : 1;
}
