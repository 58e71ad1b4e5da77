// The fused one-token decode step (model/kernels/decode_step.h, the in-place attention step) against the
// op-by-op reference step: logits and state after prefill and many steps, with left padding, a document
// reset while decoding, local (ring) and global attention; and that the state is updated in place.
#include "model/griffin.h"
#include "model/kernels/decode_step.h"

#include "tests/float_tolerance.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rg {
namespace {

// Every feature of the step: 4 heads (4 blocks in the gates), window 8 below the decoded length, MQA,
// half-head RoPE, biases, soft cap; an attention block between recurrent ones.
ModelConfig decode_config(bool global) {
  ModelConfig c;
  c.vocab_size = 97, c.width = 48, c.depth = 4, c.num_heads = 4, c.num_kv_heads = 1, c.head_dim = 12;
  c.lru_width = 48, c.mlp_hidden = 80, c.conv_width = 4, c.attention_window = 8;
  c.logits_soft_cap = 30.0;
  if (global) c.block_pattern = {BlockType::kRecurrent, BlockType::kAttention}, c.attention_window = 0;
  return c;
}

// Published init, then biases and norm scales perturbed (zero at init, so bugs in them would hide) and the
// final norm scaled so that logits reach the soft cap's range.
Griffin decode_model(const ModelConfig& c) {
  torch::manual_seed(0);
  Griffin model(c);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    if (name.find("bias") != std::string::npos || name.find("norm") != std::string::npos) item.value().normal_(0, 0.2);
  }
  model->final_norm->weight.add_(20.0);
  return model;
}

double decode_max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// Two float32 evaluations of the model in different orders (the fused kernels sum the gates, the conv taps
// and the norms in their own order): the longest sum is the MLP's 80 terms; 4 blocks x 3 chained sums +
// the head = 13 (the same derivation as model_bound in griffin_test_util.h).
double decode_bound(const torch::Tensor& ref) {
  return test::float32_vs_float32(ref.abs().max().item<double>(), 80, 13);
}

// Left-padded prompts of 11, 5 and 1 tokens (positions -1 on the pads).
struct DecodePrompt {
  torch::Tensor tokens, pos;
};
DecodePrompt decode_prompt(int64_t vocab) {
  torch::manual_seed(3);
  const std::vector<int64_t> lengths = {11, 5, 1};
  const int64_t P = 11, B = 3;
  DecodePrompt p{torch::randint(1, vocab, {B, P}, torch::kLong), torch::empty({B, P}, torch::kLong)};
  for (int64_t b = 0; b < B; ++b) p.pos[b].copy_((torch::arange(P, torch::kLong) - P + lengths[b]).clamp_min(-1));
  return p;
}

TEST(DecodeStep, FusedStepEqualsTheReferenceStep) {
  torch::NoGradGuard no_grad;
  for (bool global : {false, true}) {
    const ModelConfig c = decode_config(global);
    Griffin model = decode_model(c);
    const DecodePrompt prompt = decode_prompt(c.vocab_size);
    SamplingState fused, reference;
    model->prefill(prompt.tokens, prompt.pos, fused);
    reference = fused.clone();
    torch::manual_seed(4);
    torch::Tensor pos = torch::tensor({11, 5, 1}, torch::kLong);
    for (int64_t t = 0; t < 30; ++t) {
      const torch::Tensor tokens = torch::randint(c.vocab_size, {3}, torch::kLong);
      if (t == 12) pos[1] = 0;  // row 1 starts a new document while decoding
      model->set_fused_decode(false);
      const torch::Tensor want = model->step(tokens, pos, reference);
      model->set_fused_decode(true);
      const torch::Tensor got = model->step(tokens, pos, fused);
      ASSERT_LT(decode_max_diff(got, want), decode_bound(want)) << (global ? "global" : "local") << " step " << t;
      pos += 1;
    }
    for (size_t i = 0; i < fused.blocks.size(); ++i) {
      const BlockState &f = fused.blocks[i], &r = reference.blocks[i];
      if (f.recurrent.lru.defined()) {
        EXPECT_LT(decode_max_diff(f.recurrent.lru, r.recurrent.lru), decode_bound(r.recurrent.lru)) << "block " << i;
        EXPECT_LT(decode_max_diff(f.recurrent.conv, r.recurrent.conv), decode_bound(r.recurrent.conv)) << "block " << i;
      } else {
        const int64_t n = r.attention.used();
        ASSERT_EQ(f.attention.used(), n) << "block " << i;
        EXPECT_TRUE(f.attention.positions.narrow(1, 0, n).equal(r.attention.positions.narrow(1, 0, n))) << "block " << i;
        EXPECT_LT(decode_max_diff(f.attention.keys.narrow(1, 0, n), r.attention.keys.narrow(1, 0, n)),
                  decode_bound(r.attention.keys))
            << "block " << i;
      }
    }
  }
}

// The fused recurrent kernel alone, in float64: the same arithmetic as the op-by-op block in another order,
// so they agree to float64 rounding: unit roundoff 2^-53, longest sum 24 terms (linear_out), 4 chained sums
// (linear_x, conv, gates, linear_out), and 10x the output's magnitude for the intermediate values (the LRU
// state and gates reach a few units). A real bug moves the output by O(0.1) or more.
TEST(DecodeStep, RecurrentKernelMatchesTheOpByOpBlockInFloat64) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(7);
  RecurrentBlock block(16, 24, 4, 4);
  block->reset_parameters(1.0);
  block->to(torch::kDouble);
  for (auto& p : block->parameters()) p.add_(torch::randn_like(p) * 0.1);  // biases non-zero too
  const auto opts = torch::TensorOptions().dtype(torch::kDouble);
  RecurrentState fused{torch::randn({3, 3, 24}, opts), torch::randn({3, 24}, opts)};
  RecurrentState reference{fused.conv.clone(), fused.lru.clone()};
  for (int64_t t = 0; t < 6; ++t) {
    const torch::Tensor x = torch::randn({3, 1, 16}, opts);
    const torch::Tensor pos = torch::tensor({{t + 4}, {t == 2 ? 0 : t + 9}, {t}}, torch::kLong);  // resets
    block->fused_decode = false;
    const torch::Tensor want = block->step(x, pos, reference);
    block->fused_decode = true;
    const torch::Tensor got = block->step(x, pos, fused);
    const double bound = 4 * 24 * 1.1102230246251565e-16 * 10 * std::max(1.0, want.abs().max().item<double>());
    ASSERT_LT(decode_max_diff(got, want), bound) << "step " << t;
    ASSERT_LT(decode_max_diff(fused.lru, reference.lru), bound) << "step " << t;
    ASSERT_LT(decode_max_diff(fused.conv, reference.conv), bound) << "step " << t;  // the taps: linear_x outputs
  }
}

// linear_rows' own kernels (one or two rows: along k; 3 to 8 rows: one lane per row; float32 and bfloat16)
// against the same product in float64 from the same (rounded) values. Shapes: K not a multiple of the
// vector width, N with rows left over after the last full band, N large enough that the bands split over
// threads, with and without bias; and more rows than the kernels take (at::linear). Bound per output: float32 sums K + 1 terms in order
// (float32_vs_exact of the row's sum |x_k w_k| + |b|); bfloat16 then rounds the float result once, 2^-8
// relative (plus the same float32 sum). A wrong lane, row or band is off by O(1).
TEST(DecodeStep, RowLinearMatchesFloat64) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(11);
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (const int64_t B : {1, 2, 3, 8, 9}) {
      for (const auto [K, N] : std::vector<std::pair<int64_t, int64_t>>{{5, 13}, {64, 40}, {33, 1002}, {200, 6001}}) {
        for (const bool with_bias : {false, true}) {
          const torch::Tensor x = torch::randn({B, K}).to(dtype), w = torch::randn({N, K}).to(dtype);
          const torch::Tensor b = with_bias ? torch::randn({N}).to(dtype) : torch::Tensor();
          const torch::Tensor got = kernels::linear_rows(x, w, b);
          ASSERT_EQ(got.scalar_type(), dtype);
          ASSERT_EQ(got.sizes(), (std::vector<int64_t>{B, N}));
          const torch::Tensor xd = x.to(torch::kDouble), wd = w.to(torch::kDouble);
          torch::Tensor want = torch::matmul(xd, wd.t()), magnitude = torch::matmul(xd.abs(), wd.abs().t());
          if (with_bias) want += b.to(torch::kDouble), magnitude += b.to(torch::kDouble).abs();
          torch::Tensor bound = magnitude * test::float32_vs_exact(1.0, K + 1);
          if (dtype == torch::kBFloat16) bound += want.abs() * std::ldexp(1.0, -8);
          const torch::Tensor excess = (got.to(torch::kDouble) - want).abs() - bound;
          EXPECT_LE(excess.max().item<double>(), 0.0)
              << torch::toString(dtype) << " B=" << B << " K=" << K << " N=" << N << " bias=" << with_bias;
        }
      }
    }
  }
}

// linear_rows with the soft cap inside its kernels against c tanh(y / c) in float64 of the same product. The
// exact cap has slope 1 - tanh^2 <= 1, so the float32 sum's error (as above) passes through at most unchanged;
// the kernels' cap adds at most 10 * 2^-24 relative (model/kernels/decode_step.cpp, soft_cap_span); bfloat16
// rounds the capped float once more (2^-8 relative). More rows than the kernels take (B = 9) run at::linear
// and ATen's cap: float32 the same bound (Sleef's tanh is within 1 ulp); bfloat16 rounds y, y / c, the tanh
// and the product each to bfloat16, 4 * 2^-8 (the slopes of tanh and the cap are <= 1). Caps 0.5 to 30 put
// y / c from the linear range to deep saturation (|y| reaches ~60). A missing sign, a wrong lane or a cap
// applied twice is off by O(1).
TEST(DecodeStep, RowLinearSoftCapMatchesFloat64) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(12);
  for (const auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (const int64_t B : {1, 2, 4, 8, 9}) {
      for (const auto [K, N] : std::vector<std::pair<int64_t, int64_t>>{{5, 13}, {33, 1002}, {200, 6001}}) {
        for (const double cap : {0.5, 5.0, 30.0}) {
          const torch::Tensor x = torch::randn({B, K}).to(dtype), w = torch::randn({N, K}).to(dtype);
          const torch::Tensor b = torch::randn({N}).to(dtype);
          const torch::Tensor got = kernels::linear_rows(x, w, b, cap);
          ASSERT_EQ(got.scalar_type(), dtype);
          ASSERT_EQ(got.sizes(), (std::vector<int64_t>{B, N}));
          const torch::Tensor xd = x.to(torch::kDouble), wd = w.to(torch::kDouble), bd = b.to(torch::kDouble);
          const torch::Tensor y = torch::matmul(xd, wd.t()) + bd;
          const torch::Tensor want = torch::tanh(y / cap) * cap;
          const torch::Tensor magnitude = torch::matmul(xd.abs(), wd.abs().t()) + bd.abs();
          torch::Tensor bound = magnitude * test::float32_vs_exact(1.0, K + 1);
          bound += want.abs() * (10 * test::kFloat32Roundoff);
          if (dtype == torch::kBFloat16) {
            bound += want.abs() * std::ldexp(B <= kernels::kMaxRowsForRowLinear ? 1.0 : 4.0, -8);
          }
          const torch::Tensor excess = (got.to(torch::kDouble) - want).abs() - bound;
          EXPECT_LE(excess.max().item<double>(), 0.0)
              << torch::toString(dtype) << " B=" << B << " K=" << K << " N=" << N << " cap=" << cap;
          if (cap == 0.5 && K > 5) EXPECT_GT(y.abs().max().item<double>(), 10 * cap) << "saturation must be reached";
        }
      }
    }
  }
}

// In place: after the first step, every state tensor keeps its storage (no reallocation per step), and a
// global cache grows only when its reserved capacity runs out.
TEST(DecodeStep, StateIsUpdatedInPlace) {
  torch::NoGradGuard no_grad;
  for (bool global : {false, true}) {
    const ModelConfig c = decode_config(global);
    Griffin model = decode_model(c);
    const DecodePrompt prompt = decode_prompt(c.vocab_size);
    SamplingState state;
    model->prefill(prompt.tokens, prompt.pos, state);
    for (auto& b : state.blocks) b.attention.reserve(20);
    std::vector<const void*> storage;
    for (const auto& b : state.blocks) {
      for (const auto* t : {&b.recurrent.conv, &b.recurrent.lru, &b.attention.keys, &b.attention.values,
                            &b.attention.positions}) {
        storage.push_back(t->defined() ? t->data_ptr() : nullptr);
      }
    }
    const int64_t bytes = state.bytes();
    torch::Tensor pos = torch::tensor({11, 5, 1}, torch::kLong);
    for (int64_t t = 0; t < 20; ++t, pos += 1) model->step(torch::ones({3}, torch::kLong), pos, state);
    size_t i = 0;
    for (const auto& b : state.blocks) {
      for (const auto* t : {&b.recurrent.conv, &b.recurrent.lru, &b.attention.keys, &b.attention.values,
                            &b.attention.positions}) {
        EXPECT_EQ(t->defined() ? t->data_ptr() : nullptr, storage[i++]) << (global ? "global" : "local");
      }
      if (global && b.attention.keys.defined()) EXPECT_EQ(b.attention.used(), 11 + 20);
    }
    EXPECT_EQ(state.bytes(), bytes);
  }
}

}  // namespace
}  // namespace rg
