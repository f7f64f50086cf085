// The stemsphere-eval command line: scores, JSON, 2-stem clips, and one-line errors with a
// non-zero exit status for bad input.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <random>
#include <sstream>

#include "engine/separation_engine.h"
#include "tools/eval/audio_file.h"
#include "tools/eval/oracle.h"

namespace stemsphere::eval {
namespace {

namespace fs = std::filesystem;

struct CliResult {
    int status = -1;
    std::string output;  // stdout + stderr
};

class EvalCli : public ::testing::Test {
  protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("stemsphere-eval-cli-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    // A tone at 150·seed Hz plus a little noise: stems that an STFT mask can tell apart.
    static Audio stem_signal(size_t frames, int rate, size_t channels, unsigned seed) {
        std::mt19937 gen(seed);
        std::normal_distribution<double> dist(0.0, 0.01);
        Audio a{rate, channels, std::vector<double>(frames * channels)};
        const double w = 2.0 * std::numbers::pi * 150.0 * seed / rate;
        for (size_t n = 0; n < frames; ++n) {
            for (size_t c = 0; c < channels; ++c) {
                a.samples[n * channels + c] =
                    0.3 * std::sin(w * static_cast<double>(n)) + dist(gen);
            }
        }
        return a;
    }
    fs::path stems(const std::string& name, const std::vector<std::string>& targets,
                   int rate = 8000, size_t channels = 2, unsigned seed = 1) {
        const fs::path d = dir_ / name;
        fs::create_directories(d);
        for (const auto& t : targets) {
            write_audio((d / (t + ".wav")).string(), stem_signal(3 * 8000, rate, channels, seed++));
        }
        return d;
    }
    CliResult run(const std::string& args) {
        const fs::path out = dir_ / "cli-output.txt";
        const std::string cmd =
            std::string("'") + STEMSPHERE_EVAL_CLI + "' " + args + " > '" + out.string() + "' 2>&1";
        const int raw = std::system(cmd.c_str());
        CliResult r;
        r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
        std::ifstream in(out);
        std::stringstream text;
        text << in.rdbuf();
        r.output = text.str();
        return r;
    }
    static std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

    fs::path dir_;
};

const std::vector<std::string> kFour{"vocals", "drums", "bass", "other"};

TEST_F(EvalCli, FloorScoresAsTableAndJson) {
    const fs::path ref = stems("ref", kFour);
    ASSERT_EQ(run("floor --ref " + q(ref) + " --out " + q(dir_ / "floor")).status, 0);
    const fs::path json = dir_ / "scores.json";
    const CliResult r =
        run("--ref " + q(ref) + " --est " + q(dir_ / "floor") + " --json " + q(json));
    ASSERT_EQ(r.status, 0) << r.output;
    for (const auto& t : kFour) EXPECT_NE(r.output.find(t), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("mean"), std::string::npos);
    EXPECT_NE(r.output.find("v4 SDR"), std::string::npos);
    std::ifstream in(json);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_NE(text.str().find("\"sdr_v4_frames\""), std::string::npos);
    EXPECT_NE(text.str().find("\"mean\""), std::string::npos);
}

TEST_F(EvalCli, OracleBeatsFloor) {
    const fs::path ref = stems("ref", kFour);
    ASSERT_EQ(
        run("oracle --ref " + q(ref) + " --out " + q(dir_ / "oracle") + " --nfft 512 --hop 128")
            .status,
        0);
    ASSERT_EQ(run("floor --ref " + q(ref) + " --out " + q(dir_ / "floor")).status, 0);
    auto mean_of = [&](const std::string& est) {
        const fs::path json = dir_ / (est + ".json");
        EXPECT_EQ(run("--ref " + q(ref) + " --est " + q(dir_ / est) + " --json " + q(json)).status,
                  0);
        std::ifstream in(json);
        std::stringstream text;
        text << in.rdbuf();
        const std::string s = text.str();
        const size_t at = s.find("\"sdr_v4\"", s.find("\"mean\""));
        return std::stod(s.substr(s.find(':', at) + 1));
    };
    EXPECT_GT(mean_of("oracle"), mean_of("floor") + 3.0);
}

TEST_F(EvalCli, OracleAtTheEngineStftSizeUsesThePluginsFormat) {
    const fs::path ref = stems("ref", kFour);
    const CliResult r =
        run("oracle --ref " + q(ref) + " --out " + q(dir_ / "oracle") + " --nfft engine");
    ASSERT_EQ(r.status, 0) << r.output;
    const StftFormat f = stft_format_for_rate(8000.0);
    EXPECT_NE(r.output.find("STFT " + std::to_string(f.fft_size) + "/" + std::to_string(f.hop)),
              std::string::npos)
        << r.output;
    EXPECT_TRUE(fs::exists(dir_ / "oracle" / "vocals.wav"));
}

TEST_F(EvalCli, TwoStemReferenceWithAccompanimentFormedFromEstimates) {
    const fs::path ref = stems("ref", {"vocals", "accompaniment"});
    const fs::path est = stems("est", kFour, 8000, 2, 20);
    const CliResult without = run("--ref " + q(ref) + " --est " + q(est));
    ASSERT_EQ(without.status, 0) << without.output;
    EXPECT_EQ(without.output.find("accompaniment"), std::string::npos);
    const CliResult with = run("--ref " + q(ref) + " --est " + q(est) + " --accompaniment");
    ASSERT_EQ(with.status, 0) << with.output;
    EXPECT_NE(with.output.find("vocals"), std::string::npos);
    EXPECT_NE(with.output.find("accompaniment"), std::string::npos);
    EXPECT_EQ(with.output.find("drums"), std::string::npos);
}

TEST_F(EvalCli, MissingFileIsAOneLineError) {
    const fs::path ref = stems("ref", kFour);
    const fs::path est = stems("est", {"vocals", "drums", "bass"});
    const CliResult r = run("--ref " + q(ref) + " --est " + q(est) + " --targets vocals,other");
    EXPECT_EQ(r.status, 1);
    EXPECT_NE(r.output.find("missing file"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("other.wav"), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

TEST_F(EvalCli, RateAndChannelMismatchAreErrors) {
    const fs::path ref = stems("ref", kFour);
    const fs::path fast = stems("fast", kFour, 16000);
    const fs::path mono = stems("mono", kFour, 8000, 1);
    const CliResult rate = run("--ref " + q(ref) + " --est " + q(fast));
    EXPECT_EQ(rate.status, 1);
    EXPECT_NE(rate.output.find("rate mismatch"), std::string::npos) << rate.output;
    const CliResult ch = run("--ref " + q(ref) + " --est " + q(mono));
    EXPECT_EQ(ch.status, 1);
    EXPECT_NE(ch.output.find("channel mismatch"), std::string::npos) << ch.output;
}

TEST_F(EvalCli, UnreadableAudioAndBadArgumentsAreErrors) {
    const fs::path ref = stems("ref", kFour);
    const fs::path est = dir_ / "broken";
    fs::create_directories(est);
    std::ofstream(est / "vocals.wav") << "not a wav file";
    const CliResult broken = run("--ref " + q(ref) + " --est " + q(est) + " --targets vocals");
    EXPECT_EQ(broken.status, 1);
    EXPECT_NE(broken.output.find("cannot read audio file"), std::string::npos) << broken.output;
    EXPECT_EQ(run("--ref " + q(ref)).status, 2);
    EXPECT_EQ(run("--ref " + q(ref) + " --est " + q(ref) + " --bogus").status, 2);
    EXPECT_EQ(run("oracle --ref " + q(ref) + " --out " + q(dir_ / "o") + " --nfft -5").status, 2);
    EXPECT_EQ(
        run("oracle --ref " + q(ref) + " --out " + q(dir_ / "o") + " --nfft 4294967296").status, 2);
    EXPECT_NE(
        run("oracle --ref " + q(ref) + " --out " + q(dir_ / "o") + " --nfft 1000 --hop 300").status,
        0);
    EXPECT_EQ(run("--ref " + q(dir_ / "nowhere") + " --est " + q(ref)).status, 1);
}

}  // namespace
}  // namespace stemsphere::eval
