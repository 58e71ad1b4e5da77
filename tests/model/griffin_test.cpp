// Parity of the model with the spec: each layer and the whole model against the float64 loop reference in
// spec_reference.h, on inputs with document resets and sequences longer than the attention window; the
// chunked local attention against the naive masked one; the sampling state (prefill + one-token steps)
// against the parallel pass, with left padding and resets; fixed state size.
#include "model/griffin.h"

#include "tests/float_tolerance.h"
#include "tests/model/spec_reference.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rg {
namespace {

// Small but with every feature: 4 heads (so block-diagonal gates have 4 blocks), window 8 < T, a rotated
// fraction of each head, MQA, biases, soft cap, and a pattern whose attention block sits between recurrent ones.
ModelConfig test_config() {
  ModelConfig c;
  c.vocab_size = 97, c.width = 48, c.depth = 4, c.num_heads = 4, c.num_kv_heads = 1, c.head_dim = 12;
  c.lru_width = 48, c.mlp_hidden = 80, c.conv_width = 4, c.attention_window = 8;
  c.logits_soft_cap = 30.0;
  return c;
}

// Initialise as published, then perturb biases and norm scales (zero at init, so a bug in them would hide)
// and scale the final norm so that logits reach the soft cap's range (magnitude ~30).
Griffin make_model(const ModelConfig& c, uint64_t seed = 0) {
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
Inputs make_inputs(int64_t B, int64_t T, int64_t vocab, uint64_t seed = 1) {
  torch::manual_seed(seed);
  Inputs in{torch::randint(vocab, {B, T}, torch::kLong), torch::arange(T, torch::kLong).repeat({B, 1})};
  if (B > 1) in.pos[1].narrow(0, 13, T - 13).copy_(torch::arange(T - 13, torch::kLong));
  return in;
}

std::vector<int64_t> row(const torch::Tensor& t, int64_t b) {
  const torch::Tensor r = t[b].contiguous();
  return std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

// Bounds from float32 rounding (tests/float_tolerance.h), with the test config's sizes: the longest sum in
// a block is the MLP's (mlp_hidden = 80 terms); a block chains at most 3 such sums (projection, mixing or
// gates, output), so the whole model chains 4 blocks x 3 + the tied head = 13.
constexpr int64_t kLongestSum = 80;
constexpr int64_t kModelDepth = 13;
// A float32 module's output against the float64 spec, `depth` chained sums, magnitude of the reference.
double spec_bound(const torch::Tensor& ref, int64_t depth) {
  return test::float32_vs_exact(max_abs(ref), kLongestSum, depth);
}
// Two float32 evaluations of the whole model (parallel pass vs prefill/steps: other kernels, other orders).
double model_bound(const torch::Tensor& logits) {
  return test::float32_vs_float32(max_abs(logits), kLongestSum, kModelDepth);
}

TEST(Layers, RecurrentBlockMatchesSpec) {
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  const spec::Params p = spec::params_of(*model);
  const Inputs in = make_inputs(2, 30, c.vocab_size);
  const torch::Tensor x = torch::randn({2, 30, c.width});
  const torch::Tensor y = model->blocks[0]->recurrent->forward(x, in.pos);
  for (int64_t b = 0; b < 2; ++b) {
    const torch::Tensor ref = spec::recurrent(p, "layers.0.temporal_block", x[b].to(torch::kDouble), row(in.pos, b));
    // Input projections, conv (4 taps), block-diagonal gates, the scan over 30 steps, output projection.
    EXPECT_LT(max_diff(y[b], ref), spec_bound(ref, 5)) << "row " << b;
  }
}

TEST(Layers, AttentionBlockMatchesSpec) {
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  const spec::Params p = spec::params_of(*model);
  const Inputs in = make_inputs(2, 30, c.vocab_size);
  const torch::Tensor x = torch::randn({2, 30, c.width});
  const torch::Tensor y = model->blocks[2]->attention->forward(x, in.pos);
  for (int64_t b = 0; b < 2; ++b) {
    const torch::Tensor ref = spec::attention(p, "layers.2.temporal_block", c, x[b].to(torch::kDouble), row(in.pos, b));
    // q/k/v projections, scores, softmax-weighted values, output projection.
    EXPECT_LT(max_diff(y[b], ref), spec_bound(ref, 4)) << "row " << b;
  }
}

TEST(Layers, MlpNormAndConvMatchSpec) {
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  const spec::Params p = spec::params_of(*model);
  const torch::Tensor x = torch::randn({3, c.width});
  const torch::Tensor y = model->blocks[1]->mlp_block->forward(x);
  const torch::Tensor n = model->blocks[1]->channel_pre_norm->forward(x);
  for (int64_t t = 0; t < 3; ++t) {
    const torch::Tensor mlp_ref = spec::mlp(p, "layers.1.mlp_block", x[t].to(torch::kDouble), true);
    const torch::Tensor norm_ref = spec::rms_norm(x[t].to(torch::kDouble), p.at("layers.1.channel_pre_norm.weight"), 1e-6);
    EXPECT_LT(max_diff(y[t], mlp_ref), spec_bound(mlp_ref, 2));    // gate/up projection, down projection
    EXPECT_LT(max_diff(n[t], norm_ref), spec_bound(norm_ref, 1));  // the mean of squares
  }
  // Conv1D with two document starts inside the taps' reach.
  const std::vector<int64_t> pos = {0, 1, 2, 0, 1, 0, 1, 2, 3, 4};
  const torch::Tensor u = torch::randn({1, 10, c.lru_width});
  const torch::Tensor pos_t = torch::tensor(pos, torch::kLong).unsqueeze(0);
  const torch::Tensor conv = model->blocks[0]->recurrent->conv_1d->forward(u, document_ids(pos_t));
  const torch::Tensor conv_ref = spec::conv1d(p, "layers.0.temporal_block.conv_1d", u[0].to(torch::kDouble), pos);
  EXPECT_LT(max_diff(conv[0], conv_ref), spec_bound(conv_ref, 1));  // one sum of 4 taps (80 covers it)
}

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

TEST(LocalAttention, ChunkedEqualsNaiveMaskedAttention) {
  torch::manual_seed(3);
  for (int64_t window : {0, 5, 64, 100}) {
    for (int64_t T : {1, 7, 130, 300}) {
      const torch::Tensor q = torch::randn({2, T, 4, 8}), k = torch::randn({2, T, 2, 8}), v = torch::randn({2, T, 2, 8});
      torch::Tensor pos = torch::arange(T, torch::kLong).repeat({2, 1});
      if (T > 50) pos[1].narrow(0, 50, T - 50).copy_(torch::arange(T - 50, torch::kLong));
      const torch::Tensor doc = document_ids(pos);
      const torch::Tensor naive = naive_local_attention(q, k, v, doc, window);
      // Scores (8 terms) then the softmax-weighted sum over up to T keys, in two float32 orders.
      EXPECT_LT(max_diff(local_attention(q, k, v, doc, window), naive), test::float32_vs_float32(max_abs(naive), T, 2))
          << "window " << window << " T " << T;
    }
  }
}

TEST(LocalAttention, GradientsEqualNaive) {
  torch::manual_seed(4);
  const torch::Tensor q0 = torch::randn({1, 150, 2, 8}), k0 = torch::randn({1, 150, 1, 8}), v0 = torch::randn({1, 150, 1, 8});
  const torch::Tensor doc = document_ids(torch::arange(150, torch::kLong).unsqueeze(0));
  std::vector<torch::Tensor> grads[2];
  for (int naive = 0; naive < 2; ++naive) {
    torch::Tensor q = q0.clone().requires_grad_(), k = k0.clone().requires_grad_(), v = v0.clone().requires_grad_();
    const torch::Tensor out = naive ? naive_local_attention(q, k, v, doc, 20) : local_attention(q, k, v, doc, 20);
    (out * torch::linspace(-1, 1, out.numel()).view(out.sizes())).sum().backward();
    grads[naive] = {q.grad(), k.grad(), v.grad()};
  }
  // Forward (2 sums over up to 150 keys) and backward (2 more), relative to each gradient's largest entry.
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_diff(grads[0][i], grads[1][i]), test::float32_vs_float32(max_abs(grads[1][i]), 150, 4));
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

// ---- sampling state ---------------------------------------------------------------------------------------

TEST(SamplingState, StepsReproduceTheParallelPass) {
  torch::NoGradGuard no_grad;
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  const int64_t T = 40, prompt = 17;  // both longer than the window (8)
  Inputs in = make_inputs(2, T, c.vocab_size);
  in.pos[1].narrow(0, 25, T - 25).copy_(torch::arange(T - 25, torch::kLong));  // row 1: a reset while decoding
  const torch::Tensor full = model(in.tokens, in.pos);                         // (B, T, V)
  SamplingState state;
  const torch::Tensor pre = model->prefill(in.tokens.narrow(1, 0, prompt), in.pos.narrow(1, 0, prompt), state);
  // Prefill and steps run other kernels than the parallel pass (one-token matmuls, the ring buffer, the
  // stepped scan): two float32 evaluations of the whole model. Measured: 2.4e-5 on AMD Zen 5, less on Intel.
  EXPECT_LT(max_diff(pre, full.narrow(1, 0, prompt)), model_bound(full));
  for (int64_t t = prompt; t < T; ++t) {
    const torch::Tensor step = model->step(in.tokens.select(1, t), in.pos.select(1, t), state);  // (B, V)
    EXPECT_LT(max_diff(step, full.select(1, t)), model_bound(full)) << "t " << t;
  }
}

TEST(SamplingState, StepsFromAnEmptyStateReproduceTheParallelPass) {
  torch::NoGradGuard no_grad;
  ModelConfig c = test_config();
  for (bool global : {false, true}) {
    if (global) c.block_pattern = {BlockType::kAttention}, c.attention_window = 0;
    Griffin model = make_model(c);
    const Inputs in = make_inputs(1, 20, c.vocab_size);
    const torch::Tensor full = model(in.tokens, in.pos);
    SamplingState state;
    for (int64_t t = 0; t < 20; ++t) {
      EXPECT_LT(max_diff(model->step(in.tokens.select(1, t), in.pos.select(1, t), state), full.select(1, t)),
                model_bound(full))
          << (global ? "global " : "local ") << t;
    }
  }
}

TEST(SamplingState, LeftPaddedPromptsMatchUnpaddedRows) {
  torch::NoGradGuard no_grad;
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  torch::manual_seed(5);
  const std::vector<int64_t> lengths = {15, 6, 2};
  const int64_t P = 15, steps = 12, B = 3;
  std::vector<torch::Tensor> rows;
  for (int64_t n : lengths) rows.push_back(torch::randint(1, c.vocab_size, {n + steps}, torch::kLong));
  // Reference section 8: positions arange(P) - P + n clipped at -1; pads are token 0.
  torch::Tensor tokens = torch::zeros({B, P}, torch::kLong), pos = torch::zeros({B, P}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = lengths[b];
    tokens[b].narrow(0, P - n, n).copy_(rows[b].narrow(0, 0, n));
    pos[b].copy_((torch::arange(P, torch::kLong) - P + n).clamp_min(-1));
  }
  SamplingState state;
  const torch::Tensor pre = model->prefill(tokens, pos, state);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = lengths[b];
    const torch::Tensor alone = model(rows[b].unsqueeze(0), torch::arange(n + steps, torch::kLong).unsqueeze(0))[0];
    EXPECT_LT(max_diff(pre[b][P - 1], alone[n - 1]), model_bound(alone)) << "row " << b;
  }
  for (int64_t s = 0; s < steps; ++s) {
    torch::Tensor next = torch::zeros({B}, torch::kLong), next_pos = torch::zeros({B}, torch::kLong);
    for (int64_t b = 0; b < B; ++b) next[b] = rows[b][lengths[b] + s], next_pos[b] = lengths[b] + s;
    const torch::Tensor logits = model->step(next, next_pos, state);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = lengths[b];
      const torch::Tensor alone = model(rows[b].unsqueeze(0), torch::arange(n + steps, torch::kLong).unsqueeze(0))[0];
      EXPECT_LT(max_diff(logits[b], alone[n + s]), model_bound(alone)) << "row " << b << " step " << s;
    }
  }
}

TEST(SamplingState, SizeIsIndependentOfTokensGenerated) {
  torch::NoGradGuard no_grad;
  const ModelConfig c = test_config();
  Griffin model = make_model(c);
  SamplingState state;
  model->prefill(torch::ones({2, 5}, torch::kLong), torch::arange(5, torch::kLong).repeat({2, 1}), state);
  const int64_t after_prefill = state.bytes();
  for (int64_t t = 5; t < 60; ++t) {
    model->step(torch::ones({2}, torch::kLong), torch::full({2}, t, torch::kLong), state);
    ASSERT_EQ(state.bytes(), after_prefill) << "after step " << t;
  }
  // Per block: conv (B, K-1, L) + LRU (B, L) float32 for recurrent; ring of w keys, values, positions for attention.
  const int64_t rec = 2 * 3 * 48 * 4 + 2 * 48 * 4, att = 2 * (2 * 8 * 1 * 12 * 4) + 2 * 8 * 8;
  EXPECT_EQ(after_prefill, 3 * rec + att);
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
