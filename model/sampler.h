// Sampling from a Griffin with its fixed-size state: batches of prompts of different lengths (left padding
// made exact through segment positions, docs/architecture.md §8), greedy / temperature / top-k / top-p, stop tokens,
// and a seed per row. Everything runs vectorised over the batch on the model's device: one (B, V) pass per
// step, no sort of the vocabulary, one small copy to the host per step (the chosen ids, their
// log-probabilities and a NaN flag).
//
// Each chosen token comes with its log-probability under the SAMPLING temperature over the whole
// vocabulary, before top-k / top-p truncation: log_softmax(logits / T)[id] (T = 1 for greedy). That is
// what TRL and vLLM report, and what RLHF's policy ratios are computed against.
//
// Row seeds: row b's uniform draw at step s is a counter-based hash of (row seed, s), computed on the host,
// so a row's sample depends on its own seed, logits and step only, never on its batch neighbours.
//
//   rg::SamplerOptions o;  o.max_new_tokens = 32;  o.stop_ids = {eos, end_of_turn};
//   rg::Generation g = rg::generate(model, {{2, 651, 1234}, {2, 17}}, o);
//   // RLHF: one prefill per prompt, G samples each, a seed per sample:
//   rg::PromptState p = rg::prefill(model, prompts, o).repeat(G);   // row i -> rows i*G .. i*G+G-1
//   o.row_seeds = {...};                                             // B*G seeds
//   rg::Generation rollouts = rg::generate(model, std::move(p), o);
#pragma once

#include "model/griffin.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace rg {

// The smallest temperature accepted. Logits are shifted by their row maximum before the division, so
// (l - max) / T is <= 0 and at worst -infinity (probability 0), never NaN, for any temperature > 0. 1e-6
// is far below any useful temperature: a logit gap of 1e-4 already becomes e^-100 (use `greedy` for argmax).
constexpr double kMinTemperature = 1e-6;

struct SamplerOptions {
  int64_t max_new_tokens = 64;  // >= 0
  bool greedy = false;         // argmax; temperature, top_k and top_p are then ignored
  double temperature = 1.0;    // finite, >= kMinTemperature
  int64_t top_k = 0;           // keep the k most likely tokens (>= 0); 0 = all
  double top_p = 1.0;          // in (0, 1]: keep the smallest set whose probability reaches top_p; 1 = all
  uint64_t seed = 0;           // row b's seed is row_seed(seed, b) unless row_seeds is given
  std::vector<uint64_t> row_seeds;  // empty, or one seed per row (prompt, or repeated row): overrides seed
  std::vector<int64_t> stop_ids;  // a row ends after emitting one of these (it is kept in the output)
  int64_t pad_id = 0;          // fills the left padding of shorter prompts, and feeds rows that have stopped
  // Called after each step with the number of tokens generated per row so far and the state after them
  // (benchmarks time the decode loop with it). Unset: nothing is called.
  std::function<void(int64_t tokens, const SamplingState& state)> on_step;
};

struct Generation {
  std::vector<std::vector<int64_t>> ids;       // per row, the generated tokens
  std::vector<std::vector<double>> logprobs;   // per row, log_softmax(logits / T)[token], full vocabulary
  std::vector<bool> stopped;                   // ended on a stop token (else on max_new_tokens)
  int64_t state_bytes = 0;                     // size of the sampling state (independent of length)
};

// The model's state after a batch of prompts, ready to decode from.
struct PromptState {
  SamplingState state;     // after each row's last prompt token
  torch::Tensor logits;    // (B, V) logits at each row's last prompt token, on the model's device
  torch::Tensor next_pos;  // (B) int64 segment position of each row's first generated token, model's device

  int64_t batch() const { return logits.defined() ? logits.size(0) : 0; }
  // Every tensor copied g >= 1 times: row i -> rows i*g .. i*g+g-1.
  PromptState repeat(int64_t g) const;
};

// Throws std::invalid_argument "<field>: expected ..., got ..." for options out of range (NaN included),
// with the field named as in SamplerOptions (temperature, top_k, top_p, max_new_tokens).
void check_sampler_options(const SamplerOptions& options);

// The seed of row b when SamplerOptions::row_seeds is empty.
uint64_t row_seed(uint64_t seed, int64_t row);
// The uniform draw in [0, 1) of a row with seed `seed` at step `step` (53 random bits).
double row_uniform(uint64_t seed, int64_t step);

// One pass over the left-padded prompts. Throws std::invalid_argument for no prompt, an empty prompt or a
// token outside the vocabulary.
PromptState prefill(Griffin& model, const std::vector<std::vector<int64_t>>& prompts, const SamplerOptions& options);

// Decodes from a prepared state, which is left as it is (steps update a copy in place). Throws
// std::invalid_argument for bad options (or row_seeds of the wrong length), and std::runtime_error when the
// model's logits hold NaN or +infinity (corrupt weights, an overflow): sampling from them would silently
// pick an arbitrary token.
Generation generate(Griffin& model, PromptState prompt, const SamplerOptions& options);

// prefill + generate.
Generation generate(Griffin& model, const std::vector<std::vector<int64_t>>& prompts, const SamplerOptions& options);

// The batched rule: logits (B, V) float32/64 (or bfloat16/half, computed in float32) on any device, u (B)
// uniforms in [0, 1) -> ids (B) int64 and logprobs (B) float64, log_softmax(logits / T) at the ids (T = 1
// for greedy). Throws as generate() for bad options and for NaN / +infinity logits (or a row all -inf).
struct Picked {
  torch::Tensor ids, logprobs;
};
Picked pick_tokens(const torch::Tensor& logits, const SamplerOptions& options, const torch::Tensor& u);

// One row of pick_tokens: logits (V), u in [0, 1).
int64_t pick_token(const torch::Tensor& logits, const SamplerOptions& options, double u);

}  // namespace rg
