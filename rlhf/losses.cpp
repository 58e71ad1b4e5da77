// The reward, DPO and IPO losses and sequence log-probabilities (formulas in losses.h). logsigmoid is
// used rather than log(sigmoid(x)) so that large margins neither underflow to log(0) nor lose precision.
#include "rlhf/losses.h"

#include <torch/nn/functional/activation.h>

#include <stdexcept>

namespace rg::rlhf {

torch::Tensor reward_pair_loss(const torch::Tensor& r_chosen, const torch::Tensor& r_rejected,
                               const torch::Tensor& margin, double center) {
  if (!r_chosen.sizes().equals(r_rejected.sizes())) {
    throw std::invalid_argument("reward_pair_loss: chosen and rejected rewards differ in shape");
  }
  torch::Tensor diff = r_chosen - r_rejected;  // (P)
  if (margin.defined()) diff = diff - margin;
  torch::Tensor loss = -torch::log_sigmoid(diff);  // (P)
  if (center != 0) loss = loss + center * (r_chosen + r_rejected).pow(2);
  return loss;
}

DpoLossType parse_dpo_loss(const std::string& name) {
  if (name == "sigmoid") return DpoLossType::kSigmoid;
  if (name == "ipo") return DpoLossType::kIpo;
  throw std::invalid_argument("expected sigmoid or ipo, got '" + name + "'");
}

torch::Tensor dpo_pair_loss(const torch::Tensor& policy_chosen, const torch::Tensor& policy_rejected,
                            const torch::Tensor& reference_chosen, const torch::Tensor& reference_rejected,
                            const DpoOptions& o) {
  const torch::Tensor h = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected);  // (P)
  if (o.loss == DpoLossType::kIpo) return (h - 1.0 / (2.0 * o.beta)).pow(2);
  torch::Tensor loss = -torch::log_sigmoid(o.beta * h);
  if (o.label_smoothing != 0) {
    loss = (1 - o.label_smoothing) * loss - o.label_smoothing * torch::log_sigmoid(-o.beta * h);
  }
  return loss;
}

torch::Tensor sequence_logps(const torch::Tensor& logits, const torch::Tensor& targets, const torch::Tensor& mask) {
  // At least float32 (bf16 log-softmax over 256k entries loses the small differences DPO works on).
  const auto dtype = logits.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor logp = torch::log_softmax(logits.to(dtype), -1);                   // (B, T, V)
  const torch::Tensor picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1);      // (B, T)
  return (picked * mask.to(picked.scalar_type())).sum(-1);                               // (B)
}

}  // namespace rg::rlhf
