// Pair batching (right padding, per-row last position and completion mask) and the two-pass chunked
// log-probabilities: pass one without a graph gives the values the loss needs, pass two recomputes each
// chunk's logits with a graph and back-propagates the known per-row gradient, one chunk at a time.
#include "rlhf/pair_batch.h"

#include <algorithm>
#include <cmath>

namespace rg::rlhf {
namespace {

PairBatch make_rows(const std::vector<std::pair<const std::vector<int32_t>*, const std::vector<int32_t>*>>& rows,
                    int32_t pad_id, const torch::Device& device) {
  const int64_t B = static_cast<int64_t>(rows.size());
  int64_t T = 1;
  for (const auto& [p, c] : rows) T = std::max<int64_t>(T, static_cast<int64_t>(p->size() + c->size()));
  std::vector<int64_t> tokens(B * T, pad_id), pos(B * T, 0), targets(B * T, pad_id), last(B);
  std::vector<float> mask(B * T, 0.f), completion(B);
  PairBatch out;
  for (int64_t b = 0; b < B; ++b) {
    const auto& prompt = *rows[b].first;
    const auto& comp = *rows[b].second;
    const int64_t np = static_cast<int64_t>(prompt.size()), n = np + static_cast<int64_t>(comp.size());
    int64_t* row = tokens.data() + b * T;
    for (int64_t t = 0; t < n; ++t) {
      row[t] = t < np ? prompt[t] : comp[t - np];
      pos[b * T + t] = t;
    }
    for (int64_t t = 0; t + 1 < n; ++t) {
      targets[b * T + t] = row[t + 1];
      mask[b * T + t] = t + 1 >= np ? 1.f : 0.f;  // the target is a completion token
    }
    last[b] = n - 1;
    completion[b] = static_cast<float>(comp.size());
    out.real_tokens += n;
  }
  auto longs = [&](std::vector<int64_t>& v, std::vector<int64_t> shape) {
    return torch::from_blob(v.data(), shape, torch::kLong).to(device, false, /*copy=*/true);
  };
  out.tokens = longs(tokens, {B, T});
  out.segment_pos = longs(pos, {B, T});
  out.targets = longs(targets, {B, T});
  out.last = longs(last, {B});
  out.completion_mask = torch::from_blob(mask.data(), {B, T}, torch::kFloat).to(device, false, true);
  out.completion_tokens = torch::from_blob(completion.data(), {B}, torch::kFloat).to(device, false, true);
  return out;
}

}  // namespace

PairBatch make_pair_batch(const std::vector<const data::PreferencePair*>& pairs, int32_t pad_id,
                          const torch::Device& device, const std::function<int32_t(const std::string&)>& kind_index) {
  std::vector<std::pair<const std::vector<int32_t>*, const std::vector<int32_t>*>> rows;
  for (const auto* p : pairs) rows.emplace_back(&p->prompt, &p->chosen);
  for (const auto* p : pairs) rows.emplace_back(&p->prompt, &p->rejected);
  PairBatch b = make_rows(rows, pad_id, device);
  b.pairs = static_cast<int64_t>(pairs.size());
  for (const auto* p : pairs) b.kinds.push_back(kind_index && !p->kind.empty() ? kind_index(p->kind) : -1);
  if (std::any_of(pairs.begin(), pairs.end(), [](const data::PreferencePair* p) { return p->margin.has_value(); })) {
    std::vector<float> m;
    for (const auto* p : pairs) m.push_back(p->margin ? static_cast<float>(*p->margin) : std::nanf(""));
    b.margins = torch::from_blob(m.data(), {b.pairs}, torch::kFloat).to(device, false, /*copy=*/true);  // (P)
  }
  return b;
}

torch::Tensor pair_margins(const PairBatch& batch, double default_margin) {
  if (!batch.margins.defined()) {
    if (default_margin == 0) return {};
    return torch::full({batch.pairs}, default_margin, torch::TensorOptions().device(batch.tokens.device()));
  }
  return torch::where(torch::isnan(batch.margins), torch::full_like(batch.margins, default_margin), batch.margins);
}

PairBatch make_completion_batch(const std::vector<std::pair<const std::vector<int32_t>*, const std::vector<int32_t>*>>& rows,
                                int32_t pad_id, const torch::Device& device) {
  return make_rows(rows, pad_id, device);
}

torch::Tensor chunked_sequence_logps(Griffin& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                                     const torch::Tensor& mask, int64_t chunk_tokens) {
  torch::NoGradGuard no_grad;
  const int64_t B = hidden.size(0), T = hidden.size(1), W = hidden.size(2);
  const torch::Tensor flat = hidden.reshape({B * T, W}), t = targets.reshape(-1), m = mask.reshape(-1);
  // Only masked positions need logits: prompt and pad positions are often over half of a pair batch, and
  // the LM head (W x V) is most of the cost at a small width.
  const torch::Tensor idx = m.nonzero().squeeze(1);  // (N) positions with a completion target
  const int64_t N = idx.size(0);
  torch::Tensor per_token = torch::zeros({B * T}, hidden.options().dtype(torch::kFloat));  // (B*T)
  for (int64_t s = 0; s < N; s += chunk_tokens) {
    const torch::Tensor at = idx.narrow(0, s, std::min(chunk_tokens, N - s));  // (n)
    const torch::Tensor logp = torch::log_softmax(model->logits(flat.index_select(0, at)).to(torch::kFloat), -1);  // (n, V)
    per_token.index_copy_(0, at, logp.gather(1, t.index_select(0, at).unsqueeze(1)).squeeze(1) * m.index_select(0, at));
  }
  return per_token.view({B, T}).sum(1);  // (B)
}

void backward_sequence_logps(Griffin& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                             const torch::Tensor& mask, const torch::Tensor& row_grad, int64_t chunk_tokens) {
  const int64_t B = hidden.size(0), T = hidden.size(1), W = hidden.size(2);
  const torch::Tensor h = hidden.detach().requires_grad_(true);
  const torch::Tensor flat = h.reshape({B * T, W}), t = targets.reshape(-1);
  // Each token's weight is its mask times its row's gradient.
  const torch::Tensor weight = (mask.to(torch::kFloat) * row_grad.detach().to(torch::kFloat).unsqueeze(1)).reshape(-1);
  const torch::Tensor idx = mask.reshape(-1).nonzero().squeeze(1);  // (N) as in chunked_sequence_logps
  const int64_t N = idx.size(0);
  for (int64_t s = 0; s < N; s += chunk_tokens) {
    const torch::Tensor at = idx.narrow(0, s, std::min(chunk_tokens, N - s));  // (n)
    const torch::Tensor logp = torch::log_softmax(model->logits(flat.index_select(0, at)).to(torch::kFloat), -1);  // (n, V)
    (logp.gather(1, t.index_select(0, at).unsqueeze(1)).squeeze(1) * weight.index_select(0, at)).sum().backward();
  }
  if (h.grad().defined()) hidden.backward(h.grad());
}

}  // namespace rg::rlhf
