#pragma once
// A trained band-split mask network read from a Stemsphere model file (format version 2, or the
// older 1, docs/models.md; written by models/export.py). Parsing validates everything — magic,
// version, checksum, hyper-parameter limits, tensor names and sizes — so a corrupt or mismatched
// file yields a clear message and no model; the caller then keeps the DSP back end.
//
// Loading allocates and reads a file: call it off the audio thread (LV2 worker / instantiate).
// A loaded model is immutable and can be shared by several estimators (one per channel pair).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/quality_modes.h"  // NeuralVariant

namespace stemsphere {

struct NeuralModel {
    static constexpr uint32_t kFormatVersion = 2;     // written by models/export.py
    static constexpr uint32_t kOldestVersion = 1;     // still read (no flags field)
    static constexpr uint32_t kFlagGuided = 1u << 0;  // inputs and outputs refer to DSP masks

    NeuralVariant variant = NeuralVariant::kLive;
    size_t bands = 0;      // B: mel-spaced triangular bands, 0 .. fmax_hz
    size_t channels = 0;   // C: width of the residual stack
    size_t kernel = 0;     // K: taps of each dilated causal convolution
    size_t lookahead = 0;  // frames of look-ahead (0 for Live)
    // Guided network: also sees the DSP back end's band-mean masks (4B more inputs) and outputs
    // logit corrections to the DSP bin masks instead of band masks (docs/models.md §2).
    bool guided = false;
    // Guided only: corrections pass through bound · tanh(raw / bound) when > 0.
    float correction_bound = 0.0f;
    float fmax_hz = 0.0f;
    float power_floor = 0.0f;
    std::vector<size_t> dilations;

    // Tensors, PyTorch layout (row-major, out × in [× kernel]).
    std::vector<float> feat_mean, feat_std;                  // I = 2B, or 6B if guided
    std::vector<float> in_weight, in_bias;                   // C × I, C
    std::vector<std::vector<float>> conv_weight, conv_bias;  // per layer C × C × K, C
    std::vector<std::vector<float>> mix_weight, mix_bias;    // per layer C × C, C
    std::vector<float> out_weight, out_bias;                 // 4B × C, 4B

    size_t layers() const { return dilations.size(); }
    size_t input_features() const { return (guided ? 6 : 2) * bands; }
    // Frames of input one output depends on: the newest `lookahead` of them lie ahead of it.
    size_t receptive_field() const;
    size_t parameter_count() const;

    // Parses a whole file image. Returns nullptr and sets *error on any problem.
    static std::shared_ptr<const NeuralModel> parse(const uint8_t* data, size_t size,
                                                    std::string* error);
    static std::shared_ptr<const NeuralModel> load(const std::string& path, std::string* error);
};

// IEEE CRC-32 (zlib's crc32), the file checksum.
uint32_t crc32(const uint8_t* data, size_t size);

}  // namespace stemsphere
