#pragma once
// Four floats in one SSE/NEON register (GCC/Clang vector extension). GCC's -O2 cost model leaves
// the spectral loops of the renderer scalar, and -march flags are not an option for a shipped
// binary; these helpers make the 4-wide arithmetic explicit. Loads and stores are unaligned.
#include <cstring>

namespace stemsphere {

typedef float Float4 __attribute__((vector_size(16)));

inline Float4 load4(const float* p) {
    Float4 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline void store4(float* p, Float4 v) {
    std::memcpy(p, &v, sizeof v);
}

}  // namespace stemsphere
