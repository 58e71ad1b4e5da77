// `rgemma dpo`: direct preference optimisation of an SFT policy against its frozen start (reference
// log-probabilities computed once per pair); the runner is shared with `rgemma reward` (cmd_reward.cpp).
#include "rlhf/pair_trainer.h"
#include "tools/command.h"

namespace rg::tools {
int run_pair_command(rlhf::PairTask task, int argc, char** argv);  // tools/cmd_reward.cpp
}  // namespace rg::tools

namespace {
int run_dpo(int argc, char** argv) { return rg::tools::run_pair_command(rg::rlhf::PairTask::kDpo, argc, argv); }
}  // namespace

RG_COMMAND("dpo", "DPO / IPO on preference pairs from an SFT policy (data parallel under mpirun)", run_dpo);
