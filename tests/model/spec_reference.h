// A slow, independent RecurrentGemma written straight from docs/architecture.md (the equations of §2-6):
// float64, one row and one token at a time, explicit loops for the conv taps, the RG-LRU recurrence, RoPE's
// angles and the attention mask. It reads the weights by their Hugging Face names (without "model."), so it
// also checks that the model's parameters sit under the names checkpoints use. Header-only, for tests.
#pragma once

#include "model/config.h"

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

namespace rg::spec {

using Params = std::map<std::string, torch::Tensor>;  // name -> float64 tensor

inline Params params_of(const torch::nn::Module& m) {
  Params p;
  for (const auto& item : m.named_parameters()) p[item.key()] = item.value().detach().to(torch::kDouble);
  return p;
}

inline const torch::Tensor& get(const Params& p, const std::string& name) {
  auto it = p.find(name);
  if (it == p.end()) throw std::runtime_error("spec reference: no parameter named " + name);
  return it->second;
}

inline double gelu_tanh(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
inline torch::Tensor gelu_tanh(const torch::Tensor& x) {  // elementwise, float64
  torch::Tensor y = x.clone();
  auto acc = y.accessor<double, 1>();
  for (int64_t i = 0; i < y.size(0); ++i) acc[i] = gelu_tanh(acc[i]);
  return y;
}
inline double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
inline double softplus(double x) { return std::log1p(std::exp(x)); }

// Section 3. x (W).
inline torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& scale, double eps) {
  return x / std::sqrt(x.square().mean().item<double>() + eps) * (scale + 1);
}

// nn.Linear convention: y = W x + b.
inline torch::Tensor linear(const Params& p, const std::string& prefix, const torch::Tensor& x, bool bias = true) {
  torch::Tensor y = torch::mv(get(p, prefix + ".weight"), x);
  return bias ? y + get(p, prefix + ".bias") : y;
}

// Section 4. x (W) -> (W).
inline torch::Tensor mlp(const Params& p, const std::string& prefix, const torch::Tensor& x, bool bias) {
  const torch::Tensor g = gelu_tanh(linear(p, prefix + ".gate_proj", x, bias));
  const torch::Tensor u = linear(p, prefix + ".up_proj", x, bias);
  return linear(p, prefix + ".down_proj", g * u, bias);
}

// Section 5.1: c[t] = b + sum_j w[K-1-j] u[t-j] m(t-j, t); m = 1 iff no p in (t-j, t] has segment_pos 0.
// u (T, L), pos (T). HF weight (L, 1, K) holds w[k, l] at [l, 0, k].
inline torch::Tensor conv1d(const Params& p, const std::string& prefix, const torch::Tensor& u,
                            const std::vector<int64_t>& pos) {
  const torch::Tensor w = get(p, prefix + ".weight"), b = get(p, prefix + ".bias");
  const int64_t T = u.size(0), L = u.size(1), K = w.size(2);
  torch::Tensor c = torch::zeros({T, L}, torch::kDouble);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t l = 0; l < L; ++l) {
      double sum = b[l].item<double>();
      for (int64_t j = 0; j < K && t - j >= 0; ++j) {
        bool crosses = false;
        for (int64_t q = t - j + 1; q <= t; ++q) crosses |= pos[q] == 0;
        if (!crosses) sum += w[l][0][K - 1 - j].item<double>() * u[t - j][l].item<double>();
      }
      c[t][l] = sum;
    }
  }
  return c;
}

// Section 5.2. c (T, L), pos (T) -> h (T, L).
inline torch::Tensor rg_lru(const Params& p, const std::string& prefix, const torch::Tensor& c,
                            const std::vector<int64_t>& pos) {
  const torch::Tensor a_param = get(p, prefix + ".recurrent_param");
  const torch::Tensor wi = get(p, prefix + ".input_gate_weight"), bi = get(p, prefix + ".input_gate_bias");
  const torch::Tensor wr = get(p, prefix + ".recurrent_gate_weight"), br = get(p, prefix + ".recurrent_gate_bias");
  const int64_t T = c.size(0), L = c.size(1), H = wi.size(0), bs = L / H;
  torch::Tensor h = torch::zeros({L}, torch::kDouble), out = torch::zeros({T, L}, torch::kDouble);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t head = 0; head < H; ++head) {
      for (int64_t o = 0; o < bs; ++o) {
        double zi = bi[head][o].item<double>(), zr = br[head][o].item<double>();
        for (int64_t i = 0; i < bs; ++i) {  // x . W with W indexed [in, out]
          const double ci = c[t][head * bs + i].item<double>();
          zi += ci * wi[head][i][o].item<double>();
          zr += ci * wr[head][i][o].item<double>();
        }
        const int64_t l = head * bs + o;
        const double log_a = -8.0 * sigmoid(zr) * softplus(a_param[l].item<double>());
        double a = std::exp(log_a), m = std::sqrt(1 - std::exp(2 * log_a));
        if (pos[t] == 0) a = 0, m = 1;
        const double value = a * h[l].item<double>() + m * sigmoid(zi) * c[t][l].item<double>();
        h[l] = value;
        out[t][l] = value;
      }
    }
  }
  return out;
}

// Section 6: RoPE on the first `rotated` dims of one head vector (hd), split halves.
inline torch::Tensor rope(const torch::Tensor& v, int64_t pos, int64_t rotated, double base) {
  torch::Tensor out = v.clone();
  const int64_t half = rotated / 2;
  for (int64_t i = 0; i < half; ++i) {
    const double theta = pos * std::pow(base, -2.0 * i / rotated);
    const double x1 = v[i].item<double>(), x2 = v[i + half].item<double>();
    out[i] = x1 * std::cos(theta) - x2 * std::sin(theta);
    out[i + half] = x2 * std::cos(theta) + x1 * std::sin(theta);
  }
  return out;
}

// Section 6. x (T, W) normed input, pos (T) -> (T, W).
inline torch::Tensor attention(const Params& p, const std::string& prefix, const ModelConfig& c,
                               const torch::Tensor& x, const std::vector<int64_t>& pos) {
  const int64_t T = x.size(0), H = c.num_heads, G = c.num_kv_heads, hd = c.head_dim;
  const int64_t rotated = static_cast<int64_t>(std::llround(hd * c.rope_fraction));
  std::vector<int64_t> doc(T);
  for (int64_t t = 0, d = 0; t < T; ++t) doc[t] = d += pos[t] == 0;
  std::vector<torch::Tensor> q(T), k(T), v(T);
  for (int64_t t = 0; t < T; ++t) {
    q[t] = linear(p, prefix + ".q_proj", x[t], false).view({H, hd});
    k[t] = linear(p, prefix + ".k_proj", x[t], false).view({G, hd});
    v[t] = linear(p, prefix + ".v_proj", x[t], false).view({G, hd});
    for (int64_t h = 0; h < H; ++h) q[t][h] = rope(q[t][h], pos[t], rotated, c.rope_base);
    for (int64_t g = 0; g < G; ++g) k[t][g] = rope(k[t][g], pos[t], rotated, c.rope_base);
  }
  torch::Tensor out = torch::zeros({T, H * hd}, torch::kDouble);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t g = h / (H / G);
      std::vector<int64_t> keys;
      std::vector<double> scores;
      for (int64_t tau = 0; tau <= t; ++tau) {
        const bool in_window = c.attention_window == 0 || t - tau <= c.attention_window;
        if (!in_window || doc[t] != doc[tau]) continue;
        keys.push_back(tau);
        scores.push_back(torch::dot(q[t][h], k[tau][g]).item<double>() / std::sqrt(static_cast<double>(hd)));
      }
      double mx = -1e300, z = 0;
      for (double s : scores) mx = std::max(mx, s);
      for (double s : scores) z += std::exp(s - mx);
      torch::Tensor o = torch::zeros({hd}, torch::kDouble);
      for (size_t i = 0; i < keys.size(); ++i) o += std::exp(scores[i] - mx) / z * v[keys[i]][g];
      out[t].narrow(0, h * hd, hd).copy_(o);
    }
  }
  torch::Tensor y = torch::zeros({T, c.width}, torch::kDouble);
  for (int64_t t = 0; t < T; ++t) y[t] = linear(p, prefix + ".o_proj", out[t], c.use_bias);
  return y;
}

// Section 5. x (T, W) normed input -> (T, W).
inline torch::Tensor recurrent(const Params& p, const std::string& prefix, const torch::Tensor& x,
                               const std::vector<int64_t>& pos) {
  const int64_t T = x.size(0);
  std::vector<torch::Tensor> y(T), u(T);
  for (int64_t t = 0; t < T; ++t) {
    y[t] = gelu_tanh(linear(p, prefix + ".linear_y", x[t]));
    u[t] = linear(p, prefix + ".linear_x", x[t]);
  }
  const torch::Tensor c = conv1d(p, prefix + ".conv_1d", torch::stack(u), pos);
  const torch::Tensor r = rg_lru(p, prefix + ".rg_lru", c, pos);
  torch::Tensor out = torch::zeros_like(x);
  for (int64_t t = 0; t < T; ++t) out[t] = linear(p, prefix + ".linear_out", r[t] * y[t]);
  return out;
}

// Section 2, one row: tokens and pos (T) -> logits (T, V).
inline torch::Tensor logits(const Params& p, const ModelConfig& c, const std::vector<int64_t>& tokens,
                            const std::vector<int64_t>& pos) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  const torch::Tensor E = get(p, "embed_tokens.weight");
  torch::Tensor x = torch::zeros({T, c.width}, torch::kDouble);
  for (int64_t t = 0; t < T; ++t) x[t] = E[tokens[t]] * c.embed_scale();
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string b = "layers." + std::to_string(i);
    torch::Tensor n = torch::zeros_like(x);
    for (int64_t t = 0; t < T; ++t) n[t] = rms_norm(x[t], get(p, b + ".temporal_pre_norm.weight"), c.norm_eps);
    x = x + (c.block_type(i) == BlockType::kRecurrent ? recurrent(p, b + ".temporal_block", n, pos)
                                                       : attention(p, b + ".temporal_block", c, n, pos));
    for (int64_t t = 0; t < T; ++t) {
      x[t] += mlp(p, b + ".mlp_block", rms_norm(x[t], get(p, b + ".channel_pre_norm.weight"), c.norm_eps), c.use_bias);
    }
  }
  torch::Tensor out = torch::zeros({T, c.vocab_size}, torch::kDouble);
  for (int64_t t = 0; t < T; ++t) {
    torch::Tensor l = torch::mv(E, rms_norm(x[t], get(p, "final_norm.weight"), c.norm_eps));
    if (c.logits_soft_cap > 0) l = torch::tanh(l / c.logits_soft_cap) * c.logits_soft_cap;
    out[t] = l;
  }
  return out;
}

}  // namespace rg::spec
