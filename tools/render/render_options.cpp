#include "tools/render/render_options.h"

#include <cerrno>
#include <cstdlib>

namespace stemsphere::render {

std::string usage_text() {
    return R"(Usage: stemsphere-render [OPTIONS] INPUT...

Splits each INPUT (WAV, FLAC, OGG, MP3; mono or stereo; any rate the plugin accepts) into stems
by running it through the Stemsphere LV2 plugin, exactly as a DAW would, and writes
mix.wav vocals.wav drums.wav bass.wav other.wav (32-bit float, stereo, input rate), trimmed by
the plugin's reported latency so every output is sample-aligned with the input.

Options:
  --out DIR            output folder (default: <input-stem>-stems/ beside the input;
                       with several inputs: DIR/<input-stem>-stems/)
  --bundle DIR         plugin bundle (default: the build tree's lv2/stemsphere.lv2, then the
                       installed one, ~/.lv2, /usr/local/lib/lv2, /usr/lib/lv2)
  --uri URI            plugin URI (default: https://stemsphere.dev/plugins/stemsphere)
  --preset LABEL       apply a preset of the plugin first
  --set SYMBOL=VALUE   set a control (repeatable), e.g. --set vocals_gain=-6 --set quality=0;
                       VALUE may also be the label of one of the control's choices
  --hrtf FILE          SOFA file for the binaural renderer (sent to the plugin as patch:Set)
  --block N            frames per run() call, 1..65536 (default 1024)
  --list               print the plugin's controls and presets, render nothing
  --quiet              print errors only
  --help               this text

Exit status: 0 all inputs rendered, 1 an input failed (the others are still rendered),
2 bad usage (unknown option, control, value or preset; plugin not found).
)";
}

namespace {

bool parse_block(const std::string& text, uint32_t* block) {
    errno = 0;
    char* end = nullptr;
    const long value = std::strtol(text.c_str(), &end, 10);
    if (errno != 0 || end == text.c_str() || *end != '\0' || value < 1 || value > 65536) {
        return false;
    }
    *block = static_cast<uint32_t>(value);
    return true;
}

}  // namespace

bool parse_arguments(const std::vector<std::string>& args, RenderSettings* settings,
                     std::string* error) {
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        // Options with a value take it from the next argument or after '='.
        std::string name = arg;
        std::string value;
        bool has_inline_value = false;
        if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
            name = arg.substr(0, arg.find('='));
            value = arg.substr(arg.find('=') + 1);
            has_inline_value = true;
        }
        const auto take_value = [&](std::string* out) {
            if (has_inline_value) {
                *out = value;
                return true;
            }
            if (i + 1 >= args.size()) {
                *error = "option " + name + " needs a value";
                return false;
            }
            *out = args[++i];
            return true;
        };
        if (name == "--help" || name == "-h") {
            settings->help = true;
        } else if (name == "--quiet" || name == "-q") {
            settings->quiet = true;
        } else if (name == "--list") {
            settings->list = true;
        } else if (name == "--out" || name == "-o") {
            if (!take_value(&settings->out_dir)) return false;
        } else if (name == "--bundle") {
            if (!take_value(&settings->bundle)) return false;
        } else if (name == "--uri") {
            if (!take_value(&settings->uri)) return false;
        } else if (name == "--preset") {
            if (!take_value(&settings->preset)) return false;
        } else if (name == "--hrtf") {
            PathSetting path{kHrtfProperty, ""};
            if (!take_value(&path.path)) return false;
            settings->paths.push_back(path);
        } else if (name == "--block") {
            std::string text;
            if (!take_value(&text)) return false;
            if (!parse_block(text, &settings->block)) {
                *error = "--block " + text + ": expected a whole number from 1 to 65536";
                return false;
            }
        } else if (name == "--set") {
            // "--set=a=b" arrives split at the first '='; rebuild SYMBOL=VALUE.
            std::string assignment;
            if (!take_value(&assignment)) return false;
            const size_t eq = assignment.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == assignment.size()) {
                *error = "--set " + assignment + ": expected SYMBOL=VALUE";
                return false;
            }
            settings->controls.push_back({assignment.substr(0, eq), assignment.substr(eq + 1)});
        } else if (arg.size() > 1 && arg[0] == '-') {
            *error = "unknown option " + arg + " (see --help)";
            return false;
        } else {
            settings->inputs.push_back(arg);
        }
    }
    if (!settings->help && !settings->list && settings->inputs.empty()) {
        *error = "no input file given (see --help)";
        return false;
    }
    return true;
}

}  // namespace stemsphere::render
