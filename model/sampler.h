// Sampling from a Griffin with its fixed-size state: batches of prompts of different lengths (left padding
// made exact through segment positions, spec section 8), greedy / temperature / top-k / top-p, seeded, with
// stop tokens. Returns the generated ids and each one's log-probability under the model (temperature 1,
// no truncation), which is what RLHF's policy ratios need.
//
//   rg::SamplerOptions o;  o.max_new_tokens = 32;  o.stop_ids = {eos, end_of_turn};
//   rg::Generation g = rg::generate(model, {{2, 651, 1234}, {2, 17}}, o);
#pragma once

#include "model/griffin.h"

#include <cstdint>
#include <vector>

namespace rg {

// The smallest temperature accepted. Logits are float32 (|l| <= 3.4e38) divided in double: any
// temperature above ~2e-270 keeps l / T finite. 1e-6 is far above that, and far below any useful
// temperature: a logit gap of 1e-4 already becomes e^-100 at 1e-6, i.e. argmax (use `greedy` for that).
constexpr double kMinTemperature = 1e-6;

struct SamplerOptions {
  int64_t max_new_tokens = 64;  // >= 0
  bool greedy = false;         // argmax; temperature, top_k and top_p are then ignored
  double temperature = 1.0;    // finite, >= kMinTemperature
  int64_t top_k = 0;           // keep the k most likely tokens (>= 0); 0 = all
  double top_p = 1.0;          // in (0, 1]: keep the smallest set whose probability reaches top_p; 1 = all
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // a row ends after emitting one of these (it is kept in the output)
  int64_t pad_id = 0;          // fills the left padding of shorter prompts
};

struct Generation {
  std::vector<std::vector<int64_t>> ids;       // per prompt, the generated tokens
  std::vector<std::vector<double>> logprobs;   // per prompt, log p(token) under the model at temperature 1
  std::vector<bool> stopped;                   // ended on a stop token (else on max_new_tokens)
  int64_t state_bytes = 0;                     // size of the sampling state (independent of length)
};

// Throws std::invalid_argument "<field>: expected ..., got ..." for options out of range (NaN included),
// with the field named as in SamplerOptions (temperature, top_k, top_p, max_new_tokens).
void check_sampler_options(const SamplerOptions& options);

// Throws std::invalid_argument for an empty prompt, a token outside the vocabulary or bad options, and
// std::runtime_error when the model's logits hold NaN or +infinity (corrupt weights, an overflow):
// sampling from them would silently pick an arbitrary token.
Generation generate(Griffin& model, const std::vector<std::vector<int64_t>>& prompts, const SamplerOptions& options);

// Picks one token from logits (V) float32/64 on the CPU with the options' rule; u is a uniform draw in [0, 1).
// Throws as generate() for bad options and for NaN / +infinity logits (or all -infinity).
int64_t pick_token(const torch::Tensor& logits, const SamplerOptions& options, double u);

}  // namespace rg
