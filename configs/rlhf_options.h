// [rlhf]: binds rlhf::RlhfConfig to user-facing keys for `rgemma reward` (margin, center_rewards),
// `rgemma dpo` (beta, loss, label_smoothing) and the online commands `rgemma ppo` / `rgemma grpo`
// (add_online_rlhf_options); each command gets only its own keys, so a DPO key given to reward is an
// unknown-key error rather than silently ignored.
#pragma once

#include "configs/options.h"
#include "rlhf/rlhf_config.h"

namespace rg::config {

void add_rlhf_options(Options& options, rlhf::RlhfConfig* rlhf, bool dpo);

// ppo = true: the value-model, GAE and adaptive-KL keys; false (grpo): group, estimator, kl_in, scale_rewards.
// Sets the command's defaults in *rlhf before binding (ppo: k1 in the reward, 4 epochs; grpo: G 8, k3 in the loss).
void add_online_rlhf_options(Options& options, rlhf::RlhfConfig* rlhf, bool ppo);

}  // namespace rg::config
