// Set-up pieces shared by the training loops: see run_support.h.
#include "trainer/run_support.h"

#include "model/io/atomic_write.h"
#include "trainer/metrics.h"
#include "trainer/trainer.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <algorithm>
#include <filesystem>

namespace rg::trainer {

torch::Device pick_device(TrainDevice device, const comm::Communicator& comm) {
  const bool cuda = torch::cuda::is_available();
  if (device == TrainDevice::kCuda && !cuda) {
    throw TrainSetupError("train.device: cuda requested but no CUDA device is available");
  }
  if (device == TrainDevice::kCpu || !cuda) return torch::kCPU;
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank() % torch::cuda::device_count()));
}

bool use_bf16(TrainDtype dtype, const torch::Device& device) {
  return dtype == TrainDtype::kBFloat16 || (dtype == TrainDtype::kAuto && device.is_cuda());
}

void prepare_run_folder(const std::string& out, const std::string& effective_config, comm::Communicator& comm) {
  if (comm.rank() == 0) {
    std::filesystem::create_directories(out);
    io::write_text_atomically((std::filesystem::path(out) / "config.ini").string(), effective_config);
  }
  comm.barrier();
}

ZeroConfig zero_config_from(const OptimConfig& optim, bool bf16) {
  ZeroConfig zc;
  zc.stage = static_cast<int>(optim.zero_stage), zc.beta1 = optim.beta1, zc.beta2 = optim.beta2;
  zc.eps = optim.eps, zc.weight_decay = optim.weight_decay;
  if (bf16) zc.param_dtype = torch::kBFloat16;
  return zc;
}

LrSchedule schedule_from(const TrainConfig& c) {
  LrSchedule schedule{c.optim.lr, c.optim.warmup_steps, c.train.steps, c.optim.decay, c.optim.min_lr_ratio};
  try {
    schedule.validate();
  } catch (const std::invalid_argument& e) {
    throw TrainSetupError(std::string("[optim] ") + e.what());
  }
  return schedule;
}

double model_flops_per_token(const ModelConfig& mc, int64_t num_parameters, int64_t seq_len) {
  return training_flops_per_token(static_cast<double>(num_parameters), mc.num_blocks_of(BlockType::kAttention),
                                  mc.num_heads * mc.head_dim,
                                  mc.attention_window > 0 ? std::min(mc.attention_window + 1, seq_len) : seq_len);
}

double guess_peak_flops(const torch::Device& device, bool bf16) {
  if (device.is_cuda()) return bf16 ? 989e12 : 67e12;
  return at::get_num_threads() * 64e9;
}

void broadcast_parameters(torch::nn::Module& module, comm::Communicator& comm) {
  if (comm.world_size() == 1) return;
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) {
    torch::Tensor t = p.detach().contiguous();
    comm.broadcast(t, 0);
    p.copy_(t);
  }
}

}  // namespace rg::trainer
