// The pair-training loop of `rgemma reward` and `rgemma dpo`: the pretrain loop's shape (Communicator,
// ZeroOptimizer, schedule, NonFiniteGuard, CheckpointWriter with resume, MetricsWriter, stop signals) over
// preference pairs instead of token rows. A pair's chosen and rejected rows always go through the same
// step on the same rank, and the global batch is split over ranks exactly like the Loader splits rows,
// so any number of ranks follows the single-process trajectory.
//
//   return rg::rlhf::run_pair_training(PairTask::kReward, config, rlhf_config, comm, effective_config);
#pragma once

#include "rlhf/rlhf_config.h"
#include "trainer/comm/communicator.h"
#include "trainer/train_config.h"

#include <string>

namespace rg::rlhf {

enum class PairTask { kReward, kDpo };

// Throws trainer::TrainSetupError for unusable settings and inputs (dataset kind, vocabulary, a policy
// folder where a reward model is needed and the reverse, batch arithmetic), std::runtime_error otherwise.
// Returns 0 when done or stopped by a signal after a checkpoint.
int run_pair_training(PairTask task, const trainer::TrainConfig& config, const RlhfConfig& rlhf,
                      comm::Communicator& comm, const std::string& effective_config);

}  // namespace rg::rlhf
