// `rgemma reward`: trains a reward model (SFT backbone + scalar head) on a `prepare preference` dataset,
// data parallel under mpirun like pretrain. Also defines run_pair_command (tools/pair_command.h), shared
// with `rgemma dpo` (tools/cmd_dpo.cpp): the same option set, launcher behaviour and exit codes for both.
#include "configs/rlhf_options.h"
#include "configs/sections.h"
#include "tools/command.h"
#include "tools/pair_command.h"
#include "tools/training_launch.h"
#include "trainer/trainer.h"

namespace rg::tools {

int run_pair_command(rlhf::PairTask task, int argc, char** argv) {
  const bool dpo = task == rlhf::PairTask::kDpo;
  config::Options options(
      argv[0], dpo ? "Direct preference optimisation of an SFT policy on a preference dataset (rgemma prepare preference)."
                   : "Train a reward model (SFT backbone + scalar head) on a preference dataset (rgemma prepare preference).");
  trainer::TrainConfig config;
  config.data.micro_batch = 4;  // pairs: each is two rows
  rlhf::RlhfConfig rlhf;
  config::add_train_options(options, &config);
  config::add_rlhf_options(options, &rlhf, dpo);
  options.required("train.init_from");
  if (!options.parse(argc, argv)) return 0;
  auto comm = make_training_communicator(options, config);
  const std::string effective = announce_effective_config(options, *comm);
  return run_training_command(argv[0], *comm, [&] {
    return rlhf::run_pair_training(task, config, rlhf, *comm, effective);
  });
}

}  // namespace rg::tools

namespace {
int run_reward(int argc, char** argv) { return rg::tools::run_pair_command(rg::rlhf::PairTask::kReward, argc, argv); }
}  // namespace

RG_COMMAND("reward", "train a reward model on preference pairs (data parallel under mpirun)", run_reward);
