// Batched sampling: left-pad, prefill the state, then one step per generated token (spec sections 8-9).
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <numeric>
#include <random>
#include <stdexcept>

namespace rg {
namespace {

std::string number_text(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// NaN or +inf anywhere, or no finite logit at all: softmax would be NaN and argmax arbitrary. -inf alone
// is a token that cannot be chosen.
void check_logits(const torch::Tensor& l, const std::string& where) {
  if (torch::isnan(l).any().item<bool>() || torch::isposinf(l).any().item<bool>() ||
      (l.numel() > 0 && !torch::isfinite(l).any().item<bool>())) {
    throw std::runtime_error(where + "the model's logits contain NaN or infinity (corrupt weights, or an overflow "
                             "in the forward pass); refusing to sample from them");
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
    throw std::invalid_argument("temperature: expected a finite number >= " + number_text(kMinTemperature) +
                                " (for argmax use greedy), got " + number_text(o.temperature));
  }
  if (o.top_k < 0) throw std::invalid_argument("top_k: expected >= 0 (0 = all), got " + std::to_string(o.top_k));
  if (!(o.top_p > 0 && o.top_p <= 1)) {
    throw std::invalid_argument("top_p: expected a number in (0, 1], got " + number_text(o.top_p));
  }
}

int64_t pick_token(const torch::Tensor& logits, const SamplerOptions& o, double u) {
  check_sampler_options(o);
  const torch::Tensor l = logits.to(torch::kDouble).contiguous();  // (V)
  check_logits(l, "sampler: ");
  if (o.greedy) return l.argmax().item<int64_t>();
  const torch::Tensor probs = torch::softmax(l / o.temperature, 0).contiguous();  // (V)
  const double* p = probs.data_ptr<double>();
  const int64_t V = probs.numel();
  std::vector<int64_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  // Most likely first; ties by id so that the choice is deterministic.
  std::stable_sort(order.begin(), order.end(), [p](int64_t a, int64_t b) { return p[a] > p[b]; });
  int64_t keep = o.top_k > 0 ? std::min(o.top_k, V) : V;
  if (o.top_p < 1.0) {
    double mass = 0;
    for (int64_t i = 0; i < keep; ++i) {
      mass += p[order[i]];
      if (mass >= o.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += p[order[i]];
  double target = u * total, acc = 0;
  for (int64_t i = 0; i < keep; ++i) {
    acc += p[order[i]];
    if (target < acc) return order[i];
  }
  return order[keep - 1];
}

Generation generate(Griffin& model, const std::vector<std::vector<int64_t>>& prompts, const SamplerOptions& o) {
  if (prompts.empty()) throw std::invalid_argument("generate: no prompts");
  try {
    check_sampler_options(o);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("generate: ") + e.what());
  }
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
  SamplingState state;
  torch::Tensor logits = model->prefill(tokens.to(device), pos.to(device), state).select(1, P - 1);  // (B, V)

  Generation g;
  g.ids.resize(B), g.logprobs.resize(B), g.stopped.assign(B, false);
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int64_t s = 0; s < o.max_new_tokens; ++s) {
    const torch::Tensor cpu = logits.to(torch::kCPU, torch::kDouble);  // (B, V)
    check_logits(cpu, "generate: step " + std::to_string(s) + ": ");
    const torch::Tensor logp = torch::log_softmax(cpu, -1);  // (B, V)
    torch::Tensor next = torch::full({B}, o.pad_id, torch::kLong), step_pos = torch::empty({B}, torch::kLong);
    bool any_running = false;
    for (int64_t b = 0; b < B; ++b) {
      const double u = uniform(rng);  // drawn for every row so each row's stream is independent of the others
      step_pos[b] = next_pos[b]++;
      if (g.stopped[b]) continue;
      const int64_t id = pick_token(cpu[b], o, u);
      g.ids[b].push_back(id);
      g.logprobs[b].push_back(logp[b][id].item<double>());
      next[b] = id;
      if (std::find(o.stop_ids.begin(), o.stop_ids.end(), id) != o.stop_ids.end()) g.stopped[b] = true;
      any_running |= !g.stopped[b];
    }
    if (!any_running || s + 1 == o.max_new_tokens) break;
    logits = model->step(next.to(device), step_pos.to(device), state);
  }
  g.state_bytes = state.bytes();
  return g;
}

}  // namespace rg
