// One-token decode kernels (docs/architecture.md §3, 5 and 9): the recurrent block's Conv1D + both block-diagonal
// gates + RG-LRU + the gelu(y) product fused into one pass over each row, and the RMSNorm of one token, with
// the sampling state updated in place. At one token per row LibTorch's per-operator cost (dispatch,
// allocation, ~5-10 us on a CPU) is most of a recurrent block's time; these replace ~40 operators with one.
// Inference only (no autograd), CPU only; the op-by-op step in model/blocks.cpp is their reference and
// the path for CUDA tensors and for tensors that require grad.
//
//   at::Tensor r = rg::kernels::recurrent_step_(u, y_pre, conv_state, h, p);  // (B, L); state advanced
#pragma once

#include <ATen/ATen.h>

namespace rg::kernels {

struct RecurrentStepParams {
  at::Tensor conv_weight, conv_bias;                   // (L, 1, K), (L)
  at::Tensor input_gate_weight, input_gate_bias;       // (H, L/H, L/H), (H, L/H)
  at::Tensor recurrent_gate_weight, recurrent_gate_bias;
  at::Tensor recurrent_param;                          // (L)
};

// u = linear_x(x) and y_pre = linear_y(x), (B, L) contiguous in the activation dtype; new_doc (B) bool
// (segment_pos == 0). conv_state (B, K-1, L) and h (B, L) (float32, float64 for float64) are advanced in
// place. Returns the RG-LRU output times gelu_tanh(y_pre), (B, L), the input of linear_out. Values are
// rounded to the activation dtype where the op-by-op path rounds them (conv output, gate pre-activations,
// a and the normalised input, the output), so bfloat16 follows the reference's rounding too.
at::Tensor recurrent_step_(const at::Tensor& u, const at::Tensor& y_pre, const at::Tensor& new_doc,
                           at::Tensor& conv_state, at::Tensor& h, const RecurrentStepParams& p);

// RMSNorm of x (N, W) contiguous: x * rsqrt(mean(x^2) + eps) * (1 + weight), mean in float32 (float64 for
// float64) rounded to the activation dtype, as the op-by-op RMSNorm computes it.
at::Tensor rms_norm_rows(const at::Tensor& x, const at::Tensor& weight, double eps);

// x (B, in) -> x W^T + b for a one-token step. For float32 and bfloat16 with B <= kMaxRowsForRowLinear (and
// grad mode off) it runs our own kernels, which stream the weights once, in bands over the cores: BLAS sgemm
// packs (copies) the whole weight matrix per call before its kernel reads it again, and OpenBLAS's own
// threads spin in sched_yield between calls (profiled on the 2-core AMD EPYC, batch 4, vocab 256k: packing
// 17%, the kernel 21%, sched_yield 25% of the run). A decode step is bound by reading the weights, so at a
// few rows this is the whole game. One or two rows are multiplied along k (eight weights per vector
// multiply-add, a horizontal sum per output); 3 to 8 rows sit in the lanes of one vector (one broadcast
// multiply-add per weight for all rows, no horizontal sums). With more rows the GEMM's register tiling wins
// and at::linear takes over.
//
// soft_cap > 0 returns soft_cap * tanh(y / soft_cap) instead of y (the model's logit cap), applied inside the
// kernels while each chunk of outputs is still in L1, with an eight-lane tanh (model/kernels/vec_exp_tanh.h),
// within 10 * 2^-24 relative of the exact cap of the float32 sum: on a 256k-vocabulary head the cap cost three
// more ATen passes over (B, V), 17% of a step in Sleef's tanh alone. On the at::linear path it is ATen's cap.
constexpr int64_t kMaxRowsForRowLinear = 8;
at::Tensor linear_rows(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double soft_cap = 0);

// Whether the fused kernels apply: CPU tensors, grad mode off (NoGradGuard / InferenceMode), float32/64 or
// bfloat16.
bool decode_kernels_apply(const at::Tensor& x);

}  // namespace rg::kernels
