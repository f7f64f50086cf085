// stemsphere-demosong: writes a synthetic song and its ground-truth stems as WAV files.
#include <sndfile.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "tools/demosong/demo_song.h"

namespace {

namespace fs = std::filesystem;
using stemsphere::demosong::DemoSong;
using stemsphere::demosong::DemoSongOptions;
using stemsphere::demosong::StereoTrack;

const char* const kUsage = R"(Usage: stemsphere-demosong [OPTIONS]

Writes a deterministic synthetic song with its ground truth: mixture.wav and vocals.wav
drums.wav bass.wav other.wav (32-bit float, stereo). The mixture is the exact sum of the stems.

Options:
  --out DIR        output folder (default: demo-song)
  --seed N         song variant, any whole number (default 1)
  --rate HZ        sample rate, 8000..384000 (default 44100)
  --seconds S      length in seconds, up to 600 (default 20)
  --help           this text
)";

bool parse_number(const std::string& text, double* value) {
    errno = 0;
    char* end = nullptr;
    *value = std::strtod(text.c_str(), &end);
    return errno == 0 && end != text.c_str() && *end == '\0';
}

bool write_wav(const fs::path& path, const StereoTrack& track, double rate, std::string* error) {
    SF_INFO info{};
    info.samplerate = static_cast<int>(rate);
    info.channels = 2;
    info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
    SNDFILE* file = sf_open(path.c_str(), SFM_WRITE, &info);
    if (file == nullptr) {
        *error = "cannot write " + path.string() + " (" + sf_strerror(nullptr) + ")";
        return false;
    }
    std::vector<float> interleaved(2 * track.left.size());
    for (size_t i = 0; i < track.left.size(); ++i) {
        interleaved[2 * i] = track.left[i];
        interleaved[2 * i + 1] = track.right[i];
    }
    const auto frames = static_cast<sf_count_t>(track.left.size());
    const bool ok = sf_writef_float(file, interleaved.data(), frames) == frames;
    if (!ok) *error = "cannot write " + path.string() + " (" + sf_strerror(file) + ")";
    sf_close(file);
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    DemoSongOptions options;
    std::string out_dir = "demo-song";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (i + 1 >= argc ||
            (arg != "--out" && arg != "--seed" && arg != "--rate" && arg != "--seconds")) {
            std::fprintf(stderr, "stemsphere-demosong: %s (see --help)\n",
                         i + 1 >= argc && arg.rfind("--", 0) == 0
                             ? ("option " + arg + " needs a value").c_str()
                             : ("unknown argument " + arg).c_str());
            return 2;
        }
        const std::string value = argv[++i];
        double number = 0;
        if (arg == "--out") {
            out_dir = value;
        } else if (!parse_number(value, &number)) {
            std::fprintf(stderr, "stemsphere-demosong: %s %s: not a number\n", arg.c_str(),
                         value.c_str());
            return 2;
        } else if (arg == "--seed") {
            if (number < 0 || number != static_cast<double>(static_cast<uint64_t>(number))) {
                std::fprintf(stderr, "stemsphere-demosong: --seed %s: expected a whole number\n",
                             value.c_str());
                return 2;
            }
            options.seed = static_cast<uint64_t>(number);
        } else if (arg == "--rate") {
            options.sample_rate = number;
        } else {
            options.seconds = number;
        }
    }
    std::string error;
    if (!stemsphere::demosong::validate(options, &error)) {
        std::fprintf(stderr, "stemsphere-demosong: %s\n", error.c_str());
        return 2;
    }
    const DemoSong song = stemsphere::demosong::generate_demo_song(options);
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    bool ok = write_wav(fs::path(out_dir) / "mixture.wav", song.mixture, song.sample_rate, &error);
    const auto stems = song.stems();
    for (size_t s = 0; ok && s < stems.size(); ++s) {
        ok = write_wav(fs::path(out_dir) / (std::string(DemoSong::kStemNames[s]) + ".wav"),
                       *stems[s], song.sample_rate, &error);
    }
    if (!ok) {
        std::fprintf(stderr, "stemsphere-demosong: %s\n", error.c_str());
        return 1;
    }
    std::printf("%s: %.1f s, %.0f Hz, %s, %.0f BPM, seed %llu\n", out_dir.c_str(), options.seconds,
                song.sample_rate, song.key.c_str(), song.tempo_bpm,
                static_cast<unsigned long long>(options.seed));
    return 0;
}
