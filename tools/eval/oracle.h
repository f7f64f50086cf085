#pragma once
// Reference estimators that bracket any real separator on a clip: the oracle ideal ratio mask
// (the ceiling of STFT masking at a given resolution; computed with the ENGINE's Stft so it
// measures exactly the transform the plugin masks in) and the trivial floor mixture / K.
#include <cstddef>
#include <string>
#include <vector>

#include "tools/eval/scoring.h"

namespace stemsphere::eval {

enum class OracleMask {
    kPower,      // |S_j|² / Σ_k |S_k|²  (museval/SiSEC "IRM2")
    kMagnitude,  // |S_j| / Σ_k |S_k|    ("IRM1")
};

// Estimates of `names` from mixture := Σ refs[names], masking each channel's STFT
// (engine Stft, fft_size / hop) with the oracle ratio of the references' spectra. Masks sum to 1
// in every bin, so the estimates sum to the mixture (up to float rounding).
StemSet oracle_ratio_mask(const StemSet& refs, const std::vector<std::string>& names,
                          size_t fft_size, size_t hop, OracleMask mask = OracleMask::kPower);

// mixture / K for each of the K names.
StemSet mixture_share(const StemSet& refs, const std::vector<std::string>& names);

// Writes <dir>/<name>.wav for every stem (creating dir).
void write_stems(const std::string& dir, const StemSet& stems);

}  // namespace stemsphere::eval
