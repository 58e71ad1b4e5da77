// Preference pairs -> model rows, and the chunked completion log-probabilities the DPO loop needs.
// A batch of P pairs is 2P right-padded rows: chosen completions in rows [0, P), rejected in [P, 2P),
// each row prompt + completion. Right padding never changes a real position (the model is causal), and
// pad positions get segment_pos 0 so that each is a document of its own.
#pragma once

#include "data/dataset.h"
#include "model/griffin.h"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace rg::rlhf {

struct PairBatch {
  int64_t pairs = 0;                    // P
  torch::Tensor tokens, segment_pos;    // (2P, T) int64
  torch::Tensor targets;                // (2P, T) int64 next token; pad where none
  torch::Tensor completion_mask;        // (2P, T) float: 1 where the target is a completion token
  torch::Tensor last;                   // (2P) int64: each row's last real position (its <end_of_turn>)
  torch::Tensor completion_tokens;      // (2P) float: completion length of each row
  std::vector<int32_t> kinds;           // (P) index into the dataset's pair_kinds, -1 for none
  torch::Tensor margins;                // (P) float: each pair's dataset margin, NaN for none; undefined if none has one
  int64_t real_tokens = 0;              // non-pad tokens in the batch
};

// `kind_index` maps each pair's kind label to its index (-1 when empty or absent).
PairBatch make_pair_batch(const std::vector<const data::PreferencePair*>& pairs, int32_t pad_id,
                          const torch::Device& device,
                          const std::function<int32_t(const std::string&)>& kind_index = {});

// The reward loss's margin per pair: the pair's own (dataset `margin` field) where it has one, else
// `default_margin` (rlhf.margin). (P) float, or undefined when no pair has one and default_margin is 0.
torch::Tensor pair_margins(const PairBatch& batch, double default_margin);

// Rows of prompt + completion, each alone: one row per completion (B rows), right padded.
PairBatch make_completion_batch(const std::vector<std::pair<const std::vector<int32_t>*, const std::vector<int32_t>*>>& rows,
                                int32_t pad_id, const torch::Device& device);

// sum over each row of mask * log p(target) from hidden (B, T, W), in chunks of `chunk_tokens` positions so
// that (B, T, V) logits never exist at once. No autograd: returns (B) float32 detached.
torch::Tensor chunked_sequence_logps(Griffin& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                                     const torch::Tensor& mask, int64_t chunk_tokens = 2048);
// Back-propagates sum_b row_grad[b] * logp_b into the model through `hidden` (which must carry the graph),
// recomputing each chunk's logits: the second half of a loss whose gradient w.r.t. the sequence
// log-probabilities (row_grad, (B)) is known.
void backward_sequence_logps(Griffin& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                             const torch::Tensor& mask, const torch::Tensor& row_grad, int64_t chunk_tokens = 2048);

}  // namespace rg::rlhf
