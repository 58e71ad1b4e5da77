// model/griffin.cpp: logits vs the float64 spec (resets, T > window, Gemma), parameter count, fused LRU, bf16.
#include "model/griffin.h"

#include "tests/float_tolerance.h"
#include "tests/model/griffin_test_util.h"
#include "tests/model/spec_reference.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rg {
namespace {

using namespace griffin_test;

TEST(Griffin, LogitsMatchSpecWithResetAndLongerThanWindow) {
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  const spec::Params p = spec::params_of(*model);
  const Inputs in = make_inputs(2, 30, c.vocab_size);  // T = 30 > window 8; row 1 resets at t = 13
  const torch::Tensor logits = model(in.tokens, in.pos);
  ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{2, 30, c.vocab_size}));
  EXPECT_GT(logits.abs().max().item<double>(), 20.0);  // the soft cap's range is exercised
  for (int64_t b = 0; b < 2; ++b) {
    const torch::Tensor ref = spec::logits(p, c, row(in.tokens, b), row(in.pos, b));
    // A float32 port matches to ~5e-5 on logits of magnitude ~30; the bound is the model's chained sums.
    EXPECT_LT(max_diff(logits[b], ref), spec_bound(ref, kModelDepth)) << "row " << b;
  }
}

TEST(Griffin, GemmaBaselineMatchesSpec) {
  // All-attention, global, full-head RoPE, no biases, no soft cap, grouped KV heads.
  ModelConfig c = test_config();
  c.block_pattern = {BlockType::kAttention}, c.attention_window = 0, c.rope_fraction = 1.0;
  c.use_bias = false, c.logits_soft_cap = 0.0, c.num_kv_heads = 2, c.lru_width = 0, c.depth = 2;
  Griffin model = make_model(c);
  const spec::Params p = spec::params_of(*model);
  EXPECT_EQ(model->num_parameters(), count_parameters(c).total);
  const Inputs in = make_inputs(2, 20, c.vocab_size);
  const torch::Tensor logits = model(in.tokens, in.pos);
  for (int64_t b = 0; b < 2; ++b) {
    const torch::Tensor ref = spec::logits(p, c, row(in.tokens, b), row(in.pos, b));
    EXPECT_LT(max_diff(logits[b], ref), spec_bound(ref, kModelDepth)) << "row " << b;
  }
}

TEST(Griffin, ParameterCountMatchesConfig) {
  const ModelConfig c = test_config();
  EXPECT_EQ(make_model(c)->num_parameters(), count_parameters(c).total);
  EXPECT_EQ(Griffin(ModelConfig::preset("tiny"))->num_parameters(), count_parameters(ModelConfig::preset("tiny")).total);
}

// The default (fused RG-LRU kernel) and the op-by-op path over the reference scan: same gradients for every
// parameter, to float32 summation-order noise relative to each gradient's largest entry: the forward's and
// the backward's chained sums (2 x kModelDepth).
TEST(Griffin, FusedAndReferenceRgLruGiveSameGradients) {
  const ModelConfig c = test_config();
  const Inputs in = make_inputs(2, 30, c.vocab_size);
  std::vector<torch::Tensor> grads[2];
  for (int i = 0; i < 2; ++i) {
    Griffin model = make_model(c);
    model->set_scan_impl(i ? kernels::ScanImpl::kReference : kernels::ScanImpl::kFast);
    model(in.tokens, in.pos).square().mean().backward();
    for (const auto& param : model->parameters()) grads[i].push_back(param.grad().clone());
  }
  for (size_t j = 0; j < grads[0].size(); ++j) {
    const double bound = test::float32_vs_float32(max_abs(grads[1][j]), kLongestSum, 2 * kModelDepth);
    EXPECT_LT(max_diff(grads[0][j], grads[1][j]), bound) << "parameter " << j;
  }
}

TEST(Griffin, Bfloat16TracksFloat32) {
  torch::NoGradGuard no_grad;
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  const Inputs in = make_inputs(2, 30, c.vocab_size);
  const torch::Tensor f32 = model(in.tokens, in.pos);
  model->to(torch::kBFloat16);
  const torch::Tensor bf16 = model(in.tokens, in.pos);
  EXPECT_EQ(bf16.scalar_type(), torch::kBFloat16);
  // bf16 carries ~3 significant digits through 4 blocks: logits of magnitude ~30 agree to about 1.
  EXPECT_LT((bf16.to(torch::kFloat) - f32).abs().mean().item<double>(), 1.0);
  SamplingState state;
  const torch::Tensor pre = model->prefill(in.tokens.narrow(1, 0, 20), in.pos.narrow(1, 0, 20), state);
  EXPECT_EQ(state.blocks[0].recurrent.lru.scalar_type(), torch::kFloat);  // the LRU state stays float32
  const torch::Tensor step = model->step(in.tokens.select(1, 20), in.pos.select(1, 20), state);
  // Two bf16 evaluations (stepped vs parallel) of the same logits, each within ~1 of float32 (above): their
  // difference is of the same order; 0.5 on the mean (the state kept in float32) is an estimate, not derived.
  EXPECT_LT((step.to(torch::kFloat) - bf16.select(1, 20).to(torch::kFloat)).abs().mean().item<double>(), 0.5);
}

}  // namespace
}  // namespace rg
