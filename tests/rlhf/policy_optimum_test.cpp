// PPO and GRPO against a closed-form optimum. The policy is tabular: every one of T tokens is drawn
// independently from pi = softmax(theta) over V tokens; the reference q is the starting policy; a sequence's
// score is sum_t u(y_t). The KL-regularised objective E[sum u] - beta KL(pi || q) then has the optimum
// pi* = q exp(u / beta) / Z per token (Gibbs variational principle), whose mean reward and KL are known
// exactly. Both algorithms run their full update rule from rlhf/policy_losses.h (ppo_targets / group_targets,
// policy_loss, clipped_value_loss: what `rgemma ppo` and `rgemma grpo` call), only the log-probabilities come
// from the table instead of a Griffin: sampling, KL-shaped rewards, GAE with a learned value of the prefix,
// whitening, group normalisation, clipping, several epochs of minibatches, Adam.
//
// A second GRPO test puts the k3 KL in the loss with Dr. GRPO's unscaled advantages: its fixed point is the
// forward-KL optimum, not pi*, which the docs state and this test checks against its own closed form.
#include "rlhf/policy_losses.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <vector>

namespace {

using namespace rg::rlhf;

constexpr int64_t kV = 4, kT = 4;
const std::vector<double> kQ = {0.4, 0.3, 0.2, 0.1};
const std::vector<double> kU = {0.0, 0.5, 1.0, 1.5};

torch::Tensor dv(const std::vector<double>& v) { return torch::tensor(v, torch::kDouble); }

struct PerToken {
  double reward = 0, kl = 0;  // E_pi[u] and KL(pi || q) of one token
};

PerToken measure(const torch::Tensor& pi) {
  const torch::Tensor q = dv(kQ), u = dv(kU);
  return {(pi * u).sum().item<double>(), (pi * (pi / q).log()).sum().item<double>()};
}

// pi* = q exp(u / beta) / Z.
PerToken reverse_kl_optimum(double beta) { return measure(torch::softmax(dv(kQ).log() + dv(kU) / beta, 0)); }

// argmax c E_pi[u] - beta KL(q || pi): stationarity c u_k + beta q_k / pi_k = lambda, so pi_k = beta q_k /
// (lambda - c u_k) with lambda > c max u chosen so that sum pi = 1 (the sum falls monotonically in lambda).
PerToken forward_kl_optimum(double beta, double c) {
  auto total = [&](double lambda) {
    double s = 0;
    for (int64_t k = 0; k < kV; ++k) s += beta * kQ[k] / (lambda - c * kU[k]);
    return s;
  };
  double lo = c * kU[kV - 1] + 1e-12, hi = lo + 1e6;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (total(mid) > 1 ? lo : hi) = mid;
  }
  std::vector<double> pi(kV);
  for (int64_t k = 0; k < kV; ++k) pi[k] = beta * kQ[k] / (0.5 * (lo + hi) - c * kU[k]);
  return measure(dv(pi));
}

struct RunOptions {
  bool ppo = true;
  double beta = 1.0;
  int64_t iterations = 300;
  int64_t batch = 256;          // sequences per rollout batch (GRPO: groups x group)
  int64_t group = 8;            // GRPO
  bool scale_by_std = true;     // GRPO
  double kl_in_loss = 0;        // GRPO: k3 in the loss with this beta (the reward then carries none)
  int64_t epochs = 2, minibatches = 4;
  double lr = 0.05;
  uint64_t seed = 1;
};

// Runs the algorithm and returns the final policy's per-token reward and KL, averaged over the policies of the
// last quarter of the run (iterate averaging removes the step-to-step jitter of a constant-ish step size).
PerToken run(const RunOptions& o) {
  torch::manual_seed(o.seed);
  const torch::Tensor ref_logits = dv(kQ).log();
  torch::Tensor theta = ref_logits.clone().requires_grad_(true);
  // PPO's value model: phi_t + w * (sum of u over the tokens before t). The score is paid on the last token, so
  // the true value of a prefix is that partial sum plus a constant per position; this family holds it (w = 1),
  // which GAE with lambda < 1 needs to be unbiased, as a Griffin value model seeing the prefix would.
  torch::Tensor phi = torch::zeros({kT}, torch::kDouble).requires_grad_(true);
  torch::Tensor w = torch::zeros({1}, torch::kDouble).requires_grad_(true);
  torch::optim::Adam opt({theta, phi, w}, torch::optim::AdamOptions(o.lr));
  const torch::Tensor u = dv(kU);
  const int64_t B = o.batch, mb = B / o.minibatches;
  const torch::Tensor mask = torch::ones({B, kT}, torch::kDouble);
  torch::Tensor pi_sum = torch::zeros({kV}, torch::kDouble);
  int64_t averaged = 0;
  for (int64_t it = 0; it < o.iterations; ++it) {
    // Linear decay to 10% of lr: the late updates are small, so the averaged policy sits at the fixed point.
    const double lr = o.lr * (1.0 - 0.9 * static_cast<double>(it) / static_cast<double>(o.iterations));
    for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
    torch::Tensor y, old_logp, ref_logp, values;
    {
      torch::NoGradGuard no_grad;
      y = torch::multinomial(torch::softmax(theta, 0), B * kT, /*replacement=*/true).view({B, kT});
      old_logp = torch::log_softmax(theta, 0).index({y});
      ref_logp = torch::log_softmax(ref_logits, 0).index({y});
    }
    const torch::Tensor partial = u.index({y}).cumsum(1) - u.index({y});  // (B, T) sum of u before t
    auto value_of = [&](const torch::Tensor& rows) {
      return phi.unsqueeze(0) + w * partial.index_select(0, rows);  // (rows, T)
    };
    {
      torch::NoGradGuard no_grad;
      values = value_of(torch::arange(B, torch::kLong));
    }
    const torch::Tensor scores = u.index({y}).sum(1);  // (B)
    torch::Tensor adv, returns;
    if (o.ppo) {
      const PpoTargets t = ppo_targets(scores, old_logp, ref_logp, values, mask, KlEstimator::kK1, o.beta, 1.0, 0.95);
      adv = t.advantages, returns = t.returns;
    } else {
      const double in_reward = o.kl_in_loss > 0 ? 0.0 : o.beta;
      adv = group_targets(scores, old_logp, ref_logp, mask, o.group, AdvantageEstimator::kGrpo, o.scale_by_std,
                          KlEstimator::kK1, in_reward).advantages;
    }
    PolicyLossOptions po;
    po.clip_eps = 0.2, po.aggregation = LossAggregation::kToken;
    po.kl_loss_beta = o.kl_in_loss, po.kl_loss = KlEstimator::kK3;
    for (int64_t e = 0; e < o.epochs; ++e) {
      const torch::Tensor perm = torch::randperm(B, torch::kLong);
      for (int64_t m = 0; m < o.minibatches; ++m) {
        const torch::Tensor idx = perm.narrow(0, m * mb, mb);
        const torch::Tensor ym = y.index_select(0, idx), mm = mask.index_select(0, idx);
        const torch::Tensor logp = torch::log_softmax(theta, 0).index({ym});
        const double tokens = static_cast<double>(mb * kT);
        torch::Tensor loss = policy_loss(logp, old_logp.index_select(0, idx), ref_logp.index_select(0, idx),
                                         adv.index_select(0, idx), mm, po, tokens).loss;
        if (o.ppo) {
          const torch::Tensor v = value_of(idx);
          const ClippedLoss vl = clipped_value_loss(v, values.index_select(0, idx), returns.index_select(0, idx), 0.2);
          loss = loss + 0.1 * aggregate_loss(vl.loss, mm, LossAggregation::kToken, tokens);
        }
        opt.zero_grad();
        loss.backward();
        opt.step();
      }
    }
    if (it >= o.iterations * 3 / 4) pi_sum += torch::softmax(theta.detach(), 0), ++averaged;
  }
  return measure(pi_sum / static_cast<double>(averaged));
}

// Tolerances. The optimum's per-token reward spans [0, 1.5] and its KL is O(0.1-1). A policy whose logits are
// off by d moves E[u] and KL by O(d); the remaining error is the fixed point's sampling noise: each update
// sees 1,024 tokens, whose advantage-weighted score has relative noise ~1/sqrt(1024) = 3%, damped by the lr decay
// and the averaging over the last 75 policies to well under 1% in the logits. 0.02 absolute on both numbers is
// therefore a loose bound for a correct update, while a wrong sign, a missing KL term or a KL estimator in the
// wrong place moves them by 0.1-1 (without the KL the policy goes to the best token: KL log 10 = 2.3).
constexpr double kTol = 0.02;

TEST(PolicyOptimum, PpoReachesTheKlRegularisedOptimumAndKlFallsAsBetaGrows) {
  double last_kl = 1e9;
  for (double beta : {0.5, 1.0, 2.0}) {
    RunOptions o;
    o.ppo = true, o.beta = beta;
    const PerToken got = run(o), want = reverse_kl_optimum(beta);
    EXPECT_NEAR(got.reward, want.reward, kTol) << "beta " << beta;
    EXPECT_NEAR(got.kl, want.kl, kTol) << "beta " << beta;
    EXPECT_LT(got.kl, last_kl) << "beta " << beta;
    last_kl = got.kl;
  }
}

TEST(PolicyOptimum, GrpoWithTheKlInTheRewardReachesTheSameOptimum) {
  double last_kl = 1e9;
  for (double beta : {0.5, 1.0, 2.0}) {
    RunOptions o;
    o.ppo = false, o.beta = beta;
    const PerToken got = run(o), want = reverse_kl_optimum(beta);
    EXPECT_NEAR(got.reward, want.reward, kTol) << "beta " << beta;
    EXPECT_NEAR(got.kl, want.kl, kTol) << "beta " << beta;
    EXPECT_LT(got.kl, last_kl) << "beta " << beta;
    last_kl = got.kl;
  }
}

// GRPO's k3 in the loss (the DeepSeekMath form) is differentiated through pi without an importance weight:
// its expected gradient in the logits is beta (pi - q), the gradient of beta KL(q || pi), the forward KL. With
// unscaled group advantages (Dr. GRPO) the reward part's expected gradient is (1 - 1/G) grad E[u] (the group
// mean includes the sample itself), so the fixed point maximises (1 - 1/G) E[u] - beta KL(q || pi).
TEST(PolicyOptimum, GrpoWithK3InTheLossReachesTheForwardKlOptimum) {
  RunOptions o;
  o.ppo = false, o.beta = 0.25, o.kl_in_loss = 0.25, o.scale_by_std = false;
  const PerToken got = run(o);
  const PerToken want = forward_kl_optimum(o.beta, 1.0 - 1.0 / static_cast<double>(o.group));
  const PerToken reverse = reverse_kl_optimum(o.beta);
  EXPECT_NEAR(got.reward, want.reward, kTol);
  EXPECT_NEAR(got.kl, want.kl, kTol);
  // The two optima are far enough apart for the test to tell them apart: at beta 0.25, G 8 the forward one has
  // E[u] 1.253, KL 1.174 and pi* has 1.346, 1.399.
  EXPECT_GT(std::abs(want.kl - reverse.kl), 5 * kTol);
}

}  // namespace
