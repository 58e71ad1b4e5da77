// rlhf/losses: the reward, DPO, cDPO and IPO losses and sequence log-probabilities against closed-form
// values computed here independently (std::log / std::exp in double), and their gradients against
// central finite differences. Everything runs in float64 so the bounds are about the formulas, not rounding.
#include "rlhf/losses.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

namespace {

using rg::rlhf::DpoLossType;
using rg::rlhf::DpoOptions;

torch::Tensor d(std::vector<double> v) { return torch::tensor(v, torch::kDouble); }
double softplus(double x) { return std::log1p(std::exp(x)); }  // -logsigmoid(-x)

// float64 closed forms: terms of size O(1) round at ~1e-16; 1e-12 leaves room for log/exp's own error.
constexpr double kExact = 1e-12;

TEST(RewardLoss, EqualRewardsGiveLog2) {
  const torch::Tensor r = d({0.0, 1.5, -3.0});
  const torch::Tensor l = rg::rlhf::reward_pair_loss(r, r);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(l[i].item<double>(), std::log(2.0), kExact);
}

TEST(RewardLoss, ClosedFormWithMarginAndCentering) {
  const double rc = 0.7, rr = -0.4, m = 0.25, c = 0.01;
  const torch::Tensor l = rg::rlhf::reward_pair_loss(d({rc}), d({rr}), d({m}), c);
  // -log(1 / (1 + exp(-(rc - rr - m)))) = log(1 + exp(-(rc - rr - m)))
  EXPECT_NEAR(l.item<double>(), softplus(-(rc - rr - m)) + c * (rc + rr) * (rc + rr), kExact);
  // Large margins stay finite (logsigmoid, not log(sigmoid)).
  const torch::Tensor big = rg::rlhf::reward_pair_loss(d({-200.0}), d({200.0}));
  EXPECT_NEAR(big.item<double>(), 400.0, kExact * 400);
}

TEST(DpoLoss, EqualPolicyAndReferenceGiveLog2ForAnyBetaAndSmoothing) {
  const torch::Tensor lp_c = d({-12.0, -3.5}), lp_r = d({-9.0, -20.0});
  for (double beta : {0.1, 0.5, 2.0}) {
    for (double eps : {0.0, 0.1, 0.3}) {
      DpoOptions o;
      o.beta = beta, o.label_smoothing = eps;
      const torch::Tensor l = rg::rlhf::dpo_pair_loss(lp_c, lp_r, lp_c, lp_r, o);
      for (int i = 0; i < 2; ++i) EXPECT_NEAR(l[i].item<double>(), std::log(2.0), kExact);
    }
  }
}

TEST(DpoLoss, ClosedForms) {
  const double pc = -10.0, pr = -14.0, rc = -11.0, rr = -12.5;
  const double h = (pc - rc) - (pr - rr);  // 1 - (-1.5) = 2.5
  DpoOptions o;
  o.beta = 0.3;
  EXPECT_NEAR(rg::rlhf::dpo_pair_loss(d({pc}), d({pr}), d({rc}), d({rr}), o).item<double>(), softplus(-0.3 * h), kExact);
  o.label_smoothing = 0.2;  // TRL's cDPO: -(1-e) logsig(b h) - e logsig(-b h)
  EXPECT_NEAR(rg::rlhf::dpo_pair_loss(d({pc}), d({pr}), d({rc}), d({rr}), o).item<double>(),
              0.8 * softplus(-0.3 * h) + 0.2 * softplus(0.3 * h), kExact);
  o.label_smoothing = 0, o.loss = DpoLossType::kIpo;  // (h - 1/(2 b))^2
  EXPECT_NEAR(rg::rlhf::dpo_pair_loss(d({pc}), d({pr}), d({rc}), d({rr}), o).item<double>(),
              std::pow(h - 1.0 / 0.6, 2), kExact);
  EXPECT_EQ(rg::rlhf::parse_dpo_loss("ipo"), DpoLossType::kIpo);
  EXPECT_THROW(rg::rlhf::parse_dpo_loss("hinge"), std::invalid_argument);
}

TEST(SequenceLogps, SumsMaskedTargetLogProbabilities) {
  torch::manual_seed(3);
  const torch::Tensor logits = torch::randn({2, 3, 5}, torch::kDouble);
  const torch::Tensor targets = torch::tensor({{1, 4, 0}, {2, 2, 3}}, torch::kLong);
  const torch::Tensor mask = torch::tensor({{0.0, 1.0, 1.0}, {1.0, 0.0, 0.0}}, torch::kDouble);
  const torch::Tensor lp = rg::rlhf::sequence_logps(logits, targets, mask);
  auto logp = [&](int b, int t, int v) {  // log softmax by hand
    double z = 0;
    for (int k = 0; k < 5; ++k) z += std::exp(logits[b][t][k].item<double>());
    return logits[b][t][v].item<double>() - std::log(z);
  };
  EXPECT_NEAR(lp[0].item<double>(), logp(0, 1, 4) + logp(0, 2, 0), kExact);
  EXPECT_NEAR(lp[1].item<double>(), logp(1, 0, 2), kExact);
}

// Central differences of a smooth function in float64: truncation O(h^2 f''') ~ 1e-10 at h = 1e-5 and
// rounding O(1e-16 / h) ~ 1e-11, so 1e-7 is loose yet far below any wrong-sign or wrong-factor error.
void expect_grad_matches(const std::function<torch::Tensor(const torch::Tensor&)>& f, torch::Tensor x) {
  x = x.clone().requires_grad_(true);
  f(x).sum().backward();
  const torch::Tensor g = x.grad().clone();
  const double h = 1e-5;
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < x.numel(); ++i) {
    torch::Tensor xp = x.detach().clone(), xm = x.detach().clone();
    xp.view(-1)[i] += h;
    xm.view(-1)[i] -= h;
    const double fd = (f(xp).sum().item<double>() - f(xm).sum().item<double>()) / (2 * h);
    EXPECT_NEAR(g.view(-1)[i].item<double>(), fd, 1e-7) << "element " << i;
  }
}

TEST(Gradients, MatchFiniteDifferences) {
  const torch::Tensor x = d({0.3, -1.2, 2.0, 0.1, -0.7, 0.9, 1.4, -2.2});  // 2 pairs x 4 inputs
  expect_grad_matches([](const torch::Tensor& v) {
    return rg::rlhf::reward_pair_loss(v.narrow(0, 0, 2), v.narrow(0, 2, 2), d({0.1, 0.0}), 0.05);
  }, x);
  for (DpoLossType type : {DpoLossType::kSigmoid, DpoLossType::kIpo}) {
    DpoOptions o;
    o.beta = 0.7, o.loss = type, o.label_smoothing = type == DpoLossType::kSigmoid ? 0.15 : 0.0;
    expect_grad_matches([&o](const torch::Tensor& v) {
      return rg::rlhf::dpo_pair_loss(v.narrow(0, 0, 2), v.narrow(0, 2, 2), v.narrow(0, 4, 2), v.narrow(0, 6, 2), o);
    }, x);
  }
  torch::manual_seed(5);
  const torch::Tensor targets = torch::tensor({{1, 3}, {0, 2}}, torch::kLong);
  const torch::Tensor mask = torch::tensor({{1.0, 1.0}, {0.0, 1.0}}, torch::kDouble);
  expect_grad_matches([&](const torch::Tensor& v) { return rg::rlhf::sequence_logps(v, targets, mask); },
                      torch::randn({2, 2, 4}, torch::kDouble));
}

}  // namespace
