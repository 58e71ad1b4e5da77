// rlhf/pair_batch and rlhf/reward_model: rows and masks of a pair batch, the chunked two-pass
// log-probabilities against the plain full-logits form (values and gradients), a reward that left or
// right padding does not change, and the reward model folder (round trip, refusals of the wrong folder).
#include "model/pretrained.h"
#include "rlhf/losses.h"
#include "rlhf/pair_batch.h"
#include "rlhf/reward_model.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace {

namespace fs = std::filesystem;

rg::ModelConfig tiny() {
  rg::ModelConfig c;  // the defaults: V 256, W 64, depth 3 (recurrent, recurrent, attention)
  return c;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("rg_rlhf_test_" + std::to_string(getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

TEST(PairBatch, RowsTargetsMaskAndLastPosition) {
  rg::data::PreferencePair p{{2, 10, 11}, {20, 21, 5}, {30, 5}, ""};
  const rg::rlhf::PairBatch b = rg::rlhf::make_pair_batch({&p}, /*pad_id=*/0, torch::kCPU);
  ASSERT_EQ(b.pairs, 1);
  ASSERT_EQ(b.tokens.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_TRUE(b.tokens.equal(torch::tensor({{2, 10, 11, 20, 21, 5}, {2, 10, 11, 30, 5, 0}}, torch::kLong)));
  EXPECT_TRUE(b.targets.equal(torch::tensor({{10, 11, 20, 21, 5, 0}, {10, 11, 30, 5, 0, 0}}, torch::kLong)));
  // Targets that are completion tokens: positions 2.. (predicting 20, 21, 5) and (30, 5).
  EXPECT_TRUE(b.completion_mask.equal(torch::tensor({{0.f, 0.f, 1.f, 1.f, 1.f, 0.f}, {0.f, 0.f, 1.f, 1.f, 0.f, 0.f}})));
  EXPECT_TRUE(b.last.equal(torch::tensor({5, 4}, torch::kLong)));
  EXPECT_TRUE(b.segment_pos.equal(torch::tensor({{0, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 4, 0}}, torch::kLong)));
  EXPECT_TRUE(b.completion_tokens.equal(torch::tensor({3.f, 2.f})));
}

// A pair's own margin (prepare's optional `margin` field) replaces rlhf.margin for that pair only, and the
// loss moves as -logsigmoid(r_c - r_r - m) says: checked against log1p(exp(.)) in double.
TEST(PairBatch, PerPairMarginOverridesTheDefaultInTheRewardLoss) {
  rg::data::PreferencePair big{{2, 10}, {20, 5}, {30, 5}, "", 5.0}, plain{{2, 10}, {21, 5}, {31, 5}, ""};
  const rg::rlhf::PairBatch b = rg::rlhf::make_pair_batch({&big, &plain}, 0, torch::kCPU);
  ASSERT_TRUE(b.margins.defined());
  EXPECT_EQ(b.margins[0].item<float>(), 5.f);
  EXPECT_TRUE(std::isnan(b.margins[1].item<float>()));
  const torch::Tensor m = rg::rlhf::pair_margins(b, /*default_margin=*/0.5);  // (P)
  EXPECT_TRUE(m.equal(torch::tensor({5.f, 0.5f})));
  const torch::Tensor rc = torch::tensor({1.5f, 1.5f}), rr = torch::tensor({0.5f, 0.5f});  // r_c - r_r = 1 for both
  const torch::Tensor loss = rg::rlhf::reward_pair_loss(rc, rr, m);
  // -logsigmoid(x) = log1p(exp(-x)): x = 1 - 5 = -4 and x = 1 - 0.5 = 0.5. float32 softplus of values this
  // size is exact to a few ulp (~1e-6 relative); 1e-5 absolute on losses of 4 and 0.47 leaves room.
  EXPECT_NEAR(loss[0].item<float>(), std::log1p(std::exp(4.0)), 1e-5);
  EXPECT_NEAR(loss[1].item<float>(), std::log1p(std::exp(-0.5)), 1e-5);
  // No pair with a margin and a zero default: no margin tensor at all (the loss sees rlhf.margin = 0).
  const rg::rlhf::PairBatch none = rg::rlhf::make_pair_batch({&plain}, 0, torch::kCPU);
  EXPECT_FALSE(none.margins.defined());
  EXPECT_FALSE(rg::rlhf::pair_margins(none, 0).defined());
  EXPECT_TRUE(rg::rlhf::pair_margins(none, 0.25).equal(torch::tensor({0.25f})));
}

TEST(ChunkedLogps, MatchFullLogitsValuesAndGradients) {
  torch::manual_seed(1);
  rg::Griffin model(tiny());
  rg::data::PreferencePair p{{2, 10, 11, 12}, {20, 21, 22, 5}, {30, 5}, ""}, q{{2, 40}, {41, 42, 5}, {43, 44, 45, 46, 5}, ""};
  const rg::rlhf::PairBatch b = rg::rlhf::make_pair_batch({&p, &q}, 0, torch::kCPU);
  const torch::Tensor row_grad = torch::tensor({0.5f, -1.0f, 2.0f, 0.25f});

  // Reference: full (B, T, V) logits, autograd all the way.
  model->zero_grad();
  const torch::Tensor full = rg::rlhf::sequence_logps(model->forward(b.tokens, b.segment_pos), b.targets, b.completion_mask);
  (full * row_grad).sum().backward();
  const torch::Tensor g_ref = model->embed_tokens->weight.grad().clone();
  const torch::Tensor g_ref_block = model->blocks[0]->parameters()[0].grad().clone();

  model->zero_grad();
  const torch::Tensor hidden = model->hidden(b.tokens, b.segment_pos);
  const torch::Tensor chunked = rg::rlhf::chunked_sequence_logps(model, hidden, b.targets, b.completion_mask, /*chunk=*/5);
  rg::rlhf::backward_sequence_logps(model, hidden, b.targets, b.completion_mask, row_grad, /*chunk=*/5);
  // Same float32 ops on the same rows, chunked differently: log-softmax over V = 256 logits and sums of
  // <= 8 terms of magnitude ~|logp| <= 10 each round at ~256 * 6e-8 * 10 ~ 2e-4 at worst; 1e-4 relative.
  EXPECT_TRUE(torch::allclose(chunked, full.detach(), 1e-4, 1e-4)) << chunked << full;
  EXPECT_TRUE(torch::allclose(model->embed_tokens->weight.grad(), g_ref, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(model->blocks[0]->parameters()[0].grad(), g_ref_block, 1e-4, 1e-5));
  // And the test can fail: a mask shifted by one position gives other values.
  const torch::Tensor shifted = rg::rlhf::chunked_sequence_logps(model, hidden, b.targets, b.completion_mask.roll(1, 1));
  // 100x the tolerance above: a shifted mask moves log-probabilities by O(1).
  EXPECT_FALSE(torch::allclose(shifted, full.detach(), 1e-2, 1e-2));
}

TEST(RewardModel, PaddingLeftOrRightDoesNotChangeTheScore) {
  torch::manual_seed(2);
  rg::rlhf::RewardModel rm{rg::Griffin(tiny())};
  {
    torch::NoGradGuard g;
    rm->score->weight.normal_(0, 1);  // a large head so rewards are O(sqrt(W)), far from 0
  }
  rm->eval();
  torch::NoGradGuard no_grad;
  const std::vector<int64_t> seq = {2, 17, 99, 4, 63, 120, 7};  // T = 7
  const torch::Tensor alone = rm->forward(torch::tensor(seq).view({1, 7}), torch::arange(7).view({1, 7}),
                                          torch::tensor({6}, torch::kLong));
  // Right padded to 10 in a batch with another row; left padded by 3 (pads each their own document).
  std::vector<int64_t> right = seq, left = {0, 0, 0};
  right.insert(right.end(), {0, 0, 0});
  left.insert(left.end(), seq.begin(), seq.end());
  const torch::Tensor tokens = torch::stack({torch::tensor(right), torch::tensor(left), torch::arange(10) + 3});  // (3, 10)
  const torch::Tensor pos = torch::stack({torch::tensor(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 0, 0, 0}),
                                          torch::tensor(std::vector<int64_t>{0, 0, 0, 0, 1, 2, 3, 4, 5, 6}),
                                          torch::arange(10)});
  const torch::Tensor r = rm->forward(tokens, pos, torch::tensor({6, 9, 9}, torch::kLong));  // (3)
  // The same float32 arithmetic per row except BLAS blocking over a different row count: width-192 sums
  // through 3 blocks, each rounding at ~192 * 6e-8 relative; scores are O(10): 1e-3 absolute is loose, and
  // a pad leaking into the state or a wrong read position moves the score by O(1).
  const double a = alone.item<double>();
  EXPECT_NEAR(r[0].item<double>(), a, 1e-3);
  EXPECT_NEAR(r[1].item<double>(), a, 1e-3);
  // Guard that the test can fail: reading one position early, or left pads that continue the positions.
  EXPECT_GT(std::abs(rm->forward(tokens, pos, torch::tensor({5, 8, 9}, torch::kLong))[0].item<double>() - a), 1e-2);
  const torch::Tensor bad_pos = torch::arange(10).view({1, 10});
  EXPECT_GT(std::abs(rm->forward(tokens[1].view({1, 10}), bad_pos, torch::tensor({9}, torch::kLong)).item<double>() - a), 1e-2);
}

TEST(RewardModel, FolderRoundTripAndRefusals) {
  TempDir tmp;
  torch::manual_seed(3);
  const std::string sft = (tmp.path / "sft").string(), rm_dir = (tmp.path / "rm").string();
  rg::save_pretrained(rg::Griffin(tiny()), sft);
  EXPECT_FALSE(rg::rlhf::is_reward_model_dir(sft));
  rg::rlhf::RewardModel rm = rg::rlhf::init_reward_model(sft, /*seed=*/0);
  // Head drawn N(0, 1/(W+1)^2): the sample std of 64 draws is within 50% of 1/65 (> 5 standard errors).
  const double sd = rm->score->weight.std().item<double>();
  EXPECT_GT(sd, 0.5 / 65);
  EXPECT_LT(sd, 1.5 / 65);
  rm->reward_mean = 0.25, rm->reward_std = 2.5;
  rg::rlhf::save_reward_model(rm, rm_dir);

  std::ifstream in(fs::path(rm_dir) / "config.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("num_labels"), 1);
  EXPECT_EQ(j.at("reward_std"), 2.5);
  EXPECT_EQ(j.at("hidden_size"), 64) << "backbone config kept";
  EXPECT_TRUE(rg::rlhf::is_reward_model_dir(rm_dir));

  rg::rlhf::RewardModel back = rg::rlhf::load_reward_model(rm_dir);
  EXPECT_EQ(back->reward_mean, 0.25);
  EXPECT_TRUE(back->score->weight.equal(rm->score->weight));
  const torch::Tensor tokens = torch::tensor({{2, 5, 9, 13}}, torch::kLong), pos = torch::arange(4).view({1, 4});
  const torch::Tensor last = torch::tensor({3}, torch::kLong);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(back->forward(tokens, pos, last).equal(rm->forward(tokens, pos, last))) << "float32 saved exactly";

  // The wrong folder for each loader, each with a message naming it.
  try {
    rg::rlhf::load_reward_model(sft);
    ADD_FAILURE() << "a policy folder loaded as a reward model";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("not a reward model"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(sft), std::string::npos) << e.what();
  }
  EXPECT_THROW(rg::rlhf::init_reward_model(rm_dir, 0), std::invalid_argument);
  EXPECT_ANY_THROW(rg::load_pretrained(rm_dir));
}

}  // namespace
