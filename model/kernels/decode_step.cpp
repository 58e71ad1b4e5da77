// Fused one-token decode kernels (see decode_step.h). The recurrent step runs one task per (row, head): the
// gates are block-diagonal, so a head's channels need nothing from other heads, and a batch of one still
// spreads over the cores. Per channel l of head h, with K conv taps and sp = softplus(a_param):
//   c_l  = b_l + sum_k w_{l,k} [state_{k}, u]_l                       (taps of a new document are zero)
//   zx   = c_h . Wx_h + bx_h,  za = c_h . Wa_h + ba_h                 (the head's block of the gates)
//   a    = exp(-8 sigmoid(za) sp),  m = sqrt(1 - a^2)  (a = 0, m = 1 at a document start)
//   h    = a h + c sigmoid(zx) m,   out = h * gelu_tanh(y_pre)
// then the conv state shifts by one tap in place. Same arithmetic as layers.cpp / rg_lru_fused.cpp.
#include "model/kernels/decode_step.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace rg::kernels {
namespace {

template <class scalar_t>
using decode_acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;

// Rounds through the activation dtype where the op-by-op path materialises a tensor (no-op in float32/64).
template <class scalar_t, class acc_t>
inline acc_t decode_round(acc_t v) { return static_cast<acc_t>(static_cast<scalar_t>(v)); }

template <class acc_t>
inline acc_t decode_sigmoid(acc_t z) { return acc_t(1) / (acc_t(1) + std::exp(-z)); }

template <class acc_t>
inline acc_t decode_gelu_tanh(acc_t x) {  // at::gelu(x, "tanh")
  const acc_t beta = acc_t(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = acc_t(0.044715);
  return acc_t(0.5) * x * (acc_t(1) + std::tanh(beta * (x + kappa * x * x * x)));
}

template <class scalar_t>
void recurrent_step_kernel(const at::Tensor& u_t, const at::Tensor& y_t, const bool* new_doc, at::Tensor& conv_t,
                           at::Tensor& h_t, const RecurrentStepParams& p, at::Tensor& out_t) {
  using acc_t = decode_acc_t<scalar_t>;
  const int64_t B = u_t.size(0), L = u_t.size(1), taps = conv_t.size(1), K = taps + 1;
  const int64_t H = p.input_gate_weight.size(0), bs = L / H;
  const scalar_t* u = u_t.data_ptr<scalar_t>();
  const scalar_t* y = y_t.data_ptr<scalar_t>();
  scalar_t* conv = conv_t.data_ptr<scalar_t>();
  acc_t* h = h_t.data_ptr<acc_t>();
  scalar_t* out = out_t.data_ptr<scalar_t>();
  const scalar_t* cw = p.conv_weight.data_ptr<scalar_t>();  // (L, 1, K)
  const scalar_t* cb = p.conv_bias.data_ptr<scalar_t>();
  const scalar_t* wx = p.input_gate_weight.data_ptr<scalar_t>();  // (H, bs, bs): in, out
  const scalar_t* bx = p.input_gate_bias.data_ptr<scalar_t>();
  const scalar_t* wa = p.recurrent_gate_weight.data_ptr<scalar_t>();
  const scalar_t* ba = p.recurrent_gate_bias.data_ptr<scalar_t>();
  const scalar_t* ap = p.recurrent_param.data_ptr<scalar_t>();
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> c(bs), zx(bs), za(bs);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / H, head = task % H, l0 = head * bs;
      const bool fresh = new_doc[b];
      scalar_t* st = conv + b * taps * L;  // (K-1, L) of row b, oldest tap first
      // Conv1D: bias, then the current input, then earlier taps newest first (the op-by-op order).
      for (int64_t j = 0; j < bs; ++j) {
        const int64_t l = l0 + j;
        const scalar_t* w = cw + l * K;
        acc_t acc = static_cast<acc_t>(cb[l]);
        acc = decode_round<scalar_t>(acc + decode_round<scalar_t>(static_cast<acc_t>(u[b * L + l]) * static_cast<acc_t>(w[K - 1])));
        for (int64_t k = taps - 1; k >= 0; --k) {
          const acc_t v = fresh ? acc_t(0) : static_cast<acc_t>(st[k * L + l]);
          acc = decode_round<scalar_t>(acc + decode_round<scalar_t>(v * static_cast<acc_t>(w[k])));
        }
        c[j] = acc;
      }
      // The head's block of both gates: zx = c . Wx[head] (+ bias), as axpy rows so the inner loop vectorises.
      std::fill(zx.begin(), zx.end(), acc_t(0));
      std::fill(za.begin(), za.end(), acc_t(0));
      const scalar_t* wxh = wx + head * bs * bs;
      const scalar_t* wah = wa + head * bs * bs;
      for (int64_t i = 0; i < bs; ++i) {
        const acc_t ci = c[i];
        const scalar_t* rx = wxh + i * bs;
        const scalar_t* ra = wah + i * bs;
        for (int64_t j = 0; j < bs; ++j) {
          zx[j] += ci * static_cast<acc_t>(rx[j]);
          za[j] += ci * static_cast<acc_t>(ra[j]);
        }
      }
      for (int64_t j = 0; j < bs; ++j) {
        const int64_t l = l0 + j;
        const acc_t gx = decode_sigmoid(decode_round<scalar_t>(decode_round<scalar_t>(zx[j]) + static_cast<acc_t>(bx[l])));
        const acc_t ga = decode_sigmoid(decode_round<scalar_t>(decode_round<scalar_t>(za[j]) + static_cast<acc_t>(ba[l])));
        const acc_t z = static_cast<acc_t>(ap[l]);
        const acc_t sp = z > acc_t(20) ? z : std::log1p(std::exp(z));
        const acc_t log_a = acc_t(-8) * ga * sp;
        const acc_t a = fresh ? acc_t(0) : decode_round<scalar_t>(std::exp(log_a));
        const acc_t m = fresh ? acc_t(1) : std::sqrt(acc_t(1) - std::exp(acc_t(2) * log_a));
        const acc_t xn = decode_round<scalar_t>(c[j] * gx * m);
        acc_t& hl = h[b * L + l];
        hl = a * hl + xn;
        const acc_t r = decode_round<scalar_t>(hl);
        const acc_t g = decode_round<scalar_t>(decode_gelu_tanh(static_cast<acc_t>(y[b * L + l])));
        out[b * L + l] = static_cast<scalar_t>(r * g);
      }
      // Shift the taps: drop the oldest, append u (a new document keeps only u).
      for (int64_t j = 0; j < bs; ++j) {
        const int64_t l = l0 + j;
        for (int64_t k = 0; k + 1 < taps; ++k) st[k * L + l] = fresh ? scalar_t(0) : st[(k + 1) * L + l];
        if (taps > 0) st[(taps - 1) * L + l] = u[b * L + l];
      }
    }
  });
}

template <class scalar_t>
void rms_norm_kernel(const at::Tensor& x_t, const at::Tensor& w_t, double eps, at::Tensor& out_t) {
  using acc_t = decode_acc_t<scalar_t>;
  const int64_t N = x_t.size(0), W = x_t.size(1);
  const scalar_t* x = x_t.data_ptr<scalar_t>();
  const scalar_t* w = w_t.data_ptr<scalar_t>();
  scalar_t* out = out_t.data_ptr<scalar_t>();
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const scalar_t* xr = x + n * W;
      acc_t sum = 0;
      for (int64_t i = 0; i < W; ++i) {
        const acc_t v = static_cast<acc_t>(xr[i]);
        sum += decode_round<scalar_t>(v * v);
      }
      const acc_t var = decode_round<scalar_t>(sum / static_cast<acc_t>(W));
      const acc_t r = decode_round<scalar_t>(acc_t(1) / std::sqrt(decode_round<scalar_t>(var + static_cast<acc_t>(eps))));
      for (int64_t i = 0; i < W; ++i) {
        const acc_t scaled = decode_round<scalar_t>(static_cast<acc_t>(xr[i]) * r);
        const acc_t gain = decode_round<scalar_t>(static_cast<acc_t>(w[i]) + acc_t(1));
        out[n * W + i] = static_cast<scalar_t>(scaled * gain);
      }
    }
  });
}

void require_decode(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("decode kernels: ") + what);
}

}  // namespace

bool decode_kernels_apply(const at::Tensor& x) {
  const auto t = x.scalar_type();
  return x.device().is_cpu() && !at::GradMode::is_enabled() &&
         (t == at::kFloat || t == at::kDouble || t == at::kBFloat16);
}

at::Tensor recurrent_step_(const at::Tensor& u, const at::Tensor& y_pre, const at::Tensor& new_doc,
                           at::Tensor& conv_state, at::Tensor& h, const RecurrentStepParams& p) {
  const int64_t B = u.size(0), L = u.size(1);
  require_decode(u.dim() == 2 && y_pre.sizes() == u.sizes() && u.is_contiguous() && y_pre.is_contiguous(),
                 "u and y_pre must be contiguous (B, L)");
  require_decode(conv_state.dim() == 3 && conv_state.size(0) == B && conv_state.size(2) == L &&
                     conv_state.is_contiguous() && conv_state.scalar_type() == u.scalar_type(),
                 "conv state must be contiguous (B, K-1, L) in the activation dtype");
  const auto acc = u.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  require_decode(h.sizes() == u.sizes() && h.is_contiguous() && h.scalar_type() == acc, "h must be contiguous (B, L) float32");
  require_decode(new_doc.scalar_type() == at::kBool && new_doc.numel() == B, "new_doc must be (B) bool");
  const int64_t H = p.input_gate_weight.size(0);
  require_decode(H > 0 && L % H == 0 && p.conv_weight.size(0) == L && p.conv_weight.size(2) == conv_state.size(1) + 1,
                 "weights do not match the state");
  const at::Tensor doc = new_doc.contiguous();
  at::Tensor out = at::empty_like(u);
  RecurrentStepParams c{p.conv_weight.contiguous(), p.conv_bias.contiguous(), p.input_gate_weight.contiguous(),
                        p.input_gate_bias.contiguous(), p.recurrent_gate_weight.contiguous(),
                        p.recurrent_gate_bias.contiguous(), p.recurrent_param.contiguous()};
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, u.scalar_type(), "recurrent_step_", [&] {
    recurrent_step_kernel<scalar_t>(u, y_pre, doc.data_ptr<bool>(), conv_state, h, c, out);
  });
  return out;
}

at::Tensor linear_rows(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t B = x.size(0);
  if (x.dim() != 2 || x.scalar_type() != at::kFloat || B > kRowsForGemv || !x.device().is_cpu()) {
    return at::linear(x, weight, bias);
  }
  at::Tensor out = bias.defined() ? bias.unsqueeze(0).repeat({B, 1}) : at::zeros({B, weight.size(0)}, x.options());
  for (int64_t b = 0; b < B; ++b) {
    at::Tensor row = out.select(0, b);
    row.addmv_(weight, x.select(0, b));
  }
  return out;
}

at::Tensor rms_norm_rows(const at::Tensor& x, const at::Tensor& weight, double eps) {
  require_decode(x.dim() == 2 && x.is_contiguous() && weight.numel() == x.size(1) &&
                     weight.scalar_type() == x.scalar_type(),
                 "rms_norm_rows: x must be contiguous (N, W) with a (W) weight of its dtype");
  at::Tensor out = at::empty_like(x);
  const at::Tensor w = weight.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "rms_norm_rows", [&] {
    rms_norm_kernel<scalar_t>(x, w, eps, out);
  });
  return out;
}

}  // namespace rg::kernels
