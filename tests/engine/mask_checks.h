#pragma once
// The MaskEstimator contract, checked the same way for every back end: each mask lies in [0, 1]
// and the four masks of every bin sum to 1 (within `tolerance`), so the stems sum to the input.
#include <gtest/gtest.h>

#include <cstddef>

#include "engine/mask_estimator.h"

namespace stemsphere {

inline ::testing::AssertionResult masks_partition_unity(const float* masks, size_t bins,
                                                        float tolerance) {
    for (size_t k = 0; k < bins; ++k) {
        float sum = 0.0f;
        for (size_t s = 0; s < kStemCount; ++s) {
            const float m = masks[s * bins + k];
            if (!(m >= 0.0f && m <= 1.0f)) {
                return ::testing::AssertionFailure()
                       << kStemNames[s] << " mask " << m << " outside [0, 1] at bin " << k;
            }
            sum += m;
        }
        if (!(sum >= 1.0f - tolerance && sum <= 1.0f + tolerance)) {
            return ::testing::AssertionFailure() << "masks sum to " << sum << " at bin " << k;
        }
    }
    return ::testing::AssertionSuccess();
}

}  // namespace stemsphere
