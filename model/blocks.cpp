// Recurrent and attention temporal blocks and the residual block (docs/architecture.md §2, 5, 6, 9).
//
// Sampling state and documents: the state built by a parallel pass keeps only the last token's document
// (conv taps and attention slots of earlier documents or of left padding are dropped), and a step whose
// segment position is 0 starts a new document (conv taps zeroed, attention slots emptied; the RG-LRU resets
// itself). So decoding token by token always reproduces the parallel pass, which masks documents.
#include "model/blocks.h"

#include "model/kernels/decode_attention.h"
#include "model/kernels/decode_step.h"

#include <ATen/record_function.h>

#include <cmath>

namespace rg {
namespace {

// The reference's "minus infinity": finite so that a fully masked row cannot produce NaNs.
constexpr double kMinLogit = -2.3819763e38;

// Multi-query attention of q over (k, v) where `allowed` says which pairs count.
// q (B, Tq, H, hd), k and v (B, S, G, hd), allowed (B, Tq, S) bool -> (B, Tq, H, hd).
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& allowed) {
  const int64_t B = q.size(0), Tq = q.size(1), H = q.size(2), hd = q.size(3), S = k.size(1), G = k.size(2);
  const torch::Tensor qg = q.reshape({B, Tq, G, H / G, hd}).permute({0, 2, 3, 1, 4});  // (B, G, H/G, Tq, hd)
  const torch::Tensor kg = k.permute({0, 2, 3, 1}).unsqueeze(2);                       // (B, G, 1, hd, S)
  const torch::Tensor vg = v.permute({0, 2, 1, 3}).unsqueeze(2);                       // (B, G, 1, S, hd)
  torch::Tensor scores = torch::matmul(qg, kg) * (1.0 / std::sqrt(static_cast<double>(hd)));  // (B, G, H/G, Tq, S)
  scores = scores.to(torch::kFloat).masked_fill(allowed.logical_not().view({B, 1, 1, Tq, S}), kMinLogit);
  const torch::Tensor probs = torch::softmax(scores, -1).to(q.scalar_type());
  return torch::matmul(probs, vg).permute({0, 3, 1, 2, 4}).reshape({B, Tq, H, hd});  // (B, Tq, H, hd)
}

}  // namespace

// ---- attention --------------------------------------------------------------------------------------------

torch::Tensor local_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& doc, int64_t window) {
  RECORD_USER_SCOPE("rg::attention");  // the forward's masks, scores and softmax, for `rgemma bench step --profile`
  const int64_t T = q.size(1);
  const int64_t w = window > 0 ? window : T;
  // Query chunks of at least 64 rows keep the matmuls efficient; a quarter window bounds the share of
  // computed-then-masked scores (the triangle at each chunk's ends) to about 10%.
  const int64_t chunk = window > 0 ? std::max<int64_t>(64, window / 4) : 256;
  const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(q.device());
  std::vector<torch::Tensor> outs;
  for (int64_t s = 0; s < T; s += chunk) {
    const int64_t c = std::min(chunk, T - s), k0 = std::max<int64_t>(0, s - w), S = s + c - k0;
    const torch::Tensor diff = torch::arange(s, s + c, long_opts).unsqueeze(1) -
                               torch::arange(k0, s + c, long_opts).unsqueeze(0);  // (c, S) t - tau
    const torch::Tensor pos_ok = (diff >= 0).logical_and(diff <= w);
    const torch::Tensor doc_ok = doc.narrow(1, s, c).unsqueeze(2) == doc.narrow(1, k0, S).unsqueeze(1);  // (B, c, S)
    outs.push_back(attend(q.narrow(1, s, c), k.narrow(1, k0, S), v.narrow(1, k0, S), doc_ok.logical_and(pos_ok)));
  }
  return torch::cat(outs, 1);
}

torch::Tensor naive_local_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const torch::Tensor& doc, int64_t window) {
  const int64_t T = q.size(1);
  const auto long_opts = torch::TensorOptions().dtype(torch::kLong).device(q.device());
  const torch::Tensor t = torch::arange(T, long_opts);
  const torch::Tensor diff = t.unsqueeze(1) - t.unsqueeze(0);  // (T, T)
  torch::Tensor allowed = diff >= 0;
  if (window > 0) allowed = allowed.logical_and(diff <= window);
  allowed = allowed.logical_and(doc.unsqueeze(2) == doc.unsqueeze(1));  // (B, T, T)
  return attend(q, k, v, allowed);
}

AttentionBlockImpl::AttentionBlockImpl(const AttentionOptions& o) : o_(o) {
  using torch::nn::Linear, torch::nn::LinearOptions;
  q_proj = register_module("q_proj", Linear(LinearOptions(o.width, o.num_heads * o.head_dim).bias(false)));
  k_proj = register_module("k_proj", Linear(LinearOptions(o.width, o.num_kv_heads * o.head_dim).bias(false)));
  v_proj = register_module("v_proj", Linear(LinearOptions(o.width, o.num_kv_heads * o.head_dim).bias(false)));
  o_proj = register_module("o_proj", Linear(LinearOptions(o.num_heads * o.head_dim, o.width).bias(o.bias)));
}

void AttentionBlockImpl::reset_parameters(double final_scale) {
  init_normal(q_proj->weight, 1.0 / o_.width);
  init_normal(k_proj->weight, 1.0 / o_.width);
  init_normal(v_proj->weight, 1.0 / o_.width);
  init_normal(o_proj->weight, final_scale / (o_.num_heads * o_.head_dim));
  torch::NoGradGuard no_grad;
  if (o_proj->bias.defined()) o_proj->bias.zero_();
}

AttentionState AttentionBlockImpl::empty_state(int64_t batch, const torch::TensorOptions& options) const {
  AttentionState s;
  s.ring = o_.window > 0;
  const int64_t slots = s.ring ? o_.window : 0;
  s.keys = torch::zeros({batch, slots, o_.num_kv_heads, o_.head_dim}, options);
  s.values = torch::zeros_like(s.keys);
  s.positions = torch::full({batch, slots}, -1, options.dtype(torch::kLong));
  s.length = slots;
  return s;
}

torch::Tensor AttentionBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& segment_pos,
                                          AttentionState* state) {
  const int64_t B = x.size(0), T = x.size(1), H = o_.num_heads, G = o_.num_kv_heads, hd = o_.head_dim;
  const torch::Tensor q = apply_rope(q_proj(x).view({B, T, H, hd}), segment_pos, o_.rotated, o_.rope_base);
  const torch::Tensor k = apply_rope(k_proj(x).view({B, T, G, hd}), segment_pos, o_.rotated, o_.rope_base);
  const torch::Tensor v = v_proj(x).view({B, T, G, hd});
  const torch::Tensor doc = document_ids(segment_pos);  // (B, T)
  const torch::Tensor out = local_attention(q, k, v, doc, o_.window);  // (B, T, H, hd)
  if (state) {
    torch::NoGradGuard no_grad;
    const torch::Tensor keep = (doc == doc.narrow(1, T - 1, 1)).logical_and(segment_pos >= 0);  // (B, T)
    if (o_.window == 0) {
      *state = AttentionState{k.detach(), v.detach(), torch::where(keep, segment_pos, -1), false, T};
    } else {
      *state = empty_state(B, k.options());
      const int64_t m = std::min(o_.window, T);
      for (int64_t b = 0; b < B; ++b) {
        const torch::Tensor idx = keep[b].narrow(0, T - m, m).nonzero().squeeze(1) + (T - m);  // token indices
        const torch::Tensor pos = segment_pos[b].index_select(0, idx);
        const torch::Tensor slots = pos.remainder(o_.window);
        state->keys[b].index_copy_(0, slots, k[b].index_select(0, idx));
        state->values[b].index_copy_(0, slots, v[b].index_select(0, idx));
        state->positions[b].index_copy_(0, slots, pos);
      }
    }
  }
  return o_proj(out.reshape({B, T, H * hd}));
}

torch::Tensor AttentionBlockImpl::step(const torch::Tensor& x, const torch::Tensor& segment_pos, AttentionState& s) {
  return fused_decode ? step_in_place(x, segment_pos, s) : step_reference(x, segment_pos, s);
}

// The reference: concatenates the cache and the new key, attends, and writes a new cache tensor.
torch::Tensor AttentionBlockImpl::step_reference(const torch::Tensor& x, const torch::Tensor& segment_pos,
                                                 AttentionState& s) {
  const int64_t B = x.size(0), H = o_.num_heads, G = o_.num_kv_heads, hd = o_.head_dim;
  const torch::Tensor q = apply_rope(q_proj(x).view({B, 1, H, hd}), segment_pos, o_.rotated, o_.rope_base);
  const torch::Tensor k = apply_rope(k_proj(x).view({B, 1, G, hd}), segment_pos, o_.rotated, o_.rope_base);
  const torch::Tensor v = v_proj(x).view({B, 1, G, hd});
  const torch::Tensor p = segment_pos.select(1, 0);  // (B)
  if (!s.ring) {  // drop reserved capacity: this path keeps exactly the slots in use
    const int64_t n = s.used();
    s.keys = s.keys.narrow(1, 0, n), s.values = s.values.narrow(1, 0, n), s.positions = s.positions.narrow(1, 0, n);
  }
  s.positions = s.positions.masked_fill((p == 0).unsqueeze(1), -1);  // a new document forgets the old one
  torch::Tensor valid = s.positions >= 0;                           // (B, S)
  if (o_.window > 0) valid = valid.logical_and(p.unsqueeze(1) - s.positions <= o_.window);
  const torch::Tensor keys = torch::cat({s.keys, k}, 1), values = torch::cat({s.values, v}, 1);  // (B, S+1, G, hd)
  const torch::Tensor allowed = torch::cat({valid, torch::ones({B, 1}, valid.options())}, 1).unsqueeze(1);
  const torch::Tensor out = attend(q, keys, values, allowed);  // (B, 1, H, hd)
  if (s.ring) {
    const torch::Tensor slot = p.remainder(o_.window).view({B, 1});  // (B, 1)
    s.keys = s.keys.scatter(1, slot.view({B, 1, 1, 1}).expand({B, 1, G, hd}), k);
    s.values = s.values.scatter(1, slot.view({B, 1, 1, 1}).expand({B, 1, G, hd}), v);
    s.positions = s.positions.scatter(1, slot, p.unsqueeze(1));
  } else {
    s.keys = keys, s.values = values;
    s.positions = torch::cat({s.positions, p.unsqueeze(1)}, 1);
    s.length = s.keys.size(1);
  }
  return o_proj(out.reshape({B, 1, H * hd}));
}

torch::Tensor AttentionBlockImpl::rope_one_token(const torch::Tensor& x, const torch::Tensor& positions) {
  const int64_t half = o_.rotated / 2;
  if (half == 0) return x;
  if (!inv_freq_.defined() || inv_freq_.device() != x.device()) {
    // apply_rope's float32 arithmetic: base ** (2 i / r), then 1 / that.
    const auto f32 = x.options().dtype(torch::kFloat);
    const torch::Tensor exponents = 2 * torch::arange(half, f32) / static_cast<float>(o_.rotated);
    inv_freq_ = 1.0 / torch::pow(torch::scalar_tensor(o_.rope_base, f32), exponents);  // (r/2)
  }
  const torch::Tensor angle = (positions.to(torch::kFloat).unsqueeze(1) * inv_freq_).unsqueeze(1);  // (B, 1, r/2)
  const torch::Tensor sin = angle.sin().to(x.scalar_type()), cos = angle.cos().to(x.scalar_type());
  torch::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);  // (B, N, r/2)
  const torch::Tensor r1 = x1 * cos - x2 * sin, r2 = x2 * cos + x1 * sin;
  x1.copy_(r1), x2.copy_(r2);
  return x;
}

// Attends to the cache as it is plus the new key (scores of both in one softmax), then writes the new key
// into its slot in place: no copy of the cache per step. A ring slot is overwritten only after the query
// has seen it (it holds position p - w, which p still sees).
torch::Tensor AttentionBlockImpl::step_in_place(const torch::Tensor& x, const torch::Tensor& segment_pos,
                                                AttentionState& s) {
  const int64_t B = x.size(0), H = o_.num_heads, G = o_.num_kv_heads, hd = o_.head_dim;
  const torch::Tensor xs = x.reshape({B, o_.width});
  const torch::Tensor p = segment_pos.reshape({B});
  const torch::Tensor q = rope_one_token(kernels::linear_rows(xs, q_proj->weight, {}).view({B, H, hd}), p);
  const torch::Tensor k = rope_one_token(kernels::linear_rows(xs, k_proj->weight, {}).view({B, G, hd}), p);
  const torch::Tensor v = kernels::linear_rows(xs, v_proj->weight, {}).view({B, G, hd});
  s.positions.masked_fill_((p == 0).unsqueeze(1), -1);  // a new document forgets the old one
  const int64_t S = s.used();
  torch::Tensor out;  // (B, H, hd)
  if (kernels::attend_one_token_applies(q, s.keys)) {
    out = kernels::attend_one_token(q, k, v, s.keys, s.values, s.positions, S, p.contiguous(), o_.window);
  } else {  // op by op: CUDA, bfloat16, float64
    const torch::Tensor pos = s.positions.narrow(1, 0, S);  // (B, S)
    torch::Tensor allowed = pos >= 0;
    if (o_.window > 0) allowed.logical_and_(p.unsqueeze(1) - pos <= o_.window);
    allowed = torch::cat({allowed, torch::ones({B, 1}, allowed.options())}, 1).view({B, 1, 1, S + 1});
    const torch::Tensor keys = s.keys.narrow(1, 0, S), values = s.values.narrow(1, 0, S);  // (B, S, G, hd)
    const torch::Tensor qg = q.view({B, G, H / G, hd});
    const torch::Tensor scores = torch::cat({torch::matmul(qg, keys.permute({0, 2, 3, 1})),      // (B, G, H/G, S)
                                             (qg * k.unsqueeze(2)).sum(-1, /*keepdim=*/true)},  // the new key
                                            -1) * (1.0 / std::sqrt(static_cast<double>(hd)));
    const torch::Tensor masked = scores.to(torch::kFloat).masked_fill_(allowed.logical_not(), kMinLogit);
    const torch::Tensor probs = torch::softmax(masked, -1).to(q.scalar_type());
    out = torch::matmul(probs.narrow(-1, 0, S), values.permute({0, 2, 1, 3})) +
          probs.narrow(-1, S, 1) * v.unsqueeze(2);  // (B, G, H/G, hd)
  }
  if (s.ring) {
    const torch::Tensor rows = torch::arange(B, p.options()), slot = p.remainder(o_.window);
    s.keys.index_put_({rows, slot}, k);
    s.values.index_put_({rows, slot}, v);
    s.positions.index_put_({rows, slot}, p);
  } else {
    if (S == s.keys.size(1)) s.reserve(std::max<int64_t>(S, 64));  // doubling: amortised O(1) per token
    s.keys.select(1, S).copy_(k), s.values.select(1, S).copy_(v), s.positions.select(1, S).copy_(p);
    s.length = S + 1;
  }
  return kernels::linear_rows(out.reshape({B, H * hd}), o_proj->weight, o_proj->bias).view({B, 1, o_.width});
}

// ---- recurrent ----------------------------------------------------------------------------------------------

RecurrentBlockImpl::RecurrentBlockImpl(int64_t width, int64_t lru_width, int64_t num_heads, int64_t conv_width)
    : width_(width), lru_width_(lru_width), conv_width_(conv_width) {
  linear_y = register_module("linear_y", torch::nn::Linear(width, lru_width));
  linear_x = register_module("linear_x", torch::nn::Linear(width, lru_width));
  linear_out = register_module("linear_out", torch::nn::Linear(lru_width, width));
  conv_1d = register_module("conv_1d", Conv1D(lru_width, conv_width));
  rg_lru = register_module("rg_lru", RGLRU(lru_width, num_heads));
}

void RecurrentBlockImpl::reset_parameters(double final_scale) {
  init_normal(linear_x->weight, 1.0 / width_);
  init_normal(linear_y->weight, 1.0 / width_);
  init_normal(linear_out->weight, final_scale / lru_width_);
  {
    torch::NoGradGuard no_grad;
    linear_x->bias.zero_(), linear_y->bias.zero_(), linear_out->bias.zero_();
  }
  conv_1d->reset_parameters();
  rg_lru->reset_parameters();
}

RecurrentState RecurrentBlockImpl::empty_state(int64_t batch, const torch::TensorOptions& options) const {
  const auto acc = options.dtype() == torch::kDouble ? torch::kDouble : torch::kFloat;
  return {torch::zeros({batch, conv_width_ - 1, lru_width_}, options),
          torch::zeros({batch, lru_width_}, options.dtype(acc))};
}

torch::Tensor RecurrentBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& segment_pos,
                                          RecurrentState* state) {
  const torch::Tensor y = gelu_tanh(linear_y(x));       // (B, T, L)
  const torch::Tensor u = linear_x(x);                  // (B, T, L)
  const torch::Tensor doc = document_ids(segment_pos);  // (B, T)
  const torch::Tensor c = conv_1d(u, doc);              // (B, T, L)
  auto [r, h_last] = rg_lru(c, segment_pos);            // (B, T, L), (B, L) float32
  if (state) {
    torch::NoGradGuard no_grad;
    const int64_t T = x.size(1), taps = conv_width_ - 1;
    // The last K-1 conv inputs, left-padded with zeros, kept only where they share the last token's document.
    const torch::Tensor tail_u = T >= taps ? u.narrow(1, T - taps, taps)
                                           : torch::constant_pad_nd(u, {0, 0, taps - T, 0});  // (B, K-1, L)
    const torch::Tensor tail_doc = T >= taps ? doc.narrow(1, T - taps, taps)
                                             : torch::constant_pad_nd(doc, {taps - T, 0}, -1);  // (B, K-1)
    const torch::Tensor same = (tail_doc == doc.narrow(1, T - 1, 1)).unsqueeze(-1).to(u.scalar_type());
    state->conv = (tail_u * same).detach();
    state->lru = h_last.detach();
  }
  return linear_out(r * y);
}

torch::Tensor RecurrentBlockImpl::step(const torch::Tensor& x, const torch::Tensor& segment_pos, RecurrentState& s) {
  if (fused_decode && kernels::decode_kernels_apply(x)) {
    const int64_t B = x.size(0);
    const torch::Tensor xs = x.reshape({B, width_});
    const torch::Tensor y_pre = kernels::linear_rows(xs, linear_y->weight, linear_y->bias);  // (B, L)
    const torch::Tensor u = kernels::linear_rows(xs, linear_x->weight, linear_x->bias);
    if (!s.conv.is_contiguous()) s.conv = s.conv.contiguous();
    if (!s.lru.is_contiguous()) s.lru = s.lru.contiguous();
    const kernels::RecurrentStepParams p{conv_1d->weight, conv_1d->bias, rg_lru->input_gate_weight,
                                         rg_lru->input_gate_bias, rg_lru->recurrent_gate_weight,
                                         rg_lru->recurrent_gate_bias, rg_lru->recurrent_param};
    const torch::Tensor r = kernels::recurrent_step_(u.contiguous(), y_pre.contiguous(), segment_pos.reshape({B}) == 0,
                                                     s.conv, s.lru, p);
    return kernels::linear_rows(r, linear_out->weight, linear_out->bias).view({B, 1, width_});
  }
  const torch::Tensor keep = (segment_pos != 0).unsqueeze(-1).to(x.scalar_type());  // (B, 1, 1)
  const torch::Tensor prev = s.conv * keep;  // a new document sees no earlier conv inputs
  const torch::Tensor y = gelu_tanh(linear_y(x));  // (B, 1, L)
  const torch::Tensor u = linear_x(x);             // (B, 1, L)
  const torch::Tensor c = conv_1d->forward(u, torch::Tensor(), prev);
  auto [r, h_last] = rg_lru(c, segment_pos, s.lru);
  s.conv = torch::cat({prev, u}, 1).narrow(1, 1, conv_width_ - 1).detach();
  s.lru = h_last.detach();
  return linear_out(r * y);
}

// ---- residual ---------------------------------------------------------------------------------------------

ResidualBlockImpl::ResidualBlockImpl(const ModelConfig& c, BlockType type) : type_(type) {
  temporal_pre_norm = register_module("temporal_pre_norm", RMSNorm(c.width, c.norm_eps));
  if (type == BlockType::kRecurrent) {
    recurrent = register_module("temporal_block", RecurrentBlock(c.width, c.lru_width, c.num_heads, c.conv_width));
  } else {
    AttentionOptions o;
    o.width = c.width, o.num_heads = c.num_heads, o.num_kv_heads = c.num_kv_heads, o.head_dim = c.head_dim;
    o.window = c.attention_window, o.rope_base = c.rope_base, o.bias = c.use_bias;
    o.rotated = static_cast<int64_t>(std::llround(c.head_dim * c.rope_fraction));
    attention = register_module("temporal_block", AttentionBlock(o));
  }
  channel_pre_norm = register_module("channel_pre_norm", RMSNorm(c.width, c.norm_eps));
  mlp_block = register_module("mlp_block", MLPBlock(c.width, c.mlp_hidden, c.use_bias));
}

void ResidualBlockImpl::reset_parameters(double final_scale) {
  temporal_pre_norm->reset_parameters();
  channel_pre_norm->reset_parameters();
  if (recurrent) recurrent->reset_parameters(final_scale);
  if (attention) attention->reset_parameters(final_scale);
  mlp_block->reset_parameters(final_scale);
}

BlockState ResidualBlockImpl::empty_state(int64_t batch, const torch::TensorOptions& options) const {
  BlockState s;
  if (recurrent) s.recurrent = recurrent->empty_state(batch, options);
  if (attention) s.attention = attention->empty_state(batch, options);
  return s;
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& segment_pos, BlockState* state) {
  const torch::Tensor normed = temporal_pre_norm(x);
  const torch::Tensor temporal = recurrent ? recurrent(normed, segment_pos, state ? &state->recurrent : nullptr)
                                           : attention(normed, segment_pos, state ? &state->attention : nullptr);
  const torch::Tensor residual = x + temporal;
  return residual + mlp_block(channel_pre_norm(residual));
}

void ResidualBlockImpl::set_fused_decode(bool fused) {
  fused_decode_ = fused;
  if (recurrent) recurrent->fused_decode = fused;
  if (attention) attention->fused_decode = fused;
}

torch::Tensor ResidualBlockImpl::step(const torch::Tensor& x, const torch::Tensor& segment_pos, BlockState& state) {
  const bool fused = fused_decode_ && kernels::decode_kernels_apply(x);
  const int64_t B = x.size(0), W = x.size(-1);
  // One token per row: the norms as one kernel each instead of seven operators.
  auto norm = [&](RMSNorm& n, const torch::Tensor& v) {
    return fused ? kernels::rms_norm_rows(v.reshape({B, W}).contiguous(), n->weight, n->eps()).view({B, 1, W}) : n(v);
  };
  const torch::Tensor normed = norm(temporal_pre_norm, x);
  const torch::Tensor temporal = recurrent ? recurrent->step(normed, segment_pos, state.recurrent)
                                           : attention->step(normed, segment_pos, state.attention);
  const torch::Tensor residual = x + temporal;
  if (!fused) return residual + mlp_block(channel_pre_norm(residual));
  const torch::Tensor h = norm(channel_pre_norm, residual).view({B, W});
  const MLPBlockImpl& m = *mlp_block;
  const torch::Tensor gate = gelu_tanh(kernels::linear_rows(h, m.gate_proj->weight, m.gate_proj->bias));
  const torch::Tensor hidden = gate * kernels::linear_rows(h, m.up_proj->weight, m.up_proj->bias);
  return residual + kernels::linear_rows(hidden, m.down_proj->weight, m.down_proj->bias).view({B, 1, W});
}

}  // namespace rg
