// Rollouts on model/sampler.h's batched sampler: prefill() once per prompt, PromptState::repeat(G), then
// generate() from the copies with one seed per row; then the training rows and their log-probabilities at
// the sampling temperature. The sampler is used only in sample_rollouts().
#include "rlhf/rollout.h"

#include "model/sampler.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace rg::rlhf {
namespace {

// SplitMix64 finaliser: decorrelates nearby seeds (step, index and copy numbers are small consecutive integers).
uint64_t rollout_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void check_rollout_inputs(const std::vector<std::vector<int32_t>>& prompts, const RolloutOptions& o) {
  if (prompts.empty()) throw std::invalid_argument("rollout: no prompts");
  if (o.group < 1) throw std::invalid_argument("rollout: group: expected >= 1, got " + std::to_string(o.group));
  if (o.max_new_tokens < 1) {
    throw std::invalid_argument("rollout: max_new_tokens: expected >= 1, got " + std::to_string(o.max_new_tokens));
  }
  if (o.seeds.size() != prompts.size()) {
    throw std::invalid_argument("rollout: " + std::to_string(o.seeds.size()) + " seeds for " +
                                std::to_string(prompts.size()) + " prompts");
  }
}

}  // namespace

uint64_t rollout_seed(uint64_t run_seed, uint64_t step, uint64_t index) {
  return rollout_mix(rollout_mix(rollout_mix(run_seed) ^ step) ^ index);
}

Rollouts sample_rollouts(Griffin& policy, const std::vector<std::vector<int32_t>>& prompts, const RolloutOptions& o) {
  check_rollout_inputs(prompts, o);
  const int64_t N = static_cast<int64_t>(prompts.size()), G = o.group, R = N * G;
  SamplerOptions so;
  so.max_new_tokens = o.max_new_tokens, so.temperature = o.temperature, so.stop_ids = o.stop_ids, so.pad_id = o.pad_id;
  for (int64_t r = 0; r < R; ++r) so.row_seeds.push_back(rollout_mix(o.seeds[r / G] ^ rollout_mix(static_cast<uint64_t>(r % G))));
  // Rows prefilled: each prompt once (then its state copied G times), or every copy separately.
  std::vector<std::vector<int64_t>> rows;
  for (int64_t p = 0; p < N; ++p) {
    for (int64_t g = 0; g < (o.share_prompt_state ? 1 : G); ++g) rows.emplace_back(prompts[p].begin(), prompts[p].end());
  }
  Generation gen;
  try {
    PromptState state = prefill(policy, rows, so);
    if (o.share_prompt_state && G > 1) state = state.repeat(G);
    gen = generate(policy, std::move(state), so);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("rollout: ") + e.what());
  }
  Rollouts out;
  out.prompts = N, out.group = G;
  out.completions.resize(R);
  for (int64_t r = 0; r < R; ++r) {
    out.completions[r].assign(gen.ids[r].begin(), gen.ids[r].end());
    out.new_tokens += static_cast<int64_t>(gen.ids[r].size());
  }
  out.logprobs = std::move(gen.logprobs);
  out.stopped = std::move(gen.stopped);
  out.state_bytes = gen.state_bytes;
  return out;
}

RolloutBatch make_rollout_batch(const std::vector<std::vector<int32_t>>& prompts, const Rollouts& r, int64_t pad_id,
                                const torch::Device& device) {
  const int64_t B = r.rows();
  if (static_cast<int64_t>(prompts.size()) != r.prompts) {
    throw std::invalid_argument("make_rollout_batch: " + std::to_string(prompts.size()) + " prompts for rollouts of " +
                                std::to_string(r.prompts));
  }
  int64_t T = 1, C = 1;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t m = static_cast<int64_t>(r.completions[b].size());
    if (m == 0) throw std::invalid_argument("make_rollout_batch: row " + std::to_string(b) + " has an empty completion");
    T = std::max<int64_t>(T, static_cast<int64_t>(prompts[b / r.group].size()) + m);
    C = std::max(C, m);
  }
  std::vector<int64_t> tokens(B * T, pad_id), pos(B * T, 0), index(B * C, 0), targets(B * C, pad_id), last(B);
  std::vector<float> mask(B * C, 0.f), lengths(B);
  for (int64_t b = 0; b < B; ++b) {
    const auto& prompt = prompts[b / r.group];
    const auto& comp = r.completions[b];
    const int64_t np = static_cast<int64_t>(prompt.size()), m = static_cast<int64_t>(comp.size());
    for (int64_t t = 0; t < np + m; ++t) {
      tokens[b * T + t] = t < np ? prompt[t] : comp[t - np];
      pos[b * T + t] = t;
    }
    for (int64_t j = 0; j < C; ++j) {
      // Beyond the completion the column points at the last real position (any in-range index; masked).
      index[b * C + j] = np - 1 + std::min(j, m - 1);
      if (j < m) targets[b * C + j] = comp[j], mask[b * C + j] = 1.f;
    }
    last[b] = np + m - 1;
    lengths[b] = static_cast<float>(m);
  }
  auto longs = [&device](std::vector<int64_t>& v, std::vector<int64_t> shape) {
    return torch::from_blob(v.data(), shape, torch::kLong).to(device, false, /*copy=*/true);
  };
  RolloutBatch out;
  out.tokens = longs(tokens, {B, T});
  out.segment_pos = longs(pos, {B, T});
  out.index = longs(index, {B, C});
  out.targets = longs(targets, {B, C});
  out.last = longs(last, {B});
  out.mask = torch::from_blob(mask.data(), {B, C}, torch::kFloat).to(device, false, true);
  out.lengths = torch::from_blob(lengths.data(), {B}, torch::kFloat).to(device, false, true);
  return out;
}

TokenLogps completion_logps_from_hidden(Griffin& model, const torch::Tensor& hidden, const RolloutBatch& b,
                                        double temperature) {
  const int64_t B = b.index.size(0), C = b.index.size(1), W = hidden.size(2);
  const torch::Tensor h = hidden.gather(1, b.index.unsqueeze(2).expand({B, C, W}));  // (B, C, W)
  const torch::Tensor logp = torch::log_softmax(model->logits(h).to(torch::kFloat) / temperature, -1);  // (B, C, V)
  TokenLogps out;
  out.logp = logp.gather(2, b.targets.unsqueeze(2)).squeeze(2) * b.mask;  // (B, C)
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor lp = logp.detach();
    out.entropy = -(lp.exp() * lp).sum(-1) * b.mask;  // (B, C)
  }
  return out;
}

TokenLogps completion_logps(Griffin& model, const RolloutBatch& b, double temperature) {
  return completion_logps_from_hidden(model, model->hidden(b.tokens, b.segment_pos), b, temperature);
}

torch::Tensor rollout_logps_tensor(const Rollouts& r, int64_t columns, const torch::Device& device) {
  const int64_t B = r.rows();
  std::vector<float> v(B * columns, 0.f);
  for (int64_t b = 0; b < B; ++b) {
    const auto& lp = r.logprobs[b];
    for (size_t j = 0; j < lp.size() && static_cast<int64_t>(j) < columns; ++j) v[b * columns + j] = static_cast<float>(lp[j]);
  }
  return torch::from_blob(v.data(), {B, columns}, torch::kFloat).to(device, false, true);
}

}  // namespace rg::rlhf
