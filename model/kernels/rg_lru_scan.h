// The RG-LRU linear scan h_t = a_t * h_{t-1} + x_t (docs/architecture.md §5.2 and 10), as its own autograd op
// with a hand-written backward. Three implementations compute the same recurrence with a float32
// accumulator whatever the activation dtype:
//   kReference  a plain loop over time with tensor ops (the official PyTorch code's loop), the yardstick;
//   kFast       a CPU kernel parallel over (batch x channel blocks), vectorised along channels;
//   kCuda       one CUDA thread per (batch, channel), built with RG_WITH_CUDA.
// Resets are not the scan's business: the caller zeroes a_t where a document starts.
//
//   auto [y, h_last] = rg::kernels::rg_lru_scan(a, x, h0);  // a, x: (B, T, L); h0: (B, L) float32 or {}
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>

namespace rg::kernels {

enum class ScanImpl { kAuto, kReference, kFast, kCuda };

ScanImpl parse_scan_impl(const std::string& name);  // "auto" | "reference" | "fast" | "cuda"
std::string scan_impl_name(ScanImpl impl);

// y (B, T, L) in x's dtype and the final state h_T (B, L) in float32. Differentiable with respect to a, x
// and h0. kAuto picks kCuda for CUDA tensors and kFast otherwise. a and x must share dtype and shape;
// h0 is float32 (B, L), or undefined for a zero initial state.
std::pair<at::Tensor, at::Tensor> rg_lru_scan(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0,
                                              ScanImpl impl = ScanImpl::kAuto);

// The raw kernels, without autograd (exposed for tests and benchmarks).
// Forward: returns (y, h_last).
std::pair<at::Tensor, at::Tensor> scan_forward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0,
                                               ScanImpl impl);
// Backward of the scan given dy (B, T, L) and d h_last (B, L) (either may be undefined): returns
// (da, dx, dh0) in the dtypes of a, x and float32.
struct ScanGrads {
  at::Tensor da, dx, dh0;
};
ScanGrads scan_backward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0, const at::Tensor& dy,
                        const at::Tensor& dh_last, ScanImpl impl);

bool cuda_scan_available();  // compiled with RG_WITH_CUDA

}  // namespace rg::kernels
