// Griffin forward, sampling-state plumbing and initialisation (docs/architecture.md §2, 9, 11).
#include "model/griffin.h"

#include "model/kernels/decode_step.h"

#include <torch/nn/functional/linear.h>

namespace rg {

GriffinImpl::GriffinImpl(const ModelConfig& config, bool initialise) : config_(config) {
  config_.validate();
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(config_.vocab_size, config_.width));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.depth; ++i) {
    blocks.push_back(ResidualBlock(config_, config_.block_type(i)));
    layers->push_back(blocks.back());
  }
  final_norm = register_module("final_norm", RMSNorm(config_.width, config_.norm_eps));
  if (initialise) reset_parameters();
}

void GriffinImpl::reset_parameters() {
  init_normal(embed_tokens->weight, 1.0 / config_.width);
  const double final_scale = 2.0 / config_.depth;
  for (auto& b : blocks) b->reset_parameters(final_scale);
  final_norm->reset_parameters();
}

int64_t GriffinImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

void GriffinImpl::set_scan_impl(kernels::ScanImpl impl) {
  for (auto& b : blocks) {
    if (b->recurrent) b->recurrent->rg_lru->scan_impl = impl;
  }
}

void GriffinImpl::set_fused_decode(bool fused) {
  fused_decode_ = fused;
  for (auto& b : blocks) b->set_fused_decode(fused);
}

torch::Tensor GriffinImpl::embed(const torch::Tensor& tokens) {
  // The reference multiplies by sqrt(W) rounded to bfloat16 (50.5 for W = 2560) even in float32.
  return embed_tokens(tokens) * config_.embed_scale();  // (B, T, W)
}

torch::Tensor GriffinImpl::logits(const torch::Tensor& hidden) {
  return soft_cap(torch::nn::functional::linear(hidden, embed_tokens->weight));  // (..., V)
}

torch::Tensor GriffinImpl::soft_cap(const torch::Tensor& logits) const {
  const double cap = config_.logits_soft_cap;
  return cap > 0 ? torch::tanh(logits / cap) * cap : logits;
}

torch::Tensor GriffinImpl::hidden(const torch::Tensor& tokens, const torch::Tensor& segment_pos, SamplingState* state) {
  if (tokens.dim() != 2 || !tokens.sizes().equals(segment_pos.sizes())) {
    throw std::invalid_argument("Griffin: tokens and segment_pos must both be (B, T)");
  }
  if (state) state->blocks.assign(blocks.size(), BlockState{});
  torch::Tensor x = embed(tokens);
  for (size_t i = 0; i < blocks.size(); ++i) {
    x = block_runner_ && !state ? block_runner_(blocks[i], x, segment_pos)
                                : blocks[i]->forward(x, segment_pos, state ? &state->blocks[i] : nullptr);
  }
  return final_norm(x);  // (B, T, W)
}

torch::Tensor GriffinImpl::forward(const torch::Tensor& tokens, const torch::Tensor& segment_pos) {
  return logits(hidden(tokens, segment_pos));
}

torch::Tensor GriffinImpl::prefill(const torch::Tensor& tokens, const torch::Tensor& segment_pos, SamplingState& state) {
  return logits(hidden(tokens, segment_pos, &state));
}

SamplingState GriffinImpl::empty_state(int64_t batch) const {
  SamplingState s;
  const auto options = embed_tokens->weight.options().requires_grad(false);
  for (const auto& b : blocks) s.blocks.push_back(b->empty_state(batch, options));
  return s;
}

torch::Tensor GriffinImpl::step(const torch::Tensor& tokens, const torch::Tensor& segment_pos, SamplingState& state) {
  if (state.empty()) state = empty_state(tokens.size(0));
  const torch::Tensor pos = segment_pos.view({-1, 1});  // (B, 1)
  torch::Tensor x = embed(tokens.view({-1, 1}));        // (B, 1, W)
  for (size_t i = 0; i < blocks.size(); ++i) x = blocks[i]->step(x, pos, state.blocks[i]);
  const int64_t B = x.size(0), W = x.size(2);
  if (!(fused_decode_ && kernels::decode_kernels_apply(x))) return logits(final_norm(x).squeeze(1));  // (B, V)
  const torch::Tensor h = kernels::rms_norm_rows(x.reshape({B, W}).contiguous(), final_norm->weight, final_norm->eps());
  // The cap inside the head's kernels: no extra passes over (B, V). logits() (op by op) stays the reference.
  return kernels::linear_rows(h, embed_tokens->weight, {}, config_.logits_soft_cap);  // (B, V)
}

}  // namespace rg
