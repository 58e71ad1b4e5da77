// Online RL's estimators and losses as plain tensor functions (PPO, GRPO, RLOO), used by rlhf/policy_trainer.cpp
// and by the closed-form tests. Layout: B completion rows, C completion-aligned columns (rlhf/rollout.h), mask
// (B, C) float with 1 on real completion tokens. Every function is written so that masked entries never
// influence a real one.
//
//   torch::Tensor kl = kl_estimate(logp, ref_logp, KlEstimator::kK1);       // (B, C)
//   Gae g = gae(kl_shaped_rewards(scores, kl, mask, beta), values, mask, 1.0, 0.95);
//   ClippedLoss pl = clipped_policy_loss(new_logp, old_logp, masked_whiten(g.advantages, mask), 0.2);
//   torch::Tensor loss = aggregate_loss(pl.loss, mask, LossAggregation::kToken, global_tokens);
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>

namespace rg::rlhf {

// Per-token estimators of KL(pi || ref) from samples of pi (Schulman, "Approximating KL divergence", 2020):
//   k1 = log pi - log ref                  unbiased, can be negative
//   k3 = exp(ref - pi) - (ref - pi) - 1    unbiased, always >= 0, lower variance (GRPO's choice)
enum class KlEstimator { kK1, kK3 };
KlEstimator parse_kl_estimator(const std::string& name);  // "k1" | "k3"; throws std::invalid_argument otherwise
torch::Tensor kl_estimate(const torch::Tensor& logp, const torch::Tensor& ref_logp, KlEstimator estimator);

// The KL coefficient: fixed (target <= 0) or Ziegler et al.'s proportional controller (TRL's
// AdaptiveKLController): e = clip(kl / target - 1, -0.2, 0.2); value *= 1 + e * n_steps / horizon.
struct KlController {
  double value = 0.05;
  double target = 0;       // per-sequence KL target; <= 0 keeps value fixed
  double horizon = 10000;  // in samples (TRL counts n_steps as the rollout batch size)
  void update(double kl, int64_t n_steps);
};

// PPO's per-token reward: -beta * kl everywhere, plus the sequence's score on its last real token.
// scores (B), kl (B, C), mask (B, C) -> (B, C).
torch::Tensor kl_shaped_rewards(const torch::Tensor& scores, const torch::Tensor& kl, const torch::Tensor& mask, double beta);

// Generalised advantage estimation (Schulman et al. 2016) per row over its real tokens, terminal after the
// last (V = 0 there): delta_t = r_t + gamma V_{t+1} - V_t, A_t = delta_t + gamma lambda A_{t+1},
// returns = A + V. All (B, C); zero where mask is 0.
struct Gae {
  torch::Tensor advantages, returns;
};
Gae gae(const torch::Tensor& rewards, const torch::Tensor& values, const torch::Tensor& mask, double gamma, double lambda);

// Mean over mask; (x - mean) / sqrt(var + 1e-8) with the unbiased variance (TRL's masked_whiten), the mean
// added back when shift_mean is false. Zero where mask is 0.
torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask);
torch::Tensor masked_whiten(const torch::Tensor& x, const torch::Tensor& mask, bool shift_mean = true);

// PPO's clipped surrogate per token: max(-A r, -A clip(r, 1 - eps, 1 + eps)), r = exp(logp - old_logp);
// `clipped` is 1 where the clipped branch is the larger (the clip fraction's numerator).
// Value loss: 0.5 max((v - R)^2, (clip(v, v_old - c, v_old + c) - R)^2).
struct ClippedLoss {
  torch::Tensor loss;     // (B, C), carries the graph of logp / values
  torch::Tensor clipped;  // (B, C) float, detached
};
ClippedLoss clipped_policy_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& advantages,
                                double clip_eps);
ClippedLoss clipped_value_loss(const torch::Tensor& values, const torch::Tensor& old_values, const torch::Tensor& returns,
                               double clip);

// Advantages from G samples per prompt (rows p * G + g), no value model:
//   grpo: (r - mean_group) / (std_group + 1e-4), std unbiased (TRL's GRPOTrainer; scale_by_std = false
//         gives Dr. GRPO's r - mean_group)
//   rloo: r - mean of the other G - 1 rewards of the group (Ahmadian et al. 2024), G >= 2
enum class AdvantageEstimator { kGrpo, kRloo };
AdvantageEstimator parse_advantage_estimator(const std::string& name);  // "grpo" | "rloo"
torch::Tensor group_advantages(const torch::Tensor& scores, int64_t group, AdvantageEstimator estimator,
                               bool scale_by_std = true);
// Within-group reward spread: (mean over groups of the unbiased std, share of groups whose rewards are all equal).
std::pair<double, double> group_reward_spread(const torch::Tensor& scores, int64_t group);

// The loss of a batch from per-token losses, divided by `normaliser` so that ranks and micro-batches sum to
// the global mean:
//   token:    sum_b,t l * m / normaliser                 normaliser = the global batch's completion tokens
//   sequence: sum_b (sum_t l * m / length_b) / normaliser normaliser = the global batch's sequences
// Token weights every token alike (long answers count more, DAPO/Dr. GRPO); sequence weights every sample
// alike (the GRPO paper's 1/|o_i|, which favours long wrong answers less than it should).
enum class LossAggregation { kToken, kSequence };
LossAggregation parse_loss_aggregation(const std::string& name);  // "token" | "sequence"
torch::Tensor aggregate_loss(const torch::Tensor& per_token, const torch::Tensor& mask, LossAggregation aggregation,
                             double normaliser);

// ---- the update rules the commands apply (and the closed-form tests exercise) -------------------------------

// PPO's targets for one rollout batch: per-token KL to the reference (estimator `kl`) folded into the
// rewards with coefficient beta, GAE, and advantages whitened over `mask`.
struct PpoTargets {
  torch::Tensor kl, rewards, advantages, returns;  // (B, C)
};
PpoTargets ppo_targets(const torch::Tensor& scores, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                       const torch::Tensor& values, const torch::Tensor& mask, KlEstimator kl, double beta,
                       double gamma, double lambda, bool whiten_advantages = true);

// GRPO / RLOO's per-token advantages: the sequence's group advantage on every token. With beta_in_reward > 0
// the sequence reward is score - beta * sum_t k1 (the KL in the reward); else the KL goes in the loss.
struct GroupTargets {
  torch::Tensor kl;                 // (B, C) estimator `kl` of the reference KL (for the loss and metrics)
  torch::Tensor sequence_rewards;   // (B) what the group advantages were computed from
  torch::Tensor advantages;         // (B, C)
};
GroupTargets group_targets(const torch::Tensor& scores, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                           const torch::Tensor& mask, int64_t group, AdvantageEstimator estimator, bool scale_by_std,
                           KlEstimator kl, double beta_in_reward);

// The policy loss of one micro-batch: clipped surrogate + kl_loss_beta * estimator(logp, ref) per token,
// aggregated over tokens or sequences and divided by the global normaliser (see aggregate_loss).
struct PolicyLossOptions {
  double clip_eps = 0.2;
  LossAggregation aggregation = LossAggregation::kToken;
  double kl_loss_beta = 0;            // GRPO's beta when the KL is in the loss (0: none)
  KlEstimator kl_loss = KlEstimator::kK3;
};
struct PolicyLoss {
  torch::Tensor loss;                  // scalar with the graph
  torch::Tensor clipped;               // (B, C) clip indicator
  torch::Tensor kl;                    // (B, C) the in-loss KL estimate, detached (undefined when beta = 0)
};
PolicyLoss policy_loss(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& ref_logp,
                       const torch::Tensor& advantages, const torch::Tensor& mask, const PolicyLossOptions& options,
                       double normaliser);

// 0.5 mean((logp - old_logp)^2) over mask: the approximate KL between successive policies (TRL's approxkl).
torch::Tensor approx_policy_kl(const torch::Tensor& logp, const torch::Tensor& old_logp, const torch::Tensor& mask);
// 1 - var(returns - values) / var(returns) over mask (1: values predict returns perfectly; <= 0: no better than a constant).
double explained_variance(const torch::Tensor& values, const torch::Tensor& returns, const torch::Tensor& mask);

}  // namespace rg::rlhf
