// run_pair_command: the shared runner of the two pair trainers, `rgemma reward` and `rgemma dpo` (the same
// option set, launcher behaviour and exit codes for both). Defined in tools/cmd_reward.cpp; cmd_dpo.cpp
// calls it with PairTask::kDpo.
#pragma once

#include "rlhf/pair_trainer.h"

namespace rg::tools {

// Parses argv (`--config FILE`, `--section.key=value`), launches the communicator and runs `task`'s
// training loop; returns the exit code (0, 1 runtime, 2 configuration), as run_training_command.
int run_pair_command(rlhf::PairTask task, int argc, char** argv);

}  // namespace rg::tools
