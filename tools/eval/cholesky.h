#pragma once
// Cholesky factorisation of a symmetric positive SEMI-definite matrix that drops dependent
// columns instead of failing. BSS Eval's Gram matrices of delayed reference channels are singular
// whenever a channel is silent or a scaled copy of another (mono material in stereo files); a
// column whose pivot falls below tolerance lies in the span of the earlier ones, so fixing its
// coefficient at 0 still yields an exact least-squares solution and the same projection.
#include <cstddef>
#include <functional>
#include <vector>

namespace stemsphere::eval {

class SemidefiniteCholesky {
  public:
    // entry(i, j) returns A[i][j] for j <= i < n. Pivots at or below
    // relative_tolerance · max_i A[i][i] mark column i as dependent.
    SemidefiniteCholesky(size_t n, const std::function<double(size_t, size_t)>& entry,
                         double relative_tolerance = 1e-11);

    size_t size() const { return n_; }
    size_t rank() const { return active_.size(); }

    // Solves A x = b (least squares over the kept columns); dependent unknowns are 0.
    std::vector<double> solve(const std::vector<double>& b) const;

  private:
    const double* row(size_t p) const { return packed_.data() + p * (p + 1) / 2; }

    size_t n_;
    std::vector<size_t> active_;  // original index of each kept (compact) column
    std::vector<double> packed_;  // compact lower triangle, row p holds p + 1 values
};

}  // namespace stemsphere::eval
