// Shared by the model tests against the spec (layers, blocks, griffin, state): the small config with every
// feature, a model with perturbed biases and norms, inputs with a document reset, and the float32 bounds.
#pragma once

#include "model/griffin.h"

#include "tests/float_tolerance.h"

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace rg::griffin_test {

// Small but with every feature: 4 heads (so block-diagonal gates have 4 blocks), window 8 < T, a rotated
// fraction of each head, MQA, biases, soft cap, and a pattern whose attention block sits between recurrent ones.
inline ModelConfig test_config() {
  ModelConfig c;
  c.vocab_size = 97, c.width = 48, c.depth = 4, c.num_heads = 4, c.num_kv_heads = 1, c.head_dim = 12;
  c.lru_width = 48, c.mlp_hidden = 80, c.conv_width = 4, c.attention_window = 8;
  c.logits_soft_cap = 30.0;
  return c;
}

// Initialise as published, then perturb biases and norm scales (zero at init, so a bug in them would hide)
// and scale the final norm so that logits reach the soft cap's range (magnitude ~30).
inline Griffin make_model(const ModelConfig& c, uint64_t seed = 0) {
  torch::manual_seed(seed);
  Griffin model(c);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    const bool is_bias = name.size() > 4 && (name.substr(name.size() - 4) == "bias");
    if (is_bias || name.find("norm") != std::string::npos) item.value().normal_(0, 0.2);
  }
  model->final_norm->weight.add_(20.0);
  return model;
}

struct Inputs {
  torch::Tensor tokens, pos;  // (B, T) int64
};

// Row 0: one document of T tokens. Row 1: a document reset at t = 13 (a new document starts).
inline Inputs make_inputs(int64_t B, int64_t T, int64_t vocab, uint64_t seed = 1) {
  torch::manual_seed(seed);
  Inputs in{torch::randint(vocab, {B, T}, torch::kLong), torch::arange(T, torch::kLong).repeat({B, 1})};
  if (B > 1) in.pos[1].narrow(0, 13, T - 13).copy_(torch::arange(T - 13, torch::kLong));
  return in;
}

inline std::vector<int64_t> row(const torch::Tensor& t, int64_t b) {
  const torch::Tensor r = t[b].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

inline double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

inline double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

// Bounds from float32 rounding (tests/float_tolerance.h), with the test config's sizes: the longest sum in
// a block is the MLP's (mlp_hidden = 80 terms); a block chains at most 3 such sums (projection, mixing or
// gates, output), so the whole model chains 4 blocks x 3 + the tied head = 13.
constexpr int64_t kLongestSum = 80;
constexpr int64_t kModelDepth = 13;
// A float32 module's output against the float64 spec, `depth` chained sums, magnitude of the reference.
inline double spec_bound(const torch::Tensor& ref, int64_t depth) {
  return test::float32_vs_exact(max_abs(ref), kLongestSum, depth);
}
// Two float32 evaluations of the whole model (parallel pass vs prefill/steps: other kernels, other orders).
inline double model_bound(const torch::Tensor& logits) {
  return test::float32_vs_float32(max_abs(logits), kLongestSum, kModelDepth);
}

}  // namespace rg::griffin_test
