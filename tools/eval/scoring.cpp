#include "tools/eval/scoring.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "tools/eval/metrics.h"

namespace stemsphere::eval {

namespace {

constexpr size_t kAccompanimentParts = 3;
const char* const kAccompanimentOf[kAccompanimentParts] = {"drums", "bass", "other"};

std::string wav_path(const std::string& dir, const std::string& name) {
    return (std::filesystem::path(dir) / (name + ".wav")).string();
}

std::string number(double v, int decimals) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";  // JSON has no NaN/Inf
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6f", v);
    return buf;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (char ch : s) {
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (static_cast<unsigned char>(ch) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(ch));
            out += buf;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

double mean_of(const std::vector<TargetScore>& t, double TargetScore::*field) {
    double sum = 0.0;
    for (const auto& s : t) sum += s.*field;
    return t.empty() ? std::nan("") : sum / static_cast<double>(t.size());
}

// v4 frame SDRs for one museval evaluation group.
void score_group(const std::vector<std::string>& group, const StemSet& refs,
                 const std::map<std::string, Audio>& fitted, int rate,
                 std::map<std::string, TargetScore>& out) {
    if (group.empty()) return;
    std::vector<const Audio*> r, e;
    for (const auto& name : group) {
        r.push_back(&refs.at(name));
        e.push_back(&fitted.at(name));
    }
    const auto second = static_cast<size_t>(rate);
    const auto frames = framewise_sdr_v4(r, e, second, second);
    for (size_t j = 0; j < group.size(); ++j) {
        TargetScore& t = out[group[j]];
        t.name = group[j];
        t.sdr_v4_frames = frames[j];
        t.sdr_v4 = nan_median(frames[j]);
    }
}

}  // namespace

StemSet load_stems(const std::string& dir, const std::vector<std::string>& names) {
    StemSet stems;
    for (const auto& name : names) {
        const std::string path = wav_path(dir, name);
        if (!std::filesystem::is_regular_file(path)) {
            throw std::runtime_error("missing file " + path);
        }
        stems[name] = read_audio(path);
    }
    return stems;
}

std::vector<std::string> stems_present(const std::string& dir) {
    std::vector<std::string> names;
    for (const char* n : {"vocals", "drums", "bass", "other", "accompaniment"}) {
        if (std::filesystem::is_regular_file(wav_path(dir, n))) names.emplace_back(n);
    }
    return names;
}

void add_accompaniment(StemSet& stems) {
    if (stems.count("accompaniment") != 0) return;
    std::vector<const Audio*> parts;
    for (const char* n : kAccompanimentOf) {
        auto it = stems.find(n);
        if (it == stems.end()) return;
        parts.push_back(&it->second);
    }
    stems["accompaniment"] = sum_audio(parts);
}

Audio mixture_of(const StemSet& stems, const std::vector<std::string>& names) {
    std::vector<const Audio*> parts;
    for (const auto& n : names) parts.push_back(&stems.at(n));
    return sum_audio(parts);
}

TrackScore score_track(const StemSet& refs, const StemSet& ests,
                       const std::vector<std::string>& targets) {
    if (targets.empty()) throw std::runtime_error("no targets to score");
    const Audio& first = refs.at(targets.front());
    TrackScore score;
    score.sample_rate = first.sample_rate;
    score.frames = first.frames();
    std::map<std::string, Audio> fitted;
    for (const auto& name : targets) {
        const Audio& r = refs.at(name);
        const Audio& e = ests.at(name);
        if (r.sample_rate != first.sample_rate || r.channels != first.channels ||
            r.frames() != first.frames()) {
            throw std::runtime_error("reference " + name +
                                     " differs from the other references in rate, channels or "
                                     "length");
        }
        if (e.sample_rate != r.sample_rate) {
            throw std::runtime_error("rate mismatch for " + name + ": estimate " +
                                     std::to_string(e.sample_rate) + " Hz, reference " +
                                     std::to_string(r.sample_rate) + " Hz");
        }
        if (e.channels != r.channels) {
            throw std::runtime_error("channel mismatch for " + name + ": estimate " +
                                     std::to_string(e.channels) + ", reference " +
                                     std::to_string(r.channels));
        }
        fitted[name] = fit_length(e, r.frames());
    }
    std::vector<std::string> main_group, vocal_group;
    const bool has_accompaniment =
        std::find(targets.begin(), targets.end(), "accompaniment") != targets.end();
    for (const auto& name : targets) {
        if (name != "accompaniment") main_group.push_back(name);
        if (has_accompaniment && (name == "vocals" || name == "accompaniment")) {
            vocal_group.push_back(name);
        }
    }
    std::map<std::string, TargetScore> by_name;
    score_group(main_group, refs, fitted, first.sample_rate, by_name);
    score_group(vocal_group, refs, fitted, first.sample_rate, by_name);
    for (const auto& name : targets) {
        TargetScore t = by_name.at(name);
        t.usdr = usdr(refs.at(name), fitted.at(name));
        t.si_sdr = si_sdr(refs.at(name), fitted.at(name));
        score.targets.push_back(t);
    }
    score.mean_sdr_v4 = mean_of(score.targets, &TargetScore::sdr_v4);
    score.mean_usdr = mean_of(score.targets, &TargetScore::usdr);
    score.mean_si_sdr = mean_of(score.targets, &TargetScore::si_sdr);
    return score;
}

std::string format_table(const TrackScore& score) {
    std::ostringstream out;
    char line[256];
    std::snprintf(line, sizeof line, "%-14s %12s %10s %10s", "target", "v4 SDR [dB]", "uSDR [dB]",
                  "SI-SDR [dB]");
    out << line;
    out << '\n';
    for (const auto& t : score.targets) {
        std::snprintf(line, sizeof line, "%-14s %12s %10s %10s", t.name.c_str(),
                      number(t.sdr_v4, 2).c_str(), number(t.usdr, 2).c_str(),
                      number(t.si_sdr, 2).c_str());
        out << line << '\n';
    }
    std::snprintf(line, sizeof line, "%-14s %12s %10s %10s\n", "mean",
                  number(score.mean_sdr_v4, 2).c_str(), number(score.mean_usdr, 2).c_str(),
                  number(score.mean_si_sdr, 2).c_str());
    out << line;
    out << "(v4 SDR: museval BSS Eval v4, median of 1 s frames; uSDR: MDX whole-signal SDR; "
           "SI-SDR: zero-mean, stereo stacked)\n";
    return out.str();
}

std::string to_json(const TrackScore& score) {
    std::ostringstream out;
    out << "{\n  \"sample_rate\": " << score.sample_rate << ",\n  \"frames\": " << score.frames
        << ",\n  \"metrics\": {\"sdr_v4\": \"museval v4 SDR, nanmedian of 1 s frames [dB]\", "
           "\"usdr\": \"MDX uSDR, delta 1e-7 [dB]\", \"si_sdr\": \"SI-SDR, zero-mean, channels "
           "stacked [dB]\"},\n  \"targets\": [";
    for (size_t i = 0; i < score.targets.size(); ++i) {
        const auto& t = score.targets[i];
        out << (i ? ",\n" : "\n") << "    {\"name\": " << json_string(t.name)
            << ", \"sdr_v4\": " << json_number(t.sdr_v4) << ", \"usdr\": " << json_number(t.usdr)
            << ", \"si_sdr\": " << json_number(t.si_sdr);
        out << ", \"sdr_v4_frames\": [";
        for (size_t k = 0; k < t.sdr_v4_frames.size(); ++k) {
            out << (k ? ", " : "") << json_number(t.sdr_v4_frames[k]);
        }
        out << "]}";
    }
    out << "\n  ],\n  \"mean\": {\"sdr_v4\": " << json_number(score.mean_sdr_v4)
        << ", \"usdr\": " << json_number(score.mean_usdr)
        << ", \"si_sdr\": " << json_number(score.mean_si_sdr) << "}\n}\n";
    return out.str();
}

}  // namespace stemsphere::eval
