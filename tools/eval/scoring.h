#pragma once
// Scoring of a directory of estimated stems against a directory of reference stems, as the
// stemsphere-eval CLI and the quality bench report it: museval v4 SDR (median of 1 s frames),
// uSDR and SI-SDR per target, and their means over the targets.
#include <map>
#include <string>
#include <vector>

#include "tools/eval/audio_file.h"

namespace stemsphere::eval {

using StemSet = std::map<std::string, Audio>;

inline const std::vector<std::string>& four_stems() {
    static const std::vector<std::string> names{"vocals", "drums", "bass", "other"};
    return names;
}

// Loads <dir>/<name>.wav for each name. Throws std::runtime_error("missing file ...") naming the
// first absent file.
StemSet load_stems(const std::string& dir, const std::vector<std::string>& names);
// Names among vocals, drums, bass, other, accompaniment whose <name>.wav exists in dir.
std::vector<std::string> stems_present(const std::string& dir);
// Adds "accompaniment" = drums + bass + other when absent and the three are present.
void add_accompaniment(StemSet& stems);
// Σ of the given stems (the scoring mixture). Throws on shape mismatch.
Audio mixture_of(const StemSet& stems, const std::vector<std::string>& names);

struct TargetScore {
    std::string name;
    std::vector<double> sdr_v4_frames;  // NaN = frame excluded by museval's silent-frame rule
    double sdr_v4 = 0;                  // nanmedian of the frames
    double usdr = 0;
    double si_sdr = 0;
};

struct TrackScore {
    int sample_rate = 0;
    size_t frames = 0;
    std::vector<TargetScore> targets;
    double mean_sdr_v4 = 0, mean_usdr = 0, mean_si_sdr = 0;
};

// Scores ests[t] against refs[t] for each target t. Rates and channel counts must match
// (std::runtime_error naming the target otherwise); estimates are padded/truncated to the
// reference length. Targets are grouped as museval's eval_mus_track does for the silent-frame
// rule: all but accompaniment together, and {vocals, accompaniment} together (whose vocals
// score wins).
TrackScore score_track(const StemSet& refs, const StemSet& ests,
                       const std::vector<std::string>& targets);

std::string format_table(const TrackScore& score);
std::string to_json(const TrackScore& score);

}  // namespace stemsphere::eval
