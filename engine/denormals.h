#pragma once
// Flush-to-zero / denormals-are-zero for the scope of one audio callback, restoring the host's
// floating-point mode afterwards (hosts and other plugins may rely on it).
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace stemsphere {

class ScopedFlushDenormals {
  public:
#if defined(__SSE__) || defined(__x86_64__)
    ScopedFlushDenormals() : saved_(_mm_getcsr()) {
        _mm_setcsr(saved_ | 0x8040u);
    }  // FTZ | DAZ
    ~ScopedFlushDenormals() {
        _mm_setcsr(saved_);
    }

  private:
    unsigned int saved_;
#else
    ScopedFlushDenormals() = default;
#endif
    ScopedFlushDenormals(const ScopedFlushDenormals&) = delete;
    ScopedFlushDenormals& operator=(const ScopedFlushDenormals&) = delete;
};

}  // namespace stemsphere
