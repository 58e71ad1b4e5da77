// Rollouts for online RL (PPO, GRPO, RLOO) from Griffin's fixed-size sampling state, and the training rows
// they become. Each prompt is prefilled once (left padded, exact through segment positions); its state is
// then copied G times and every copy samples its own completion, so the prompt costs 1/G per sample and the
// state never grows with the response. Log-probabilities are recorded at the sampling temperature, the
// distribution the tokens were drawn from, so that they equal completion_logps() over the same rows.
// Sampling itself is model/sampler.h's (prefill, PromptState::repeat, generate with a seed per row).
//
//   RolloutOptions o;  o.group = 8;  o.temperature = 0.7;  o.stop_ids = {eos, end_of_turn};
//   o.seeds = {seed_of_prompt_0, ...};                     // one per prompt: results independent of batching
//   Rollouts r = sample_rollouts(policy, prompts, o);      // rows p * G + g
//   RolloutBatch b = make_rollout_batch(prompts, r, pad, device);
//   TokenLogps lp = completion_logps(policy, b, o.temperature);   // (rows, C), with autograd
#pragma once

#include "model/griffin.h"

#include <cstdint>
#include <vector>

namespace rg::rlhf {

struct RolloutOptions {
  int64_t group = 1;             // G completions per prompt
  int64_t max_new_tokens = 64;   // >= 1
  double temperature = 1.0;      // sampling and log-probability temperature, >= model/sampler.h's kMinTemperature
  std::vector<int64_t> stop_ids; // a completion ends after emitting one of these (kept in the completion)
  int64_t pad_id = 0;
  std::vector<uint64_t> seeds;   // one per prompt; copy g of prompt p draws from a stream of (seeds[p], g)
  bool share_prompt_state = true;  // false: prefill every copy separately (the benchmark's comparison)
};

struct Rollouts {
  int64_t prompts = 0, group = 1;                   // rows = prompts * group, row p * group + g
  std::vector<std::vector<int32_t>> completions;    // per row, the sampled tokens (stop token included)
  std::vector<std::vector<double>> logprobs;        // per row, log p_T(token) at the sampling temperature
  std::vector<bool> stopped;                        // ended on a stop token (else on max_new_tokens)
  int64_t state_bytes = 0;                          // the sampling state of all rows (independent of length)
  int64_t new_tokens = 0;                           // sum of completion lengths
  int64_t rows() const { return prompts * group; }
};

// Throws std::invalid_argument for an empty prompt list or prompt, a token outside the vocabulary, seeds not
// one per prompt, or options out of range; std::runtime_error for NaN / infinite logits (as generate()).
Rollouts sample_rollouts(Griffin& policy, const std::vector<std::vector<int32_t>>& prompts, const RolloutOptions& options);

// Deterministic stream seed for prompt `index` of update `step` from the run's seed: the same whatever the
// number of ranks or how prompts are batched.
uint64_t rollout_seed(uint64_t run_seed, uint64_t step, uint64_t index);

// Training rows: prompt + completion each alone, right padded (positions 0.., pads their own documents),
// and the completion-aligned view the losses use: column j of row b is completion token j.
struct RolloutBatch {
  torch::Tensor tokens, segment_pos;  // (B, T) int64
  torch::Tensor index;                // (B, C) int64: the row position whose next token is completion token j
  torch::Tensor targets;              // (B, C) int64: completion token j (pad beyond the completion)
  torch::Tensor mask;                 // (B, C) float: 1 for real completion tokens
  torch::Tensor last;                 // (B) int64: the completion's last position (where rewards are read)
  torch::Tensor lengths;              // (B) float: completion lengths
};
// `prompt_of_row(b)` = prompts[b / group]. Completions must be non-empty.
RolloutBatch make_rollout_batch(const std::vector<std::vector<int32_t>>& prompts, const Rollouts& rollouts,
                                int64_t pad_id, const torch::Device& device);

struct TokenLogps {
  torch::Tensor logp;     // (B, C) float32: log p_T(target), carries the graph when grad is on
  torch::Tensor entropy;  // (B, C) float32: entropy of p_T at each position, detached
};
// One parallel forward over the rows: log-softmax(logits / temperature) at the completion tokens.
TokenLogps completion_logps(Griffin& model, const RolloutBatch& batch, double temperature);
// The same from hidden states (B, T, W) already computed (e.g. a value model sharing nothing with it).
TokenLogps completion_logps_from_hidden(Griffin& model, const torch::Tensor& hidden, const RolloutBatch& batch,
                                        double temperature);

// Recorded rollout log-probabilities in the completion-aligned layout (B, C) float32, 0 beyond each completion.
torch::Tensor rollout_logps_tensor(const Rollouts& rollouts, int64_t columns, const torch::Device& device);

}  // namespace rg::rlhf
