#pragma once
// The neural separation back end: runs a NeuralModel (models/stemsphere_model.py) one STFT frame
// at a time. Features and masks are defined on bands in Hz, so one model serves every STFT size.
//
// Per frame: mid/side band powers -> log -> normalise -> 1x1 layer -> residual stack of causal
// dilated convolutions (each layer keeps a ring of its own past inputs) -> 4 x B logits ->
// softmax over stems per band -> bin masks by triangular interpolation. Softmax weights
// interpolated with non-negative weights summing to 1 keep Σ_stems mask == 1 in every bin.
//
// A guided model (NeuralModel::guided) runs the DSP back end alongside: its band-mean masks are
// 4B more inputs, the 4 x B outputs are logit corrections, and the bin masks are
// softmax_s(log(dsp_s(k) + kGuideFloor) + interpolated correction_s(k)) with the DSP masks of the
// frame the output belongs to (kept in a ring for the look-ahead). The sum over stems stays 1.
//
// Everything is allocated in the constructor; estimate() only does arithmetic (loops written as
// axpy over contiguous output rows so the compiler vectorises them without fast-math).
#include <complex>
#include <memory>
#include <string>
#include <vector>

#include "engine/dsp_mask_estimator.h"
#include "engine/mask_estimator.h"
#include "engine/neural/neural_model.h"

namespace stemsphere {

class NeuralMaskEstimator final : public MaskEstimator {
  public:
    NeuralMaskEstimator(std::shared_ptr<const NeuralModel> model, const StftFormat& format);

    size_t lookahead_frames() const override { return model_->lookahead; }
    void estimate(const std::complex<float>* left, const std::complex<float>* right,
                  float* masks) override;
    void reset() override;

    const NeuralModel& model() const { return *model_; }

    // models/stemsphere_model.py GUIDE_FLOOR: lets a correction restore a stem the DSP masks set
    // to 0.
    static constexpr float kGuideFloor = 0.02f;

  private:
    void guided_inputs(const std::complex<float>* left, const std::complex<float>* right);
    void guided_masks(float* masks);

    // y[0..out) += Wᵀ x for in-major weights w_t (in × out).
    static void matvec_add(const float* w_t, size_t in, size_t out, const float* x, float* y);

    std::shared_ptr<const NeuralModel> model_;
    StftFormat format_;
    size_t bins_;
    size_t bands_;
    size_t channels_;
    // Per bin: lower band index and the upper band's share (partition of unity).
    std::vector<size_t> bin_band_;
    std::vector<float> bin_frac_;
    std::vector<float> band_norm_;    // Σ_k weight(k, b) · window energy
    std::vector<float> band_weight_;  // Σ_k weight(k, b)
    // Weights transposed to in-major (in × out) so y += W x runs as axpy over contiguous rows.
    std::vector<float> in_w_t_;
    std::vector<std::vector<float>> conv_w_t_;  // per layer: (K · C) × C, tap-major
    std::vector<std::vector<float>> mix_w_t_;
    std::vector<float> out_w_t_;
    // Per layer ring of past layer inputs: ((K−1)·d + 1) × C.
    std::vector<std::vector<float>> history_;
    std::vector<size_t> history_pos_;
    // Guided models only: the DSP back end and its last lookahead + 1 frames of masks.
    std::unique_ptr<DspMaskEstimator> dsp_;
    std::vector<float> dsp_ring_;
    size_t dsp_pos_ = 0;
    // The frame with non-finite values zeroed: the DSP medians must never see NaN.
    std::vector<std::complex<float>> finite_left_, finite_right_;
    // Scratch, sized once.
    std::vector<float> band_mid_, band_side_, features_, hidden_, conv_out_, mix_out_, logits_;
};

// Loads `path` and builds an estimator for `format`, or returns nullptr with *error set (the
// caller then keeps the DSP back end). Off the audio thread only.
std::unique_ptr<MaskEstimator> make_neural_estimator(const std::string& path,
                                                     const StftFormat& format, std::string* error);

}  // namespace stemsphere
