#include "tools/eval/cholesky.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>

namespace stemsphere::eval {

namespace {
// Rows factorised together: each row of L is streamed from memory once per block instead of once
// per row, which is what bounds the speed for the 2048..6144-wide BSS Eval systems.
constexpr size_t kBlock = 16;

// The hot loop gets an AVX2 clone chosen at run time (the build stays portable to any x86-64).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define STEMSPHERE_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define STEMSPHERE_SIMD_CLONES
#endif

// acc[b] -= Σ_{q < count} w[q·kBlock + b] · l[q] for every lane b of the block. The 16 lanes are
// held in four 4-double vectors (GCC vector extension: AVX registers in the AVX2 clone, pairs of
// SSE2 registers otherwise); each q adds one product per lane, in the order of the scalar loop.
using Lanes4 = double __attribute__((vector_size(32)));
// Unaligned, aliasing view of 4 doubles in a double array.
using Lanes4View = double __attribute__((vector_size(32), aligned(8), may_alias));
static_assert(kBlock == 16, "subtract_block_dots holds the block in four Lanes4");

STEMSPHERE_SIMD_CLONES void subtract_block_dots(const double* w, const double* l, size_t count,
                                                double* acc) {
    auto* out = reinterpret_cast<Lanes4View*>(acc);
    Lanes4 a0 = out[0], a1 = out[1], a2 = out[2], a3 = out[3];
    for (size_t q = 0; q < count; ++q) {
        const Lanes4 lq = Lanes4{} + l[q];
        const auto* x = reinterpret_cast<const Lanes4View*>(w + q * kBlock);
        a0 -= x[0] * lq;
        a1 -= x[1] * lq;
        a2 -= x[2] * lq;
        a3 -= x[3] * lq;
    }
    out[0] = a0;
    out[1] = a1;
    out[2] = a2;
    out[3] = a3;
}

}  // namespace

SemidefiniteCholesky::SemidefiniteCholesky(size_t n,
                                           const std::function<double(size_t, size_t)>& entry,
                                           double relative_tolerance)
    : n_(n) {
    double max_diag = 0.0;
    for (size_t i = 0; i < n; ++i) max_diag = std::max(max_diag, entry(i, i));
    const double tolerance = relative_tolerance * max_diag;
    packed_.reserve(n * (n + 1) / 2);
    active_.reserve(n);

    // w[p * kBlock + b]: entry of block row b in compact column p (interleaved so the inner loop
    // runs over the block with unit stride and vectorises without reassociating sums).
    std::vector<double> w(n * kBlock, 0.0);
    for (size_t i0 = 0; i0 < n; i0 += kBlock) {
        const size_t rows = std::min(kBlock, n - i0);
        const size_t r0 = active_.size();
        // Phase 1: against the columns kept before this block, all block rows at once.
        for (size_t p = 0; p < r0; ++p) {
            const double* lp = row(p);
            std::array<double, kBlock> acc{};  // lanes past `rows` stay 0 (last block)
            for (size_t b = 0; b < rows; ++b) acc[b] = entry(i0 + b, active_[p]);
            subtract_block_dots(w.data(), lp, p, acc.data());
            const double inv = 1.0 / lp[p];
            for (size_t b = 0; b < kBlock; ++b) w[p * kBlock + b] = acc[b] * inv;
        }
        // Phase 2: one row at a time, against columns kept inside this block, then the pivot.
        for (size_t b = 0; b < rows; ++b) {
            const size_t i = i0 + b;
            for (size_t p = r0; p < active_.size(); ++p) {
                const double* lp = row(p);
                double acc = entry(i, active_[p]);
                for (size_t q = 0; q < p; ++q) acc -= w[q * kBlock + b] * lp[q];
                w[p * kBlock + b] = acc / lp[p];
            }
            double pivot = entry(i, i);
            for (size_t p = 0; p < active_.size(); ++p)
                pivot -= w[p * kBlock + b] * w[p * kBlock + b];
            if (pivot > tolerance) {
                for (size_t p = 0; p < active_.size(); ++p) packed_.push_back(w[p * kBlock + b]);
                packed_.push_back(std::sqrt(pivot));
                active_.push_back(i);
            }
        }
    }
}

std::vector<double> SemidefiniteCholesky::solve(const std::vector<double>& b) const {
    assert(b.size() == n_);
    const size_t r = active_.size();
    std::vector<double> y(r);
    for (size_t p = 0; p < r; ++p) {  // L y = b (kept rows)
        const double* lp = row(p);
        double acc = b[active_[p]];
        for (size_t q = 0; q < p; ++q) acc -= lp[q] * y[q];
        y[p] = acc / lp[p];
    }
    for (size_t p = r; p-- > 0;) {  // Lᵀ x = y, column-oriented on the row-packed factor
        const double* lp = row(p);
        y[p] /= lp[p];
        for (size_t q = 0; q < p; ++q) y[q] -= lp[q] * y[p];
    }
    std::vector<double> x(n_, 0.0);
    for (size_t p = 0; p < r; ++p) x[active_[p]] = y[p];
    return x;
}

}  // namespace stemsphere::eval
