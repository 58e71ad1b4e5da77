// RlhfConfig: the [rlhf] section of `rgemma reward`, `rgemma dpo`, `rgemma ppo` and `rgemma grpo` (bound to
// keys with help text in configs/rlhf_options.cpp; each command gets only its own keys). Defaults follow TRL
// where TRL's are sound; docs/rlhf.md lists the differences.
#pragma once

#include <string>

namespace rg::rlhf {

struct RlhfConfig {
  // reward
  double margin = 0;              // subtracted from r_chosen - r_rejected; a pair's own `margin` field wins
  double center_rewards = 0;      // TRL's center_rewards_coefficient (off by default there too)
  // dpo
  double beta = 0.1;              // TRL's default: strength of the KL anchor to the reference
  std::string loss = "sigmoid";   // sigmoid (DPO) | ipo
  double label_smoothing = 0;     // cDPO: assumed probability that a label is flipped, in [0, 0.5)

  // ppo / grpo (online): rollouts
  int64_t group = 8;              // G samples per prompt (grpo; ppo uses 1)
  int64_t max_new_tokens = 64;
  double temperature = 1.0;       // sampling temperature, also applied to every log-probability
  // rewards: weighted sum of a reward model's score and the built-in verifiable reward
  std::string reward_model;       // reward model folder ("" = none)
  double reward_model_weight = 1.0;
  bool normalize_reward = true;   // (score - saved reward_mean) / saved reward_std
  double reward_clip = 0;         // clip the reward model's score to [-c, c] (0 = off)
  double verifiable_weight = 0;   // weight of the answer-match reward (prompt sets with an `answer` field)
  double missing_stop_penalty = 0;  // subtracted from the score of completions that never stop (TRL missing_eos_penalty)
  // KL to the reference (the starting policy)
  std::string kl_estimator = "k1";  // k1 | k3
  double kl_coef = 0.05;          // beta (ppo: the controller's initial value)
  double kl_target = 0;           // ppo: adaptive controller's per-sequence target (0 = fixed beta)
  double kl_horizon = 10000;      // ppo: the controller's horizon in samples
  std::string kl_in = "reward";   // grpo: reward (k1 in the sequence reward) | loss (the estimator in the loss)
  // advantages and losses
  std::string estimator = "grpo"; // grpo | rloo (rgemma grpo)
  bool scale_rewards = true;      // grpo: divide by the group std (false: Dr. GRPO)
  std::string loss_aggregation = "token";  // token | sequence
  double clip_eps = 0.2;
  double gamma = 1.0, lambda = 0.95;  // ppo: GAE
  double value_clip = 0.2;        // ppo
  double value_coef = 0.1;        // ppo: weight of the value loss (TRL vf_coef)
  std::string value_from;         // ppo: value model folder (a reward model; "" = rlhf.reward_model, else the SFT backbone + new head)
  int64_t epochs = 1;             // passes over each rollout batch
  int64_t minibatches = 1;        // optimizer steps per pass
  int64_t eval_prompts = 32;      // held-out prompts sampled at each evaluation
};

}  // namespace rg::rlhf
