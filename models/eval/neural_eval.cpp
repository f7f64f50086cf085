// stemsphere-neural-eval: runs the engine's SeparationEngine over clips with each back end (DSP,
// Live, Studio and Render models, blends of them), scores the stems with the project's museval-v4
// scorer (tools/eval) and measures the real-time factor on one core. The figures in docs/models.md
// come from this program.
//
//   stemsphere-neural-eval [--live FILE] [--studio FILE] [--render FILE] [--model NAME=FILE]...
//   [--blend DSP_WEIGHT] [--ensemble A,B[,...][:CHOICE]]... [--modes] [--no-single-models]
//   [--fft N] [--write DIR] CLIP_DIR...
// --live FILE is short for --model live=FILE (likewise studio, render). --ensemble live,studio
// adds the back end "live&studio": the equal blend of those loaded models that the quality modes
// run (make_ensemble_estimator). A suffix ":wV,wD,wB,wO[,agreement[,expand]]" runs that ensemble
// under a stem choice (StemChoiceEstimator: per stem the network's share against the DSP back
// end, vocal agreement, vocal expander threshold), e.g. "--ensemble studio,live:1,1,0,1".
// --modes adds the back ends "mode-live", "mode-studio", "mode-render": the neural quality modes
// exactly as Processor::create builds them (networks and quality_mode_stem_choice); needs
// --live, --studio and --render.
// A clip dir holds reference stems (<stem>.wav or .flac): vocals/drums/bass/other, or
// vocals/accompaniment. The input is mixture := Σ reference stems (the scoring rule of
// shared/stems/README.md).
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "engine/dsp_mask_estimator.h"
#include "engine/neural/blended_mask_estimator.h"
#include "engine/neural/model_ensemble.h"
#include "engine/neural/neural_mask_estimator.h"
#include "engine/neural/stem_choice_estimator.h"
#include "engine/processor.h"
#include "engine/separation_engine.h"
#include "tools/eval/audio_file.h"
#include "tools/eval/scoring.h"

namespace fs = std::filesystem;
using stemsphere::eval::Audio;
using stemsphere::eval::StemSet;

namespace {

// "0,1,1,1[,agreement[,expand]]" -> StemChoice; false on anything else.
bool parse_choice(const std::string& text, stemsphere::StemChoice* choice) {
    float v[6] = {1.0f, 1.0f, 1.0f, 1.0f, 0.0f, 0.0f};
    size_t from = 0;
    size_t n = 0;
    while (n < 6) {
        const size_t comma = text.find(',', from);
        const std::string field = text.substr(from, comma - from);
        char* end = nullptr;
        v[n++] = std::strtof(field.c_str(), &end);
        if (field.empty() || *end != '\0' || !(v[n - 1] >= 0.0f && v[n - 1] <= 1.0f)) return false;
        if (comma == std::string::npos) break;
        from = comma + 1;
    }
    if (n < 4 || text.find(',', from) != std::string::npos) return false;
    for (size_t s = 0; s < stemsphere::kStemCount; ++s) choice->network_weight[s] = v[s];
    choice->vocal_agreement = v[4];
    choice->vocal_expand_below = v[5];
    return true;
}

double thread_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

StemSet load_refs(const std::string& dir) {
    StemSet refs;
    for (const char* name : {"vocals", "drums", "bass", "other", "accompaniment"}) {
        for (const char* ext : {".wav", ".flac"}) {
            const fs::path p = fs::path(dir) / (std::string(name) + ext);
            if (fs::exists(p)) {
                refs[name] = stemsphere::eval::read_audio(p.string());
                break;
            }
        }
    }
    return refs;
}

struct Separated {
    StemSet stems;
    double rtf = 0;  // CPU seconds per second of audio, engine + estimator, this thread
};

// --fft N: analysis window N instead of the rate's (hop unchanged, so every frame-based time
// constant keeps its length): measures what a longer window would give the modes that can
// afford its latency (docs/models.md §6).
size_t fft_override = 0;

stemsphere::StftFormat eval_format(double rate) {
    auto f = stemsphere::stft_format_for_rate(rate);
    if (fft_override == 0) return f;
    if (fft_override < 2 * f.hop) {
        throw std::runtime_error("--fft " + std::to_string(fft_override) +
                                 " is shorter than two hops (" + std::to_string(f.hop) +
                                 ") at this rate");
    }
    f.fft_size = fft_override;
    return f;
}

// format: the one the estimator was built for.
Separated separate(const Audio& mix, const stemsphere::StftFormat& format,
                   std::unique_ptr<stemsphere::MaskEstimator> estimator) {
    if (mix.channels != 2) throw std::runtime_error("clips must be stereo");
    stemsphere::SeparationEngine engine(format, std::move(estimator));
    const size_t hop = engine.hop();
    const size_t latency = engine.hop_latency();
    const size_t total = mix.frames() + latency;
    const size_t hops = (total + hop - 1) / hop;
    std::vector<float> in_l(hop), in_r(hop);
    std::vector<std::vector<float>> out(stemsphere::kHopChannels, std::vector<float>(hop));
    std::vector<float*> out_ptr;
    for (auto& o : out) out_ptr.push_back(o.data());
    Separated result;
    for (size_t s = 0; s < stemsphere::kStemCount; ++s) {
        Audio& a = result.stems[stemsphere::kStemNames[s]];
        a.sample_rate = mix.sample_rate;
        a.channels = 2;
        a.samples.assign(mix.frames() * 2, 0.0);
    }
    double cpu = 0;
    for (size_t h = 0; h < hops; ++h) {
        for (size_t i = 0; i < hop; ++i) {
            const size_t f = h * hop + i;
            in_l[i] = f < mix.frames() ? static_cast<float>(mix.at(f, 0)) : 0.0f;
            in_r[i] = f < mix.frames() ? static_cast<float>(mix.at(f, 1)) : 0.0f;
        }
        const double t0 = thread_seconds();
        engine.process_hop(in_l.data(), in_r.data(), out_ptr.data());
        cpu += thread_seconds() - t0;
        for (size_t i = 0; i < hop; ++i) {
            const size_t f = h * hop + i;
            if (f < latency || f - latency >= mix.frames()) continue;
            for (size_t s = 0; s < stemsphere::kStemCount; ++s) {
                Audio& a = result.stems[stemsphere::kStemNames[s]];
                for (size_t c = 0; c < 2; ++c) {
                    a.samples[(f - latency) * 2 + c] = out[stemsphere::kDryChannels + 2 * s + c][i];
                }
            }
        }
    }
    result.rtf = cpu / (static_cast<double>(mix.frames()) / mix.sample_rate);
    return result;
}

// "live&studio" -> {"live", "studio"} (a ":choice" suffix is not part of the names)
std::vector<std::string> ensemble_members(const std::string& spec) {
    const std::string names = spec.substr(0, spec.find(':'));
    std::vector<std::string> out;
    size_t from = 0;
    while (true) {
        const size_t amp = names.find('&', from);
        out.push_back(names.substr(from, amp - from));
        if (amp == std::string::npos) return out;
        from = amp + 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string write_dir;
    std::vector<std::pair<std::string, std::string>> model_paths;  // name, file
    std::vector<std::string> ensembles;                            // "a&b&c"
    float blend = -1.0f;                                           // < 0: no blended back ends
    bool modes = false;  // --modes: the neural quality modes as Processor::create runs them
    bool no_single_models =
        false;  // --no-single-models: each loaded network alone is not a back end
    std::vector<std::string> clips;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if ((a == "--live" || a == "--studio" || a == "--render") && i + 1 < argc) {
            model_paths.emplace_back(a.substr(2), argv[++i]);
        } else if (a == "--model" && i + 1 < argc && std::strchr(argv[i + 1], '=') != nullptr &&
                   argv[i + 1][0] != '=') {
            const std::string spec = argv[++i];
            model_paths.emplace_back(spec.substr(0, spec.find('=')),
                                     spec.substr(spec.find('=') + 1));
        } else if (a == "--fft" && i + 1 < argc) {
            char* end = nullptr;
            fft_override = std::strtoul(argv[++i], &end, 10);
            if (*end != '\0' || fft_override < 16 || fft_override > (1u << 20) ||
                (fft_override & (fft_override - 1)) != 0) {
                std::cerr << "stemsphere-neural-eval: --fft takes a power of two (16 ... 2^20)\n";
                return 2;
            }
        } else if (a == "--write" && i + 1 < argc) {
            write_dir = argv[++i];
        } else if (a == "--blend" && i + 1 < argc) {
            blend = std::stof(argv[++i]);
        } else if (a == "--ensemble" && i + 1 < argc) {
            std::string names = argv[++i];
            const auto names_end = names.begin() + static_cast<std::ptrdiff_t>(
                                                       std::min(names.find(':'), names.size()));
            std::replace(names.begin(), names_end, ',', '&');
            stemsphere::StemChoice unused;
            if (names.find(':') != std::string::npos &&
                !parse_choice(names.substr(names.find(':') + 1), &unused)) {
                std::cerr << "stemsphere-neural-eval: --ensemble " << argv[i]
                          << ": the choice after ':' is 4 to 6 numbers in [0, 1] "
                             "(network share of vocals, drums, bass, other; vocal agreement; "
                             "vocal expander threshold)\n";
                return 2;
            }
            ensembles.push_back(names);
        } else if (a == "--modes") {
            modes = true;
        } else if (a == "--no-single-models") {
            no_single_models = true;
        } else if (!a.empty() && a[0] == '-') {
            std::cerr << "usage: stemsphere-neural-eval [--live FILE] [--studio FILE] "
                         "[--render FILE] [--model NAME=FILE]... [--blend DSP_WEIGHT] "
                         "[--ensemble A,B[,...][:CHOICE]]... [--modes] [--no-single-models] "
                         "[--fft N] [--write DIR] CLIP_DIR...\n";
            return 2;
        } else {
            clips.push_back(a);
        }
    }
    try {
        std::vector<std::string> backends = {"dsp"};
        std::map<std::string, std::shared_ptr<const stemsphere::NeuralModel>> models;
        for (const auto& [name, path] : model_paths) {
            std::string error;
            auto model = stemsphere::NeuralModel::load(path, &error);
            if (!model) throw std::runtime_error(error);
            models[name] = model;
            if (!no_single_models) backends.push_back(name);
            if (blend >= 0.0f) backends.push_back(std::string(name) + "+dsp");
        }
        for (const std::string& names : ensembles) {
            for (const std::string& name : ensemble_members(names)) {
                if (!models.count(name)) {
                    throw std::runtime_error("--ensemble " + names + ": no model named " + name +
                                             " loaded (--live, --studio, --render, --model)");
                }
            }
            backends.push_back(names);
        }
        // Back end name -> plugin mode (--modes): the mode's networks and its stem choice.
        std::map<std::string, stemsphere::QualityMode> mode_of;
        if (modes) {
            for (auto mode : {stemsphere::QualityMode::kLiveNeural,
                              stemsphere::QualityMode::kStudio, stemsphere::QualityMode::kRender}) {
                const std::string name =
                    std::string("mode-") +
                    stemsphere::quality_mode_model_files(mode).front().substr(
                        0, stemsphere::quality_mode_model_files(mode).front().find('.'));
                for (const std::string& file : stemsphere::quality_mode_model_files(mode)) {
                    if (!models.count(file.substr(0, file.find('.')))) {
                        throw std::runtime_error("--modes needs --live, --studio and --render");
                    }
                }
                mode_of[name] = mode;
                backends.push_back(name);
            }
        }
        std::map<std::string, std::vector<double>> means;
        std::map<std::string, double> rtf_sum;
        std::printf("%-36s %-10s %8s %8s %8s %8s %8s %8s %6s\n", "clip", "backend", "vocals",
                    "drums", "bass", "other", "accomp", "mean", "RTF");
        for (const std::string& clip : clips) {
            const StemSet refs = load_refs(clip);
            std::vector<std::string> targets;
            for (const char* t : {"vocals", "drums", "bass", "other"}) {
                if (refs.count(t)) targets.emplace_back(t);
            }
            std::vector<std::string> parts = targets;
            if (targets.size() != 4) {
                if (!refs.count("vocals") || !refs.count("accompaniment")) {
                    throw std::runtime_error(clip + ": needs 4 stems or vocals + accompaniment");
                }
                targets = {"vocals", "accompaniment"};
                parts = targets;
            }
            const Audio mix = stemsphere::eval::mixture_of(refs, parts);
            const auto format = eval_format(mix.sample_rate);
            for (const std::string& backend : backends) {
                std::unique_ptr<stemsphere::MaskEstimator> est;
                if (backend == "dsp") {
                    est = std::make_unique<stemsphere::DspMaskEstimator>(format);
                } else if (backend.size() > 4 && backend.substr(backend.size() - 4) == "+dsp") {
                    const std::string base = backend.substr(0, backend.size() - 4);
                    est = std::make_unique<stemsphere::BlendedMaskEstimator>(
                        std::make_unique<stemsphere::NeuralMaskEstimator>(models.at(base), format),
                        std::make_unique<stemsphere::DspMaskEstimator>(format), format.bins(),
                        blend);
                } else if (backend.find('&') != std::string::npos ||
                           backend.find(':') != std::string::npos) {
                    std::vector<std::shared_ptr<const stemsphere::NeuralModel>> members;
                    for (const std::string& name : ensemble_members(backend)) {
                        members.push_back(models.at(name));
                    }
                    stemsphere::StemChoice choice;  // all network unless ":..." says otherwise
                    if (backend.find(':') != std::string::npos) {
                        parse_choice(backend.substr(backend.find(':') + 1), &choice);
                    }
                    est = stemsphere::make_mode_estimator(std::move(members), format, choice);
                } else if (mode_of.count(backend)) {
                    const stemsphere::QualityMode mode = mode_of.at(backend);
                    std::vector<std::shared_ptr<const stemsphere::NeuralModel>> members;
                    for (const std::string& file : stemsphere::quality_mode_model_files(mode)) {
                        members.push_back(models.at(file.substr(0, file.find('.'))));
                    }
                    est = stemsphere::make_mode_estimator(
                        std::move(members), format, stemsphere::quality_mode_stem_choice(mode));
                } else {
                    est = std::make_unique<stemsphere::NeuralMaskEstimator>(models.at(backend),
                                                                            format);
                }
                Separated sep = separate(mix, format, std::move(est));
                if (targets.size() == 2) stemsphere::eval::add_accompaniment(sep.stems);
                if (!write_dir.empty()) {
                    const fs::path dir = fs::path(write_dir) / fs::path(clip).filename() / backend;
                    fs::create_directories(dir);
                    for (const auto& [name, audio] : sep.stems) {
                        stemsphere::eval::write_audio((dir / (name + ".wav")).string(), audio);
                    }
                }
                const auto score = stemsphere::eval::score_track(refs, sep.stems, targets);
                std::map<std::string, double> by;
                for (const auto& t : score.targets) by[t.name] = t.sdr_v4;
                auto cell = [&](const char* n) { return by.count(n) ? by[n] : std::nan(""); };
                std::printf("%-36.36s %-10s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %6.3f\n",
                            fs::path(clip).filename().c_str(), backend.c_str(), cell("vocals"),
                            cell("drums"), cell("bass"), cell("other"), cell("accompaniment"),
                            score.mean_sdr_v4, sep.rtf);
                means[backend].push_back(score.mean_sdr_v4);
                rtf_sum[backend] += sep.rtf;
            }
        }
        std::printf("\nmean over %zu clips (museval v4 SDR, dB; RTF = CPU s per audio s, 1 core)\n",
                    clips.size());
        for (const std::string& backend : backends) {
            double s = 0;
            size_t n = 0;
            for (double v : means[backend]) {
                if (std::isfinite(v)) s += v, ++n;
            }
            std::printf("  %-10s mean SDR %6.2f dB  (vs dsp %+5.2f dB)  RTF %.3f\n",
                        backend.c_str(), n ? s / static_cast<double>(n) : std::nan(""),
                        n ? s / static_cast<double>(n) -
                                [&] {
                                    double d = 0;
                                    for (double v : means["dsp"]) d += v;
                                    return d / static_cast<double>(means["dsp"].size());
                                }()
                          : 0.0,
                        rtf_sum[backend] / static_cast<double>(clips.size()));
        }
    } catch (const std::exception& e) {
        std::cerr << "stemsphere-neural-eval: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
