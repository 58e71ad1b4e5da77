// RG-LRU scan: reference loop, fast CPU kernel, the autograd op that dispatches between them (and to the
// CUDA kernel in rg_lru_scan.cu when built with RG_WITH_CUDA).
//
// Backward of h_t = a_t h_{t-1} + x_t with g_t = dL/dh_t accumulated from the end:
//   g_t = dy_t + a_{t+1} g_{t+1}   (g_{T-1} = dy_{T-1} + dh_last)
//   dx_t = g_t,  da_t = g_t h_{t-1},  dh0 = a_0 g_0.
// The backward recomputes h from (a, x, h0) rather than saving it: the recompute is one cheap pass, and in
// bfloat16 the saved output y would be a rounded h.
#include "model/kernels/rg_lru_scan.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace rg::kernels {

#ifdef RG_WITH_CUDA
// rg_lru_scan_cuda.cpp (ATen wrapper) over the kernels in rg_lru_scan.cu
std::pair<at::Tensor, at::Tensor> cuda_scan_forward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0);
ScanGrads cuda_scan_backward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0, const at::Tensor& dy,
                             const at::Tensor& dh_last);
bool cuda_scan_available() { return true; }
#else
bool cuda_scan_available() { return false; }
#endif

namespace {

// The accumulator (and state) dtype: float32, except float64 inputs stay float64 so that gradients can be
// checked by finite differences.
at::ScalarType acc_dtype(const at::Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

void check_inputs(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0) {
  if (a.dim() != 3 || !a.sizes().equals(x.sizes())) {
    throw std::invalid_argument("rg_lru_scan: a and x must both be (B, T, L); got a " + std::to_string(a.dim()) +
                                "-d and shapes differ or are not 3-d");
  }
  if (a.scalar_type() != x.scalar_type()) throw std::invalid_argument("rg_lru_scan: a and x dtypes differ");
  if (h0.defined() && (h0.dim() != 2 || h0.size(0) != x.size(0) || h0.size(1) != x.size(2))) {
    throw std::invalid_argument("rg_lru_scan: h0 must be (B, L)");
  }
}

ScanImpl resolve(ScanImpl impl, const at::Tensor& x) {
  if (impl == ScanImpl::kAuto) return x.is_cuda() ? ScanImpl::kCuda : ScanImpl::kFast;
  if (impl == ScanImpl::kCuda && !x.is_cuda()) throw std::invalid_argument("rg_lru_scan: cuda scan needs CUDA tensors");
  if (impl == ScanImpl::kFast && x.is_cuda()) throw std::invalid_argument("rg_lru_scan: fast scan is CPU-only");
  return impl;
}

// ---- reference: the official loop over time, in tensor ops -------------------------------------------

std::pair<at::Tensor, at::Tensor> reference_forward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0) {
  const auto acc = acc_dtype(x);
  at::Tensor h = h0.defined() ? h0.to(acc) : at::zeros({x.size(0), x.size(2)}, x.options().dtype(acc));  // (B, L)
  at::Tensor y = at::empty_like(x);                                                                        // (B, T, L)
  for (int64_t t = 0; t < x.size(1); ++t) {
    h = a.select(1, t).to(acc) * h + x.select(1, t).to(acc);
    y.select(1, t).copy_(h);
  }
  return {y, h};
}

ScanGrads reference_backward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0, const at::Tensor& dy,
                             const at::Tensor& dh_last) {
  const auto acc = acc_dtype(x);
  const int64_t B = x.size(0), T = x.size(1), L = x.size(2);
  std::vector<at::Tensor> hs(T + 1);  // hs[t + 1] = h_t, hs[0] = h_{-1}
  hs[0] = h0.defined() ? h0.to(acc) : at::zeros({B, L}, x.options().dtype(acc));
  for (int64_t t = 0; t < T; ++t) hs[t + 1] = a.select(1, t).to(acc) * hs[t] + x.select(1, t).to(acc);
  at::Tensor g = dh_last.defined() ? dh_last.to(acc) : at::zeros({B, L}, x.options().dtype(acc));  // (B, L)
  at::Tensor da = at::empty_like(a), dx = at::empty_like(x);
  for (int64_t t = T - 1; t >= 0; --t) {
    if (dy.defined()) g = g + dy.select(1, t).to(acc);
    dx.select(1, t).copy_(g);
    da.select(1, t).copy_(g * hs[t]);
    g = g * a.select(1, t).to(acc);
  }
  return {da, dx, g};
}

// ---- fast CPU kernel ------------------------------------------------------------------------------------
// Work is split over (batch, block of kBlock channels); within a task the loop runs over time with the
// channel loop innermost, contiguous and independent, so the compiler vectorises it.

constexpr int64_t kBlock = 64;

template <class scalar_t, class acc_t>
void fast_forward_kernel(const scalar_t* a, const scalar_t* x, const acc_t* h0, scalar_t* y, acc_t* h_last,
                         int64_t B, int64_t T, int64_t L) {
  const int64_t blocks = (L + kBlock - 1) / kBlock;
  at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
    acc_t h[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, l0 = (task % blocks) * kBlock, n = std::min(kBlock, L - l0);
      for (int64_t j = 0; j < n; ++j) h[j] = h0 ? h0[b * L + l0 + j] : acc_t(0);
      const int64_t base = b * T * L + l0;
      for (int64_t t = 0; t < T; ++t) {
        const scalar_t* __restrict__ at_ = a + base + t * L;
        const scalar_t* __restrict__ xt = x + base + t * L;
        scalar_t* __restrict__ yt = y + base + t * L;
#pragma GCC ivdep
        for (int64_t j = 0; j < n; ++j) {
          h[j] = static_cast<acc_t>(at_[j]) * h[j] + static_cast<acc_t>(xt[j]);
          yt[j] = static_cast<scalar_t>(h[j]);
        }
      }
      for (int64_t j = 0; j < n; ++j) h_last[b * L + l0 + j] = h[j];
    }
  });
}

template <class scalar_t, class acc_t>
void fast_backward_kernel(const scalar_t* a, const scalar_t* x, const acc_t* h0, const scalar_t* dy,
                          const acc_t* dh_last, scalar_t* da, scalar_t* dx, acc_t* dh0, int64_t B, int64_t T,
                          int64_t L) {
  const int64_t blocks = (L + kBlock - 1) / kBlock;
  at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> hs(static_cast<size_t>((T + 1) * kBlock));  // h_{t-1} for t = 0..T, this block
    acc_t g[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, l0 = (task % blocks) * kBlock, n = std::min(kBlock, L - l0);
      const int64_t base = b * T * L + l0;
      acc_t* __restrict__ h = hs.data();
      for (int64_t j = 0; j < n; ++j) h[j] = h0 ? h0[b * L + l0 + j] : acc_t(0);
      for (int64_t t = 0; t < T; ++t) {
        const acc_t* __restrict__ prev = h + t * kBlock;
        acc_t* __restrict__ cur = h + (t + 1) * kBlock;
        const scalar_t* __restrict__ at_ = a + base + t * L;
        const scalar_t* __restrict__ xt = x + base + t * L;
#pragma GCC ivdep
        for (int64_t j = 0; j < n; ++j) cur[j] = static_cast<acc_t>(at_[j]) * prev[j] + static_cast<acc_t>(xt[j]);
      }
      for (int64_t j = 0; j < n; ++j) g[j] = dh_last ? dh_last[b * L + l0 + j] : acc_t(0);
      for (int64_t t = T - 1; t >= 0; --t) {
        const acc_t* __restrict__ prev = h + t * kBlock;
        const scalar_t* __restrict__ at_ = a + base + t * L;
        const scalar_t* __restrict__ dyt = dy ? dy + base + t * L : nullptr;
        scalar_t* __restrict__ dat = da + base + t * L;
        scalar_t* __restrict__ dxt = dx + base + t * L;
        if (dyt) {
#pragma GCC ivdep
          for (int64_t j = 0; j < n; ++j) g[j] += static_cast<acc_t>(dyt[j]);
        }
#pragma GCC ivdep
        for (int64_t j = 0; j < n; ++j) {
          dxt[j] = static_cast<scalar_t>(g[j]);
          dat[j] = static_cast<scalar_t>(g[j] * prev[j]);
          g[j] *= static_cast<acc_t>(at_[j]);
        }
      }
      for (int64_t j = 0; j < n; ++j) dh0[b * L + l0 + j] = g[j];
    }
  });
}

std::pair<at::Tensor, at::Tensor> fast_forward(const at::Tensor& a_in, const at::Tensor& x_in, const at::Tensor& h0_in) {
  const auto acc = acc_dtype(x_in);
  const at::Tensor a = a_in.contiguous(), x = x_in.contiguous();
  const at::Tensor h0 = h0_in.defined() ? h0_in.to(acc).contiguous() : at::Tensor();
  const int64_t B = x.size(0), T = x.size(1), L = x.size(2);
  at::Tensor y = at::empty_like(x);                            // (B, T, L)
  at::Tensor h_last = at::empty({B, L}, x.options().dtype(acc));  // (B, L)
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "rg_lru_scan_fast_forward", [&] {
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    fast_forward_kernel<scalar_t, acc_t>(a.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                         h0.defined() ? h0.data_ptr<acc_t>() : nullptr, y.data_ptr<scalar_t>(),
                                         h_last.data_ptr<acc_t>(), B, T, L);
  });
  return {y, h_last};
}

ScanGrads fast_backward(const at::Tensor& a_in, const at::Tensor& x_in, const at::Tensor& h0_in,
                        const at::Tensor& dy_in, const at::Tensor& dh_in) {
  const auto acc = acc_dtype(x_in);
  const at::Tensor a = a_in.contiguous(), x = x_in.contiguous();
  const at::Tensor h0 = h0_in.defined() ? h0_in.to(acc).contiguous() : at::Tensor();
  const at::Tensor dy = dy_in.defined() ? dy_in.to(x.scalar_type()).contiguous() : at::Tensor();
  const at::Tensor dh = dh_in.defined() ? dh_in.to(acc).contiguous() : at::Tensor();
  const int64_t B = x.size(0), T = x.size(1), L = x.size(2);
  ScanGrads g{at::empty_like(a), at::empty_like(x), at::empty({B, L}, x.options().dtype(acc))};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, x.scalar_type(), "rg_lru_scan_fast_backward", [&] {
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    fast_backward_kernel<scalar_t, acc_t>(a.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                          h0.defined() ? h0.data_ptr<acc_t>() : nullptr,
                                          dy.defined() ? dy.data_ptr<scalar_t>() : nullptr,
                                          dh.defined() ? dh.data_ptr<acc_t>() : nullptr, g.da.data_ptr<scalar_t>(),
                                          g.dx.data_ptr<scalar_t>(), g.dh0.data_ptr<acc_t>(), B, T, L);
  });
  return g;
}

// ---- autograd ---------------------------------------------------------------------------------------------

struct ScanFunction : public torch::autograd::Function<ScanFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& a,
                                                const at::Tensor& x, const at::Tensor& h0, int64_t impl) {
    RECORD_USER_SCOPE("rg::rg_lru_scan");  // for `rgemma bench step --profile`
    ctx->save_for_backward({a, x, h0});
    ctx->saved_data["impl"] = impl;
    auto [y, h_last] = scan_forward(a, x, h0, static_cast<ScanImpl>(impl));
    return {y, h_last};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    RECORD_USER_SCOPE("rg::rg_lru_scan_backward");
    const auto saved = ctx->get_saved_variables();
    const auto impl = static_cast<ScanImpl>(ctx->saved_data["impl"].toInt());
    ScanGrads g = scan_backward(saved[0], saved[1], saved[2], grads[0], grads[1], impl);
    return {g.da, g.dx, saved[2].defined() ? g.dh0.to(saved[2].scalar_type()) : at::Tensor(), at::Tensor()};
  }
};

}  // namespace

ScanImpl parse_scan_impl(const std::string& name) {
  if (name == "auto") return ScanImpl::kAuto;
  if (name == "reference") return ScanImpl::kReference;
  if (name == "fast") return ScanImpl::kFast;
  if (name == "cuda") return ScanImpl::kCuda;
  throw std::invalid_argument("scan implementation: expected auto, reference, fast or cuda, got '" + name + "'");
}

std::string scan_impl_name(ScanImpl impl) {
  switch (impl) {
    case ScanImpl::kAuto: return "auto";
    case ScanImpl::kReference: return "reference";
    case ScanImpl::kFast: return "fast";
    case ScanImpl::kCuda: return "cuda";
  }
  return "?";
}

std::pair<at::Tensor, at::Tensor> scan_forward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0,
                                               ScanImpl impl) {
  check_inputs(a, x, h0);
  switch (resolve(impl, x)) {
    case ScanImpl::kReference: return reference_forward(a, x, h0);
    case ScanImpl::kFast: return fast_forward(a, x, h0);
    case ScanImpl::kCuda:
#ifdef RG_WITH_CUDA
      return cuda_scan_forward(a, x, h0);
#endif
    default: throw std::runtime_error("rg_lru_scan: this build has no CUDA scan (RG_WITH_CUDA=OFF)");
  }
}

ScanGrads scan_backward(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0, const at::Tensor& dy,
                        const at::Tensor& dh_last, ScanImpl impl) {
  check_inputs(a, x, h0);
  switch (resolve(impl, x)) {
    case ScanImpl::kReference: return reference_backward(a, x, h0, dy, dh_last);
    case ScanImpl::kFast: return fast_backward(a, x, h0, dy, dh_last);
    case ScanImpl::kCuda:
#ifdef RG_WITH_CUDA
      return cuda_scan_backward(a, x, h0, dy, dh_last);
#endif
    default: throw std::runtime_error("rg_lru_scan: this build has no CUDA scan (RG_WITH_CUDA=OFF)");
  }
}

std::pair<at::Tensor, at::Tensor> rg_lru_scan(const at::Tensor& a, const at::Tensor& x, const at::Tensor& h0,
                                              ScanImpl impl) {
  // Custom autograd functions cannot take undefined tensors: a zero initial state stands in for none.
  const at::Tensor state = h0.defined() ? h0 : at::zeros({x.size(0), x.size(2)}, x.options().dtype(acc_dtype(x)));
  auto out = ScanFunction::apply(a, x, state, static_cast<int64_t>(resolve(impl, x)));
  return {out[0], out[1]};
}

}  // namespace rg::kernels
