// model/state.h's SamplingState via prefill + one-token steps vs the parallel pass; its fixed size.
#include "model/griffin.h"

#include "tests/float_tolerance.h"
#include "tests/model/griffin_test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rg {
namespace {

using namespace griffin_test;

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

}  // namespace
}  // namespace rg
