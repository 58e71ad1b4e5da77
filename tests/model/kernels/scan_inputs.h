// Inputs of the RG-LRU scan tests (CPU and CUDA): decays a in (0, 1) like exp(log_a), with exact zeros on
// ~10% of (b, t) rows where a document starts, random x, and an optional initial state.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace rg::kernels::scan_test_inputs {

struct Inputs {
  torch::Tensor a, x, h0;  // CPU: a, x (B, T, L); h0 (B, L) in the accumulator dtype or undefined
};

inline Inputs make_inputs(int64_t B, int64_t T, int64_t L, torch::Dtype dtype, bool with_h0, uint64_t seed) {
  torch::manual_seed(seed);
  torch::Tensor a = torch::rand({B, T, L}, torch::kDouble) * 0.98 + 0.01;  // (B, T, L)
  const torch::Tensor reset = torch::rand({B, T, 1}, torch::kDouble) < 0.1;
  a = a.masked_fill(reset, 0.0);
  const torch::Tensor x = torch::randn({B, T, L}, torch::kDouble);  // (B, T, L)
  const auto acc = dtype == torch::kDouble ? torch::kDouble : torch::kFloat;
  return {a.to(dtype), x.to(dtype), with_h0 ? torch::randn({B, L}, torch::kDouble).to(acc) : torch::Tensor()};
}

}  // namespace rg::kernels::scan_test_inputs
