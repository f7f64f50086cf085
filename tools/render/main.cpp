// stemsphere-render: splits audio files into stems through the Stemsphere LV2 plugin.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <sndfile.h>

#include "tools/render/render_metering.h"
#include "tools/render/render_options.h"
#include "tools/render/stem_renderer.h"

namespace {

namespace fs = std::filesystem;
using namespace stemsphere::render;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoLease = 3;

// Total length of the inputs in milliseconds (unreadable ones count 0: they fail later).
int64_t total_ms(const std::vector<std::string>& inputs) {
    int64_t ms = 0;
    for (const std::string& input : inputs) {
        SF_INFO info{};
        if (SNDFILE* f = sf_open(input.c_str(), SFM_READ, &info)) {
            if (info.samplerate > 0) ms += info.frames * 1000 / info.samplerate;
            sf_close(f);
        }
    }
    return ms;
}

std::string duration_text(int64_t ms) {
    char text[32];
    std::snprintf(text, sizeof text, "%lld:%04.1f", static_cast<long long>(ms / 60000),
                  static_cast<double>(ms % 60000) / 1000.0);
    return text;
}

// With one input --out is the folder itself; with several each input gets <stem>-stems/ in it.
std::string output_folder(const RenderSettings& settings, const std::string& input) {
    const fs::path in(input);
    const std::string name = in.stem().string() + "-stems";
    if (settings.out_dir.empty()) return (in.parent_path() / name).string();
    if (settings.inputs.size() == 1) return settings.out_dir;
    return (fs::path(settings.out_dir) / name).string();
}

// A progress bar on stderr, drawn only when stderr is a terminal.
class ProgressBar {
  public:
    ProgressBar(const std::string& label, bool enabled) : label_(label), enabled_(enabled) {}
    ~ProgressBar() {
        if (drawn_) std::fprintf(stderr, "\r\033[K");
    }
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;
    void operator()(double fraction) {
        if (!enabled_) return;
        const int percent = static_cast<int>(fraction * 100.0);
        if (percent == last_percent_) return;
        last_percent_ = percent;
        constexpr int kWidth = 30;
        const int filled = percent * kWidth / 100;
        std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%", label_.c_str(), filled,
                     "##############################", kWidth - filled, "", percent);
        drawn_ = true;
    }

  private:
    std::string label_;
    bool enabled_;
    bool drawn_ = false;
    int last_percent_ = -1;
};

}  // namespace

int main(int argc, char** argv) {
    RenderSettings settings;
    std::string error;
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (!parse_arguments(args, &settings, &error)) {
        std::fprintf(stderr, "stemsphere-render: %s\n", error.c_str());
        return kExitUsage;
    }
    if (settings.help) {
        std::fputs(usage_text().c_str(), stdout);
        return 0;
    }
    const std::string bundle = settings.bundle.empty() ? find_default_bundle() : settings.bundle;
    if (bundle.empty()) {
        std::fprintf(stderr,
                     "stemsphere-render: no stemsphere.lv2 bundle found (build it, install it or "
                     "pass --bundle DIR)\n");
        return kExitUsage;
    }
    if (settings.list) {
        std::string text;
        if (!list_plugin(settings, bundle, &text, &error)) {
            std::fprintf(stderr, "stemsphere-render: %s\n", error.c_str());
            return kExitUsage;
        }
        std::fputs(text.c_str(), stdout);
        return 0;
    }
    if (!validate_settings(settings, bundle, &error)) {
        std::fprintf(stderr, "stemsphere-render: %s\n", error.c_str());
        return kExitUsage;
    }

    // A metered mode: the plugin meters itself in this process through the metering client.
    // `keeper` holds one plugin instance for the whole run, so the client (one lease) lives
    // until every input is done and settles once when it goes.
    std::unique_ptr<stemsphere::host::PluginHost> keeper;
    LicenceCheck licence;
    if (!check_licence(settings, bundle, 20.0, &keeper, &licence, &error)) {
        std::fprintf(stderr, "stemsphere-render: %s\n", error.c_str());
        return kExitUsage;
    }
    // "Signed out: not signed in (run `stemsphere-account login`)", from the plugin's log.
    const std::string why = !licence.detail.empty()         ? licence.detail
                            : !licence.status_label.empty() ? licence.status_label
                                                            : "no answer from the metering client";
    Balance before;
    if (licence.metered && !licence.covered()) {
        if (!settings.offline_ok) {
            std::fprintf(stderr,
                         "stemsphere-render: %s is metered and cannot be leased (%s). Nothing "
                         "rendered. Sign in with `stemsphere-account login`, top up, or pass "
                         "--offline-ok to render in Live (DSP).\n",
                         licence.mode.c_str(), why.c_str());
            return kExitNoLease;
        }
        std::fprintf(stderr,
                     "stemsphere-render: %s cannot be leased (%s): rendering in Live (DSP) "
                     "instead (--offline-ok)\n",
                     licence.mode.c_str(), why.c_str());
        settings.controls.push_back({"quality", "0"});
        keeper.reset();
    } else if (licence.metered) {
        before = read_balance();
    }
    if (licence.metered && licence.covered() && !settings.quiet) {
        const int64_t ms = total_ms(settings.inputs);
        if (before.ok) {
            std::fprintf(stderr,
                         "%s is metered: %s of audio, about %s tokens at %s tokens per minute "
                         "(available: %s)\n",
                         licence.mode.c_str(), duration_text(ms).c_str(),
                         tokens_text(cost_mt(ms, before.milli_tokens_per_minute)).c_str(),
                         tokens_text(before.milli_tokens_per_minute).c_str(),
                         tokens_text(before.available_mt).c_str());
        } else {
            std::fprintf(stderr, "%s is metered: %s of audio; no estimate (%s)\n",
                         licence.mode.c_str(), duration_text(ms).c_str(), before.error.c_str());
        }
    }

    const bool draw_progress = !settings.quiet && isatty(STDERR_FILENO) == 1;
    std::map<std::string, std::string> folder_owner;  // output folder -> input writing it
    int status = 0;
    for (const std::string& input : settings.inputs) {
        const std::string folder = output_folder(settings, input);
        const std::string key = fs::weakly_canonical(fs::absolute(folder)).string();
        if (folder_owner.count(key) != 0) {
            std::fprintf(stderr,
                         "stemsphere-render: %s: its outputs would overwrite those of %s in %s\n",
                         input.c_str(), folder_owner[key].c_str(), folder.c_str());
            status = kExitFailed;
            continue;
        }
        folder_owner[key] = input;
        ProgressBar bar(fs::path(input).filename().string(), draw_progress);
        const RenderResult result = render_file(settings, bundle, input, folder, std::ref(bar));
        if (result.status != RenderStatus::kOk) {
            std::fprintf(stderr, "stemsphere-render: %s\n", result.error.c_str());
            if (result.status == RenderStatus::kUsageError) return kExitUsage;
            status = result.status == RenderStatus::kLicenceError ? kExitNoLease : kExitFailed;
            continue;
        }
        if (result.fell_back) {
            std::fprintf(stderr,
                         "stemsphere-render: %s: the lease ran out during the render; the rest "
                         "is in Live (DSP)\n",
                         input.c_str());
        }
        if (!settings.quiet) {
            const double audio_seconds = static_cast<double>(result.frames) / result.sample_rate;
            std::fprintf(
                stderr,
                "%s -> %s/ (%zu files, %.2f s at %.0f Hz, latency %u frames, %.1fx real time)\n",
                input.c_str(), folder.c_str(), result.written.size(), audio_seconds,
                result.sample_rate, result.latency,
                result.seconds > 0 ? audio_seconds / result.seconds : 0.0);
        }
    }
    if (licence.metered && licence.covered()) {
        keeper.reset();  // the last instance: the metering client settles what was used
        const Balance after = read_balance();
        if (settings.quiet) return status;
        if (before.ok && after.ok) {
            std::fprintf(stderr, "spent: %s tokens (settled; available now: %s)\n",
                         tokens_text(before.total_mt() - after.total_mt()).c_str(),
                         tokens_text(after.available_mt).c_str());
        } else {
            std::fprintf(stderr,
                         "spent: not known yet (%s); the usage is journalled and settles once "
                         "the server is reachable\n",
                         (after.ok ? before.error : after.error).c_str());
        }
    }
    return status;
}
