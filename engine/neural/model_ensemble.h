#pragma once
// One mask estimator for one or more trained networks: their masks averaged with equal weights.
// Separately trained networks err differently, so their average scores above each of them
// (docs/models.md §6); the quality modes run such ensembles (Processor::create).
//
// Builds allocate: call off the audio thread.
#include <memory>
#include <vector>

#include "engine/dsp_mask_estimator.h"
#include "engine/mask_estimator.h"
#include "engine/neural/neural_model.h"
#include "engine/neural/stem_choice_estimator.h"

namespace stemsphere {

// The ensemble looks as far ahead as its furthest-looking model; the others' masks are delayed
// to the same frame. An unguided (format 1) model is tempered with 30 % of the DSP back end's
// masks first. The masks still sum to 1 per bin. models must not be empty.
std::unique_ptr<MaskEstimator> make_ensemble_estimator(
    std::vector<std::shared_ptr<const NeuralModel>> models, const StftFormat& format);

// What a neural quality mode runs: the ensemble, then its per-stem choice against the DSP back
// end with `dsp_tuning` (the free Live mode's masks; StemChoiceEstimator). An all-network choice
// without vocal agreement is the bare ensemble.
std::unique_ptr<MaskEstimator> make_mode_estimator(
    std::vector<std::shared_ptr<const NeuralModel>> models, const StftFormat& format,
    const StemChoice& choice, const DspTuning& dsp_tuning = {});

}  // namespace stemsphere
