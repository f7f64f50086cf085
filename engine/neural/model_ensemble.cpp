#include "engine/neural/model_ensemble.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "engine/dsp_mask_estimator.h"
#include "engine/neural/blended_mask_estimator.h"
#include "engine/neural/neural_mask_estimator.h"

namespace stemsphere {

namespace {
std::unique_ptr<MaskEstimator> model_estimator(std::shared_ptr<const NeuralModel> model,
                                               const StftFormat& format) {
    // A guided model already refines the DSP back end's masks (it runs one inside).
    if (model->guided) return std::make_unique<NeuralMaskEstimator>(std::move(model), format);
    // 30 % of the DSP back end's masks temper an unguided network where it is unsure: +0.2 dB
    // on the held-out synthetic songs (where the weight was chosen) and +0.9 dB on real music
    // (docs/models.md §6.2). Both sum to 1 per bin, so the blend does too.
    constexpr float kDspShare = 0.3f;
    return std::make_unique<BlendedMaskEstimator>(
        std::make_unique<NeuralMaskEstimator>(std::move(model), format),
        std::make_unique<DspMaskEstimator>(format), format.bins(), kDspShare);
}
}  // namespace

std::unique_ptr<MaskEstimator> make_ensemble_estimator(
    std::vector<std::shared_ptr<const NeuralModel>> models, const StftFormat& format) {
    assert(!models.empty());
    // The blend's primary must look furthest ahead: BlendedMaskEstimator delays the others'
    // masks to the same frame.
    std::stable_sort(models.begin(), models.end(),
                     [](const auto& a, const auto& b) { return a->lookahead > b->lookahead; });
    // Equal weights: the k-th model joins the blend of the k before it with weight 1/(k+1).
    std::unique_ptr<MaskEstimator> estimator = model_estimator(models[0], format);
    for (size_t k = 1; k < models.size(); ++k) {
        estimator = std::make_unique<BlendedMaskEstimator>(
            std::move(estimator), model_estimator(models[k], format), format.bins(),
            1.0f / static_cast<float>(k + 1));
    }
    return estimator;
}

std::unique_ptr<MaskEstimator> make_mode_estimator(
    std::vector<std::shared_ptr<const NeuralModel>> models, const StftFormat& format,
    const StemChoice& choice, const DspTuning& dsp_tuning) {
    auto ensemble = make_ensemble_estimator(std::move(models), format);
    if (choice.is_network_only()) return ensemble;
    return std::make_unique<StemChoiceEstimator>(
        std::move(ensemble), std::make_unique<DspMaskEstimator>(format, dsp_tuning), format.bins(),
        choice);
}

}  // namespace stemsphere
