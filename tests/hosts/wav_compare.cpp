// Compares a DAW's stereo export with the two mono files it was made from: the lag that best
// aligns them, their correlation there, and the residual at lag 0 (what exact delay compensation
// gives), plus the export's level, so that a silent export is plain to see.
// Usage: wav_compare EXPORT.wav INPUT_L.wav INPUT_R.wav   (the input as two mono files)
//        wav_compare EXPORT.wav REFERENCE.wav              (a stereo reference, e.g. another
//        export)
// Prints one line of "key value" pairs; exit 2 when a file cannot be read.
#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Wav {
    int rate = 0;
    int channels = 0;
    std::vector<double> samples;  // interleaved
    size_t frames() const {
        return channels == 0 ? 0 : samples.size() / static_cast<size_t>(channels);
    }
    double at(size_t frame, int ch) const {
        return samples[frame * static_cast<size_t>(channels) + static_cast<size_t>(ch)];
    }
};

bool read(const char* path, Wav& w) {
    SF_INFO info{};
    SNDFILE* f = sf_open(path, SFM_READ, &info);
    if (f == nullptr) {
        std::fprintf(stderr, "cannot read %s: %s\n", path, sf_strerror(nullptr));
        return false;
    }
    w.rate = info.samplerate;
    w.channels = info.channels;
    w.samples.resize(static_cast<size_t>(info.frames) * static_cast<size_t>(info.channels));
    sf_readf_double(f, w.samples.data(), info.frames);
    sf_close(f);
    return true;
}

double db(double ratio) {
    return 20.0 * std::log10(ratio + 1e-30);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: %s EXPORT.wav (INPUT_L.wav INPUT_R.wav | REFERENCE.wav)\n",
                     argv[0]);
        return 2;
    }
    Wav out, in_l, in_r;
    if (!read(argv[1], out)) return 2;
    if (argc == 4) {
        if (!read(argv[2], in_l) || !read(argv[3], in_r)) return 2;
    } else {
        Wav ref;
        if (!read(argv[2], ref)) return 2;
        if (ref.channels != 2) {
            std::fprintf(stderr, "expected a stereo reference\n");
            return 2;
        }
        for (Wav* w : {&in_l, &in_r}) {
            w->rate = ref.rate;
            w->channels = 1;
        }
        for (size_t i = 0; i < ref.frames(); ++i) {
            in_l.samples.push_back(ref.at(i, 0));
            in_r.samples.push_back(ref.at(i, 1));
        }
    }
    if (out.channels != 2 || in_l.channels != 1 || in_r.channels != 1) {
        std::fprintf(stderr, "expected a stereo export and two mono inputs\n");
        return 2;
    }
    const size_t n = std::min({out.frames(), in_l.frames(), in_r.frames()});
    // Leave out 0.1 s at each end: Ardour fades region edges.
    const size_t edge = static_cast<size_t>(out.rate) / 10;
    if (n < 4 * edge) {
        std::fprintf(stderr, "files too short (%zu frames)\n", n);
        return 2;
    }
    double peak = 0.0, energy = 0.0;
    for (size_t i = 0; i < out.frames(); ++i) {
        for (int ch = 0; ch < 2; ++ch) {
            peak = std::max(peak, std::abs(out.at(i, ch)));
            energy += out.at(i, ch) * out.at(i, ch);
        }
    }
    const double rms =
        std::sqrt(energy / (2.0 * static_cast<double>(std::max<size_t>(1, out.frames()))));

    // Best lag of the left channel within +-0.1 s, over at most 2 s of audio.
    const long max_lag = static_cast<long>(edge);
    const size_t corr_end = std::min(n - edge, edge + 2 * static_cast<size_t>(out.rate));
    long best_lag = 0;
    double best_corr = -2.0;
    for (long lag = -max_lag; lag <= max_lag; ++lag) {
        double xy = 0.0, xx = 0.0, yy = 0.0;
        for (size_t i = edge; i < corr_end; ++i) {
            const double x = out.at(i, 0);
            const double y = in_l.samples[static_cast<size_t>(static_cast<long>(i) - lag)];
            xy += x * y;
            xx += x * x;
            yy += y * y;
        }
        const double corr = xy / std::sqrt(xx * yy + 1e-300);
        if (corr > best_corr) {
            best_corr = corr;
            best_lag = lag;
        }
    }
    // Residual of both channels at lag 0, relative to the input.
    double err = 0.0, ref = 0.0;
    for (size_t i = edge; i + edge < n; ++i) {
        const double dl = out.at(i, 0) - in_l.samples[i];
        const double dr = out.at(i, 1) - in_r.samples[i];
        err += dl * dl + dr * dr;
        ref += in_l.samples[i] * in_l.samples[i] + in_r.samples[i] * in_r.samples[i];
    }
    // Where the export last departs from the input (10 ms windows, residual above -60 dB of the
    // input's mean level): 0 when it matches throughout.
    const size_t window = static_cast<size_t>(out.rate) / 100;
    const double mean_ref = ref / static_cast<double>(n - 2 * edge);
    double last_bad_s = 0.0;
    for (size_t start = edge; start + window + edge <= n; start += window) {
        double e = 0.0;
        for (size_t i = start; i < start + window; ++i) {
            const double dl = out.at(i, 0) - in_l.samples[i];
            const double dr = out.at(i, 1) - in_r.samples[i];
            e += dl * dl + dr * dr;
        }
        if (e / static_cast<double>(window) > 1e-6 * mean_ref) {
            last_bad_s = static_cast<double>(start + window) / out.rate;
        }
    }
    std::printf(
        "peak_dbfs %.2f rms_dbfs %.2f lag %ld corr %.6f residual_db %.2f differs_until_s %.2f\n",
        db(peak), db(rms), best_lag, best_corr, 10.0 * std::log10(err / (ref + 1e-300) + 1e-30),
        last_bad_s);
    return 0;
}
