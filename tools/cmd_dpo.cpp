// `rgemma dpo`: direct preference optimisation of an SFT policy against its frozen start (reference
// log-probabilities computed once per pair); the runner is shared with `rgemma reward` (cmd_reward.cpp).
#include "tools/command.h"
#include "tools/pair_command.h"

namespace {
int run_dpo(int argc, char** argv) { return rg::tools::run_pair_command(rg::rlhf::PairTask::kDpo, argc, argv); }
}  // namespace

RG_COMMAND("dpo", "DPO / IPO on preference pairs from an SFT policy (data parallel under mpirun)", run_dpo);
