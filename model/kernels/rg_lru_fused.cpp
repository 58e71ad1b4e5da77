// Fused RG-LRU: forward and backward each a pass over (batch x 64-channel blocks) in float32 (float64 for
// float64 inputs). Autograd keeps only the inputs; the backward recomputes h and the gates of one block of
// channels into per-thread buffers, then runs the reverse pass from them.
//
// Per element, with sp = softplus(a_param), gx = sigmoid(zx), ga = sigmoid(za):
//   log_a = -8 ga sp,  a = exp(log_a),  m = sqrt(1 - exp(2 log_a))   (a = 0, m = 1 where reset)
//   xn = x gx m,  h_t = a h_{t-1} + xn
// Backward with g = dL/dh_t (accumulated from the end, g <- g a after each step):
//   dx = g gx m,  dzx = g x m gx (1 - gx)
//   dlog_a = g h_{t-1} a + g x gx * sqrt'(1 - a^2) * (-2 a^2),  sqrt'(u) = 1 / (2 sqrt(max(u, 1/(4 * 1000^2))))
//   dza = dlog_a (-8 sp) ga (1 - ga),  da_param = sum over (B, T) of dlog_a (-8 ga) sigmoid(a_param)
// In bfloat16, a and xn are rounded to the activation dtype before the float32 scan, as the reference does.
#include "model/kernels/rg_lru_fused.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace rg::kernels {
namespace {

constexpr int64_t kBlock = 64;
constexpr double kMinSqrtInput = 1.0 / (4.0 * 1000.0 * 1000.0);  // sqrt's derivative clipped at 1000

template <class acc_t>
inline acc_t sigmoid(acc_t z) { return acc_t(1) / (acc_t(1) + std::exp(-z)); }
template <class acc_t>
inline acc_t softplus(acc_t z) { return z > acc_t(20) ? z : std::log1p(std::exp(z)); }

// Rounds through the activation dtype (a no-op for float and double).
template <class scalar_t, class acc_t>
inline acc_t round_to(acc_t v) { return static_cast<acc_t>(static_cast<scalar_t>(v)); }

template <class scalar_t, class acc_t>
void forward_kernel(const scalar_t* x, const scalar_t* zx, const scalar_t* za, const scalar_t* p, const bool* reset,
                    const acc_t* h0, scalar_t* y, acc_t* h_last, int64_t B, int64_t T, int64_t L) {
  const int64_t blocks = (L + kBlock - 1) / kBlock;
  at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
    acc_t h[kBlock], sp[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, l0 = (task % blocks) * kBlock, n = std::min(kBlock, L - l0);
      for (int64_t j = 0; j < n; ++j) {
        h[j] = h0 ? h0[b * L + l0 + j] : acc_t(0);
        sp[j] = softplus<acc_t>(static_cast<acc_t>(p[l0 + j]));
      }
      for (int64_t t = 0; t < T; ++t) {
        const int64_t o = (b * T + t) * L + l0;
        const bool r = reset[b * T + t];
        for (int64_t j = 0; j < n; ++j) {
          const acc_t gx = sigmoid<acc_t>(static_cast<acc_t>(zx[o + j]));
          const acc_t ga = sigmoid<acc_t>(static_cast<acc_t>(za[o + j]));
          const acc_t log_a = acc_t(-8) * ga * sp[j];
          const acc_t a = r ? acc_t(0) : round_to<scalar_t>(std::exp(log_a));
          const acc_t m = r ? acc_t(1) : std::sqrt(acc_t(1) - std::exp(acc_t(2) * log_a));
          const acc_t xn = round_to<scalar_t>(static_cast<acc_t>(x[o + j]) * gx * m);
          h[j] = a * h[j] + xn;
          y[o + j] = static_cast<scalar_t>(h[j]);
        }
      }
      for (int64_t j = 0; j < n; ++j) h_last[b * L + l0 + j] = h[j];
    }
  });
}

template <class scalar_t, class acc_t>
void backward_kernel(const scalar_t* x, const scalar_t* zx, const scalar_t* za, const scalar_t* p, const bool* reset,
                     const acc_t* h0, const scalar_t* dy, const acc_t* dh_last, scalar_t* dx, scalar_t* dzx,
                     scalar_t* dza, acc_t* dp_partial /* (B, L) */, acc_t* dh0, int64_t B, int64_t T, int64_t L) {
  const int64_t blocks = (L + kBlock - 1) / kBlock;
  at::parallel_for(0, B * blocks, 1, [&](int64_t begin, int64_t end) {
    // Per task, for every step: h_{t-1} and the gate values of the forward, computed once in the
    // recompute pass so that the reverse pass needs no transcendental function.
    std::vector<acc_t> hs(static_cast<size_t>((T + 1) * kBlock));  // hs[t] = h_{t-1}
    std::vector<acc_t> gxs(static_cast<size_t>(T * kBlock)), gas(gxs.size()), as(gxs.size()), asqs(gxs.size()),
        ms(gxs.size());
    acc_t g[kBlock], sp[kBlock], sig_p[kBlock], dsp[kBlock];
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, l0 = (task % blocks) * kBlock, n = std::min(kBlock, L - l0);
      for (int64_t j = 0; j < n; ++j) {
        const acc_t pj = static_cast<acc_t>(p[l0 + j]);
        sp[j] = softplus<acc_t>(pj), sig_p[j] = sigmoid<acc_t>(pj), dsp[j] = 0;
        hs[j] = h0 ? h0[b * L + l0 + j] : acc_t(0);
        g[j] = dh_last ? dh_last[b * L + l0 + j] : acc_t(0);
      }
      for (int64_t t = 0; t < T; ++t) {  // recompute h and keep the gates
        const int64_t o = (b * T + t) * L + l0, k = t * kBlock;
        const bool r = reset[b * T + t];
        const acc_t* prev = hs.data() + t * kBlock;
        acc_t* cur = hs.data() + (t + 1) * kBlock;
        for (int64_t j = 0; j < n; ++j) {
          const acc_t gx = sigmoid<acc_t>(static_cast<acc_t>(zx[o + j]));
          const acc_t ga = sigmoid<acc_t>(static_cast<acc_t>(za[o + j]));
          const acc_t log_a = acc_t(-8) * ga * sp[j];
          const acc_t a = r ? acc_t(0) : std::exp(log_a);
          const acc_t a_sq = r ? acc_t(0) : std::exp(acc_t(2) * log_a);
          const acc_t m = r ? acc_t(1) : std::sqrt(acc_t(1) - a_sq);
          gxs[k + j] = gx, gas[k + j] = ga, as[k + j] = a, asqs[k + j] = a_sq, ms[k + j] = m;
          cur[j] = round_to<scalar_t>(a) * prev[j] + round_to<scalar_t>(static_cast<acc_t>(x[o + j]) * gx * m);
        }
      }
      for (int64_t t = T - 1; t >= 0; --t) {
        const int64_t o = (b * T + t) * L + l0, k = t * kBlock;
        const bool r = reset[b * T + t];
        const acc_t* prev = hs.data() + t * kBlock;
        for (int64_t j = 0; j < n; ++j) {
          if (dy) g[j] += static_cast<acc_t>(dy[o + j]);
          const acc_t xv = static_cast<acc_t>(x[o + j]);
          const acc_t gx = gxs[k + j], ga = gas[k + j], a = as[k + j], a_sq = asqs[k + j], m = ms[k + j];
          dx[o + j] = static_cast<scalar_t>(g[j] * gx * m);
          dzx[o + j] = static_cast<scalar_t>(g[j] * xv * m * gx * (acc_t(1) - gx));
          if (r) {
            dza[o + j] = static_cast<scalar_t>(0);
          } else {
            // sqrt's derivative at 1 - a^2, clipped at 1000: the same sqrt as m unless the input is floored.
            const acc_t u = acc_t(1) - a_sq;
            const acc_t root = u > static_cast<acc_t>(kMinSqrtInput) ? m : std::sqrt(static_cast<acc_t>(kMinSqrtInput));
            const acc_t dlog_a = g[j] * prev[j] * a + g[j] * xv * gx / (acc_t(2) * root) * (acc_t(-2) * a_sq);
            dza[o + j] = static_cast<scalar_t>(dlog_a * acc_t(-8) * sp[j] * ga * (acc_t(1) - ga));
            dsp[j] += dlog_a * acc_t(-8) * ga;
          }
          g[j] *= r ? acc_t(0) : round_to<scalar_t>(a);
        }
      }
      for (int64_t j = 0; j < n; ++j) {
        dh0[b * L + l0 + j] = g[j];
        dp_partial[b * L + l0 + j] = dsp[j] * sig_p[j];
      }
    }
  });
}

void check(const at::Tensor& x, const at::Tensor& zx, const at::Tensor& za, const at::Tensor& p,
           const at::Tensor& reset, const at::Tensor& h0) {
  if (x.dim() != 3 || !zx.sizes().equals(x.sizes()) || !za.sizes().equals(x.sizes())) {
    throw std::invalid_argument("rg_lru_fused: x and both gate inputs must be (B, T, L) of one shape");
  }
  if (p.dim() != 1 || p.size(0) != x.size(2)) throw std::invalid_argument("rg_lru_fused: a_param must be (L)");
  if (reset.dim() != 2 || reset.size(0) != x.size(0) || reset.size(1) != x.size(1)) {
    throw std::invalid_argument("rg_lru_fused: reset must be (B, T)");
  }
  if (h0.defined() && (h0.dim() != 2 || h0.size(0) != x.size(0) || h0.size(1) != x.size(2))) {
    throw std::invalid_argument("rg_lru_fused: h0 must be (B, L)");
  }
  if (x.is_cuda()) throw std::invalid_argument("rg_lru_fused: CPU tensors only");
}

at::ScalarType acc_of(const at::Tensor& x) { return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat; }

struct FusedFunction : public torch::autograd::Function<FusedFunction> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x_in,
                                                const at::Tensor& zx_in, const at::Tensor& za_in,
                                                const at::Tensor& p_in, const at::Tensor& reset_in,
                                                const at::Tensor& h0_in) {
    RECORD_USER_SCOPE("rg::rg_lru_fused");  // for `rgemma bench step --profile`
    const auto dtype = x_in.scalar_type();
    const at::Tensor x = x_in.contiguous(), zx = zx_in.to(dtype).contiguous(), za = za_in.to(dtype).contiguous();
    const at::Tensor p = p_in.to(dtype).contiguous(), reset = reset_in.to(at::kBool).contiguous();
    const at::Tensor h0 = h0_in.to(acc_of(x)).contiguous();
    const int64_t B = x.size(0), T = x.size(1), L = x.size(2);
    at::Tensor y = at::empty_like(x), h_last = at::empty({B, L}, x.options().dtype(acc_of(x)));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "rg_lru_fused_forward", [&] {
      using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
      forward_kernel<scalar_t, acc_t>(x.data_ptr<scalar_t>(), zx.data_ptr<scalar_t>(), za.data_ptr<scalar_t>(),
                                      p.data_ptr<scalar_t>(), reset.data_ptr<bool>(), h0.data_ptr<acc_t>(),
                                      y.data_ptr<scalar_t>(), h_last.data_ptr<acc_t>(), B, T, L);
    });
    ctx->save_for_backward({x, zx, za, p, reset, h0});
    ctx->saved_data["p_dtype"] = static_cast<int64_t>(p_in.scalar_type());
    ctx->saved_data["h0_dtype"] = static_cast<int64_t>(h0_in.scalar_type());
    return {y, h_last};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    RECORD_USER_SCOPE("rg::rg_lru_fused_backward");
    const auto s = ctx->get_saved_variables();
    const at::Tensor &x = s[0], &zx = s[1], &za = s[2], &p = s[3], &reset = s[4], &h0 = s[5];
    const auto dtype = x.scalar_type();
    const at::Tensor dy = grads[0].defined() ? grads[0].to(dtype).contiguous() : at::Tensor();
    const at::Tensor dh = grads[1].defined() ? grads[1].to(acc_of(x)).contiguous() : at::Tensor();
    const int64_t B = x.size(0), T = x.size(1), L = x.size(2);
    at::Tensor dx = at::empty_like(x), dzx = at::empty_like(x), dza = at::empty_like(x);
    at::Tensor dp_partial = at::empty({B, L}, x.options().dtype(acc_of(x))), dh0 = at::empty_like(dp_partial);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "rg_lru_fused_backward", [&] {
      using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
      backward_kernel<scalar_t, acc_t>(x.data_ptr<scalar_t>(), zx.data_ptr<scalar_t>(), za.data_ptr<scalar_t>(),
                                       p.data_ptr<scalar_t>(), reset.data_ptr<bool>(), h0.data_ptr<acc_t>(),
                                       dy.defined() ? dy.data_ptr<scalar_t>() : nullptr,
                                       dh.defined() ? dh.data_ptr<acc_t>() : nullptr, dx.data_ptr<scalar_t>(),
                                       dzx.data_ptr<scalar_t>(), dza.data_ptr<scalar_t>(), dp_partial.data_ptr<acc_t>(),
                                       dh0.data_ptr<acc_t>(), B, T, L);
    });
    const auto p_dtype = static_cast<at::ScalarType>(ctx->saved_data["p_dtype"].toInt());
    const auto h0_dtype = static_cast<at::ScalarType>(ctx->saved_data["h0_dtype"].toInt());
    return {dx, dzx, dza, dp_partial.sum(0).to(p_dtype), at::Tensor(), dh0.to(h0_dtype)};
  }
};

}  // namespace

std::pair<at::Tensor, at::Tensor> rg_lru_fused(const at::Tensor& x, const at::Tensor& gate_x_pre,
                                               const at::Tensor& gate_a_pre, const at::Tensor& a_param,
                                               const at::Tensor& reset, const at::Tensor& h0) {
  check(x, gate_x_pre, gate_a_pre, a_param, reset, h0);
  // Custom autograd functions cannot take undefined tensors: a zero initial state stands in for none.
  const at::Tensor state = h0.defined() ? h0 : at::zeros({x.size(0), x.size(2)}, x.options().dtype(acc_of(x)));
  auto out = FusedFunction::apply(x, gate_x_pre, gate_a_pre, a_param, reset, state);
  return {out[0], out[1]};
}

}  // namespace rg::kernels
