// The online RL estimators and losses (rlhf/policy_losses.h), formulas as the header states them.
#include "rlhf/policy_losses.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace rg::rlhf {

KlEstimator parse_kl_estimator(const std::string& name) {
  if (name == "k1") return KlEstimator::kK1;
  if (name == "k3") return KlEstimator::kK3;
  throw std::invalid_argument("expected k1 or k3, got '" + name + "'");
}

torch::Tensor kl_estimate(const torch::Tensor& logp, const torch::Tensor& ref_logp, KlEstimator estimator) {
  if (estimator == KlEstimator::kK1) return logp - ref_logp;
  const torch::Tensor d = ref_logp - logp;  // log(ref / pi)
  return torch::exp(d) - d - 1;
}

void KlController::update(double kl, int64_t n_steps) {
  if (!(target > 0)) return;
  const double e = std::clamp(kl / target - 1.0, -0.2, 0.2);
  value *= 1.0 + e * static_cast<double>(n_steps) / horizon;
}

torch::Tensor kl_shaped_rewards(const torch::Tensor& scores, const torch::Tensor& kl, const torch::Tensor& mask, double beta) {
  torch::Tensor r = -beta * kl * mask;  // (B, C)
  // The last real column of each row: length - 1.
  const torch::Tensor last = (mask.sum(1).to(torch::kLong) - 1).clamp_min(0).unsqueeze(1);  // (B, 1)
  return r.scatter_add(1, last, scores.to(r.scalar_type()).unsqueeze(1));
}

Gae gae(const torch::Tensor& rewards, const torch::Tensor& values, const torch::Tensor& mask, double gamma, double lambda) {
  const int64_t B = rewards.size(0), C = rewards.size(1);
  const torch::Tensor r = rewards * mask, v = values * mask;
  std::vector<torch::Tensor> adv(C);
  torch::Tensor running = torch::zeros({B}, rewards.options());
  for (int64_t t = C - 1; t >= 0; --t) {
    // Past a row's last token the next value is 0 and nothing is carried back (the episode ended).
    const torch::Tensor m_next = t + 1 < C ? mask.select(1, t + 1) : torch::zeros({B}, rewards.options());
    const torch::Tensor v_next = t + 1 < C ? v.select(1, t + 1) : torch::zeros({B}, rewards.options());
    const torch::Tensor delta = r.select(1, t) + gamma * v_next - v.select(1, t);
    running = (delta + gamma * lambda * running * m_next) * mask.select(1, t);
    adv[t] = running;
  }
  Gae g;
  g.advantages = torch::stack(adv, 1);
  g.returns = (g.advantages + v) * mask;
  return g;
}

torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  return (x * mask).sum() / mask.sum().clamp_min(1);
}

torch::Tensor masked_whiten(const torch::Tensor& x, const torch::Tensor& mask, bool shift_mean) {
  const torch::Tensor n = mask.sum();
  const torch::Tensor mean = masked_mean(x, mask);
  const torch::Tensor centred = (x - mean) * mask;
  // Unbiased: n / (n - 1) times the biased variance (TRL's masked_var(unbiased=True)).
  const torch::Tensor var = (centred * centred).sum() / (n - 1).clamp_min(1);
  torch::Tensor w = centred * torch::rsqrt(var + 1e-8);
  if (!shift_mean) w = w + mean;
  return w * mask;
}

ClippedLoss clipped_policy_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& advantages,
                                double clip_eps) {
  const torch::Tensor ratio = torch::exp(logp - old_logp.detach());
  const torch::Tensor a = advantages.detach();
  const torch::Tensor plain = -a * ratio, clipped = -a * ratio.clamp(1 - clip_eps, 1 + clip_eps);
  ClippedLoss out;
  out.loss = torch::max(plain, clipped);
  out.clipped = (clipped > plain).to(torch::kFloat).detach();
  return out;
}

ClippedLoss clipped_value_loss(const torch::Tensor& values, const torch::Tensor& old_values, const torch::Tensor& returns,
                               double clip) {
  const torch::Tensor old = old_values.detach(), R = returns.detach();
  const torch::Tensor vc = old + (values - old).clamp(-clip, clip);
  const torch::Tensor plain = (values - R).pow(2), clipped = (vc - R).pow(2);
  ClippedLoss out;
  out.loss = 0.5 * torch::max(plain, clipped);
  out.clipped = (clipped > plain).to(torch::kFloat).detach();
  return out;
}

AdvantageEstimator parse_advantage_estimator(const std::string& name) {
  if (name == "grpo") return AdvantageEstimator::kGrpo;
  if (name == "rloo") return AdvantageEstimator::kRloo;
  throw std::invalid_argument("expected grpo or rloo, got '" + name + "'");
}

torch::Tensor group_advantages(const torch::Tensor& scores, int64_t group, AdvantageEstimator estimator, bool scale_by_std) {
  if (group < 1 || scores.numel() % group != 0) {
    throw std::invalid_argument("group_advantages: " + std::to_string(scores.numel()) + " scores are not groups of " +
                                std::to_string(group));
  }
  const torch::Tensor s = scores.reshape({-1, group});  // (N, G)
  if (estimator == AdvantageEstimator::kRloo) {
    if (group < 2) throw std::invalid_argument("group_advantages: rloo needs at least 2 samples per prompt");
    const torch::Tensor others = (s.sum(1, true) - s) / static_cast<double>(group - 1);
    return (s - others).reshape(-1);
  }
  torch::Tensor a = s - s.mean(1, true);
  if (scale_by_std && group > 1) a = a / (s.std(1, /*unbiased=*/true, /*keepdim=*/true) + 1e-4);
  return a.reshape(-1);
}

std::pair<double, double> group_reward_spread(const torch::Tensor& scores, int64_t group) {
  if (group < 2) return {0.0, 1.0};
  const torch::Tensor s = scores.to(torch::kDouble).reshape({-1, group});
  const torch::Tensor std = s.std(1, /*unbiased=*/true);
  const torch::Tensor flat = (s.amax(1) == s.amin(1)).to(torch::kDouble);
  return {std.mean().item<double>(), flat.mean().item<double>()};
}

LossAggregation parse_loss_aggregation(const std::string& name) {
  if (name == "token") return LossAggregation::kToken;
  if (name == "sequence") return LossAggregation::kSequence;
  throw std::invalid_argument("expected token or sequence, got '" + name + "'");
}

torch::Tensor aggregate_loss(const torch::Tensor& per_token, const torch::Tensor& mask, LossAggregation aggregation,
                             double normaliser) {
  const torch::Tensor l = per_token * mask;
  if (aggregation == LossAggregation::kToken) return l.sum() / normaliser;
  return (l.sum(1) / mask.sum(1).clamp_min(1)).sum() / normaliser;
}

PpoTargets ppo_targets(const torch::Tensor& scores, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                       const torch::Tensor& values, const torch::Tensor& mask, KlEstimator kl, double beta,
                       double gamma, double lambda, bool whiten_advantages) {
  PpoTargets t;
  t.kl = kl_estimate(old_logp.detach(), ref_logp.detach(), kl) * mask;
  t.rewards = kl_shaped_rewards(scores.detach(), t.kl, mask, beta);
  Gae g = gae(t.rewards, values.detach(), mask, gamma, lambda);
  t.returns = g.returns;
  t.advantages = whiten_advantages ? masked_whiten(g.advantages, mask) : g.advantages;
  return t;
}

GroupTargets group_targets(const torch::Tensor& scores, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                           const torch::Tensor& mask, int64_t group, AdvantageEstimator estimator, bool scale_by_std,
                           KlEstimator kl, double beta_in_reward) {
  GroupTargets t;
  t.kl = kl_estimate(old_logp.detach(), ref_logp.detach(), kl) * mask;
  t.sequence_rewards = scores.detach().to(mask.scalar_type());
  if (beta_in_reward > 0) t.sequence_rewards = t.sequence_rewards - beta_in_reward * t.kl.sum(1);
  t.advantages = group_advantages(t.sequence_rewards, group, estimator, scale_by_std).unsqueeze(1) * mask;
  return t;
}

PolicyLoss policy_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                       const torch::Tensor& advantages, const torch::Tensor& mask, const PolicyLossOptions& o,
                       double normaliser) {
  ClippedLoss c = clipped_policy_loss(logp, old_logp, advantages, o.clip_eps);
  torch::Tensor per_token = c.loss;
  PolicyLoss out;
  if (o.kl_loss_beta > 0) {
    const torch::Tensor kl = kl_estimate(logp, ref_logp.detach(), o.kl_loss);
    per_token = per_token + o.kl_loss_beta * kl;
    out.kl = kl.detach() * mask;
  }
  out.loss = aggregate_loss(per_token, mask, o.aggregation, normaliser);
  out.clipped = c.clipped * mask;
  return out;
}

torch::Tensor approx_policy_kl(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& mask) {
  const torch::Tensor d = (logp - old_logp).detach();
  return 0.5 * masked_mean(d * d, mask);
}

double explained_variance(const torch::Tensor& values, const torch::Tensor& returns, const torch::Tensor& mask) {
  const torch::Tensor m = mask.to(torch::kDouble), v = values.detach().to(torch::kDouble), r = returns.detach().to(torch::kDouble);
  auto var = [&m](const torch::Tensor& x) {
    const torch::Tensor mean = masked_mean(x, m);
    return masked_mean((x - mean).pow(2), m).item<double>();
  };
  const double vr = var(r);
  return vr > 0 ? 1.0 - var(r - v) / vr : 0.0;
}

}  // namespace rg::rlhf
