// RLHF losses as plain tensor functions, one value per pair (the loops sum and normalise over the global
// batch): the Bradley-Terry reward loss with margin and centering, DPO (sigmoid, label-smoothed cDPO) and
// IPO, and the summed log-probability of completion tokens. Shapes: P pairs, B rows, T time, V vocab.
//
//   torch::Tensor l = rg::rlhf::reward_pair_loss(r_chosen, r_rejected);              // (P)
//   torch::Tensor d = rg::rlhf::dpo_pair_loss(lp_c, lp_r, ref_c, ref_r, {0.1});        // (P)
#pragma once

#include <torch/types.h>

#include <string>

namespace rg::rlhf {

// Bradley-Terry: -logsigmoid(r_chosen - r_rejected - margin) + center * (r_chosen + r_rejected)^2.
// r_chosen, r_rejected (P); margin (P) or undefined (0). The centering term's mean over pairs is TRL's
// center_rewards_coefficient * mean((r_c + r_r)^2): it pins the reward's free offset near 0.
torch::Tensor reward_pair_loss(const torch::Tensor& r_chosen, const torch::Tensor& r_rejected,
                               const torch::Tensor& margin = {}, double center = 0);

enum class DpoLossType { kSigmoid, kIpo };
// "sigmoid" | "ipo"; throws std::invalid_argument naming the value otherwise.
DpoLossType parse_dpo_loss(const std::string& name);

struct DpoOptions {
  double beta = 0.1;             // TRL's default
  DpoLossType loss = DpoLossType::kSigmoid;
  double label_smoothing = 0;    // cDPO's eps in [0, 0.5): the probability that a label is flipped
};

// h = (lp_c - ref_c) - (lp_r - ref_r), all (P):
//   sigmoid: -(1 - eps) * logsigmoid(beta * h) - eps * logsigmoid(-beta * h)   (TRL's cDPO form)
//   ipo:     (h - 1 / (2 * beta))^2                                             (Azar et al.; TRL "ipo")
// For IPO TRL passes per-token mean log-probs instead of sums; the caller chooses (see rlhf/dpo.cpp).
torch::Tensor dpo_pair_loss(const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                            const torch::Tensor& reference_chosen, const torch::Tensor& reference_rejected,
                            const DpoOptions& options);

// sum_t mask[b, t] * log softmax(logits[b, t])[targets[b, t]]: the log-probability of the completion
// tokens of each row. logits (B, T, V), targets (B, T) int64, mask (B, T) float -> (B) float32 (float64 for float64 logits).
// Materialises log-softmax over V: for tests and small vocabularies; the loops use the chunked form
// in rlhf/sequence_logps.h.
torch::Tensor sequence_logps(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& mask);

}  // namespace rg::rlhf
