// The leaf layers of RecurrentGemma (docs/architecture.md §3-5): Gemma RMSNorm, RoPE on a fraction of each head,
// the GeGLU MLP, the causal depthwise Conv1D with document masking, the block-diagonal gate linear and the
// RG-LRU. Leaf modules take plain numbers, not the whole config; parameter names are Hugging Face's, so
// checkpoints map one to one (model/io). Legend: B batch, T time, W width, L lru width, E mlp hidden,
// H heads, K conv width.
#pragma once

#include "model/kernels/rg_lru_scan.h"

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace rg {

// tanh-approximated GELU, as the reference uses everywhere (MLP gate and the recurrent y branch).
torch::Tensor gelu_tanh(const torch::Tensor& x);

// doc id of every position: cumsum(segment_pos == 0) along T. (B, T) int64.
torch::Tensor document_ids(const torch::Tensor& segment_pos);

// y = x * rsqrt(mean(x^2) + eps) * (1 + weight), computed in the activation dtype as the reference does.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t width, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // (..., W)
  void reset_parameters();
  double eps() const { return eps_; }
  torch::Tensor weight;  // (W) offset from 1, initialised to 0
 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// Rotates the first `rotated` dims of each head (split-halves convention) by angle pos * base^(-2i/rotated);
// the rest pass through. x (B, T, N, hd), positions (B, T). Angles are computed in float32.
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& positions, int64_t rotated, double base);

// GeGLU: down(gelu_tanh(gate(x)) * up(x)). Hugging Face names gate_proj, up_proj, down_proj.
class MLPBlockImpl : public torch::nn::Module {
 public:
  MLPBlockImpl(int64_t width, int64_t hidden, bool bias);
  torch::Tensor forward(const torch::Tensor& x);  // (B, T, W) -> (B, T, W)
  void reset_parameters(double final_scale);      // final_scale = 2 / depth
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
 private:
  int64_t width_, hidden_;
};
TORCH_MODULE(MLPBlock);

// Causal depthwise convolution: c[t] = b + sum_j w[K-1-j] u[t-j], taps never crossing a document start.
// weight (L, 1, K) in the Hugging Face layout: weight[l, 0, k] is the reference's w[k, l].
class Conv1DImpl : public torch::nn::Module {
 public:
  Conv1DImpl(int64_t width, int64_t kernel);
  // u (B, T, L); doc (B, T) from document_ids(); prev (B, K-1, L) earlier inputs (state) or undefined.
  torch::Tensor forward(const torch::Tensor& u, const torch::Tensor& doc, const torch::Tensor& prev = {});
  void reset_parameters();
  int64_t kernel() const { return kernel_; }
  torch::Tensor weight, bias;
 private:
  int64_t width_, kernel_;
};
TORCH_MODULE(Conv1D);

// Real-Gated Linear Recurrent Unit (spec 5.2). Gates are block-diagonal linears with weights (H, L/H, L/H)
// applied as x . W (not transposed). The recurrence accumulates in float32.
class RGLRUImpl : public torch::nn::Module {
 public:
  RGLRUImpl(int64_t width, int64_t num_heads);
  // x (B, T, L), segment_pos (B, T); h0 (B, L) float32 or undefined. Returns y (B, T, L) and h_T (B, L).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& segment_pos,
                                                  const torch::Tensor& h0 = {});
  void reset_parameters();
  // kAuto / kFast: the fused CPU kernel (kernels/rg_lru_fused.h); kReference: op-by-op autograd over the
  // reference scan; on CUDA the op-by-op path with the CUDA scan.
  kernels::ScanImpl scan_impl = kernels::ScanImpl::kAuto;
  torch::Tensor recurrent_param;                              // (L)  the reference's a_param
  torch::Tensor input_gate_weight, input_gate_bias;           // (H, L/H, L/H), (H, L/H)
  torch::Tensor recurrent_gate_weight, recurrent_gate_bias;   // (H, L/H, L/H), (H, L/H)
 private:
  int64_t width_, num_heads_;
};
TORCH_MODULE(RGLRU);

// x (..., L) -> (..., L): chunk h of x times weight[h] (in, out) plus bias[h].
torch::Tensor block_diagonal_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// sqrt(x) whose derivative is clipped at 1000 (input floored at 1 / (4 * 1000^2) in the backward), as the
// reference does so that bfloat16 training does not produce NaNs when a -> 1.
torch::Tensor sqrt_bound_derivative(const torch::Tensor& x);

// Normal init with the given variance (the reference draws every matrix from a plain normal).
void init_normal(torch::Tensor& t, double variance);

}  // namespace rg
