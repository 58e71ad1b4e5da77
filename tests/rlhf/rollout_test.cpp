// rlhf/rollout: log-probabilities recorded while sampling (left-padded prefill, the prompt state copied G
// times, steps past the attention window, a temperature) against one parallel forward over the finished rows;
// copies of a prompt's state against prefilling every copy; per-prompt seeds that make a prompt's samples
// independent of its batch; stop tokens; the training rows' layout.
#include "rlhf/rollout.h"

#include "tests/float_tolerance.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {

using namespace rg::rlhf;

rg::Griffin rollout_model() {
  torch::manual_seed(5);
  rg::ModelConfig c = rg::ModelConfig::preset("tiny");
  c.attention_window = 4;  // completions run past the window, so the ring buffer wraps in the copies
  return rg::Griffin(c);
}

const std::vector<std::vector<int32_t>> kPrompts = {{2, 17, 33, 5, 90, 61, 7}, {2, 44}, {2, 9, 9, 150}};

RolloutOptions options(int64_t group, double temperature) {
  RolloutOptions o;
  o.group = group, o.temperature = temperature, o.max_new_tokens = 12;
  for (size_t p = 0; p < kPrompts.size(); ++p) o.seeds.push_back(rollout_seed(3, 0, p));
  return o;
}

TEST(Rollout, RecordedLogProbsEqualAParallelForwardAtTheSamplingTemperature) {
  rg::Griffin model = rollout_model();
  for (double temperature : {1.0, 0.7}) {
    RolloutOptions o = options(/*group=*/3, temperature);
    o.stop_ids = {7, 8};  // some rows stop early, so rows have different lengths
    const Rollouts r = sample_rollouts(model, kPrompts, o);
    ASSERT_EQ(r.rows(), 9);
    const RolloutBatch b = make_rollout_batch(kPrompts, r, o.pad_id, torch::kCPU);
    torch::NoGradGuard no_grad;
    const TokenLogps lp = completion_logps(model, b, temperature);
    const torch::Tensor recorded = rollout_logps_tensor(r, b.mask.size(1), torch::kCPU);
    // Two float32 evaluations of the tiny model (prefill + steps with copied states vs one parallel pass over
    // right-padded rows): worst case 2 * float32_vs_float32(30, 192, 10) / T ~ 3e-3 on the log-softmax, but
    // rounding errors add like a random walk (~sqrt(n) u |x|), ~1e-5 in practice; the 1e-4 sits between.
    // A wrong temperature, state row or position moves them by O(0.1-1).
    const double max_diff = ((lp.logp - recorded) * b.mask).abs().max().item<double>();
    EXPECT_LT(max_diff, 1e-4) << "temperature " << temperature;
    // Without the temperature the forward disagrees: the test can tell.
    if (temperature != 1.0) {
      const TokenLogps plain = completion_logps(model, b, 1.0);
      EXPECT_GT(((plain.logp - recorded) * b.mask).abs().max().item<double>(), 1e-2);
    }
    for (int64_t row = 0; row < r.rows(); ++row) {
      const auto& c = r.completions[row];
      const bool ends_on_stop = c.back() == 7 || c.back() == 8;
      EXPECT_EQ(r.stopped[row], ends_on_stop) << "row " << row;
      if (!r.stopped[row]) EXPECT_EQ(static_cast<int64_t>(c.size()), o.max_new_tokens) << "row " << row;
      for (size_t j = 0; j + 1 < c.size(); ++j) EXPECT_TRUE(c[j] != 7 && c[j] != 8) << "row " << row;
    }
  }
}

TEST(Rollout, CopiedPromptStateEqualsPrefillingEveryCopy) {
  rg::Griffin model = rollout_model();
  RolloutOptions o = options(/*group=*/4, 1.0);
  const Rollouts shared = sample_rollouts(model, kPrompts, o);
  o.share_prompt_state = false;
  const Rollouts separate = sample_rollouts(model, kPrompts, o);
  for (int64_t row = 0; row < shared.rows(); ++row) {
    EXPECT_EQ(shared.completions[row], separate.completions[row]) << "row " << row;
    // Batch sizes 3 vs 12 in the prefill only change summation order: float32_vs_float32 as above.
    for (size_t j = 0; j < shared.logprobs[row].size(); ++j) {
      EXPECT_NEAR(shared.logprobs[row][j], separate.logprobs[row][j], 1e-4) << "row " << row;
    }
  }
  // The state holds one fixed-size record per row: four copies of three prompts hold 12 rows either way.
  EXPECT_EQ(shared.state_bytes, separate.state_bytes);
  // The copies of one prompt sample different completions (independent streams).
  EXPECT_NE(shared.completions[0], shared.completions[1]);
}

TEST(Rollout, APromptSamplesTheSameAloneOrInABatch) {
  rg::Griffin model = rollout_model();
  const RolloutOptions o = options(/*group=*/2, 0.9);
  const Rollouts all = sample_rollouts(model, kPrompts, o);
  RolloutOptions one = o;
  one.seeds = {o.seeds[1]};
  const Rollouts alone = sample_rollouts(model, {kPrompts[1]}, one);
  EXPECT_EQ(alone.completions[0], all.completions[2]);
  EXPECT_EQ(alone.completions[1], all.completions[3]);
  // Another seed, another sample.
  one.seeds = {rollout_seed(3, 1, 1)};
  EXPECT_NE(sample_rollouts(model, {kPrompts[1]}, one).completions[0], all.completions[2]);
}

TEST(Rollout, StateSizeDoesNotGrowWithTheCompletion) {
  rg::Griffin model = rollout_model();
  RolloutOptions o = options(1, 1.0);
  o.max_new_tokens = 4;
  const int64_t short_bytes = sample_rollouts(model, kPrompts, o).state_bytes;
  o.max_new_tokens = 40;
  EXPECT_EQ(sample_rollouts(model, kPrompts, o).state_bytes, short_bytes);
}

TEST(Rollout, BatchLayout) {
  Rollouts r;
  r.prompts = 1, r.group = 2;
  r.completions = {{20, 21, 5}, {30}};
  r.logprobs = {{-1, -2, -3}, {-4}};
  r.stopped = {true, false};
  const RolloutBatch b = make_rollout_batch({{2, 10}}, r, 0, torch::kCPU);
  EXPECT_TRUE(b.tokens.equal(torch::tensor({{2, 10, 20, 21, 5}, {2, 10, 30, 0, 0}}, torch::kLong)));
  EXPECT_TRUE(b.segment_pos.equal(torch::tensor({{0, 1, 2, 3, 4}, {0, 1, 2, 0, 0}}, torch::kLong)));
  // Column j of a row is predicted at position prompt_length - 1 + j.
  EXPECT_TRUE(b.index.equal(torch::tensor({{1, 2, 3}, {1, 1, 1}}, torch::kLong)));
  EXPECT_TRUE(b.targets.equal(torch::tensor({{20, 21, 5}, {30, 0, 0}}, torch::kLong)));
  EXPECT_TRUE(b.mask.equal(torch::tensor({{1.f, 1.f, 1.f}, {1.f, 0.f, 0.f}})));
  EXPECT_TRUE(b.last.equal(torch::tensor({4, 2}, torch::kLong)));
  EXPECT_TRUE(rollout_logps_tensor(r, 3, torch::kCPU).equal(torch::tensor({{-1.f, -2.f, -3.f}, {-4.f, 0.f, 0.f}})));
}

TEST(Rollout, RefusesBadInput) {
  rg::Griffin model = rollout_model();
  RolloutOptions o = options(1, 1.0);
  EXPECT_THROW(sample_rollouts(model, {}, o), std::invalid_argument);
  o.seeds.pop_back();
  EXPECT_THROW(sample_rollouts(model, kPrompts, o), std::invalid_argument);
  o = options(1, 0.0);
  EXPECT_THROW(sample_rollouts(model, kPrompts, o), std::invalid_argument);
  o = options(1, 1.0);
  EXPECT_THROW(sample_rollouts(model, {{2, 999}, {2}, {2}}, o), std::invalid_argument);
}

}  // namespace
