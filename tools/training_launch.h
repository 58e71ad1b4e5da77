// What every training command (pretrain, sft, reward, dpo) does around its loop, written once: the
// communicator that train.comm and the device ask for, the effective configuration printed by rank 0, and
// failures turned into exit codes. One rank alone reports like any command (one line, exit 2 or 1); with
// several, a failing rank ends the whole job instead of leaving the others waiting in a collective.
#pragma once

#include "configs/options.h"
#include "trainer/comm/communicator.h"
#include "trainer/train_config.h"

#include <functional>
#include <memory>
#include <string>

namespace rg::tools {

// MPI moves CPU tensors and NCCL CUDA ones, so the backend follows the device the trainer will pick.
// An impossible train.comm is a configuration error naming the key.
std::unique_ptr<comm::Communicator> make_training_communicator(const config::Options& options,
                                                               const trainer::TrainConfig& config);

// Prints the effective configuration on rank 0 and returns it (INI text, saved as RUN/config.ini).
std::string announce_effective_config(const config::Options& options, const comm::Communicator& comm);

// Runs `loop` and returns its exit code. TrainSetupError exits 2 (ConfigError on one rank), a DataError
// with its own code, anything else 1; on several ranks through comm.abort so that every rank ends.
int run_training_command(const char* command, comm::Communicator& comm, const std::function<int()>& loop);

}  // namespace rg::tools
