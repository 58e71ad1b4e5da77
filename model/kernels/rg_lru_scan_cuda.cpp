// The ATen side of the CUDA scan: cuda_scan_forward / cuda_scan_backward (declared in rg_lru_scan.cpp)
// check and lay out the tensors, then call the raw-pointer launchers of rg_lru_scan.cu on the current
// LibTorch stream. Compiled by the host C++ compiler only with RG_WITH_CUDA, so ATen never meets nvcc.
#include "model/kernels/rg_lru_scan.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace rg::kernels {

namespace cuda_scan {
// Defined in rg_lru_scan.cu. The codes must match its enum; C++ linkage means a changed signature there
// fails to link instead of misreading arguments.
enum class Dtype : int { kFloat32 = 0, kFloat64 = 1, kBFloat16 = 2, kFloat16 = 3 };
bool backward_needs_workspace(Dtype dtype);
cudaError_t launch_forward(Dtype dtype, const void* a, const void* x, const void* h0, void* y, void* h_last,
                           int64_t B, int64_t T, int64_t L, cudaStream_t stream);
cudaError_t launch_backward(Dtype dtype, const void* a, const void* x, const void* h0, const void* dy,
                            const void* dh_last, void* da, void* dx, void* dh0, void* h_work, int64_t B, int64_t T,
                            int64_t L, cudaStream_t stream);
}  // namespace cuda_scan

// rg_lru_scan.cpp declares these two without a header; repeat the declarations so that a drift in either
// signature is a compile error here rather than a link error there.
std::pair<at::Tensor, at::Tensor> cuda_scan_forward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0);
ScanGrads cuda_scan_backward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0, const at::Tensor& dy,
                             const at::Tensor& dh_last);

namespace {

// Same rule as the CPU paths: float32 state, float64 for float64 inputs (finite-difference checks).
at::ScalarType acc_dtype(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

cuda_scan::Dtype kernel_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return cuda_scan::Dtype::kFloat32;
    case at::kDouble: return cuda_scan::Dtype::kFloat64;
    case at::kBFloat16: return cuda_scan::Dtype::kBFloat16;
    case at::kHalf: return cuda_scan::Dtype::kFloat16;
    default: break;
  }
  throw std::invalid_argument(std::string("rg_lru_scan (cuda): unsupported dtype ") + c10::toString(t));
}

// The kernels index raw memory, so every operand must be on x's device with the shape the launcher assumes.
void check_operand(const at::Tensor& t, const at::Tensor& x, at::IntArrayRef shape, const char* name) {
  if (!t.defined()) return;
  if (t.device() != x.device()) {
    throw std::invalid_argument(std::string("rg_lru_scan (cuda): ") + name + " is on " + t.device().str() +
                                ", x on " + x.device().str());
  }
  if (!t.sizes().equals(shape)) throw std::invalid_argument(std::string("rg_lru_scan (cuda): ") + name + " shape");
}

void check_cuda(const at::Tensor& a, const at::Tensor& x) {
  if (!x.is_cuda()) throw std::invalid_argument("rg_lru_scan (cuda): x is not a CUDA tensor");
  check_operand(a, x, x.sizes(), "a");
}

}  // namespace

std::pair<at::Tensor, at::Tensor> cuda_scan_forward(const at::Tensor& a_in, const at::Tensor& x_in,
                                                    const at::Tensor& h0_in) {
  check_cuda(a_in, x_in);
  const int64_t B = x_in.size(0), T = x_in.size(1), L = x_in.size(2);
  check_operand(h0_in, x_in, {B, L}, "h0");
  const c10::cuda::CUDAGuard device_guard(x_in.device());
  const auto acc = acc_dtype(x_in);
  const at::Tensor a = a_in.contiguous(), x = x_in.contiguous();                        // (B, T, L)
  const at::Tensor h0 = h0_in.defined() ? h0_in.to(acc).contiguous() : at::Tensor();  // (B, L)
  at::Tensor y = at::empty({B, T, L}, x.options());                                   // (B, T, L)
  at::Tensor h_last = at::empty({B, L}, x.options().dtype(acc));                      // (B, L)
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
  C10_CUDA_CHECK(cuda_scan::launch_forward(kernel_dtype(x.scalar_type()), a.data_ptr(), x.data_ptr(),
                                           h0.defined() ? h0.data_ptr() : nullptr, y.data_ptr(), h_last.data_ptr(),
                                           B, T, L, stream));
  return {y, h_last};
}

ScanGrads cuda_scan_backward(const at::Tensor& a_in, const at::Tensor& x_in, const at::Tensor& h0_in,
                             const at::Tensor& dy_in, const at::Tensor& dh_in) {
  check_cuda(a_in, x_in);
  const int64_t B = x_in.size(0), T = x_in.size(1), L = x_in.size(2);
  check_operand(h0_in, x_in, {B, L}, "h0");
  check_operand(dy_in, x_in, {B, T, L}, "dy");
  check_operand(dh_in, x_in, {B, L}, "dh_last");
  const c10::cuda::CUDAGuard device_guard(x_in.device());
  const auto acc = acc_dtype(x_in);
  const auto dtype = kernel_dtype(x_in.scalar_type());
  const at::Tensor a = a_in.contiguous(), x = x_in.contiguous();                                  // (B, T, L)
  const at::Tensor h0 = h0_in.defined() ? h0_in.to(acc).contiguous() : at::Tensor();            // (B, L)
  // dy in x's dtype, as the fast CPU path takes it (autograd hands it over in y's dtype anyway).
  const at::Tensor dy = dy_in.defined() ? dy_in.to(x.scalar_type()).contiguous() : at::Tensor();  // (B, T, L)
  const at::Tensor dh = dh_in.defined() ? dh_in.to(acc).contiguous() : at::Tensor();            // (B, L)
  ScanGrads g{at::empty({B, T, L}, a.options()), at::empty({B, T, L}, x.options()),
              at::empty({B, L}, x.options().dtype(acc))};  // da, dx (B, T, L); dh0 (B, L)
  // bfloat16 / half keep the recomputed h in float32 (B, T, L) so that da = g h uses the unrounded state;
  // float / double park it in da itself.
  const at::Tensor h_work =
      cuda_scan::backward_needs_workspace(dtype) ? at::empty({B, T, L}, x.options().dtype(acc)) : at::Tensor();
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
  C10_CUDA_CHECK(cuda_scan::launch_backward(dtype, a.data_ptr(), x.data_ptr(), h0.defined() ? h0.data_ptr() : nullptr,
                                            dy.defined() ? dy.data_ptr() : nullptr,
                                            dh.defined() ? dh.data_ptr() : nullptr, g.da.data_ptr(), g.dx.data_ptr(),
                                            g.dh0.data_ptr(), h_work.defined() ? h_work.data_ptr() : nullptr, B, T,
                                            L, stream));
  return g;
}

}  // namespace rg::kernels
