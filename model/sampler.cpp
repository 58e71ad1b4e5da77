// Batched sampling: left-pad, prefill the state, then one step per generated token (docs/architecture.md §8-9), with
// the token rule vectorised over the batch on the model's device.
//
// The rule on logits l (B, V), temperature T, uniforms u (B):
//   z = (l - max l) / T, p = exp(z) / sum exp(z)        full-vocabulary probabilities (z <= 0: no overflow)
//   top_k = 0, top_p = 1: inverse CDF over the vocabulary in id order (cumsum in float64 + searchsorted).
//   On the CPU one fused kernel per row does it without any (B, V) tensor: a max pass, then exp(z) summed in
//   float64 per block of 1,024 ids, the block found from the block sums and the id by summing inside it.
//   Same choice as the cumsum except where u * total lies within float64 rounding of a cut (the sums'
//   association differs) or, for float32 logits, within float32 rounding (its exp is not Sleef's).
//   otherwise the candidates, most likely first: torch::topk(k) for top_k > 0, else an adaptive top-k that
//   grows (x4) until every row's candidates hold top_p of the mass; top-p keeps the shortest prefix whose
//   full-vocabulary mass reaches top_p; inverse CDF over what is kept.
// Only the candidates are ever sorted. The chosen token is the same function of u as the old per-row
// double-precision loop except where probabilities tie (the order of tied candidates is topk's) or sit
// within float32 rounding of a top-p cut.
#include "model/sampler.h"

#include "model/kernels/parallel_work.h"
#include "model/kernels/vec_exp_tanh.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace rg {
namespace {

std::string sampler_number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

[[noreturn]] void throw_non_finite_logits(const std::string& where) {
  throw std::runtime_error(where + "the model's logits contain NaN or infinity (corrupt weights, or an overflow "
                           "in the forward pass); refusing to sample from them");
}

// splitmix64's finaliser (Steele, Lea, Flood 2014): a bijection of 64-bit words with full avalanche.
uint64_t sampler_mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The largest double below 1: target = u * total is kept below total so that searchsorted never runs off
// the end (u * total can round up to total).
constexpr double kBelowOne = 1.0 - 1.0 / 9007199254740992.0;  // 1 - 2^-53

// The same rule on the CPU without materialising the CDF: one pass for the total, one that stops at the
// chosen column, both summing left to right in float64 as cumsum does, so the partial sums, the total and
// the choice are bit-for-bit those of cumsum + searchsorted. ATen's CPU cumsum in float64 took 11 ms of a
// 256k-vocabulary batch-4 step on the 2-core AMD EPYC; this takes a few hundred microseconds.
torch::Tensor inverse_cdf_cpu(const torch::Tensor& prob, const torch::Tensor& u) {
  const torch::Tensor p = prob.contiguous(), ud = u.to(torch::kDouble).contiguous();
  const int64_t B = p.size(0), N = p.size(1);
  torch::Tensor out = torch::empty({B}, torch::kLong);
  int64_t* ids = out.data_ptr<int64_t>();
  const double* us = ud.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "inverse_cdf", [&] {
    const scalar_t* rows = p.data_ptr<scalar_t>();
    // Two float64 passes over a row: ~2N steps (kernels/parallel_work.h).
    at::parallel_for(0, B, kernels::grain_for(2 * N), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const scalar_t* row = rows + b * N;
        double total = 0;
        for (int64_t i = 0; i < N; ++i) total += static_cast<double>(row[i]);
        const double target = std::min(us[b] * total, total * kBelowOne);
        double cumulative = 0;
        int64_t i = 0;
        for (; i < N; ++i) {
          cumulative += static_cast<double>(row[i]);
          if (cumulative > target) break;
        }
        ids[b] = std::min(i, N - 1);
      }
    });
  });
  return out;
}

// Inverse CDF over the columns of prob (B, N) (non-negative, each row with mass > 0, summed in float64):
// the first column whose cumulative sum exceeds u * total.
torch::Tensor inverse_cdf(const torch::Tensor& prob, const torch::Tensor& u) {
  if (prob.device().is_cpu()) return inverse_cdf_cpu(prob, u);
  const torch::Tensor cdf = prob.to(torch::kDouble).cumsum(-1);  // (B, N)
  const torch::Tensor total = cdf.select(1, cdf.size(1) - 1);  // (B)
  const torch::Tensor target = torch::minimum(u * total, total * kBelowOne).unsqueeze(1);
  return torch::searchsorted(cdf, target, /*out_int32=*/false, /*right=*/true).squeeze(1).clamp_max(prob.size(1) - 1);
}

// The fused CPU rule for float32 / float64 logits, plain rule or greedy (see the top of the file). Per row:
//   1. m = max l, with a NaN flag (the row is reported non-finite as the ATen path reports it: NaN, +inf, all -inf)
//   2. e_i = exp((l_i - m) / T) a block of kPickBlock ids at a time into an L1 buffer, each block summed in
//      float64 in sixteen lanes of vector accumulators (no serial dependency chain over V), total = sum of block sums
//   3. target = u * total (kept below total), the block where the running sum of block sums first exceeds it,
//      and inside it, e recomputed and summed serially in float64 from that block's start: the first id whose
//      running sum exceeds target. If rounding (block sums associate differently) lets no id of the block
//      cross, its last id with e > 0: the chosen id always has probability > 0.
//   4. log p = z[id] - log(total); greedy: the first maximum, log p = -log(total) at T = 1.
// On a 256k vocabulary the ATen rule was ~8 passes over (B, V) (max, sub, div, exp, sum, log, gather, the
// two summing passes of inverse_cdf_cpu), a third of a batch-4 step on the 2-core AMD EPYC.
constexpr int64_t kPickBlock = 1024;  // a multiple of 16 (the summing loop's stride); 4 KB of float: in L1

namespace vec = kernels::vec;
using f64x4 = double __attribute__((vector_size(32)));
using f64x8 = double __attribute__((vector_size(64)));
using f32x8 = vec::f32x8;


// Row maximum and whether a NaN is in the row (a NaN comparison is false, so it would not reach the max).
float pick_row_max(const float* l, int64_t n, bool* nan) {
  vec::f32x16 m = vec::splat<vec::f32x16>(-std::numeric_limits<float>::infinity());
  vec::i32x16 bad = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const auto v = vec::load<vec::f32x16>(l + i);
    bad |= v != v;
    m = v > m ? v : m;
  }
  float out = m[0];
  bool any = false;
  for (int j = 0; j < 16; ++j) out = std::max(out, m[j]), any |= bad[j] != 0;
  for (; i < n; ++i) out = std::max(out, l[i]), any |= std::isnan(l[i]);
  *nan = any;
  return out;
}
double pick_row_max(const double* l, int64_t n, bool* nan) {
  double out = -std::numeric_limits<double>::infinity();
  bool any = false;
  for (int64_t i = 0; i < n; ++i) out = std::max(out, l[i]), any |= std::isnan(l[i]);
  *nan = any;
  return out;
}

// e[i] = exp((l[i] - m) / t) for i < n <= kPickBlock, zeros after n up to the next multiple of 16. float32:
// the division as ATen's (l - m) / T rounds it (none at t = 1, where it is exact), then vec::exp_nonpositive
// (within 3 * 2^-24 relative), sixteen lanes at a time.
void pick_exp_block(const float* l, int64_t n, float m, float t, float* e) {
  using F = vec::f32x16;
  const F mv = vec::splat<F>(m), tv = vec::splat<F>(t);
  const bool divide = t != 1.f;
  for (int64_t i = 0; i < n; i += 16) {
    F v = vec::splat<F>(-std::numeric_limits<float>::infinity());  // past n: exp(-inf) = 0
    if (i + 16 <= n) {
      v = vec::load<F>(l + i);
    } else {
      std::memcpy(&v, l + i, static_cast<size_t>(n - i) * sizeof(float));
    }
    const F x = vec::exp_nonpositive(divide ? F((v - mv) / tv) : F(v - mv));
    vec::store(e + i, x);
  }
}
void pick_exp_block(const double* l, int64_t n, double m, double t, double* e) {
  const int64_t n16 = (n + 15) / 16 * 16;
  for (int64_t i = 0; i < n16; ++i) e[i] = i < n ? std::exp((l[i] - m) / t) : 0.0;
}

// Sum of e[0, n16) in float64, n16 a multiple of 16, in sixteen lanes of independent accumulators.
double pick_sum_f64(const float* e, int64_t n16) {
  f64x8 a0 = {}, a1 = {};
  for (int64_t i = 0; i < n16; i += 16) {
    a0 += __builtin_convertvector(vec::load<f32x8>(e + i), f64x8);
    a1 += __builtin_convertvector(vec::load<f32x8>(e + i + 8), f64x8);
  }
  const f64x8 s = a0 + a1;
  return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}
double pick_sum_f64(const double* e, int64_t n16) {
  f64x4 a0 = {}, a1 = {}, a2 = {}, a3 = {};
  for (int64_t i = 0; i < n16; i += 16) {
    a0 += vec::load<f64x4>(e + i), a1 += vec::load<f64x4>(e + i + 4);
    a2 += vec::load<f64x4>(e + i + 8), a3 += vec::load<f64x4>(e + i + 12);
  }
  const f64x4 s = (a0 + a1) + (a2 + a3);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

struct RowPick {
  int64_t id = 0;
  double logprob = std::numeric_limits<double>::quiet_NaN();
  bool finite = false;
};

template <class T>
RowPick pick_row(const T* l, int64_t V, bool greedy, T temperature, double u, std::vector<double>& block_sums,
                 T* e) {
  RowPick r;
  bool nan = false;
  const T m = pick_row_max(l, V, &nan);
  r.finite = !nan && std::isfinite(m);
  if (!r.finite) return r;
  const T t = greedy ? T(1) : temperature;
  const int64_t blocks = (V + kPickBlock - 1) / kPickBlock;
  const auto block_size = [&](int64_t j) { return std::min(kPickBlock, V - j * kPickBlock); };
  const auto block_exp = [&](int64_t j) { pick_exp_block(l + j * kPickBlock, block_size(j), m, t, e); };
  double total = 0;  // >= 1: the maximum contributes exp(0)
  for (int64_t j = 0; j < blocks; ++j) {
    block_exp(j);
    block_sums[j] = pick_sum_f64(e, (block_size(j) + 15) / 16 * 16);
    total += block_sums[j];
  }
  const double log_total = std::log(total);
  if (greedy) {
    r.id = std::find(l, l + V, m) - l;  // the first maximum, as argmax
    r.logprob = -log_total;
    return r;
  }
  const double target = std::min(u * total, total * kBelowOne);
  double cumulative = 0;
  int64_t j = 0;
  while (j + 1 < blocks && !(cumulative + block_sums[j] > target)) cumulative += block_sums[j++];
  // Only a block of zeros at the end can hold no id with e > 0; step back to one that has (total >= 1).
  while (block_sums[j] == 0) cumulative -= block_sums[--j];
  block_exp(j);
  int64_t last_positive = 0;
  int64_t i = 0;
  for (; i < block_size(j); ++i) {
    if (e[i] > 0) last_positive = i;
    cumulative += static_cast<double>(e[i]);
    if (cumulative > target) break;
  }
  r.id = j * kPickBlock + (i < block_size(j) ? i : last_positive);
  r.logprob = static_cast<double>(static_cast<T>((l[r.id] - m) / t)) - log_total;
  return r;
}

// The most likely candidates of each row, most likely first, enough of them that every row's
// full-vocabulary mass reaches top_p (or all V): values z (B, k) and ids (B, k).
std::tuple<torch::Tensor, torch::Tensor> nucleus_candidates(const torch::Tensor& z, const torch::Tensor& lse,
                                                            double top_p) {
  const int64_t V = z.size(1);
  for (int64_t k = std::min<int64_t>(64, V);; k = std::min(V, 4 * k)) {
    auto [values, ids] = torch::topk(z, k, -1, /*largest=*/true, /*sorted=*/true);
    if (k == V) return {values, ids};
    const torch::Tensor mass = (values - lse.unsqueeze(1)).to(torch::kDouble).exp().sum(-1);  // (B)
    if ((mass >= top_p).all().item<bool>()) return {values, ids};
  }
}

struct DevicePick {
  torch::Tensor ids;       // (B) int64
  torch::Tensor logprobs;  // (B) float32/64
  torch::Tensor finite;    // (B) bool: the row's maximum is finite (no NaN, no +inf, not all -inf)
};

// Rows taken one at a time from a shared counter (model/kernels/parallel_work.h), forking for ~4V steps per
// row (max, exp, two sums) above the fork floor: batch 4 x 256k gives two rows per core on two cores.
DevicePick pick_fused_cpu(const torch::Tensor& logits, const SamplerOptions& o, const torch::Tensor& u) {
  const torch::Tensor l = logits.contiguous(), ud = u.contiguous();
  const int64_t B = l.size(0), V = l.size(1);
  torch::Tensor ids = torch::empty({B}, torch::kLong), logprobs = torch::empty({B}, torch::kDouble);
  torch::Tensor finite = torch::empty({B}, torch::kBool);
  int64_t* id = ids.data_ptr<int64_t>();
  double* lp = logprobs.data_ptr<double>();
  bool* fin = finite.data_ptr<bool>();
  const double* us = ud.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(l.scalar_type(), "pick_fused_cpu", [&] {
    const scalar_t* rows = l.data_ptr<scalar_t>();
    const auto temperature = static_cast<scalar_t>(o.temperature);
    kernels::parallel_take(B, 1, kernels::grain_for(4 * V), [&](const auto& take) {
      std::vector<double> block_sums(static_cast<size_t>((V + kPickBlock - 1) / kPickBlock));
      std::vector<scalar_t> e(static_cast<size_t>(kPickBlock));
      for (int64_t b, b1; take(b, b1);) {
        const RowPick r = pick_row(rows + b * V, V, o.greedy, temperature, us[b], block_sums, e.data());
        id[b] = r.id, lp[b] = r.logprob, fin[b] = r.finite;
      }
    });
  });
  return {ids, logprobs, finite};
}

// The rule on the logits' device; options already checked. u (B) float64 on the same device.
DevicePick pick_on_device(const torch::Tensor& logits, const SamplerOptions& o, const torch::Tensor& u) {
  const torch::Tensor l = logits.scalar_type() == torch::kDouble ? logits : logits.to(torch::kFloat);  // (B, V)
  if (l.device().is_cpu() && (o.greedy || (o.top_k == 0 && o.top_p >= 1.0))) return pick_fused_cpu(l, o, u);
  // max propagates NaN and is +inf with any +inf, -inf when the whole row is: one test covers all three.
  const torch::Tensor m = std::get<0>(l.max(-1, /*keepdim=*/true));  // (B, 1)
  const torch::Tensor finite = torch::isfinite(m.squeeze(1));
  if (o.greedy) {
    const torch::Tensor ids = l.argmax(-1);  // the first maximum, as before
    // log_softmax(l)[argmax] = -log sum exp(l - max)
    return {ids, (l - m).exp().sum(-1).log().neg(), finite};
  }
  const torch::Tensor z = (l - m) / o.temperature;  // (B, V), <= 0
  const torch::Tensor e = z.exp();
  const torch::Tensor lse = e.sum(-1).log();  // (B) log sum exp(z), in [0, log V]
  torch::Tensor ids;
  if (o.top_k == 0 && o.top_p >= 1.0) {
    ids = inverse_cdf(e, u);
  } else {
    torch::Tensor values, candidates;
    if (o.top_k > 0) {
      std::tie(values, candidates) = torch::topk(z, std::min(o.top_k, z.size(1)), -1, true, true);
    } else {
      std::tie(values, candidates) = nucleus_candidates(z, lse, o.top_p);
    }
    torch::Tensor prob = (values - lse.unsqueeze(1)).to(torch::kDouble).exp();  // (B, k) full-vocabulary p
    if (o.top_p < 1.0) {
      // Keep candidates up to and including the first whose cumulative mass reaches top_p.
      const torch::Tensor keep = ((prob.cumsum(-1) < o.top_p).sum(-1, true) + 1);  // (B, 1)
      prob = prob * (torch::arange(prob.size(1), keep.options()).unsqueeze(0) < keep);
    }
    ids = candidates.gather(1, inverse_cdf(prob, u).unsqueeze(1)).squeeze(1);
  }
  return {ids, z.gather(1, ids.unsqueeze(1)).squeeze(1) - lse, finite};
}

void check_logits_shape(const torch::Tensor& logits, const torch::Tensor& u) {
  if (logits.dim() != 2 || logits.size(1) == 0 || u.dim() != 1 || u.size(0) != logits.size(0)) {
    throw std::invalid_argument("pick_tokens: expected logits (B, V) with V >= 1 and u (B)");
  }
}

}  // namespace

void check_sampler_options(const SamplerOptions& o) {
  if (o.max_new_tokens < 0) {
    throw std::invalid_argument("max_new_tokens: expected >= 0, got " + std::to_string(o.max_new_tokens));
  }
  if (o.greedy) return;
  // Written as "inside the range" so that NaN fails every test.
  if (!(std::isfinite(o.temperature) && o.temperature >= kMinTemperature)) {
    throw std::invalid_argument("temperature: expected a finite number >= " + sampler_number_text(kMinTemperature) +
                                " (for argmax use greedy), got " + sampler_number_text(o.temperature));
  }
  if (o.top_k < 0) throw std::invalid_argument("top_k: expected >= 0 (0 = all), got " + std::to_string(o.top_k));
  if (!(o.top_p > 0 && o.top_p <= 1)) {
    throw std::invalid_argument("top_p: expected a number in (0, 1], got " + sampler_number_text(o.top_p));
  }
}

uint64_t row_seed(uint64_t seed, int64_t row) {
  return sampler_mix64(sampler_mix64(seed) ^ static_cast<uint64_t>(row));
}

double row_uniform(uint64_t seed, int64_t step) {
  const uint64_t bits = sampler_mix64(sampler_mix64(seed) + static_cast<uint64_t>(step) * 0xD1B54A32D192ED03ull);
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);  // 53 bits -> [0, 1)
}

Picked pick_tokens(const torch::Tensor& logits, const SamplerOptions& o, const torch::Tensor& u) {
  check_sampler_options(o);
  check_logits_shape(logits, u);
  torch::NoGradGuard no_grad;
  const DevicePick p = pick_on_device(logits, o, u.to(logits.device(), torch::kDouble));
  if (!p.finite.all().item<bool>()) throw_non_finite_logits("sampler: ");
  return {p.ids, p.logprobs.to(torch::kDouble)};
}

int64_t pick_token(const torch::Tensor& logits, const SamplerOptions& o, double u) {
  if (logits.dim() != 1) throw std::invalid_argument("pick_token: expected logits (V)");
  return pick_tokens(logits.unsqueeze(0), o, torch::tensor({u}, torch::kDouble)).ids[0].item<int64_t>();
}

PromptState PromptState::repeat(int64_t g) const {
  if (g < 1) throw std::invalid_argument("PromptState::repeat: expected g >= 1, got " + std::to_string(g));
  return {state.repeat_rows(g), logits.repeat_interleave(g, 0), next_pos.repeat_interleave(g, 0)};
}

PromptState prefill(Griffin& model, const std::vector<std::vector<int64_t>>& prompts, const SamplerOptions& o) {
  if (prompts.empty()) throw std::invalid_argument("generate: no prompts");
  const int64_t V = model->config().vocab_size, B = static_cast<int64_t>(prompts.size());
  int64_t P = 0;
  for (size_t b = 0; b < prompts.size(); ++b) {
    if (prompts[b].empty()) throw std::invalid_argument("generate: prompt " + std::to_string(b) + " is empty");
    for (int64_t id : prompts[b]) {
      if (id < 0 || id >= V) {
        throw std::invalid_argument("generate: prompt " + std::to_string(b) + " has token id " + std::to_string(id) +
                                    " outside the vocabulary [0, " + std::to_string(V) + ")");
      }
    }
    P = std::max<int64_t>(P, prompts[b].size());
  }
  torch::NoGradGuard no_grad;
  const auto device = model->device();
  // Left padding with positions arange(P) - P + n clipped at -1: pads form their own document, unseen.
  torch::Tensor tokens = torch::full({B, P}, o.pad_id, torch::kLong);
  torch::Tensor pos = torch::empty({B, P}, torch::kLong);
  std::vector<int64_t> next_pos(B);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size());
    tokens[b].narrow(0, P - n, n).copy_(torch::tensor(prompts[b], torch::kLong));
    pos[b].copy_((torch::arange(P, torch::kLong) - P + n).clamp_min(-1));
    next_pos[b] = n;
  }
  PromptState p;
  // Logits at the last position only: (B, V), not (B, P, V).
  const torch::Tensor h = model->hidden(tokens.to(device), pos.to(device), &p.state);  // (B, P, W)
  p.logits = model->logits(h.select(1, P - 1));
  p.next_pos = torch::tensor(next_pos, torch::kLong).to(device);
  return p;
}

Generation generate(Griffin& model, PromptState prompt, const SamplerOptions& o) {
  try {
    check_sampler_options(o);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("generate: ") + e.what());
  }
  const int64_t B = prompt.batch();
  if (B == 0 || prompt.state.empty()) throw std::invalid_argument("generate: the prompt state is empty");
  if (!o.row_seeds.empty() && static_cast<int64_t>(o.row_seeds.size()) != B) {
    throw std::invalid_argument("generate: row_seeds: expected " + std::to_string(B) + " seeds (one per row), got " +
                                std::to_string(o.row_seeds.size()));
  }
  std::vector<uint64_t> seeds(B);
  for (int64_t b = 0; b < B; ++b) seeds[b] = o.row_seeds.empty() ? row_seed(o.seed, b) : o.row_seeds[b];

  torch::NoGradGuard no_grad;
  const auto device = model->device();
  // Steps update the state in place: a copy of it, so that the caller's PromptState can be decoded again.
  SamplingState state = prompt.state.clone();
  for (auto& block : state.blocks) block.attention.reserve(o.max_new_tokens);  // global attention appends in place
  torch::Tensor logits = prompt.logits;
  const torch::Tensor next_pos = prompt.next_pos.to(device);
  Generation g;
  g.ids.resize(B), g.logprobs.resize(B), g.stopped.assign(B, false);
  torch::Tensor u = torch::empty({B}, torch::kDouble), next = torch::empty({B}, torch::kLong);
  double* u_data = u.data_ptr<double>();
  int64_t* next_data = next.data_ptr<int64_t>();
  for (int64_t s = 0; s < o.max_new_tokens; ++s) {
    for (int64_t b = 0; b < B; ++b) u_data[b] = row_uniform(seeds[b], s);
    const DevicePick pick = pick_on_device(logits, o, u.to(device));
    // One copy to the host per step: ids, log-probs and the finiteness flags (ids < 2^53 are exact).
    const torch::Tensor host = torch::stack({pick.ids.to(torch::kDouble), pick.logprobs.to(torch::kDouble),
                                             pick.finite.to(torch::kDouble)}).cpu();  // (3, B)
    const auto h = host.accessor<double, 2>();
    bool any_running = false;
    for (int64_t b = 0; b < B; ++b) {
      if (h[2][b] == 0) throw_non_finite_logits("generate: step " + std::to_string(s) + ": ");
      next_data[b] = o.pad_id;
      if (g.stopped[b]) continue;
      const auto id = static_cast<int64_t>(h[0][b]);
      g.ids[b].push_back(id);
      g.logprobs[b].push_back(h[1][b]);
      next_data[b] = id;
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end()) g.stopped[b] = true;
      any_running |= !g.stopped[b];
    }
    const bool done = !any_running || s + 1 == o.max_new_tokens;
    if (!done) logits = model->step(next.to(device), next_pos + s, state);
    if (o.on_step) o.on_step(s + 1, state);
    if (done) break;
  }
  g.state_bytes = state.bytes();
  return g;
}

Generation generate(Griffin& model, const std::vector<std::vector<int64_t>>& prompts, const SamplerOptions& o) {
  try {
    check_sampler_options(o);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("generate: ") + e.what());
  }
  return generate(model, prefill(model, prompts, o), o);
}

}  // namespace rg
