// Leaf layers of RecurrentGemma, each written from its equation in the spec (sections 3, 4, 5.1, 5.2, 6)
// and initialised as in section 11.
#include "model/layers.h"

#include "model/kernels/rg_lru_fused.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/init.h>

#include <cmath>

namespace rg {

torch::Tensor gelu_tanh(const torch::Tensor& x) { return at::gelu(x, "tanh"); }

torch::Tensor document_ids(const torch::Tensor& segment_pos) {
  return (segment_pos == 0).to(torch::kLong).cumsum(1);  // (B, T)
}

void init_normal(torch::Tensor& t, double variance) {
  torch::NoGradGuard no_grad;
  t.normal_(0.0, std::sqrt(variance));
}

// ---- RMSNorm ------------------------------------------------------------------------------------------

RMSNormImpl::RMSNormImpl(int64_t width, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::zeros({width}));
}

void RMSNormImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  weight.zero_();
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  const torch::Tensor var = x.square().mean(-1, /*keepdim=*/true);  // (..., 1)
  return x * torch::rsqrt(var + eps_) * (weight + 1);
}

// ---- RoPE ---------------------------------------------------------------------------------------------

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& positions, int64_t rotated, double base) {
  const int64_t half = rotated / 2;
  const auto f32 = x.options().dtype(torch::kFloat);
  // The reference's float32 arithmetic: base ** (2 i / r), then 1 / that.
  const torch::Tensor exponents = 2 * torch::arange(half, f32) / static_cast<float>(rotated);     // (r/2)
  const torch::Tensor inv_freq = 1.0 / torch::pow(torch::scalar_tensor(base, f32), exponents);    // (r/2)
  const torch::Tensor angle = positions.to(torch::kFloat).unsqueeze(-1).unsqueeze(-1) * inv_freq;  // (B, T, 1, r/2)
  const torch::Tensor sin = angle.sin().to(x.scalar_type()), cos = angle.cos().to(x.scalar_type());
  const torch::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);  // (B, T, N, r/2)
  std::vector<torch::Tensor> parts = {x1 * cos - x2 * sin, x2 * cos + x1 * sin};
  if (rotated < x.size(-1)) parts.push_back(x.narrow(-1, rotated, x.size(-1) - rotated));
  return torch::cat(parts, -1);
}

// ---- MLP ----------------------------------------------------------------------------------------------

MLPBlockImpl::MLPBlockImpl(int64_t width, int64_t hidden, bool bias) : width_(width), hidden_(hidden) {
  gate_proj = register_module("gate_proj", torch::nn::Linear(torch::nn::LinearOptions(width, hidden).bias(bias)));
  up_proj = register_module("up_proj", torch::nn::Linear(torch::nn::LinearOptions(width, hidden).bias(bias)));
  down_proj = register_module("down_proj", torch::nn::Linear(torch::nn::LinearOptions(hidden, width).bias(bias)));
}

torch::Tensor MLPBlockImpl::forward(const torch::Tensor& x) {
  return down_proj(gelu_tanh(gate_proj(x)) * up_proj(x));  // (B, T, E) inside
}

void MLPBlockImpl::reset_parameters(double final_scale) {
  torch::NoGradGuard no_grad;
  init_normal(gate_proj->weight, 1.0 / width_);
  init_normal(up_proj->weight, 1.0 / width_);
  init_normal(down_proj->weight, final_scale / hidden_);
  for (auto* l : {&gate_proj, &up_proj, &down_proj}) {
    if ((*l)->bias.defined()) (*l)->bias.zero_();
  }
}

// ---- Conv1D -------------------------------------------------------------------------------------------

Conv1DImpl::Conv1DImpl(int64_t width, int64_t kernel) : width_(width), kernel_(kernel) {
  weight = register_parameter("weight", torch::zeros({width, 1, kernel}));
  bias = register_parameter("bias", torch::zeros({width}));
}

void Conv1DImpl::reset_parameters() {
  init_normal(weight, 0.01 / kernel_);
  torch::NoGradGuard no_grad;
  bias.zero_();
}

torch::Tensor Conv1DImpl::forward(const torch::Tensor& u, const torch::Tensor& doc, const torch::Tensor& prev) {
  const int64_t T = u.size(1), K = kernel_;
  const torch::Tensor w = weight.select(1, 0);  // (L, K): w[:, K-1] multiplies the current input
  torch::Tensor out = bias.expand_as(u).clone();  // (B, T, L)
  if (prev.defined()) {
    // Continuing a stream from the sampling state: the K-1 earlier inputs come first; no document masking
    // here (a new document clears the state instead, see RecurrentBlock).
    const torch::Tensor full = torch::cat({prev, u}, 1);  // (B, K-1+T, L)
    for (int64_t j = 0; j < K; ++j) out = out + full.narrow(1, K - 1 - j, T) * w.select(1, K - 1 - j);
    return out;
  }
  for (int64_t j = 0; j < K && j < T; ++j) {
    // u[t-j] with zeros for t < j, kept only when t-j lies in t's document.
    torch::Tensor shifted = j == 0 ? u : torch::constant_pad_nd(u.narrow(1, 0, T - j), {0, 0, j, 0});  // (B, T, L)
    if (j > 0) {
      const torch::Tensor doc_shifted = torch::constant_pad_nd(doc.narrow(1, 0, T - j), {j, 0}, -1);  // (B, T)
      shifted = shifted * (doc_shifted == doc).unsqueeze(-1).to(u.scalar_type());
    }
    out = out + shifted * w.select(1, K - 1 - j);
  }
  return out;
}

// ---- RG-LRU -------------------------------------------------------------------------------------------

namespace {

struct SqrtBoundDerivative : public torch::autograd::Function<SqrtBoundDerivative> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    ctx->save_for_backward({x});
    return x.sqrt();
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const torch::Tensor x = ctx->get_saved_variables()[0];
    constexpr double kMaxGradient = 1000.0;
    const torch::Tensor clipped = x.clamp_min(1.0 / (4.0 * kMaxGradient * kMaxGradient));
    return {grad[0] / (2 * clipped.sqrt())};
  }
};

}  // namespace

torch::Tensor sqrt_bound_derivative(const torch::Tensor& x) { return SqrtBoundDerivative::apply(x); }

torch::Tensor block_diagonal_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const int64_t H = weight.size(0), block = weight.size(1);
  std::vector<int64_t> split(x.sizes().begin(), x.sizes().end());
  split.back() = H;
  split.push_back(block);
  const torch::Tensor xh = x.reshape(split);                                       // (..., H, L/H)
  const torch::Tensor y = torch::einsum("...hi,hij->...hj", {xh, weight}) + bias;  // (..., H, L/H)
  return y.reshape(x.sizes());
}

RGLRUImpl::RGLRUImpl(int64_t width, int64_t num_heads) : width_(width), num_heads_(num_heads) {
  const int64_t block = width / num_heads;
  recurrent_param = register_parameter("recurrent_param", torch::zeros({width}));
  input_gate_weight = register_parameter("input_gate_weight", torch::zeros({num_heads, block, block}));
  input_gate_bias = register_parameter("input_gate_bias", torch::zeros({num_heads, block}));
  recurrent_gate_weight = register_parameter("recurrent_gate_weight", torch::zeros({num_heads, block, block}));
  recurrent_gate_bias = register_parameter("recurrent_gate_bias", torch::zeros({num_heads, block}));
}

void RGLRUImpl::reset_parameters() {
  const double block = static_cast<double>(width_ / num_heads_);
  init_normal(input_gate_weight, 1.0 / block);
  init_normal(recurrent_gate_weight, 1.0 / block);
  torch::NoGradGuard no_grad;
  input_gate_bias.zero_();
  recurrent_gate_bias.zero_();
  // a0 uniform by area on the ring [0.9, 0.999]; a_param = log(1/a0 - 1) so softplus(a_param) = -ln a0.
  const auto f32 = recurrent_param.options().dtype(torch::kFloat);
  torch::Tensor a0 = (torch::rand({width_}, f32) * (0.999 * 0.999 - 0.9 * 0.9) + 0.9 * 0.9 + 1e-8).sqrt();
  recurrent_param.copy_(torch::log(1.0 / a0 - 1.0));
}

std::pair<torch::Tensor, torch::Tensor> RGLRUImpl::forward(const torch::Tensor& x, const torch::Tensor& segment_pos,
                                                           const torch::Tensor& h0) {
  const torch::Tensor gate_x_pre = block_diagonal_linear(x, input_gate_weight, input_gate_bias);        // (B, T, L)
  const torch::Tensor gate_a_pre = block_diagonal_linear(x, recurrent_gate_weight, recurrent_gate_bias);
  if (scan_impl != kernels::ScanImpl::kReference && !x.is_cuda()) {
    return kernels::rg_lru_fused(x, gate_x_pre, gate_a_pre, recurrent_param, segment_pos == 0, h0);
  }
  // The unfused path, op by op as the reference writes it: the yardstick of the fused kernel, and the
  // CUDA path (where the scan is the only custom kernel).
  const torch::Tensor reset = (segment_pos == 0).unsqueeze(-1);  // (B, T, 1)
  const torch::Tensor gate_x = torch::sigmoid(gate_x_pre);
  const torch::Tensor gate_a = torch::sigmoid(gate_a_pre);
  const torch::Tensor log_a = -8.0 * gate_a * torch::softplus(recurrent_param);                 // (B, T, L)
  torch::Tensor a = torch::exp(log_a);
  const torch::Tensor a_square = torch::exp(2 * log_a);
  const torch::Tensor gated_x = x * gate_x;
  torch::Tensor multiplier = sqrt_bound_derivative(1 - a_square);
  multiplier = torch::where(reset, torch::ones_like(multiplier), multiplier);  // no normalisation at a start
  const torch::Tensor normalized_x = gated_x * multiplier.to(x.scalar_type());
  a = a * reset.logical_not().to(a.scalar_type());  // forget the previous document
  return kernels::rg_lru_scan(a, normalized_x, h0, scan_impl);
}

}  // namespace rg
