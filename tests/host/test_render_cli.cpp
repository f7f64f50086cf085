// stemsphere-render as a user runs it: exit codes, one-line errors naming the file, output files,
// their length and alignment. Runs against the bundle given as --render-bundle=DIR
// [--render-uri=URI] (ctest registers it for the host fixture and, when it is built, for the
// Stemsphere bundle).
#include <gtest/gtest.h>
#include <sndfile.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tools/demosong/demo_song.h"

namespace {

namespace fs = std::filesystem;

struct CommandResult {
    int status = -1;
    std::string output;  // stdout and stderr together
};

std::string g_bundle;  // from the command line, see main()
std::string g_uri;

// `environment`: "NAME='value' ..." for this run only.
CommandResult run_render(const std::string& arguments, const std::string& environment = "") {
    // An address-space cap: a runaway plugin fails the test instead of exhausting the machine.
    std::string command =
        std::string("ulimit -v 8000000; ") + environment + " '" + STEMSPHERE_RENDER_EXE + "'";
    if (!g_bundle.empty()) command += " --bundle '" + g_bundle + "'";
    if (!g_uri.empty()) command += " --uri '" + g_uri + "'";
    command += " " + arguments + " 2>&1";
    CommandResult result;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return result;
    std::array<char, 4096> chunk{};
    size_t got = 0;
    while ((got = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) {
        result.output.append(chunk.data(), got);
    }
    const int raw = pclose(pipe);
    result.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    return result;
}

struct Audio {
    int rate = 0;
    int channels = 0;
    std::vector<float> samples;  // interleaved
    size_t frames() const { return channels > 0 ? samples.size() / channels : 0; }
    float at(size_t frame, int channel) const { return samples[frame * channels + channel]; }
};

Audio read_audio(const fs::path& path) {
    Audio audio;
    SF_INFO info{};
    SNDFILE* file = sf_open(path.c_str(), SFM_READ, &info);
    if (file == nullptr) return audio;
    audio.rate = info.samplerate;
    audio.channels = info.channels;
    audio.samples.resize(static_cast<size_t>(info.frames * info.channels));
    sf_readf_float(file, audio.samples.data(), info.frames);
    sf_close(file);
    return audio;
}

void write_audio(const fs::path& path, const Audio& audio, int format) {
    SF_INFO info{};
    info.samplerate = audio.rate;
    info.channels = audio.channels;
    info.format = format;
    SNDFILE* file = sf_open(path.c_str(), SFM_WRITE, &info);
    ASSERT_NE(file, nullptr) << sf_strerror(nullptr);
    sf_writef_float(file, audio.samples.data(), static_cast<sf_count_t>(audio.frames()));
    sf_close(file);
}

// A short stretch of the demo song (held-out synthetic music), stereo or folded to mono.
Audio demo_audio(double rate, double seconds, int channels, uint64_t seed = 3) {
    stemsphere::demosong::DemoSongOptions options;
    options.seed = seed;
    options.sample_rate = rate;
    options.seconds = seconds;
    const auto song = stemsphere::demosong::generate_demo_song(options);
    Audio audio;
    audio.rate = static_cast<int>(rate);
    audio.channels = channels;
    for (size_t i = 0; i < song.mixture.left.size(); ++i) {
        if (channels == 1) {
            audio.samples.push_back(0.5f * (song.mixture.left[i] + song.mixture.right[i]));
        } else {
            audio.samples.push_back(song.mixture.left[i]);
            audio.samples.push_back(song.mixture.right[i]);
        }
    }
    return audio;
}

class RenderCli : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string pattern =
            (fs::temp_directory_path() / "stemsphere-render-test-XXXXXX").string();
        ASSERT_NE(mkdtemp(pattern.data()), nullptr);
        dir_ = pattern;
        // No sign-in of the user running the tests is ever read or used.
        setenv("XDG_CONFIG_HOME", (dir_ / "config").c_str(), 1);
        setenv("STEMSPHERE_SERVER", "http://127.0.0.1:9", 1);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    std::string path(const std::string& name) const { return (dir_ / name).string(); }
    fs::path dir_;
};

const std::array<const char*, 5> kOutputs = {"mix.wav", "vocals.wav", "drums.wav", "bass.wav",
                                             "other.wav"};

size_t line_count(const std::string& text) {
    return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// The stems must add up to the input: sample-aligned, same length, no latency left in.
void expect_stems_sum_to_input(const fs::path& out_dir, const Audio& input) {
    std::vector<Audio> stems;
    for (size_t k = 1; k < kOutputs.size(); ++k) stems.push_back(read_audio(out_dir / kOutputs[k]));
    double worst = 0;
    for (size_t i = 0; i < input.frames(); ++i) {
        for (int c = 0; c < 2; ++c) {
            float sum = 0;
            for (const Audio& stem : stems) sum += stem.at(i, c);
            const float expected = input.at(i, input.channels == 1 ? 0 : c);
            worst = std::max(worst, std::fabs(static_cast<double>(sum - expected)));
        }
    }
    EXPECT_LT(20.0 * std::log10(worst + 1e-30), -80.0) << "stems do not sum to the input";
}

TEST_F(RenderCli, HelpAndBadOptions) {
    const auto help = run_render("--help");
    EXPECT_EQ(help.status, 0);
    EXPECT_NE(help.output.find("Usage: stemsphere-render"), std::string::npos);
    const auto bad = run_render("--frobnicate x.wav");
    EXPECT_EQ(bad.status, 2);
    EXPECT_EQ(line_count(bad.output), 1u) << bad.output;
    EXPECT_EQ(run_render("").status, 2);
    EXPECT_EQ(run_render("--block 0 x.wav").status, 2);
}

TEST_F(RenderCli, OutputsMatchTheInputLengthRateAndAlignment) {
    for (double rate : {22050.0, 48000.0, 96000.0}) {
        const Audio input = demo_audio(rate, 0.731, 2);
        const std::string name = "song" + std::to_string(static_cast<int>(rate)) + ".wav";
        write_audio(path(name), input, SF_FORMAT_WAV | SF_FORMAT_PCM_24);
        const Audio stored = read_audio(path(name));  // what the renderer reads (24-bit)
        const auto result = run_render("--quiet --block 1000 '" + path(name) + "'");
        ASSERT_EQ(result.status, 0) << result.output;
        EXPECT_EQ(result.output, "");  // --quiet and no TTY: no progress bar, no summary
        const fs::path out_dir =
            dir_ / ("song" + std::to_string(static_cast<int>(rate)) + "-stems");
        for (const char* file : kOutputs) {
            const Audio out = read_audio(out_dir / file);
            EXPECT_EQ(out.frames(), input.frames()) << file << " at " << rate;
            EXPECT_EQ(out.channels, 2) << file;
            EXPECT_EQ(out.rate, static_cast<int>(rate)) << file;
        }
        expect_stems_sum_to_input(out_dir, stored);
    }
}

TEST_F(RenderCli, BlockSizeDoesNotChangeTheResult) {
    write_audio(path("in.wav"), demo_audio(48000, 0.25, 2), SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    std::vector<Audio> mixes;
    for (int block : {1, 17, 4096}) {
        const std::string out = path("b" + std::to_string(block));
        const auto result = run_render("--quiet --block " + std::to_string(block) + " --out '" +
                                       out + "' '" + path("in.wav") + "'");
        ASSERT_EQ(result.status, 0) << result.output;
        // Every output, stems included: the render must not depend on how it is chunked.
        for (const char* file : kOutputs) mixes.push_back(read_audio(fs::path(out) / file));
    }
    for (size_t k = kOutputs.size(); k < mixes.size(); ++k) {
        const Audio& ref = mixes[k % kOutputs.size()];
        ASSERT_EQ(mixes[k].samples.size(), ref.samples.size());
        for (size_t i = 0; i < ref.samples.size(); ++i) {
            ASSERT_NEAR(mixes[k].samples[i], ref.samples[i], 1e-6f)
                << kOutputs[k % kOutputs.size()] << " sample " << i;
        }
    }
}

// --quality names a mode by a short word. Render's 1.5 s latency is longer than this song's
// tail, yet every output is as long as the input and aligned with it (the stems sum to it).
TEST_F(RenderCli, QualityRenderIsAlignedAndDiffersFromTheDspBackEnd) {
    const auto bad = run_render("--quality best x.wav");
    EXPECT_EQ(bad.status, 2) << bad.output;
    EXPECT_EQ(line_count(bad.output), 1u) << bad.output;
    if (run_render("--list").output.find("Render (neural)") == std::string::npos) {
        GTEST_SKIP() << "the bundle under test has no Render mode";
    }
    write_audio(path("in.wav"), demo_audio(44100, 2.0, 2), SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    const Audio stored = read_audio(path("in.wav"));
    for (const char* mode : {"dsp", "Render"}) {  // any case
        const auto result = run_render(std::string("--quiet --quality ") + mode + " --out '" +
                                       path(mode) + "' '" + path("in.wav") + "'");
        ASSERT_EQ(result.status, 0) << mode << ": " << result.output;
        for (const char* file : kOutputs) {
            EXPECT_EQ(read_audio(dir_ / mode / file).frames(), stored.frames()) << mode << file;
        }
        expect_stems_sum_to_input(dir_ / mode, stored);
    }
    EXPECT_NE(read_audio(dir_ / "dsp" / "vocals.wav").samples,
              read_audio(dir_ / "Render" / "vocals.wav").samples);
}

TEST_F(RenderCli, MonoInputIsUpmixedToStereo) {
    const Audio input = demo_audio(44100, 0.5, 1);
    write_audio(path("mono.flac"), input, SF_FORMAT_FLAC | SF_FORMAT_PCM_16);
    const Audio stored = read_audio(path("mono.flac"));
    const auto result = run_render("--out '" + path("out") + "' '" + path("mono.flac") + "'");
    ASSERT_EQ(result.status, 0) << result.output;
    const Audio mix = read_audio(dir_ / "out" / "mix.wav");
    EXPECT_EQ(mix.channels, 2);
    EXPECT_EQ(mix.frames(), stored.frames());
    expect_stems_sum_to_input(dir_ / "out", stored);
}

TEST_F(RenderCli, Mp3InputRendersToItsDecodedLength) {
    SF_INFO probe{};
    probe.samplerate = 44100;
    probe.channels = 2;
    probe.format = SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III;
    if (sf_format_check(&probe) == 0) GTEST_SKIP() << "skipped: this libsndfile has no MP3";
    write_audio(path("song.mp3"), demo_audio(44100, 0.6, 2), probe.format);
    const Audio decoded = read_audio(path("song.mp3"));
    ASSERT_GT(decoded.frames(), 0u);
    const auto result = run_render("--quiet '" + path("song.mp3") + "'");
    ASSERT_EQ(result.status, 0) << result.output;
    EXPECT_EQ(read_audio(dir_ / "song-stems" / "drums.wav").frames(), decoded.frames());
    expect_stems_sum_to_input(dir_ / "song-stems", decoded);
}

TEST_F(RenderCli, MoreThanTwoChannelsIsAClearError) {
    Audio surround;
    surround.rate = 48000;
    surround.channels = 6;
    surround.samples.assign(6 * 4800, 0.1f);
    write_audio(path("surround.wav"), surround, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    const auto result = run_render("'" + path("surround.wav") + "'");
    EXPECT_EQ(result.status, 1);
    EXPECT_NE(result.output.find("surround.wav: 6 channels"), std::string::npos) << result.output;
    EXPECT_FALSE(fs::exists(dir_ / "surround-stems" / "mix.wav"));
}

TEST_F(RenderCli, BadFilesFailAloneAndTheOthersAreStillRendered) {
    write_audio(path("good.wav"), demo_audio(48000, 0.3, 2), SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    std::ofstream(path("corrupt.wav")) << std::string(3000, 'x');
    const auto result = run_render("--quiet '" + path("missing.wav") + "' '" + path("corrupt.wav") +
                                   "' '" + path("good.wav") + "'");
    EXPECT_EQ(result.status, 1);
    EXPECT_EQ(line_count(result.output), 2u) << result.output;
    EXPECT_NE(result.output.find("missing.wav: no such file"), std::string::npos) << result.output;
    EXPECT_NE(result.output.find("corrupt.wav: cannot read audio"), std::string::npos)
        << result.output;
    for (const char* file : kOutputs) EXPECT_TRUE(fs::exists(dir_ / "good-stems" / file)) << file;
    EXPECT_FALSE(fs::exists(dir_ / "corrupt-stems" / "mix.wav"));
}

TEST_F(RenderCli, TwoFilesInOneCallGetTheirOwnFolders) {
    write_audio(path("a.wav"), demo_audio(48000, 0.2, 2, 1), SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    write_audio(path("b.ogg"), demo_audio(48000, 0.3, 2, 2), SF_FORMAT_OGG | SF_FORMAT_VORBIS);
    const auto result =
        run_render("--out '" + path("stems") + "' '" + path("a.wav") + "' '" + path("b.ogg") + "'");
    ASSERT_EQ(result.status, 0) << result.output;
    EXPECT_EQ(line_count(result.output), 2u) << result.output;  // one summary line per file
    EXPECT_EQ(read_audio(dir_ / "stems" / "a-stems" / "mix.wav").frames(), 9600u);
    EXPECT_EQ(read_audio(dir_ / "stems" / "b-stems" / "mix.wav").frames(),
              read_audio(path("b.ogg")).frames());
}

TEST_F(RenderCli, UnknownOrOutOfRangeControlIsAUsageError) {
    write_audio(path("in.wav"), demo_audio(48000, 0.2, 2), SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    const auto unknown = run_render("--set no_such_control=1 '" + path("in.wav") + "'");
    EXPECT_EQ(unknown.status, 2);
    EXPECT_EQ(line_count(unknown.output), 1u) << unknown.output;
    EXPECT_NE(unknown.output.find("unknown control 'no_such_control'"), std::string::npos);
    const auto range = run_render("--set enabled=5 '" + path("in.wav") + "'");
    EXPECT_EQ(range.status, 2);
    EXPECT_NE(range.output.find("outside its range"), std::string::npos) << range.output;
    const auto text = run_render("--set enabled=maybe '" + path("in.wav") + "'");
    EXPECT_EQ(text.status, 2);
    EXPECT_NE(text.output.find("is not a number"), std::string::npos) << text.output;
    EXPECT_FALSE(fs::exists(dir_ / "in-stems"));  // nothing rendered on a usage error
}

TEST_F(RenderCli, UnknownPresetListsTheKnownOnes) {
    write_audio(path("in.wav"), demo_audio(48000, 0.2, 2), SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    const auto result = run_render("--preset 'No Such Preset' '" + path("in.wav") + "'");
    EXPECT_EQ(result.status, 2);
    EXPECT_EQ(line_count(result.output), 1u) << result.output;
    EXPECT_NE(result.output.find("unknown preset 'No Such Preset' (presets: "), std::string::npos)
        << result.output;
}

TEST_F(RenderCli, MissingHrtfFileIsAUsageError) {
    write_audio(path("in.wav"), demo_audio(48000, 0.2, 2), SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    const auto result = run_render("--hrtf '" + path("none.sofa") + "' '" + path("in.wav") + "'");
    EXPECT_EQ(result.status, 2);
    EXPECT_NE(result.output.find("none.sofa' not found"), std::string::npos) << result.output;
}

TEST_F(RenderCli, PresetAndControlsChangeTheRender) {
    const Audio input = demo_audio(48000, 0.4, 2);
    write_audio(path("in.wav"), input, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    const auto list = run_render("--list");
    ASSERT_EQ(list.status, 0) << list.output;
    // The last preset listed (fixture: "Quiet", Stemsphere: a level or stage one) changes the mix.
    const size_t label_at = list.output.rfind("\n  ", list.output.size() - 2) + 3;
    ASSERT_NE(list.output.find("presets:\n  "), std::string::npos) << list.output;
    const std::string label = list.output.substr(label_at, list.output.size() - 1 - label_at);
    const auto plain = run_render("--quiet --out '" + path("plain") + "' '" + path("in.wav") + "'");
    const auto preset = run_render("--quiet --preset '" + label + "' --out '" + path("preset") +
                                   "' '" + path("in.wav") + "'");
    const auto bypass = run_render("--quiet --set enabled=0 --out '" + path("bypass") + "' '" +
                                   path("in.wav") + "'");
    ASSERT_EQ(plain.status, 0) << plain.output;
    ASSERT_EQ(preset.status, 0) << preset.output;
    ASSERT_EQ(bypass.status, 0) << bypass.output;
    EXPECT_NE(read_audio(dir_ / "plain" / "mix.wav").samples,
              read_audio(dir_ / "preset" / "mix.wav").samples)
        << "preset '" << label << "' changed nothing";
    EXPECT_NE(read_audio(dir_ / "plain" / "vocals.wav").samples,
              read_audio(dir_ / "bypass" / "vocals.wav").samples);
}

TEST_F(RenderCli, PlaceMovesAStemAndRejectsBadSyntax) {
    for (const char* bad : {"--place bogus=10 x.wav", "--place vocals x.wav",
                            "--place vocals=1,2,3,4,5 x.wav", "--place vocals=left x.wav"}) {
        const auto result = run_render(bad);
        EXPECT_EQ(result.status, 2) << bad;
        EXPECT_EQ(line_count(result.output), 1u) << result.output;
    }
    const auto list = run_render("--list");
    if (list.output.find("vocals_azimuth") == std::string::npos) {
        GTEST_SKIP() << "the bundle under test has no position controls";
    }
    write_audio(path("in.wav"), demo_audio(48000, 0.4, 2), SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    const auto front = run_render("--quiet --out '" + path("front") + "' '" + path("in.wav") + "'");
    const auto left = run_render(
        "--quiet --place vocals=90,0,1,0 --place drums=90 --place bass=90 "
        "--place other=90,0 --out '" +
        path("left") + "' '" + path("in.wav") + "'");
    ASSERT_EQ(front.status, 0) << front.output;
    ASSERT_EQ(left.status, 0) << left.output;
    const Audio mix = read_audio(dir_ / "left" / "mix.wav");
    double l = 0, r = 0;
    for (size_t i = 0; i < mix.frames(); ++i) {
        l += static_cast<double>(mix.at(i, 0)) * static_cast<double>(mix.at(i, 0));
        r += static_cast<double>(mix.at(i, 1)) * static_cast<double>(mix.at(i, 1));
    }
    // Broadband level difference; low frequencies (little head shadow) dominate the test audio.
    EXPECT_GT(10.0 * std::log10(l / r), 3.0) << "every stem on the left must favour the left ear";
    EXPECT_EQ(
        run_render("--quiet --place vocals=500 --out '" + path("x") + "' '" + path("in.wav") + "'")
            .status,
        2)
        << "out-of-range azimuth";
}

}  // namespace

// The metered modes through the scripted bundle's meter (tests/plugin/scripted_meter.cpp, its
// control file named by $STEMSPHERE_SCRIPTED_METER): no lease → nothing rendered, a clear
// message and exit status 3; --offline-ok → Live (DSP), said so; with a lease every millisecond
// of the song is metered once (the silent priming and latency flush are not).
class RenderMetering : public RenderCli {
  protected:
    void SetUp() override {
        RenderCli::SetUp();
        if (run_render("--list").output.find("Render (neural)") == std::string::npos) {
            GTEST_SKIP() << "the bundle under test has no metered modes";
        }
        // Noise: no digital silence at either end (silence is not metered).
        Audio noise;
        noise.rate = 44100;
        noise.channels = 2;
        uint32_t state = 7;
        for (size_t i = 0; i < 2 * 3 * 44100; ++i) {
            state = state * 1664525u + 1013904223u;
            noise.samples.push_back(0.05f + 0.2f * static_cast<float>(state >> 8) / 16777216.0f);
        }
        write_audio(path("in.wav"), noise, SF_FORMAT_WAV | SF_FORMAT_FLOAT);
    }
    std::string meter(const std::string& control) {
        std::ofstream(path("meter")) << control;
        return "STEMSPHERE_SCRIPTED_METER='" + path("meter") + "'";
    }
};

TEST_F(RenderMetering, WithoutALeaseNothingIsRenderedAndTheMessageSaysWhy) {
    const auto result =
        run_render("--quality studio --out '" + path("out") + "' '" + path("in.wav") + "'",
                   meter("state=0\n"));
    EXPECT_EQ(result.status, 3) << result.output;
    EXPECT_EQ(line_count(result.output), 1u) << result.output;
    EXPECT_NE(result.output.find("Studio (neural) is metered and cannot be leased (Signed out"),
              std::string::npos)
        << result.output;
    EXPECT_NE(result.output.find("--offline-ok"), std::string::npos);
    EXPECT_FALSE(fs::exists(dir_ / "out")) << "nothing rendered";
    const auto exhausted =
        run_render("--quality live '" + path("in.wav") + "'", meter("state=4\n"));
    EXPECT_EQ(exhausted.status, 3);
    EXPECT_NE(exhausted.output.find("(Exhausted"), std::string::npos) << exhausted.output;
}

TEST_F(RenderMetering, OfflineOkRendersLiveDspAndSaysSo) {
    const auto result = run_render(
        "--offline-ok --quality render --out '" + path("fallback") + "' '" + path("in.wav") + "'",
        meter("state=0\n"));
    ASSERT_EQ(result.status, 0) << result.output;
    EXPECT_NE(result.output.find("rendering in Live (DSP) instead (--offline-ok)"),
              std::string::npos)
        << result.output;
    const auto dsp =
        run_render("--quiet --quality dsp --out '" + path("dsp") + "' '" + path("in.wav") + "'");
    ASSERT_EQ(dsp.status, 0) << dsp.output;
    for (const char* file : kOutputs) {
        EXPECT_EQ(read_audio(dir_ / "fallback" / file).samples,
                  read_audio(dir_ / "dsp" / file).samples)
            << file;
    }
    EXPECT_FALSE(fs::exists(path("meter") + ".used")) << "nothing metered";
}

TEST_F(RenderMetering, ALeasedRenderMetersExactlyTheSongOnce) {
    const auto result = run_render(
        "--quality live --block 333 --out '" + path("out") + "' '" + path("in.wav") + "'",
        meter("state=1\n"));
    ASSERT_EQ(result.status, 0) << result.output;
    EXPECT_NE(result.output.find("Live (neural) is metered: 0:03.0 of audio"), std::string::npos)
        << result.output;
    std::ifstream used(path("meter") + ".used");
    std::string word;
    used >> word;
    EXPECT_EQ(word, "used_ms=3000");
}

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.rfind("--render-bundle=", 0) == 0) g_bundle = arg.substr(16);
        if (arg.rfind("--render-uri=", 0) == 0) g_uri = arg.substr(13);
    }
    return RUN_ALL_TESTS();
}
