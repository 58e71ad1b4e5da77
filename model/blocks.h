// The temporal blocks (recurrent and local multi-query attention, docs/architecture.md §5 and 6) and the residual
// block that wraps one of them with an MLP (section 2). Each block has a parallel form for training and
// prefill, which can also hand back its sampling state, and a one-token step that advances that state.
// The step has two forms: the fused one (default; state updated in place, the recurrent block's conv +
// gates + RG-LRU in one kernel, model/kernels/decode_step.h) and the op-by-op reference
// (fused_decode = false), which tests compare it with.
#pragma once

#include "model/config.h"
#include "model/layers.h"
#include "model/state.h"

namespace rg {

class RecurrentBlockImpl : public torch::nn::Module {
 public:
  RecurrentBlockImpl(int64_t width, int64_t lru_width, int64_t num_heads, int64_t conv_width);
  // x (B, T, W), segment_pos (B, T) -> (B, T, W). When state is given it receives the state after T.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& segment_pos, RecurrentState* state = nullptr);
  // One token per row: x (B, 1, W), segment_pos (B, 1); advances state.
  torch::Tensor step(const torch::Tensor& x, const torch::Tensor& segment_pos, RecurrentState& state);
  RecurrentState empty_state(int64_t batch, const torch::TensorOptions& options) const;
  void reset_parameters(double final_scale);

  torch::nn::Linear linear_x{nullptr}, linear_y{nullptr}, linear_out{nullptr};
  Conv1D conv_1d{nullptr};
  RGLRU rg_lru{nullptr};
  bool fused_decode = true;  // step(): the fused kernel where it applies (CPU, no grad), else op by op

 private:
  int64_t width_, lru_width_, conv_width_;
};
TORCH_MODULE(RecurrentBlock);

struct AttentionOptions {
  int64_t width = 0, num_heads = 0, num_kv_heads = 1, head_dim = 0;
  int64_t window = 0;   // each query sees itself and `window` earlier tokens; 0 = global
  int64_t rotated = 0;  // dims of each head rotated by RoPE
  double rope_base = 10000.0;
  bool bias = true;     // o_proj bias (q/k/v never have one)
};

class AttentionBlockImpl : public torch::nn::Module {
 public:
  explicit AttentionBlockImpl(const AttentionOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& segment_pos, AttentionState* state = nullptr);
  torch::Tensor step(const torch::Tensor& x, const torch::Tensor& segment_pos, AttentionState& state);
  AttentionState empty_state(int64_t batch, const torch::TensorOptions& options) const;
  void reset_parameters(double final_scale);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  bool fused_decode = true;  // step(): attend to the cache and the new key without concatenating them,
                             // then write the new key in place; else the op-by-op reference

 private:
  torch::Tensor step_reference(const torch::Tensor& x, const torch::Tensor& segment_pos, AttentionState& state);
  torch::Tensor step_in_place(const torch::Tensor& x, const torch::Tensor& segment_pos, AttentionState& state);
  torch::Tensor rope_one_token(const torch::Tensor& x, const torch::Tensor& positions);  // x (B, N, hd), in place
  AttentionOptions o_;
  torch::Tensor inv_freq_;  // RoPE's frequencies for steps, computed once per device
};
TORCH_MODULE(AttentionBlock);

// Local attention in query chunks: memory is O(T x (chunk + window)), never (T x T). q (B, T, H, hd),
// k and v (B, T, G, hd), doc (B, T) document ids; window 0 = global. Returns (B, T, H, hd).
// Allowed pairs: tau <= t, t - tau <= window, doc(t) == doc(tau). Softmax in float32.
torch::Tensor local_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& doc, int64_t window);
// The same by materialising the (T x T) mask: the slow reference for tests.
torch::Tensor naive_local_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const torch::Tensor& doc, int64_t window);

class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(const ModelConfig& config, BlockType type);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& segment_pos, BlockState* state = nullptr);
  torch::Tensor step(const torch::Tensor& x, const torch::Tensor& segment_pos, BlockState& state);
  BlockState empty_state(int64_t batch, const torch::TensorOptions& options) const;
  void reset_parameters(double final_scale);
  BlockType type() const { return type_; }
  // The fused step (default) or the op-by-op reference, for this block and its temporal block.
  void set_fused_decode(bool fused);

  RMSNorm temporal_pre_norm{nullptr}, channel_pre_norm{nullptr};
  RecurrentBlock recurrent{nullptr};  // registered as "temporal_block" when type is recurrent
  AttentionBlock attention{nullptr};  // registered as "temporal_block" when type is attention
  MLPBlock mlp_block{nullptr};

 private:
  BlockType type_;
  bool fused_decode_ = true;
};
TORCH_MODULE(ResidualBlock);

}  // namespace rg
