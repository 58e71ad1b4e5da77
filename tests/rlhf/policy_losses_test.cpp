// rlhf/policy_losses against values computed here independently in double: the KL estimators (k3's mean
// under pi is the exact KL), the adaptive controller's update, KL-shaped rewards, GAE against its explicit
// sum, whitening, the clipped policy and value losses and their gradients, GRPO / RLOO advantages, and the
// token / sequence aggregations. All float64: the bounds are about the formulas, not rounding.
#include "rlhf/policy_losses.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace {

using namespace rg::rlhf;

torch::Tensor pl1(std::vector<double> v) { return torch::tensor(v, torch::kDouble); }
torch::Tensor pl2(std::vector<std::vector<double>> rows) {
  std::vector<torch::Tensor> t;
  for (auto& r : rows) t.push_back(pl1(r));
  return torch::stack(t);
}

// O(1) values in double: ~1e-16 rounding; 1e-12 leaves room for exp / log.
constexpr double kExactPl = 1e-12;

TEST(PolicyLosses, KlEstimators) {
  const torch::Tensor lp = pl1({-1.0, -2.5}), ref = pl1({-1.5, -2.0});
  const torch::Tensor k1 = kl_estimate(lp, ref, KlEstimator::kK1), k3 = kl_estimate(lp, ref, KlEstimator::kK3);
  EXPECT_NEAR(k1[0].item<double>(), 0.5, kExactPl);
  EXPECT_NEAR(k1[1].item<double>(), -0.5, kExactPl);
  EXPECT_NEAR(k3[0].item<double>(), std::exp(-0.5) + 0.5 - 1, kExactPl);
  EXPECT_NEAR(k3[1].item<double>(), std::exp(0.5) - 0.5 - 1, kExactPl);
  // Both are unbiased: their expectation under pi is KL(pi || q) exactly.
  const torch::Tensor pi = pl1({0.5, 0.3, 0.2}), q = pl1({0.2, 0.2, 0.6});
  const double kl = (pi * (pi / q).log()).sum().item<double>();
  for (KlEstimator e : {KlEstimator::kK1, KlEstimator::kK3}) {
    EXPECT_NEAR((pi * kl_estimate(pi.log(), q.log(), e)).sum().item<double>(), kl, kExactPl);
  }
  EXPECT_EQ(parse_kl_estimator("k3"), KlEstimator::kK3);
  EXPECT_THROW(parse_kl_estimator("k2"), std::invalid_argument);
}

TEST(PolicyLosses, AdaptiveKlControllerFollowsZieglerEtAl) {
  KlController c;
  c.value = 0.2, c.target = 6, c.horizon = 10000;
  c.update(/*kl=*/9, /*n_steps=*/256);  // error clip(9/6 - 1) = 0.2
  EXPECT_NEAR(c.value, 0.2 * (1 + 0.2 * 256 / 10000.0), kExactPl);
  const double v = c.value;
  c.update(5, 256);  // error 5/6 - 1 = -1/6
  EXPECT_NEAR(c.value, v * (1 - (1.0 / 6) * 256 / 10000.0), kExactPl);
  KlController fixed;
  fixed.value = 0.1;
  fixed.update(100, 1000);
  EXPECT_EQ(fixed.value, 0.1);
}

TEST(PolicyLosses, KlShapedRewardsPutTheScoreOnTheLastToken) {
  const torch::Tensor kl = pl2({{0.1, 0.2, 0.3}, {0.4, 9.0, 9.0}}), mask = pl2({{1, 1, 1}, {1, 0, 0}});
  const torch::Tensor r = kl_shaped_rewards(pl1({2.0, -1.0}), kl, mask, 0.5);
  EXPECT_TRUE(torch::allclose(r, pl2({{-0.05, -0.1, -0.15 + 2.0}, {-0.2 - 1.0, 0, 0}}), 0, kExactPl));
}

TEST(PolicyLosses, GaeEqualsItsExplicitSum) {
  torch::manual_seed(0);
  const torch::Tensor rewards = torch::randn({3, 5}, torch::kDouble), values = torch::randn({3, 5}, torch::kDouble);
  const torch::Tensor mask = pl2({{1, 1, 1, 1, 1}, {1, 1, 0, 0, 0}, {1, 1, 1, 1, 0}});
  const double gamma = 0.9, lambda = 0.8;
  const Gae g = gae(rewards, values, mask, gamma, lambda);
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t n = mask[b].sum().item<int64_t>();
    auto v = [&](int64_t t) { return t < n ? values[b][t].item<double>() : 0.0; };  // terminal after the last
    for (int64_t t = 0; t < 5; ++t) {
      double a = 0;
      for (int64_t l = t; l < n; ++l) {
        const double delta = rewards[b][l].item<double>() + gamma * v(l + 1) - v(l);
        a += std::pow(gamma * lambda, l - t) * delta;
      }
      EXPECT_NEAR(g.advantages[b][t].item<double>(), a, kExactPl) << b << "," << t;
      EXPECT_NEAR(g.returns[b][t].item<double>(), t < n ? a + v(t) : 0.0, kExactPl) << b << "," << t;
    }
  }
  // gamma = lambda = 1: the advantage is the rest of the episode's reward minus the value.
  const Gae mc = gae(rewards, values, mask, 1.0, 1.0);
  EXPECT_NEAR(mc.advantages[0][1].item<double>(), rewards[0].narrow(0, 1, 4).sum().item<double>() - values[0][1].item<double>(), kExactPl);
}

TEST(PolicyLosses, WhiteningUsesOnlyMaskedEntries) {
  const torch::Tensor x = pl2({{1, 2, 100}, {3, 4, 100}}), mask = pl2({{1, 1, 0}, {1, 1, 0}});
  const torch::Tensor w = masked_whiten(x, mask);
  // Entries 1..4: mean 2.5, unbiased variance 5/3.
  const double s = std::sqrt(5.0 / 3.0 + 1e-8);
  EXPECT_TRUE(torch::allclose(w, pl2({{-1.5 / s, -0.5 / s, 0}, {0.5 / s, 1.5 / s, 0}}), 0, kExactPl));
  EXPECT_NEAR(masked_whiten(x, mask, false)[0][0].item<double>(), 2.5 - 1.5 / s, kExactPl);
  EXPECT_NEAR(masked_mean(x, mask).item<double>(), 2.5, kExactPl);
}

TEST(PolicyLosses, ClippedPolicyLossAndItsGradient) {
  const double eps = 0.2;
  // ratios 1.5 (A > 0: clipped at 1.2), 0.5 (A > 0: not clipped), 1.5 (A < 0: not clipped), 0.5 (A < 0: clipped at 0.8)
  const torch::Tensor old = pl1({0, 0, 0, 0}), adv = pl1({2, 2, -1, -1});
  torch::Tensor lp = pl1({std::log(1.5), std::log(0.5), std::log(1.5), std::log(0.5)}).requires_grad_(true);
  const ClippedLoss l = clipped_policy_loss(lp, old, adv, eps);
  EXPECT_TRUE(torch::allclose(l.loss, pl1({-2 * 1.2, -2 * 0.5, 1.5, 0.8}), 0, kExactPl));
  EXPECT_TRUE(l.clipped.equal(torch::tensor({1.f, 0.f, 0.f, 1.f})));
  l.loss.sum().backward();
  // d/dlp of -A r is -A r where not clipped, 0 where clipped.
  EXPECT_TRUE(torch::allclose(lp.grad(), pl1({0, -2 * 0.5, 1.5, 0}), 0, kExactPl));
}

TEST(PolicyLosses, ClippedValueLoss) {
  const torch::Tensor old = pl1({1.0, 1.0}), ret = pl1({3.0, 0.5});
  torch::Tensor v = pl1({2.0, 1.1}).requires_grad_(true);
  const ClippedLoss l = clipped_value_loss(v, old, ret, 0.2);
  // row 0: plain (2-3)^2 = 1, clipped (1.2-3)^2 = 3.24 -> 0.5 * 3.24; row 1: plain 0.36, clipped (1.1-0.5)^2 = 0.36.
  EXPECT_NEAR(l.loss[0].item<double>(), 1.62, kExactPl);
  EXPECT_NEAR(l.loss[1].item<double>(), 0.18, kExactPl);
  EXPECT_EQ(l.clipped[0].item<float>(), 1.f);
  l.loss.sum().backward();
  // Row 0 takes the clipped branch, whose value is out of the trust region: no gradient. Row 1: v - R = 0.6.
  EXPECT_TRUE(torch::allclose(v.grad(), pl1({0.0, 0.6}), 0, kExactPl));
}

TEST(PolicyLosses, GroupAdvantages) {
  const torch::Tensor s = pl1({1, 0, 0, 1, /**/ 2, 2, 2, 2});
  const torch::Tensor g = group_advantages(s, 4, AdvantageEstimator::kGrpo);
  const double sd = std::sqrt(1.0 / 3.0);  // unbiased std of {1, 0, 0, 1}
  EXPECT_TRUE(torch::allclose(g, pl1({0.5 / (sd + 1e-4), -0.5 / (sd + 1e-4), -0.5 / (sd + 1e-4), 0.5 / (sd + 1e-4), 0, 0, 0, 0}), 0, kExactPl));
  EXPECT_TRUE(torch::allclose(group_advantages(s, 4, AdvantageEstimator::kGrpo, false), pl1({0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0}), 0, kExactPl));
  // RLOO: r_i - mean of the others = G / (G - 1) (r_i - group mean).
  const torch::Tensor r = group_advantages(pl1({3, 1, 2}), 3, AdvantageEstimator::kRloo);
  EXPECT_TRUE(torch::allclose(r, pl1({3 - 1.5, 1 - 2.5, 2 - 2.0}), 0, kExactPl));
  EXPECT_THROW(group_advantages(pl1({1, 2, 3}), 2, AdvantageEstimator::kGrpo), std::invalid_argument);
  EXPECT_THROW(group_advantages(pl1({1, 2}), 1, AdvantageEstimator::kRloo), std::invalid_argument);
  const auto [mean_std, flat] = group_reward_spread(s, 4);
  EXPECT_NEAR(mean_std, sd / 2, kExactPl);
  EXPECT_NEAR(flat, 0.5, kExactPl);
}

TEST(PolicyLosses, TokenAndSequenceAggregation) {
  const torch::Tensor l = pl2({{1, 2, 3}, {10, 0, 0}}), mask = pl2({{1, 1, 1}, {1, 0, 0}});
  EXPECT_NEAR(aggregate_loss(l, mask, LossAggregation::kToken, 4).item<double>(), 16.0 / 4, kExactPl);
  EXPECT_NEAR(aggregate_loss(l, mask, LossAggregation::kSequence, 2).item<double>(), (2.0 + 10.0) / 2, kExactPl);
  EXPECT_THROW(parse_loss_aggregation("mean"), std::invalid_argument);
}

TEST(PolicyLosses, PolicyLossAddsTheInLossKl) {
  const torch::Tensor old = pl2({{-1.0, -2.0}}), ref = pl2({{-1.5, -1.0}}), adv = pl2({{1.0, 1.0}}), mask = pl2({{1, 1}});
  torch::Tensor lp = old.clone().requires_grad_(true);
  PolicyLossOptions o;
  o.kl_loss_beta = 0.3;
  const PolicyLoss pl = policy_loss(lp, old, ref, adv, mask, o, 2.0);
  const double k3a = std::exp(-0.5) + 0.5 - 1, k3b = std::exp(1.0) - 1.0 - 1;
  EXPECT_NEAR(pl.loss.item<double>(), (-1 - 1 + 0.3 * (k3a + k3b)) / 2, kExactPl);
  EXPECT_NEAR(pl.kl[0][1].item<double>(), k3b, kExactPl);
}

TEST(PolicyLosses, ApproxKlAndExplainedVariance) {
  const torch::Tensor mask = pl2({{1, 1, 0}});
  EXPECT_NEAR(approx_policy_kl(pl2({{0.1, -0.2, 5}}), pl2({{0, 0, 0}}), mask).item<double>(), 0.5 * (0.01 + 0.04) / 2, kExactPl);
  const torch::Tensor ret = pl2({{1, 3, 99}});
  EXPECT_NEAR(explained_variance(ret, ret, mask), 1.0, kExactPl);
  EXPECT_NEAR(explained_variance(pl2({{2, 2, 0}}), ret, mask), 0.0, kExactPl);  // a constant at the mean explains nothing
}

}  // namespace
