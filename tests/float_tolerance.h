// Test bounds derived from float32 rounding, so that they hold on any x86-64 CPU (AVX2 or AVX-512, Intel or
// AMD, OpenBLAS with any core type): those change the summation order of every dot product and reduction,
// never the arithmetic. Each bound says which sums it covers; a real bug (a wrong mask, state or weight)
// moves results by O(1) relative, orders of magnitude above these bounds.
#pragma once

#include <cstdint>

namespace rg::test {

// Unit roundoff of float32 (half an ulp at 1): 2^-24.
constexpr double kFloat32Roundoff = 5.9604644775390625e-8;

// A float32 sum of n terms is within gamma_n * sum|terms| of the exact sum, gamma_n = n u / (1 - n u) ~ n u
// (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., section 3.1). Through `depth` chained
// sums, first-order errors add. `magnitude` bounds sum|terms| of each sum (take the largest |value| the
// computation reaches, times an allowance for cancellation the caller states).
//   float32 vs an exact (float64) reference: one rounding per sum  -> float32_vs_exact
//   two float32 evaluations in different orders: each one's error  -> float32_vs_float32 (twice as large)
constexpr double float32_vs_exact(double magnitude, int64_t n, int64_t depth = 1) {
  return static_cast<double>(depth) * static_cast<double>(n) * kFloat32Roundoff * magnitude;
}
constexpr double float32_vs_float32(double magnitude, int64_t n, int64_t depth = 1) {
  return 2.0 * float32_vs_exact(magnitude, n, depth);
}

}  // namespace rg::test
