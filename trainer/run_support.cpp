// Set-up pieces shared by the training loops: see run_support.h.
#include "trainer/run_support.h"

#include "trainer/trainer.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

namespace rg::trainer {

torch::Device pick_device(const std::string& name, const comm::Communicator& comm) {
  const bool cuda = torch::cuda::is_available();
  if (name == "cuda" && !cuda) throw TrainSetupError("train.device: cuda requested but no CUDA device is available");
  if (name == "cpu" || !cuda) return torch::kCPU;
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(comm.local_rank() % torch::cuda::device_count()));
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
