// Griffin: the RecurrentGemma model (docs/architecture.md §2) and, with an all-attention block pattern and global
// attention, the Gemma transformer baseline. Parameter names are Hugging Face's without the "model." prefix
// (embed_tokens, layers.{i}.temporal_block..., final_norm), so model/io maps checkpoints one to one.
// Single-device and single-process: data parallelism and sharding wrap it from the trainer.
//
//   rg::Griffin model(rg::ModelConfig::preset("tiny"));
//   torch::Tensor logits = model(tokens, segment_pos);        // (B, T) int64 x2 -> (B, T, V)
//   rg::SamplingState state;
//   model->prefill(prompt, prompt_pos, state);                 // parallel pass that leaves the state
//   torch::Tensor next = model->step(last_token, pos, state);  // (B) -> (B, V), state stays fixed-size
#pragma once

#include "model/blocks.h"
#include "model/config.h"
#include "model/state.h"

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include <functional>

namespace rg {

class GriffinImpl : public torch::nn::Module {
 public:
  // `initialise` = false skips the random init, for models whose weights are loaded next.
  explicit GriffinImpl(const ModelConfig& config, bool initialise = true);

  // docs/architecture.md §11 (draws from torch's default generator: call torch::manual_seed first for determinism).
  void reset_parameters();

  // Parallel (training) pass: tokens and segment_pos (B, T) int64 -> logits (B, T, V), soft-capped.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& segment_pos);
  // The final-normed hidden states (B, T, W); when state is given it receives the sampling state after T.
  torch::Tensor hidden(const torch::Tensor& tokens, const torch::Tensor& segment_pos, SamplingState* state = nullptr);
  // hidden (..., W) -> soft-capped logits (..., V) through the tied embedding.
  torch::Tensor logits(const torch::Tensor& hidden);

  // Sampling: a parallel pass over the prompt that leaves `state` ready for step(); returns the prompt's
  // logits (B, T, V). Then one token per row: tokens (B), segment_pos (B) -> logits (B, V).
  torch::Tensor prefill(const torch::Tensor& tokens, const torch::Tensor& segment_pos, SamplingState& state);
  torch::Tensor step(const torch::Tensor& tokens, const torch::Tensor& segment_pos, SamplingState& state);
  SamplingState empty_state(int64_t batch) const;

  void set_scan_impl(kernels::ScanImpl impl);
  // step(): the fused one-token kernels with the state updated in place (default), or the op-by-op
  // reference step (false), which the decode tests compare the fused one with.
  void set_fused_decode(bool fused);
  // How the parallel pass runs each residual block (block, x, segment_pos) -> x. Unset: block->forward.
  // The trainer installs activation recomputation here; the model itself stays plain.
  using BlockRunner = std::function<torch::Tensor(ResidualBlock&, const torch::Tensor&, const torch::Tensor&)>;
  void set_block_runner(BlockRunner runner) { block_runner_ = std::move(runner); }
  const ModelConfig& config() const { return config_; }
  torch::Dtype dtype() const { return embed_tokens->weight.scalar_type(); }
  torch::Device device() const { return embed_tokens->weight.device(); }
  int64_t num_parameters() const;

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};  // ResidualBlock each
  RMSNorm final_norm{nullptr};
  std::vector<ResidualBlock> blocks;      // the same modules as layers, typed

 private:
  torch::Tensor embed(const torch::Tensor& tokens);
  torch::Tensor soft_cap(const torch::Tensor& logits) const;  // cap * tanh(logits / cap), or as is
  ModelConfig config_;
  bool fused_decode_ = true;
  BlockRunner block_runner_;
};
TORCH_MODULE(Griffin);

}  // namespace rg
