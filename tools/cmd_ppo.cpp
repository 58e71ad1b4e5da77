// `rgemma ppo`: PPO with a value model, GAE and a KL-shaped reward (fixed or adaptive coefficient); the
// runner is shared with `rgemma grpo` (tools/cmd_grpo.cpp).
#include "rlhf/policy_trainer.h"
#include "tools/command.h"

namespace rg::tools {
int run_online_command(rlhf::PolicyAlgorithm algorithm, const char* estimator, int argc, char** argv);  // tools/cmd_grpo.cpp
}  // namespace rg::tools

namespace {
int run_ppo(int argc, char** argv) { return rg::tools::run_online_command(rg::rlhf::PolicyAlgorithm::kPpo, nullptr, argc, argv); }
}  // namespace

RG_COMMAND("ppo", "PPO from an SFT policy on prompts with a value model and a reward model (data parallel under mpirun)", run_ppo);
