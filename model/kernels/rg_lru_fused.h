// The whole RG-LRU after its two gate linears, fused into one CPU pass with a hand-written backward
// (docs/architecture.md §5.2): gates, log-space decay, the sqrt(1 - a^2) multiplier with its bounded derivative,
// document resets and the float32 scan. The unfused path in model/layers.cpp (autograd over tensor ops
// plus rg_lru_scan) is its reference: it materialises ~15 (B, T, L) temporaries forward and ~25 backward,
// which is most of a recurrent block's time on a CPU.
//
//   auto [y, h_last] = rg::kernels::rg_lru_fused(x, gate_x_pre, gate_a_pre, a_param, reset, h0);
#pragma once

#include <ATen/ATen.h>

#include <utility>

namespace rg::kernels {

// x, gate_x_pre, gate_a_pre (B, T, L) in the activation dtype: the conv output and the two gate linears'
// outputs before the sigmoid; a_param (L); reset (B, T) bool (segment_pos == 0); h0 (B, L) float32 or
// undefined. Returns y (B, T, L) in x's dtype and h_T (B, L) float32 (float64 for float64 inputs).
// Differentiable with respect to x, both gate inputs, a_param and h0. CPU tensors only.
std::pair<at::Tensor, at::Tensor> rg_lru_fused(const at::Tensor& x, const at::Tensor& gate_x_pre,
                                               const at::Tensor& gate_a_pre, const at::Tensor& a_param,
                                               const at::Tensor& reset, const at::Tensor& h0);

}  // namespace rg::kernels
