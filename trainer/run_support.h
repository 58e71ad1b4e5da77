// Set-up pieces every training loop shares (pretrain/SFT in trainer.cpp, reward model and DPO in
// rlhf/pair_trainer.cpp): this rank's device, identical starting weights on every rank, the peak FLOP/s
// that MFU is measured against, and a wall clock.
#pragma once

#include "trainer/comm/communicator.h"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <chrono>
#include <string>

namespace rg::trainer {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// train.device (auto|cpu|cuda) for this rank: CUDA device local_rank % device count when CUDA is used.
// Throws TrainSetupError when cuda is asked for and no device is available.
torch::Device pick_device(const std::string& name, const comm::Communicator& comm);

// Dense peak FLOP/s used for MFU when train.peak_flops is 0: H100 bf16 on CUDA; on a CPU a rough
// AVX-512 fp32 figure per thread (32 FLOP/cycle at ~2 GHz). Set train.peak_flops for real numbers.
double guess_peak_flops(const torch::Device& device, bool bf16);

// Broadcasts rank 0's parameter values so that every rank starts from identical weights whatever its RNG
// did. Collective; nothing to do on one rank.
void broadcast_parameters(torch::nn::Module& module, comm::Communicator& comm);

}  // namespace rg::trainer
