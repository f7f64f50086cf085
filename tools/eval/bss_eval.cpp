#include "tools/eval/bss_eval.h"

#include <fftw3.h>

#include <algorithm>
#include <cassert>
#include <complex>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>

#include "tools/eval/cholesky.h"
#include "tools/eval/metrics.h"

namespace stemsphere::eval {

namespace {

using Spectrum = std::vector<std::complex<double>>;

size_t next_pow2(size_t n) {
    size_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

// Double-precision real FFT of one size (fftw3). Offline scoring only.
class RealFftDouble {
  public:
    explicit RealFftDouble(size_t n)
        : n_(n),
          time_(fftw_alloc_real(n)),
          freq_(fftw_alloc_complex(n / 2 + 1)),
          forward_(fftw_plan_dft_r2c_1d(static_cast<int>(n), time_, freq_, FFTW_ESTIMATE)),
          inverse_(fftw_plan_dft_c2r_1d(static_cast<int>(n), freq_, time_, FFTW_ESTIMATE)) {
        if (time_ == nullptr || freq_ == nullptr || forward_ == nullptr || inverse_ == nullptr) {
            throw std::runtime_error("fftw: cannot plan a transform of size " + std::to_string(n));
        }
    }
    ~RealFftDouble() {
        fftw_destroy_plan(forward_);
        fftw_destroy_plan(inverse_);
        fftw_free(time_);
        fftw_free(freq_);
    }
    RealFftDouble(const RealFftDouble&) = delete;
    RealFftDouble& operator=(const RealFftDouble&) = delete;

    size_t size() const { return n_; }

    // Spectrum of x zero-padded to size().
    Spectrum forward(const std::vector<double>& x) {
        assert(x.size() <= n_);
        std::copy(x.begin(), x.end(), time_);
        std::fill(time_ + x.size(), time_ + n_, 0.0);
        fftw_execute(forward_);
        Spectrum out(n_ / 2 + 1);
        for (size_t k = 0; k < out.size(); ++k) out[k] = {freq_[k][0], freq_[k][1]};
        return out;
    }
    // Normalised inverse (fftw's is scaled by n).
    std::vector<double> inverse(const Spectrum& x) {
        assert(x.size() == n_ / 2 + 1);
        for (size_t k = 0; k < x.size(); ++k) {
            freq_[k][0] = x[k].real();
            freq_[k][1] = x[k].imag();
        }
        fftw_execute(inverse_);
        std::vector<double> out(time_, time_ + n_);
        const double scale = 1.0 / static_cast<double>(n_);
        for (double& v : out) v *= scale;
        return out;
    }

  private:
    size_t n_;
    double* time_;
    fftw_complex* freq_;
    fftw_plan forward_;
    fftw_plan inverse_;
};

// circular cross-correlation c[τ] = Σ_n a[n + τ] b[n] from spectra A, B.
std::vector<double> correlate(RealFftDouble& fft, const Spectrum& a, const Spectrum& b) {
    Spectrum prod(a.size());
    for (size_t k = 0; k < a.size(); ++k) prod[k] = a[k] * std::conj(b[k]);
    return fft.inverse(prod);
}

}  // namespace

struct DelayedSpanProjector::Impl {
    explicit Impl(size_t n) : fft(n) {}
    RealFftDouble fft;
    std::vector<Spectrum> spectra;     // of each channel, zero-padded to fft.size()
    std::vector<double> correlations;  // [k1][k2][τ + taps − 1], τ ∈ (−taps, taps)
    std::unique_ptr<SemidefiniteCholesky> gram;
};

DelayedSpanProjector::DelayedSpanProjector(std::vector<std::vector<double>> channels, size_t taps)
    : channels_(std::move(channels)), taps_(taps) {
    if (channels_.empty() || taps_ == 0) throw std::invalid_argument("projector: no channels");
    const size_t frames = channels_.front().size();
    for (const auto& c : channels_) {
        if (c.size() != frames) throw std::invalid_argument("projector: channel lengths differ");
    }
    // Room for the full linear convolution of a frames-long channel with a taps-long filter,
    // plus the taps − 1 zeros mir_eval pads with: no circular wrap in correlations or projections.
    impl_ = std::make_unique<Impl>(next_pow2(frames + 2 * taps_ - 2));
    Impl* impl = impl_.get();
    const size_t k_count = channels_.size();
    for (const auto& c : channels_) impl->spectra.push_back(impl->fft.forward(c));
    const size_t lags = 2 * taps_ - 1;
    const size_t n = impl->fft.size();
    impl->correlations.assign(k_count * k_count * lags, 0.0);
    for (size_t k1 = 0; k1 < k_count; ++k1) {
        for (size_t k2 = 0; k2 <= k1; ++k2) {
            const std::vector<double> c =
                correlate(impl->fft, impl->spectra[k1], impl->spectra[k2]);
            for (size_t l = 0; l < lags; ++l) {
                // τ = l − (taps − 1); r_k1k2[τ] = c[τ mod n], r_k2k1[τ] = r_k1k2[−τ].
                const size_t pos = (l + n - (taps_ - 1)) % n;
                impl->correlations[(k1 * k_count + k2) * lags + l] = c[pos];
                impl->correlations[(k2 * k_count + k1) * lags + (lags - 1 - l)] = c[pos];
            }
        }
    }
    // Unknown v = k·taps + a (channel k delayed by a). G[v1][v2] = Σ_n x_k1[n−a1] x_k2[n−a2]
    // = r_k1k2[a2 − a1].
    const double* r = impl->correlations.data();
    const size_t t = taps_;
    impl->gram = std::make_unique<SemidefiniteCholesky>(
        k_count * taps_, [r, t, k_count, lags](size_t v1, size_t v2) {
            const size_t k1 = v1 / t;
            const size_t k2 = v2 / t;
            const size_t lag_index = (v2 % t) + (t - 1) - (v1 % t);
            return r[(k1 * k_count + k2) * lags + lag_index];
        });
}

DelayedSpanProjector::~DelayedSpanProjector() = default;

size_t DelayedSpanProjector::rank() const {
    return impl_->gram->rank();
}

std::vector<std::vector<double>> DelayedSpanProjector::filters(
    const std::vector<double>& target) const {
    if (target.size() != channels_.front().size()) {
        throw std::invalid_argument("projector: target length differs from the references");
    }
    const Spectrum t = impl_->fft.forward(target);
    const size_t n = impl_->fft.size();
    std::vector<double> rhs(channels_.size() * taps_);
    for (size_t k = 0; k < channels_.size(); ++k) {
        // D[k·taps + a] = Σ_n x_k[n − a] target[n] = c[−a].
        const std::vector<double> c = correlate(impl_->fft, impl_->spectra[k], t);
        for (size_t a = 0; a < taps_; ++a) rhs[k * taps_ + a] = c[(n - a) % n];
    }
    const std::vector<double> solution = impl_->gram->solve(rhs);
    std::vector<std::vector<double>> f(channels_.size());
    for (size_t k = 0; k < channels_.size(); ++k) {
        const auto first = solution.begin() + static_cast<std::ptrdiff_t>(k * taps_);
        f[k].assign(first, first + static_cast<std::ptrdiff_t>(taps_));
    }
    return f;
}

std::vector<double> DelayedSpanProjector::project(const std::vector<double>& target) const {
    const auto f = filters(target);
    Spectrum sum(impl_->fft.size() / 2 + 1);
    for (size_t k = 0; k < f.size(); ++k) {
        const Spectrum fk = impl_->fft.forward(f[k]);
        for (size_t i = 0; i < sum.size(); ++i) sum[i] += fk[i] * impl_->spectra[k][i];
    }
    std::vector<double> out = impl_->fft.inverse(sum);
    out.resize(channels_.front().size() + taps_ - 1);
    return out;
}

namespace {

enum class Criteria { kImages, kSources };

struct PairScores {
    double sdr, isr, sir, sar;
};

void check_inputs(const std::vector<Audio>& references, const std::vector<Audio>& estimates) {
    if (references.empty() || references.size() != estimates.size()) {
        throw std::invalid_argument("bss_eval: need as many estimates as references");
    }
    for (size_t j = 0; j < references.size(); ++j) {
        if (references[j].channels != references[0].channels ||
            estimates[j].channels != references[0].channels ||
            references[j].frames() != references[0].frames() ||
            estimates[j].frames() != references[0].frames()) {
            throw std::invalid_argument("bss_eval: signals differ in channels or length");
        }
    }
}

std::vector<double> padded(std::vector<double> x, size_t taps) {
    x.resize(x.size() + taps - 1, 0.0);
    return x;
}

// Criteria from the decomposition of one estimate against one reference. `own` and `all` are the
// per-channel projections onto the reference's own span and onto all references' span.
PairScores criteria(Criteria mode, const std::vector<std::vector<double>>& truth,
                    const std::vector<std::vector<double>>& estimate,
                    const std::vector<std::vector<double>>& own,
                    const std::vector<std::vector<double>>& all) {
    double e_true = 0, e_error = 0, e_spat = 0, e_own = 0, e_interf = 0, e_all = 0, e_artif = 0;
    double e_filt_error = 0;
    for (size_t c = 0; c < truth.size(); ++c) {
        for (size_t n = 0; n < truth[c].size(); ++n) {
            const double s = truth[c][n];
            const double x = estimate[c][n];
            e_true += s * s;
            e_error += (x - s) * (x - s);
            e_spat += (own[c][n] - s) * (own[c][n] - s);
            e_own += own[c][n] * own[c][n];
            e_filt_error += (x - own[c][n]) * (x - own[c][n]);
            e_interf += (all[c][n] - own[c][n]) * (all[c][n] - own[c][n]);
            e_all += all[c][n] * all[c][n];
            e_artif += (x - all[c][n]) * (x - all[c][n]);
        }
    }
    if (mode == Criteria::kSources) {
        return {safe_db(e_own, e_filt_error), std::numeric_limits<double>::quiet_NaN(),
                safe_db(e_own, e_interf), safe_db(e_all, e_artif)};
    }
    return {safe_db(e_true, e_error), safe_db(e_true, e_spat), safe_db(e_own, e_interf),
            safe_db(e_all, e_artif)};
}

std::vector<std::vector<double>> channels_of(const Audio& a, size_t begin, size_t end) {
    std::vector<std::vector<double>> out(a.channels, std::vector<double>(end - begin));
    for (size_t n = begin; n < end; ++n) {
        for (size_t c = 0; c < a.channels; ++c) out[c][n - begin] = a.at(n, c);
    }
    return out;
}

BssScores bss_eval(Criteria mode, const std::vector<Audio>& references,
                   const std::vector<Audio>& estimates, bool compute_permutation, size_t taps) {
    check_inputs(references, estimates);
    const size_t nsrc = references.size();
    const size_t frames = references[0].frames();
    std::vector<std::vector<std::vector<double>>> ref_ch(nsrc), est_ch(nsrc);
    std::vector<std::vector<double>> all_channels;
    for (size_t j = 0; j < nsrc; ++j) {
        ref_ch[j] = channels_of(references[j], 0, frames);
        est_ch[j] = channels_of(estimates[j], 0, frames);
        for (const auto& c : ref_ch[j]) all_channels.push_back(c);
    }
    const DelayedSpanProjector all(all_channels, taps);
    std::vector<std::unique_ptr<DelayedSpanProjector>> own(nsrc);
    for (size_t j = 0; j < nsrc; ++j)
        own[j] = std::make_unique<DelayedSpanProjector>(ref_ch[j], taps);

    // pairs[jest][jtrue]; only the diagonal without permutation search.
    std::vector<std::vector<PairScores>> pairs(nsrc, std::vector<PairScores>(nsrc));
    for (size_t jest = 0; jest < nsrc; ++jest) {
        std::vector<std::vector<double>> est_pad, proj_all;
        for (const auto& c : est_ch[jest]) {
            est_pad.push_back(padded(c, taps));
            proj_all.push_back(all.project(c));
        }
        for (size_t jtrue = 0; jtrue < nsrc; ++jtrue) {
            if (!compute_permutation && jtrue != jest) continue;
            std::vector<std::vector<double>> truth, proj_own;
            for (const auto& c : ref_ch[jtrue]) truth.push_back(padded(c, taps));
            for (const auto& c : est_ch[jest]) proj_own.push_back(own[jtrue]->project(c));
            pairs[jest][jtrue] = criteria(mode, truth, est_pad, proj_own, proj_all);
        }
    }
    std::vector<size_t> perm(nsrc);
    std::iota(perm.begin(), perm.end(), size_t{0});
    if (compute_permutation) {
        // mir_eval: first permutation (lexicographic order) with the highest mean SIR.
        std::vector<size_t> candidate = perm;
        double best = -std::numeric_limits<double>::infinity();
        do {
            double sum = 0.0;
            for (size_t j = 0; j < nsrc; ++j) sum += pairs[candidate[j]][j].sir;
            const double mean = sum / static_cast<double>(nsrc);
            if (mean > best) {
                best = mean;
                perm = candidate;
            }
        } while (std::next_permutation(candidate.begin(), candidate.end()));
    }
    BssScores scores;
    scores.permutation = perm;
    for (size_t j = 0; j < nsrc; ++j) {
        const PairScores& p = pairs[perm[j]][j];
        scores.sdr.push_back(p.sdr);
        if (mode == Criteria::kImages) scores.isr.push_back(p.isr);
        scores.sir.push_back(p.sir);
        scores.sar.push_back(p.sar);
    }
    return scores;
}

FramewiseBssScores empty_framewise(Criteria mode, size_t nsrc, size_t count) {
    const std::vector<std::vector<double>> nan_rows(
        nsrc, std::vector<double>(count, std::numeric_limits<double>::quiet_NaN()));
    FramewiseBssScores out{
        nan_rows, mode == Criteria::kImages ? nan_rows : std::vector<std::vector<double>>{},
        nan_rows, nan_rows};
    return out;
}

std::vector<const Audio*> pointers(const std::vector<Audio>& v) {
    std::vector<const Audio*> p;
    for (const Audio& a : v) p.push_back(&a);
    return p;
}

Audio slice(const Audio& a, size_t begin, size_t end) {
    Audio out;
    out.sample_rate = a.sample_rate;
    out.channels = a.channels;
    out.samples.assign(a.samples.begin() + static_cast<std::ptrdiff_t>(begin * a.channels),
                       a.samples.begin() + static_cast<std::ptrdiff_t>(end * a.channels));
    return out;
}

FramewiseBssScores framewise(Criteria mode, const std::vector<Audio>& references,
                             const std::vector<Audio>& estimates, size_t window, size_t hop,
                             size_t taps) {
    check_inputs(references, estimates);
    const size_t nsrc = references.size();
    const size_t frames = references[0].frames();
    if (frames < window + hop) {
        const BssScores whole = bss_eval(mode, references, estimates, false, taps);
        FramewiseBssScores out = empty_framewise(mode, nsrc, 1);
        for (size_t j = 0; j < nsrc; ++j) {
            out.sdr[j][0] = whole.sdr[j];
            if (mode == Criteria::kImages) out.isr[j][0] = whole.isr[j];
            out.sir[j][0] = whole.sir[j];
            out.sar[j][0] = whole.sar[j];
        }
        return out;
    }
    const FrameGrid grid = frame_grid(frames, window, hop);
    FramewiseBssScores out = empty_framewise(mode, nsrc, grid.count);
    const auto refs = pointers(references);
    const auto ests = pointers(estimates);
    for (size_t t = 0; t < grid.count; ++t) {
        const size_t begin = grid.begin(t);
        const size_t end = std::min(begin + grid.window, frames);
        if (any_signal_silent(refs, begin, end) || any_signal_silent(ests, begin, end)) continue;
        std::vector<Audio> ref_slices, est_slices;
        for (size_t j = 0; j < nsrc; ++j) {
            ref_slices.push_back(slice(references[j], begin, end));
            est_slices.push_back(slice(estimates[j], begin, end));
        }
        const BssScores s = bss_eval(mode, ref_slices, est_slices, false, taps);
        for (size_t j = 0; j < nsrc; ++j) {
            out.sdr[j][t] = s.sdr[j];
            if (mode == Criteria::kImages) out.isr[j][t] = s.isr[j];
            out.sir[j][t] = s.sir[j];
            out.sar[j][t] = s.sar[j];
        }
    }
    return out;
}

void require_mono(const std::vector<Audio>& signals) {
    for (const Audio& a : signals) {
        if (a.channels != 1) throw std::invalid_argument("bss_eval_sources: signals must be mono");
    }
}

}  // namespace

BssScores bss_eval_images(const std::vector<Audio>& references, const std::vector<Audio>& estimates,
                          bool compute_permutation, size_t taps) {
    return bss_eval(Criteria::kImages, references, estimates, compute_permutation, taps);
}

BssScores bss_eval_sources(const std::vector<Audio>& references,
                           const std::vector<Audio>& estimates, bool compute_permutation,
                           size_t taps) {
    require_mono(references);
    require_mono(estimates);
    return bss_eval(Criteria::kSources, references, estimates, compute_permutation, taps);
}

FramewiseBssScores bss_eval_images_framewise(const std::vector<Audio>& references,
                                             const std::vector<Audio>& estimates, size_t window,
                                             size_t hop, size_t taps) {
    return framewise(Criteria::kImages, references, estimates, window, hop, taps);
}

FramewiseBssScores bss_eval_sources_framewise(const std::vector<Audio>& references,
                                              const std::vector<Audio>& estimates, size_t window,
                                              size_t hop, size_t taps) {
    require_mono(references);
    require_mono(estimates);
    return framewise(Criteria::kSources, references, estimates, window, hop, taps);
}

}  // namespace stemsphere::eval
