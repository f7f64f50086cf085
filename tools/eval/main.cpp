// stemsphere-eval: separation scores of estimated stems against reference stems, plus the two
// bracketing estimators (oracle ratio mask, mixture share). See docs/eval.md.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/separation_engine.h"
#include "tools/eval/oracle.h"
#include "tools/eval/scoring.h"

namespace {

using stemsphere::eval::StemSet;

constexpr const char* kUsage =
    "usage:\n"
    "  stemsphere-eval [score] --ref DIR --est DIR [--targets vocals,drums,bass,other]\n"
    "                  [--accompaniment] [--json FILE]\n"
    "  stemsphere-eval oracle --ref DIR --out DIR [--nfft N|engine] [--hop H]\n"
    "                  [--mask power|magnitude]   (--nfft engine: the plugin's STFT at the rate)\n"
    "                  [--targets ...]\n"
    "  stemsphere-eval floor  --ref DIR --out DIR [--targets ...]\n"
    "  stemsphere-eval mixture --ref DIR --out FILE [--targets ...]   (Σ references, the input\n"
    "                  to render: MUSDB18-HQ scores against the stem sum, not a coded mixture)\n";

struct Args {
    std::string command = "score";
    std::map<std::string, std::string> values;
    std::set<std::string> flags;
};

// Thrown for command-line mistakes: printed with the usage, exit status 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

Args parse(int argc, char** argv) {
    static const std::set<std::string> kValued{"--ref",  "--est",  "--out", "--targets",
                                               "--json", "--nfft", "--hop", "--mask"};
    static const std::set<std::string> kFlags{"--accompaniment"};
    Args args;
    int i = 1;
    if (i < argc && argv[i][0] != '-') args.command = argv[i++];
    if (args.command != "score" && args.command != "oracle" && args.command != "floor" &&
        args.command != "mixture") {
        throw UsageError("unknown command '" + args.command + "'");
    }
    for (; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            args.flags.insert("--help");
        } else if (kFlags.count(a) != 0) {
            args.flags.insert(a);
        } else if (kValued.count(a) != 0) {
            if (i + 1 >= argc) throw UsageError(a + " needs a value");
            args.values[a] = argv[++i];
        } else {
            throw UsageError("unknown argument '" + a + "'");
        }
    }
    return args;
}

const std::string& required(const Args& args, const std::string& key) {
    auto it = args.values.find(key);
    if (it == args.values.end()) throw UsageError(key + " is required");
    return it->second;
}

std::vector<std::string> split_list(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream in(list);
    std::string item;
    while (std::getline(in, item, ',')) {
        if (!item.empty()) out.push_back(item);
    }
    if (out.empty()) throw UsageError("--targets is empty");
    return out;
}

size_t positive(const Args& args, const std::string& key, size_t fallback) {
    auto it = args.values.find(key);
    if (it == args.values.end()) return fallback;
    try {
        size_t used = 0;
        const long long v = std::stoll(it->second, &used);
        if (used != it->second.size() || v <= 0) throw std::invalid_argument("");
        return static_cast<size_t>(v);
    } catch (const std::exception&) {
        throw UsageError(key + " must be a positive integer (got '" + it->second + "')");
    }
}

// Reference stems to use in oracle/floor: --targets, else the 4 stems, else vocals +
// accompaniment (2-stem clips).
std::vector<std::string> reference_names(const Args& args, const std::string& ref_dir) {
    if (args.values.count("--targets") != 0) return split_list(args.values.at("--targets"));
    const auto present = stemsphere::eval::stems_present(ref_dir);
    auto has = [&](const char* n) {
        for (const auto& p : present) {
            if (p == n) return true;
        }
        return false;
    };
    if (has("vocals") && has("drums") && has("bass") && has("other")) {
        return stemsphere::eval::four_stems();
    }
    if (has("vocals") && has("accompaniment")) return {"vocals", "accompaniment"};
    throw std::runtime_error("no vocals/drums/bass/other or vocals/accompaniment stems in " +
                             ref_dir);
}

int run_score(const Args& args) {
    const std::string ref_dir = required(args, "--ref");
    const std::string est_dir = required(args, "--est");
    const bool accompaniment = args.flags.count("--accompaniment") != 0;
    std::vector<std::string> targets;
    if (args.values.count("--targets") != 0) {
        targets = split_list(args.values.at("--targets"));
    } else {
        // Targets present in both directories (accompaniment counts as present when it can be
        // formed and --accompaniment asks for it).
        auto available = [&](const std::string& dir) {
            auto names = stemsphere::eval::stems_present(dir);
            std::set<std::string> set(names.begin(), names.end());
            if (accompaniment && set.count("drums") && set.count("bass") && set.count("other")) {
                set.insert("accompaniment");
            }
            return set;
        };
        const auto in_ref = available(ref_dir);
        const auto in_est = available(est_dir);
        for (const char* n : {"vocals", "drums", "bass", "other", "accompaniment"}) {
            if (in_ref.count(n) && in_est.count(n)) targets.emplace_back(n);
        }
        if (targets.empty()) {
            throw std::runtime_error("no target stem found in both " + ref_dir + " and " + est_dir);
        }
    }
    // Load what the targets need; accompaniment may be formed from drums + bass + other.
    auto load = [&](const std::string& dir) {
        std::vector<std::string> names;
        const auto present = stemsphere::eval::stems_present(dir);
        for (const auto& t : targets) {
            const bool on_disk = std::find(present.begin(), present.end(), t) != present.end();
            if (t == "accompaniment" && !on_disk && accompaniment) {
                for (const char* part : {"drums", "bass", "other"}) names.emplace_back(part);
            } else {
                names.push_back(t);
            }
        }
        std::sort(names.begin(), names.end());
        names.erase(std::unique(names.begin(), names.end()), names.end());
        StemSet stems = stemsphere::eval::load_stems(dir, names);
        if (accompaniment) stemsphere::eval::add_accompaniment(stems);
        return stems;
    };
    const StemSet refs = load(ref_dir);
    const StemSet ests = load(est_dir);
    const auto score = stemsphere::eval::score_track(refs, ests, targets);
    std::cout << stemsphere::eval::format_table(score);
    if (args.values.count("--json") != 0) {
        const std::string path = args.values.at("--json");
        std::ofstream out(path);
        out << stemsphere::eval::to_json(score);
        if (!out) throw std::runtime_error("cannot write " + path);
    }
    return 0;
}

int run_estimator(const Args& args) {
    const std::string ref_dir = required(args, "--ref");
    const std::string out_dir = required(args, "--out");
    const auto names = reference_names(args, ref_dir);
    const StemSet refs = stemsphere::eval::load_stems(ref_dir, names);
    if (args.command == "mixture") {
        stemsphere::eval::write_audio(out_dir, stemsphere::eval::mixture_of(refs, names));
        std::cout << "wrote the sum of " << names.size() << " stems to " << out_dir << "\n";
        return 0;
    }
    StemSet estimates;
    if (args.command == "oracle") {
        // "engine": the STFT the plugin uses at this rate, so the oracle is the ceiling of the
        // plugin's own masking resolution.
        const bool engine_size =
            args.values.count("--nfft") != 0 && args.values.at("--nfft") == "engine";
        const auto engine_format =
            stemsphere::stft_format_for_rate(static_cast<double>(refs.begin()->second.sample_rate));
        const size_t nfft = engine_size ? engine_format.fft_size : positive(args, "--nfft", 4096);
        const size_t hop = engine_size && args.values.count("--hop") == 0
                               ? engine_format.hop
                               : positive(args, "--hop", nfft / 4);
        constexpr size_t kMaxFft = size_t{1} << 20;
        if (nfft > kMaxFft) throw UsageError("--nfft must be at most 1048576");
        auto mask = stemsphere::eval::OracleMask::kPower;
        if (args.values.count("--mask") != 0) {
            const std::string& m = args.values.at("--mask");
            if (m == "magnitude") {
                mask = stemsphere::eval::OracleMask::kMagnitude;
            } else if (m != "power") {
                throw UsageError("--mask must be power or magnitude");
            }
        }
        estimates = stemsphere::eval::oracle_ratio_mask(refs, names, nfft, hop, mask);
        std::cout << "oracle mask on STFT " << nfft << "/" << hop << "\n";
    } else {
        estimates = stemsphere::eval::mixture_share(refs, names);
    }
    stemsphere::eval::write_stems(out_dir, estimates);
    std::cout << "wrote " << estimates.size() << " " << args.command << " estimates to " << out_dir
              << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const Args args = parse(argc, argv);
        if (args.flags.count("--help") != 0) {
            std::cout << kUsage;
            return 0;
        }
        return args.command == "score" ? run_score(args) : run_estimator(args);
    } catch (const UsageError& e) {
        std::cerr << "stemsphere-eval: " << e.what() << "\n" << kUsage;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "stemsphere-eval: " << e.what() << "\n";
        return 1;
    }
}
