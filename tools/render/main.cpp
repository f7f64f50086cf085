// stemsphere-render: splits audio files into stems through the Stemsphere LV2 plugin.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "tools/render/render_options.h"
#include "tools/render/stem_renderer.h"

namespace {

namespace fs = std::filesystem;
using namespace stemsphere::render;

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

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
            status = kExitFailed;
            continue;
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
    return status;
}
