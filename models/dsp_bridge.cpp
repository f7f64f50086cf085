// C entry point for the trainer (models/train.py, through ctypes): runs the engine's own DSP back
// end over a sequence of STFT frames. The guided network is trained on exactly the DSP masks the
// plugin computes at run time, so the trainer calls this C++ rather than a Python copy of it.
#include <complex>
#include <cstdint>
#include <exception>

#include "engine/dsp_mask_estimator.h"

extern "C" {

// left/right: frames × (fft_size/2 + 1) complex spectra (interleaved re, im; unnormalised r2c of
// sqrt-Hann frames, as torch.stft and the engine's Stft produce). masks: frames × 4 × bins,
// stem-major per frame. A fresh estimator (reset history) per call. Returns 0, or −1 on bad
// arguments.
__attribute__((visibility("default"))) int stemsphere_dsp_masks(double sample_rate,
                                                                uint32_t fft_size, uint32_t hop,
                                                                uint32_t frames, const float* left,
                                                                const float* right, float* masks) {
    if (fft_size < 16 || (fft_size & (fft_size - 1)) != 0 || hop == 0 || hop > fft_size ||
        !(sample_rate > 0.0) || left == nullptr || right == nullptr || masks == nullptr) {
        return -1;
    }
    try {
        stemsphere::StftFormat format;
        format.sample_rate = sample_rate;
        format.fft_size = fft_size;
        format.hop = hop;
        stemsphere::DspMaskEstimator dsp(format, stemsphere::DspTuning::network_guide());
        const size_t bins = format.bins();
        const auto* l = reinterpret_cast<const std::complex<float>*>(left);
        const auto* r = reinterpret_cast<const std::complex<float>*>(right);
        for (size_t t = 0; t < frames; ++t) {
            dsp.estimate(l + t * bins, r + t * bins, masks + t * stemsphere::kStemCount * bins);
        }
    } catch (const std::exception&) {
        return -1;
    }
    return 0;
}
}
