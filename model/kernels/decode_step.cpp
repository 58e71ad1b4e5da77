// Fused one-token decode kernels (see decode_step.h). The recurrent step runs one task per (row, head): the
// gates are block-diagonal, so a head's channels need nothing from other heads, and a batch of one still
// spreads over the cores. Per channel l of head h, with K conv taps and sp = softplus(a_param):
//   c_l  = b_l + sum_k w_{l,k} [state_{k}, u]_l                       (taps of a new document are zero)
//   zx   = c_h . Wx_h + bx_h,  za = c_h . Wa_h + ba_h                 (the head's block of the gates)
//   a    = exp(-8 sigmoid(za) sp),  m = sqrt(1 - a^2)  (a = 0, m = 1 at a document start)
//   h    = a h + c sigmoid(zx) m,   out = h * gelu_tanh(y_pre)
// then the conv state shifts by one tap in place. Same arithmetic as layers.cpp / rg_lru_fused.cpp.
#include "model/kernels/decode_step.h"

#include "model/kernels/parallel_work.h"

#include "model/kernels/vec_exp_tanh.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

// The recurrent step's per-channel functions, over n channels: from the gates' pre-activations zx, za (rounded
// as the op-by-op path rounds them), softplus(a_param) sp and y_pre:
//   gx = sigmoid(zx),  a = exp(-8 sigmoid(za) sp),  a2 = exp(-16 sigmoid(za) sp),  gelu = gelu_tanh(y_pre)
// Seven transcendental functions per channel and row: one at a time through libm they were a sixth of
// recurrentgemma-100m's batch-8 decode step on the 2-core AMD EPYC. float: eight channels at a time with
// vec::exp_nonpositive and vec::tanh (within 3u and 7u of libm, u = 2^-24; sigmoid from e = exp(-|z|) so the
// exponential's argument is never positive); double: libm, the float64 reference of the tests.
template <class acc_t>
void gate_functions_scalar(int64_t j0, int64_t n, const acc_t* zx, const acc_t* za, const acc_t* sp, const acc_t* y,
                           acc_t* gx, acc_t* a, acc_t* a2, acc_t* gelu) {
  for (int64_t j = j0; j < n; ++j) {
    gx[j] = decode_sigmoid(zx[j]);
    const acc_t log_a = acc_t(-8) * decode_sigmoid(za[j]) * sp[j];
    a[j] = std::exp(log_a), a2[j] = std::exp(acc_t(2) * log_a), gelu[j] = decode_gelu_tanh(y[j]);
  }
}
void gate_functions(int64_t n, const float* zx, const float* za, const float* sp, const float* y, float* gx, float* a,
                    float* a2, float* gelu) {
  using vec::f32x8;
  const auto load = [](const float* p) { return vec::load<f32x8>(p); };
  const auto sigmoid = [](f32x8 z) {
    const f32x8 e = vec::exp_nonpositive(z > 0.f ? -z : z);  // exp(-|z|) in (0, 1]
    return z > 0.f ? 1.f / (1.f + e) : e / (1.f + e);
  };
  const float beta = static_cast<float>(M_SQRT2 * M_2_SQRTPI * 0.5), kappa = 0.044715f;
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    vec::store(gx + j, sigmoid(load(zx + j)));
    const f32x8 log_a = -8.f * sigmoid(load(za + j)) * load(sp + j);
    vec::store(a + j, vec::exp_nonpositive(log_a));
    vec::store(a2 + j, vec::exp_nonpositive(2.f * log_a));
    const f32x8 x = load(y + j);
    vec::store(gelu + j, 0.5f * x * (1.f + vec::tanh(beta * (x + kappa * x * x * x))));
  }
  gate_functions_scalar(j, n, zx, za, sp, y, gx, a, a2, gelu);  // the last n mod 8 channels
}
void gate_functions(int64_t n, const double* zx, const double* za, const double* sp, const double* y, double* gx,
                    double* a, double* a2, double* gelu) {
  gate_functions_scalar<double>(0, n, zx, za, sp, y, gx, a, a2, gelu);
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
  // softplus(a_param) depends on the parameter alone: once per call, not once per row.
  std::vector<acc_t> softplus(static_cast<size_t>(L));
  for (int64_t l = 0; l < L; ++l) {
    const acc_t z = static_cast<acc_t>(ap[l]);
    softplus[l] = z > acc_t(20) ? z : std::log1p(std::exp(z));
  }
  at::parallel_for(0, B * H, grain_for(bs * (2 * bs + K)), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> c(bs), zx(bs), za(bs), yv(bs), gx(bs), a_raw(bs), a2(bs), gelu(bs);
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
        zx[j] = decode_round<scalar_t>(decode_round<scalar_t>(zx[j]) + static_cast<acc_t>(bx[l]));
        za[j] = decode_round<scalar_t>(decode_round<scalar_t>(za[j]) + static_cast<acc_t>(ba[l]));
        yv[j] = static_cast<acc_t>(y[b * L + l]);
      }
      gate_functions(bs, zx.data(), za.data(), softplus.data() + l0, yv.data(), gx.data(), a_raw.data(), a2.data(),
                     gelu.data());
      for (int64_t j = 0; j < bs; ++j) {
        const int64_t l = l0 + j;
        const acc_t a = fresh ? acc_t(0) : decode_round<scalar_t>(a_raw[j]);
        const acc_t m = fresh ? acc_t(1) : std::sqrt(acc_t(1) - a2[j]);
        const acc_t xn = decode_round<scalar_t>(c[j] * gx[j] * m);
        acc_t& hl = h[b * L + l];
        hl = a * hl + xn;
        const acc_t r = decode_round<scalar_t>(hl);
        const acc_t g = decode_round<scalar_t>(gelu[j]);
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
  at::parallel_for(0, N, grain_for(2 * W), [&](int64_t begin, int64_t end) {
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

// Eight float lanes (one AVX2 register; GCC/Clang vector extension, so no intrinsics and any target).
using vec::f32x8;
static_assert(kMaxRowsForRowLinear == 8, "row_linear_lanes_kernel keeps one input row per lane of an f32x8");

// The weights as float: float32 in place; bfloat16 (the top half of a float) shifted into `buffer`.
inline const float* widen_rows(const float* w, int64_t, std::vector<float>&) { return w; }
inline const float* widen_rows(const at::BFloat16* w, int64_t count, std::vector<float>& buffer) {
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t bits = static_cast<uint32_t>(w[i].x) << 16;
    std::memcpy(&buffer[i], &bits, sizeof(float));
  }
  return buffer.data();
}

// c tanh(v / c) on s[0, count), in place, sixteen at a time (one AVX-512 register: a third less time than
// eight on the AMD EPYC); s has room for count rounded up to 16. Relative error <= 10u (u = 2^-24):
// vec::tanh's 7u, two roundings of the argument v * (1/c) (tanh's relative condition t tanh'(t) / tanh(t) <= 1
// passes them on unchanged) and one of the product with c.
void soft_cap_span(float* s, int64_t count, float cap) {
  const float inv = 1.f / cap;
  for (int64_t i = 0; i < count; i += 16) {
    const auto v = vec::load<vec::f32x16>(s + i);
    vec::store(s + i, cap * vec::tanh(v * inv));
  }
}

// The linear kernels' outputs, kChunk columns of every row at a time, staged in float: when a chunk is complete
// the soft cap (if any) runs along its columns in full vectors while they sit in L1, and each value is rounded
// once to the output dtype. kChunk is a multiple of both kernels' bands (8 and 4 weight rows) and of
// soft_cap_span's 16 lanes, so bands stay
// whole except at a task's end.
constexpr int64_t kChunk = 64;

template <class scalar_t>
class OutputStage {
 public:
  OutputStage(scalar_t* out, int64_t B, int64_t N, float cap) : out_(out), B_(B), N_(N), cap_(cap) {}
  void begin(int64_t c0) { c0_ = c0; }
  void put(int64_t b, int64_t n, float v) { buf_[b * kChunk + (n - c0_)] = v; }
  void finish(int64_t c1) {
    const int64_t count = c1 - c0_;
    for (int64_t b = 0; b < B_; ++b) {
      float* s = buf_ + b * kChunk;
      if (cap_ > 0) soft_cap_span(s, count, cap_);
      scalar_t* o = out_ + b * N_ + c0_;
      for (int64_t i = 0; i < count; ++i) o[i] = static_cast<scalar_t>(s[i]);
    }
  }

 private:
  scalar_t* out_;
  int64_t B_, N_;
  float cap_;
  int64_t c0_ = 0;
  float buf_[kMaxRowsForRowLinear * kChunk] = {};  // zeros: soft_cap_span's last vector may read past count
};

// Columns [0, N) of a linear kernel in pieces of whole chunks, about 2^18 weights (1 MB of float32) each,
// handed out from a shared counter (parallel_work.h).
template <class Task>
void parallel_pieces(int64_t N, int64_t K, int64_t grain, const Task& task) {
  const int64_t piece = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(K, 1) / kChunk) * kChunk;
  parallel_take(N, piece, grain, task);
}

// out (B, N) = x (B, K) W^T (N, K) + bias, B <= 8. The inputs are transposed into one f32x8 per k, lane b
// holding x[b, k], so each weight is one broadcast multiply-add into the lanes of all B inputs at once: no
// horizontal sums, and W is read once, eight rows at a time (eight independent accumulator chains), in
// bands over the cores. Sums in float in order of k; bfloat16 weights and inputs are widened on load and
// the result rounded once, as a float-accumulating GEMM does (after the soft cap, when cap > 0).
template <class scalar_t>
void row_linear_lanes_kernel(const at::Tensor& x_t, const at::Tensor& w_t, const at::Tensor& bias_t, float cap,
                             at::Tensor& out_t) {
  const int64_t B = x_t.size(0), K = x_t.size(1), N = w_t.size(0);
  const scalar_t* x = x_t.data_ptr<scalar_t>();
  const scalar_t* w = w_t.data_ptr<scalar_t>();
  const scalar_t* bias = bias_t.defined() ? bias_t.data_ptr<scalar_t>() : nullptr;
  scalar_t* out = out_t.data_ptr<scalar_t>();
  std::vector<f32x8> xt(static_cast<size_t>(K));  // xt[k][b] = x[b, k], lanes past B zero
  for (int64_t k = 0; k < K; ++k) {
    f32x8 v = {};
    for (int64_t b = 0; b < B; ++b) v[b] = static_cast<float>(x[b * K + k]);
    xt[k] = v;
  }
  parallel_pieces(N, K, std::max<int64_t>(8, grain_for(B * K)), [&](const auto& take) {
    std::vector<float> band;  // bfloat16: the band's eight rows widened to float first, a vectorised pass
    if constexpr (!std::is_same_v<scalar_t, float>) band.resize(static_cast<size_t>(8 * K));
    OutputStage<scalar_t> stage(out, B, N, cap);
    const auto store = [&](const f32x8& acc, int64_t n) {
      const float add = bias ? static_cast<float>(bias[n]) : 0.f;
      for (int64_t b = 0; b < B; ++b) stage.put(b, n, acc[b] + add);
    };
    for (int64_t p0 = 0, p1 = 0; take(p0, p1);) {
      for (int64_t c0 = p0; c0 < p1; c0 += kChunk) {
        const int64_t c1 = std::min(p1, c0 + kChunk);
        stage.begin(c0);
        int64_t n = c0;
        for (; n + 8 <= c1; n += 8) {
          const float* r = widen_rows(w + n * K, 8 * K, band);
          // Ask for the same lines two bands ahead, every 16 values: with the hardware prefetcher alone the
          // kernel read DRAM at 5-8 GB/s on one core of the AMD EPYC, with this at 14 (a plain read: 25).
          const scalar_t* ahead = n + 24 <= N ? w + (n + 16) * K : nullptr;
          f32x8 a0 = {}, a1 = {}, a2 = {}, a3 = {}, a4 = {}, a5 = {}, a6 = {}, a7 = {};
          for (int64_t k = 0; k < K; ++k) {
            if (ahead && (k & 15) == 0) {
              for (int64_t j = 0; j < 8; ++j) __builtin_prefetch(ahead + j * K + k);
            }
            const f32x8 xk = xt[k];
            a0 += xk * r[k];
            a1 += xk * r[K + k];
            a2 += xk * r[2 * K + k];
            a3 += xk * r[3 * K + k];
            a4 += xk * r[4 * K + k];
            a5 += xk * r[5 * K + k];
            a6 += xk * r[6 * K + k];
            a7 += xk * r[7 * K + k];
          }
          store(a0, n), store(a1, n + 1), store(a2, n + 2), store(a3, n + 3);
          store(a4, n + 4), store(a5, n + 5), store(a6, n + 6), store(a7, n + 7);
        }
        for (; n < c1; ++n) {
          const float* r = widen_rows(w + n * K, K, band);
          f32x8 a = {};
          for (int64_t k = 0; k < K; ++k) a += xt[k] * r[k];
          store(a, n);
        }
        stage.finish(c1);
      }
    }
  });
}

// The same product vectorised along k instead: for each input row b and four weight rows at a time, eight
// k values per multiply-add, then one horizontal sum per (row, b). At B = 1 the lane form above spends one
// multiply-add instruction per weight for one useful lane; this spends one per eight weights.
inline float sum8(const f32x8& v) {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

template <class scalar_t>
void row_linear_along_k_kernel(const at::Tensor& x_t, const at::Tensor& w_t, const at::Tensor& bias_t, float cap,
                               at::Tensor& out_t) {
  const int64_t B = x_t.size(0), K = x_t.size(1), N = w_t.size(0), K8 = K / 8 * 8;
  const scalar_t* w = w_t.data_ptr<scalar_t>();
  const scalar_t* bias = bias_t.defined() ? bias_t.data_ptr<scalar_t>() : nullptr;
  scalar_t* out = out_t.data_ptr<scalar_t>();
  std::vector<float> xf(static_cast<size_t>(B * K));
  const scalar_t* x = x_t.data_ptr<scalar_t>();
  for (int64_t i = 0; i < B * K; ++i) xf[i] = static_cast<float>(x[i]);
  parallel_pieces(N, K, std::max<int64_t>(4, grain_for(B * K)), [&](const auto& take) {
    std::vector<float> band;
    if constexpr (!std::is_same_v<scalar_t, float>) band.resize(static_cast<size_t>(4 * K));
    OutputStage<scalar_t> stage(out, B, N, cap);
    for (int64_t p0 = 0, p1 = 0; take(p0, p1);) {
      for (int64_t c0 = p0; c0 < p1; c0 += kChunk) {
        const int64_t c1 = std::min(p1, c0 + kChunk);
        stage.begin(c0);
        for (int64_t n = c0; n < c1; n += 4) {
          const int64_t rows = std::min<int64_t>(4, c1 - n);
          const float* r = widen_rows(w + n * K, rows * K, band);
          const float* r0 = r;
          const float* r1 = rows > 1 ? r + K : r;  // short last band: repeat row 0, store only `rows`
          const float* r2 = rows > 2 ? r + 2 * K : r;
          const float* r3 = rows > 3 ? r + 3 * K : r;
          const scalar_t* ahead = n + 12 <= N ? w + (n + 8) * K : nullptr;
          for (int64_t k = 0; ahead && k < 4 * K; k += 64 / static_cast<int64_t>(sizeof(scalar_t))) {
            __builtin_prefetch(ahead + k);
          }
          for (int64_t b = 0; b < B; ++b) {
            const float* xb = xf.data() + b * K;
            f32x8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
            for (int64_t k = 0; k < K8; k += 8) {
              const f32x8 xv = vec::load<f32x8>(xb + k);
              a0 += xv * vec::load<f32x8>(r0 + k);
              a1 += xv * vec::load<f32x8>(r1 + k);
              a2 += xv * vec::load<f32x8>(r2 + k);
              a3 += xv * vec::load<f32x8>(r3 + k);
            }
            float s[4] = {sum8(a0), sum8(a1), sum8(a2), sum8(a3)};
            for (int64_t k = K8; k < K; ++k) {
              s[0] += xb[k] * r0[k], s[1] += xb[k] * r1[k], s[2] += xb[k] * r2[k], s[3] += xb[k] * r3[k];
            }
            for (int64_t j = 0; j < rows; ++j) {
              stage.put(b, n + j, bias ? s[j] + static_cast<float>(bias[n + j]) : s[j]);
            }
          }
        }
        stage.finish(c1);
      }
    }
  });
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

at::Tensor linear_rows(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double soft_cap) {
  const bool fits = x.dim() == 2 && x.size(0) <= kMaxRowsForRowLinear && x.device().is_cpu() &&
                    weight.dim() == 2 && weight.size(1) == x.size(1) && weight.scalar_type() == x.scalar_type() &&
                    (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16) &&
                    (!bias.defined() || (bias.numel() == weight.size(0) && bias.scalar_type() == x.scalar_type()));
  if (!fits || at::GradMode::is_enabled()) {
    const at::Tensor y = at::linear(x, weight, bias);
    return soft_cap > 0 ? at::tanh(y / soft_cap) * soft_cap : y;  // as GriffinImpl::soft_cap
  }
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
  const at::Tensor bc = bias.defined() ? bias.contiguous() : bias;
  at::Tensor out = at::empty({x.size(0), weight.size(0)}, x.options());
  // One or two rows: along k (the lane form would waste six of eight lanes); more: one lane per row.
  const bool along_k = x.size(0) <= 2;
  const float cap = soft_cap > 0 ? static_cast<float>(soft_cap) : 0.f;
  if (x.scalar_type() == at::kFloat) {
    along_k ? row_linear_along_k_kernel<float>(xc, wc, bc, cap, out)
            : row_linear_lanes_kernel<float>(xc, wc, bc, cap, out);
  } else {
    along_k ? row_linear_along_k_kernel<at::BFloat16>(xc, wc, bc, cap, out)
            : row_linear_lanes_kernel<at::BFloat16>(xc, wc, bc, cap, out);
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
