#pragma once
// BSS Eval projections (Vincent et al.; mir_eval's bss_eval_sources / bss_eval_images): the
// estimate is projected by least squares onto the span of `taps` delayed copies of the reference
// channels, which splits its error into spatial (filtering) distortion, interference and artefacts.
// Gram matrices come from FFT correlations, the systems from a semidefinite Cholesky (cholesky.h),
// the projections from FFT convolution, all in double precision.
#include <cstddef>
#include <memory>
#include <vector>

#include "tools/eval/audio_file.h"

namespace stemsphere::eval {

constexpr size_t kBssFilterTaps = 512;

// Least-squares projection onto span{ channel_k delayed by 0..taps-1 : k }.
class DelayedSpanProjector {
  public:
    DelayedSpanProjector(std::vector<std::vector<double>> channels, size_t taps);

    size_t channel_count() const { return channels_.size(); }
    size_t taps() const { return taps_; }
    // Rank of the Gram matrix actually used (lower than channels × taps for dependent channels).
    size_t rank() const;

    // Filters f[k][a] minimising ‖target − Σ_k f_k ∗ channel_k‖ (target zero-padded by taps − 1).
    std::vector<std::vector<double>> filters(const std::vector<double>& target) const;
    // Σ_k f_k ∗ channel_k for the filters of `target`: length frames + taps − 1.
    std::vector<double> project(const std::vector<double>& target) const;

    ~DelayedSpanProjector();
    DelayedSpanProjector(const DelayedSpanProjector&) = delete;
    DelayedSpanProjector& operator=(const DelayedSpanProjector&) = delete;

  private:
    struct Impl;
    std::vector<std::vector<double>> channels_;
    size_t taps_;
    std::unique_ptr<Impl> impl_;
};

// Per-source scores; permutation[j] = index of the estimate matched with reference j. For
// sources mode the ISR vector is empty.
struct BssScores {
    std::vector<double> sdr, isr, sir, sar;
    std::vector<size_t> permutation;
};
// Per-frame scores, [source][frame]; NaN in frames where any reference or estimate is silent.
struct FramewiseBssScores {
    std::vector<std::vector<double>> sdr, isr, sir, sar;
};

// mir_eval bss_eval_images (BSS Eval v3 image criteria). All signals: same channels and length.
// With compute_permutation the estimate order maximising mean SIR is chosen (as mir_eval does).
BssScores bss_eval_images(const std::vector<Audio>& references, const std::vector<Audio>& estimates,
                          bool compute_permutation, size_t taps = kBssFilterTaps);
// mir_eval bss_eval_sources (BSS Eval v3 source criteria; filtering distortion allowed).
// Signals must be mono.
BssScores bss_eval_sources(const std::vector<Audio>& references,
                           const std::vector<Audio>& estimates, bool compute_permutation,
                           size_t taps = kBssFilterTaps);

// mir_eval *_framewise: filters recomputed on each window, no permutation; when fewer than two
// windows fit (frames < window + hop) the whole-signal scores are returned as a single frame.
FramewiseBssScores bss_eval_images_framewise(const std::vector<Audio>& references,
                                             const std::vector<Audio>& estimates, size_t window,
                                             size_t hop, size_t taps = kBssFilterTaps);
FramewiseBssScores bss_eval_sources_framewise(const std::vector<Audio>& references,
                                              const std::vector<Audio>& estimates, size_t window,
                                              size_t hop, size_t taps = kBssFilterTaps);

}  // namespace stemsphere::eval
