// The online RL loop of `rgemma ppo` and `rgemma grpo` (GRPO and RLOO): per update, each rank samples
// completions for its share of the prompt batch from the fixed-size state (rlhf/rollout.h), scores them (a
// reward model and/or the verifiable answer reward), computes the reference and old log-probabilities (and
// values for PPO), turns them into advantages (rlhf/policy_losses.h), then runs epochs x minibatches of
// clipped-ratio updates through the trainer's ZeroOptimizer. Checkpoints (policy, value, optimizer, KL
// controller, prompt cursor, RNG), stop signals, metrics.jsonl and console progress as the trainer's.
//
//   return rg::rlhf::run_policy_training(PolicyAlgorithm::kGrpo, config, rlhf_config, comm, effective_config);
#pragma once

#include "rlhf/rlhf_config.h"
#include "trainer/comm/communicator.h"
#include "trainer/train_config.h"

#include <string>

namespace rg::rlhf {

enum class PolicyAlgorithm { kPpo, kGrpo };

// Throws trainer::TrainSetupError for unusable settings and inputs (dataset kind, a prompt set without
// answers for the verifiable reward, a reward model with another vocabulary, batch arithmetic),
// std::runtime_error otherwise. Returns 0 when done or stopped by a signal after a checkpoint.
int run_policy_training(PolicyAlgorithm algorithm, const trainer::TrainConfig& config, const RlhfConfig& rlhf,
                        comm::Communicator& comm, const std::string& effective_config);

}  // namespace rg::rlhf
