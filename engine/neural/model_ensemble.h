#pragma once
// One mask estimator for one or more trained networks: their masks averaged with equal weights.
// Separately trained networks err differently, so their average scores above each of them
// (docs/models.md §6); the quality modes run such ensembles (Processor::create).
//
// Builds allocate: call off the audio thread.
#include <memory>
#include <vector>

#include "engine/mask_estimator.h"
#include "engine/neural/neural_model.h"

namespace stemsphere {

// The ensemble looks as far ahead as its furthest-looking model; the others' masks are delayed
// to the same frame. An unguided (format 1) model is tempered with 30 % of the DSP back end's
// masks first. The masks still sum to 1 per bin. models must not be empty.
std::unique_ptr<MaskEstimator> make_ensemble_estimator(
    std::vector<std::shared_ptr<const NeuralModel>> models, const StftFormat& format);

}  // namespace stemsphere
