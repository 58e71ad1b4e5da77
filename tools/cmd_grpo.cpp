// `rgemma grpo` (and `rgemma rloo`, the same with rlhf.estimator = rloo): online RL without a value model,
// G samples per prompt from one prompt encoding. Also holds run_online_command, shared with `rgemma ppo`
// (tools/cmd_ppo.cpp): the option set, launcher behaviour and exit codes of the online trainers.
#include "configs/rlhf_options.h"
#include "configs/sections.h"
#include "rlhf/policy_trainer.h"
#include "tools/command.h"
#include "tools/training_launch.h"
#include "trainer/trainer.h"

namespace rg::tools {

int run_online_command(rlhf::PolicyAlgorithm algorithm, const char* estimator, int argc, char** argv) {
  const bool ppo = algorithm == rlhf::PolicyAlgorithm::kPpo;
  config::Options options(
      argv[0], ppo ? "PPO of an SFT policy against a reward model and/or verifiable answers, on a prompt set (rgemma prepare prompts)."
                   : "GRPO / RLOO of an SFT policy against a reward model and/or verifiable answers, on a prompt set (rgemma prepare prompts).");
  trainer::TrainConfig config;
  config.data.micro_batch = ppo ? 8 : 2;  // prompts per rollout chunk
  config.optim.lr = 1e-5, config.optim.warmup_steps = 0, config.optim.decay = trainer::LrDecay::kConstant, config.optim.weight_decay = 0;
  rlhf::RlhfConfig rlhf;
  if (estimator) rlhf.estimator = estimator;  // before binding: the bound value is the key's default
  config::add_train_options(options, &config);
  config::add_online_rlhf_options(options, &rlhf, ppo);
  options.required("train.init_from");
  if (!options.parse(argc, argv)) return 0;
  auto comm = make_training_communicator(options, config);
  const std::string effective = announce_effective_config(options, *comm);
  return run_training_command(argv[0], *comm, [&] { return rlhf::run_policy_training(algorithm, config, rlhf, *comm, effective); });
}

}  // namespace rg::tools

namespace {
int run_grpo(int argc, char** argv) { return rg::tools::run_online_command(rg::rlhf::PolicyAlgorithm::kGrpo, nullptr, argc, argv); }
int run_rloo(int argc, char** argv) { return rg::tools::run_online_command(rg::rlhf::PolicyAlgorithm::kGrpo, "rloo", argc, argv); }
}  // namespace

RG_COMMAND("grpo", "GRPO / RLOO from an SFT policy on prompts: G samples per prompt, no value model (data parallel)", run_grpo);
RG_COMMAND("rloo", "RLOO: rgemma grpo with rlhf.estimator = rloo (leave-one-out baseline)", run_rloo);
