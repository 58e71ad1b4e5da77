// Vector math for the CPU kernels: eight float lanes as a GCC/Clang vector extension (one AVX2 register;
// no intrinsics, so it compiles for any target and -march), and the transcendental functions the kernels
// need in a vectorised form that LibTorch does not export to us (ATen's Vectorized<float> is AVX2 only in
// the translation units ATen compiles per CPU capability; in ours it is its scalar fallback).
#pragma once

#include <cstdint>
#include <cstring>

namespace rg::kernels {

using f32x8 = float __attribute__((vector_size(32)));
using i32x8 = int32_t __attribute__((vector_size(32)));

// exp(x) for x <= 0 (softmax arguments after subtracting the maximum), eight lanes: x = n ln2 + r with
// |r| <= ln2/2 (Cody-Waite: ln2 split in two parts so that n ln2 is exact in float32), e^r by its Taylor
// series to r^7 (truncation r^8/8! <= 5e-9 relative, below float32's 6e-8), times 2^n built in the exponent
// bits. Within 3 ulp of exp (DecodeAttention.ExpMatchesStdExp); arguments below -87 (e^-87 ~ 1.6e-38, near
// the smallest normal float) and -inf give 0. Arguments above 0 are outside its contract.
inline f32x8 exp_nonpositive(f32x8 x) {
  const f32x8 magic = f32x8{} + 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const auto low = x < -87.0f;  // lanes of all ones where true
  x = low ? f32x8{} : x;  // keeps -inf and NaN-free lanes out of the integer conversion
  const f32x8 n = (x * 1.44269504f + magic) - magic;
  const f32x8 r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  f32x8 p = f32x8{} + (1.0f / 5040.0f);
  p = p * r + (1.0f / 720.0f);
  p = p * r + (1.0f / 120.0f);
  p = p * r + (1.0f / 24.0f);
  p = p * r + (1.0f / 6.0f);
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const i32x8 bits = (__builtin_convertvector(n, i32x8) + 127) << 23;
  f32x8 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return low ? f32x8{} : p * scale;
}

}  // namespace rg::kernels
