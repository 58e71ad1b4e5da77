// Vectorised float32 exp and tanh (eight or sixteen lanes) for the one-token decode kernels (the head's soft
// cap) and the CPU sampler (softmax over a 256k vocabulary), written with GCC/Clang vector extensions: no
// intrinsics, any x86-64 target (-march=native picks AVX2 or AVX-512 encodings; sixteen lanes are one AVX-512
// register, or two AVX2 ones). ATen's at::vec::Vectorized<float> is not used: outside ATen's own
// per-capability objects CPU_CAPABILITY_AVX2/AVX512 are undefined, so a program including <ATen/cpu/vec/vec.h>
// gets the generic class, whose exp / expm1 / tanh call std:: once per lane (LibTorch 1.13's vec_base.h:
// `map(std::expm1)`).
//
// Both reduce x = n ln2 + r with n = round(x / ln2), |r| <= ln2/2, and evaluate expm1(r) by its Taylor series
// to r^7: the truncation error is below |r|^8/8! <= 0.347^8/40320 < 6e-9 |r|, a tenth of float32's unit
// roundoff u = 2^-24 relative to expm1(r) ~ r. Horner's rounding adds under 2u, so expm1_reduced's error is
// <= 2u relative. ln2 is split Cody-Waite style (hi has 9 significant bits, |n| at most 8 bits): n*ln2_hi
// and x - n*ln2_hi are exact (Sterbenz), so r carries only the tiny rounding of n*ln2_lo.
#pragma once

#include <cstdint>
#include <cstring>

namespace rg::kernels::vec {

using f32x8 = float __attribute__((vector_size(32)));
using i32x8 = int32_t __attribute__((vector_size(32)));
using f32x16 = float __attribute__((vector_size(64)));
using i32x16 = int32_t __attribute__((vector_size(64)));

// The functions below are templates over the float vector type F (GCC drops vector_size on a dependent type,
// so the two widths are spelt out and paired here).
template <class F>
struct IntLanes;
template <>
struct IntLanes<f32x8> {
  using type = i32x8;
};
template <>
struct IntLanes<f32x16> {
  using type = i32x16;
};

// Unaligned load and store of a vector V from / to memory of its lane type T (memcpy compiles to one move).
template <class V, class T>
V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class T>
void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

template <class F>
F splat(float v) {
  return F{} + v;
}
template <class F>
F as_float(typename IntLanes<F>::type v) {
  return reinterpret_cast<const F&>(v);
}
template <class F>
typename IntLanes<F>::type as_int(F v) {
  return reinterpret_cast<const typename IntLanes<F>::type&>(v);
}

// Round to the nearest integer (ties to even) for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction bits.
template <class F>
F round_to_int(F v) {
  const F magic = splat<F>(12582912.f);
  return (v + magic) - magic;
}

// 2^n for integer-valued n in [-126, 127], by writing the exponent field.
template <class F>
F pow2(F n) {
  using I = typename IntLanes<F>::type;
  return as_float<F>((__builtin_convertvector(n, I) + 127) << 23);
}

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f;     // 355/512
constexpr float kLn2Lo = -2.12194440e-4f;  // ln2 - kLn2Hi

// expm1(r) for |r| <= ln2/2 (+ rounding), relative error <= 2u (see the top of the file).
template <class F>
F expm1_reduced(F r) {
  F p = r * (1.f / 5040) + (1.f / 720);
  p = p * r + (1.f / 120);
  p = p * r + (1.f / 24);
  p = p * r + (1.f / 6);
  p = p * r + 0.5f;
  return r + (r * r) * p;
}

// exp(z) for z <= 0, including -inf (0). Relative error <= 3u: 1 + expm1(r) >= 0.7 turns expm1's 2u on
// |expm1(r)| <= 0.42 into 1.2u, the add rounds once more, 2^n is exact (measured: 1.5u at worst over every
// 7th float in [-87, 0]). Below z = -87 it returns 0 (exp(-87) = 1.6e-38, near the end of float32's normal
// range): a sum that holds exp(0) = 1 cannot see that.
template <class F>
[[gnu::always_inline]] inline F exp_nonpositive(F z) {  // inlined: its constants stay in registers
  const F floor_z = splat<F>(-87.f);
  const auto underflow = z < floor_z;
  const F zc = underflow ? floor_z : z;
  const F n = round_to_int(zc * kLog2e);
  const F r = (zc - n * kLn2Hi) - n * kLn2Lo;
  const F e = pow2(n) * (expm1_reduced(r) + 1.f);
  return underflow ? F{} : e;
}

// tanh(t), odd by construction (computed on |t|, sign copied back); NaN stays NaN, +-inf give +-1.
//   tanh(|t|) = E / (E + 2),  E = expm1(2|t|) = 2^n expm1(r) + (2^n - 1)
// with |t| clamped to 10 (1 - tanh(10) = 4e-9 < u/8: the float32 result is 1 either way). E / (E + 2) keeps
// tanh(t) ~ t accurate relative to t near 0, which 1 - 2 / (exp(2t) + 1) would not. Error bound: E is within
// 5u relative (n = 0: E = expm1(r), 2u; n >= 1: 2^n times expm1(r)'s error 2u |expm1(r)| <= 0.59u 2^n, over
// E >= 0.41 2^(n-1) at worst n = 1: 2.9u, plus two roundings); E / (E + 2) has relative condition
// 2 / (E + 2) <= 1 in E, and the add and the divide round once each: <= 7u = 4.2e-7 relative everywhere.
// Measured: 3.1u at worst over every 7th float in [-12, 12] against double tanh.
template <class F>
[[gnu::always_inline]] inline F tanh(F t) {
  const auto sign = as_int(t) & static_cast<int32_t>(0x80000000u);
  const F a = as_float<F>(as_int(t) & 0x7fffffff);
  const F ten = splat<F>(10.f);
  const F x = 2.f * (a > ten ? ten : a);  // `a > 10` is false for NaN: NaN flows through
  const F n = round_to_int(x * kLog2e);
  const F r = (x - n * kLn2Hi) - n * kLn2Lo;
  const F two_n = pow2(n);
  const F e = two_n * expm1_reduced(r) + (two_n - 1.f);
  return as_float<F>(as_int(F(e / (e + 2.f))) | sign);
}

}  // namespace rg::kernels::vec
