// Set-up pieces every training loop shares (pretrain/SFT in trainer.cpp, reward model and DPO in
// rlhf/pair_trainer.cpp, and the RL loops to come): this rank's device and parameter dtype, the run
// folder, the optimizer settings and the schedule from the config, identical starting weights on every
// rank, the FLOPs MFU is measured against, when a periodic action is due, and a wall clock. Saving and
// resuming are run_checkpoint.h's; evaluation and the step itself are each loop's own.
#pragma once

#include "model/config.h"
#include "trainer/comm/communicator.h"
#include "trainer/schedule.h"
#include "trainer/train_config.h"
#include "trainer/zero_optimizer.h"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <chrono>
#include <iostream>
#include <string>

namespace rg::trainer {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// train.device (auto|cpu|cuda) for this rank: CUDA device local_rank % device count when CUDA is used.
// Throws TrainSetupError when cuda is asked for and no device is available.
torch::Device pick_device(TrainDevice device, const comm::Communicator& comm);

// train.dtype for this device: bfloat16 parameters (with fp32 master weights) when asked, or on CUDA for auto.
// The one statement of this rule: pretrain, sft and the RLHF trainers all call it.
bool use_bf16(TrainDtype dtype, const torch::Device& device);

// Creates the run folder and writes the effective configuration to <out>/config.ini (rank 0), then waits
// for every rank. Collective.
void prepare_run_folder(const std::string& out, const std::string& effective_config, comm::Communicator& comm);

// [optim]'s AdamW and ZeRO settings for ZeroOptimizer, with bf16 parameters when `bf16`.
ZeroConfig zero_config_from(const OptimConfig& optim, bool bf16);

// The learning-rate schedule of [optim] over train.steps, validated (TrainSetupError "[optim] ..." otherwise).
LrSchedule schedule_from(const TrainConfig& config);

// Training FLOPs per token of `model` at rows of seq_len tokens (metrics.h's training_flops_per_token, with
// the attention context capped by the local window).
double model_flops_per_token(const ModelConfig& model, int64_t num_parameters, int64_t seq_len);

// Whether an action repeated every `every` steps (0 = never) is due after update `done` of `total`. The
// last update is left out: the end of the run checkpoints and evaluates anyway.
inline bool due_after(int64_t done, int64_t every, int64_t total) {
  return every > 0 && done % every == 0 && done < total;
}

// Prints one line on rank 0 only.
class RankZeroLog {
 public:
  explicit RankZeroLog(const comm::Communicator& comm) : rank0_(comm.rank() == 0) {}
  void operator()(const std::string& line) const {
    if (rank0_) std::cout << line << std::endl;
  }

 private:
  bool rank0_;
};

// Dense peak FLOP/s used for MFU when train.peak_flops is 0: H100 bf16 on CUDA; on a CPU a rough
// AVX-512 fp32 figure per thread (32 FLOP/cycle at ~2 GHz). Set train.peak_flops for real numbers.
double guess_peak_flops(const torch::Device& device, bool bf16);

// Broadcasts rank 0's parameter values so that every rank starts from identical weights whatever its RNG
// did. Collective; nothing to do on one rank.
void broadcast_parameters(torch::nn::Module& module, comm::Communicator& comm);

}  // namespace rg::trainer
