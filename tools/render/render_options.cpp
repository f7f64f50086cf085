#include "tools/render/render_options.h"

#include "engine/quality_modes.h"

#include <cctype>
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
  --quality MODE       separation back end: dsp (Live (DSP), the default), live (Live (neural)),
                       studio (Studio (neural)) or render (Render (neural): the most context,
                       the best offline quality); short for --set quality=...
                       The neural modes are metered: they spend tokens of the account signed
                       in with stemsphere-account (per minute of audio, silence is free). The
                       tokens are shown before (estimate) and after (settled).
  --offline-ok         when a metered mode cannot be leased (signed out, no balance, server
                       unreachable without a lease), render in Live (DSP) and say so,
                       instead of failing before rendering
  --place STEM=AZ[,EL[,DIST[,WIDTH]]]
                       place a stem (vocals, drums, bass, other) in the binaural mix: azimuth
                       and elevation in degrees (+90 = left), distance in metres, width in
                       degrees; short for --set STEM_azimuth=AZ --set STEM_elevation=EL ...
                       (repeatable), e.g. --place vocals=0,10 --place drums=-40,0,2,90
  --hrtf FILE          SOFA file for the binaural renderer (sent to the plugin as patch:Set)
  --block N            frames per run() call, 1..65536 (default 1024)
  --list               print the plugin's controls and presets, render nothing
  --quiet              print errors only
  --help               this text

Exit status: 0 all inputs rendered, 1 an input failed (the others are still rendered),
2 bad usage (unknown option, control, value or preset; plugin not found), 3 a metered mode
cannot be leased (nothing rendered; see --offline-ok).
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

// "STEM=AZ[,EL[,DIST[,WIDTH]]]" → the stem's position controls, in that order. The plugin checks
// the values' ranges when they are set, like any --set.
bool parse_place(const std::string& text, std::vector<ControlSetting>* controls,
                 std::string* error) {
    static const char* const kStems[] = {"vocals", "drums", "bass", "other"};
    static const char* const kFields[] = {"azimuth", "elevation", "distance", "width"};
    const size_t eq = text.find('=');
    const std::string stem = text.substr(0, eq);
    bool known = false;
    for (const char* s : kStems) known = known || stem == s;
    if (eq == std::string::npos || !known) {
        *error = "--place " + text + ": expected STEM=AZ[,EL[,DIST[,WIDTH]]] with STEM one of " +
                 "vocals, drums, bass, other";
        return false;
    }
    std::string rest = text.substr(eq + 1);
    size_t field = 0;
    while (true) {
        const size_t comma = rest.find(',');
        const std::string number = rest.substr(0, comma);
        char* end = nullptr;
        std::strtod(number.c_str(), &end);
        if (number.empty() || field >= 4 || *end != '\0') {
            *error = "--place " + text + ": expected up to four numbers AZ,EL,DIST,WIDTH";
            return false;
        }
        controls->push_back({stem + "_" + kFields[field], number});
        ++field;
        if (comma == std::string::npos) break;
        rest = rest.substr(comma + 1);
    }
    return true;
}

// "render" → --set quality="Render (neural)": the names and labels of engine/quality_modes.h.
bool parse_quality(const std::string& text, std::vector<ControlSetting>* controls,
                   std::string* error) {
    if (const QualityModeInfo* mode = find_quality_mode(text)) {
        controls->push_back({"quality", std::string(mode->label)});
        return true;
    }
    std::string names;
    for (const QualityModeInfo& m : kQualityModes) {
        names += (names.empty()                         ? ""
                  : m.mode == kQualityModes.back().mode ? " or "
                                                        : ", ") +
                 std::string(m.name);
    }
    *error = "--quality " + text + ": expected " + names;
    return false;
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
        } else if (name == "--offline-ok") {
            settings->offline_ok = true;
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
        } else if (name == "--place") {
            std::string text;
            if (!take_value(&text)) return false;
            if (!parse_place(text, &settings->controls, error)) return false;
        } else if (name == "--quality") {
            std::string text;
            if (!take_value(&text)) return false;
            if (!parse_quality(text, &settings->controls, error)) return false;
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
