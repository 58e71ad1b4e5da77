// RewardModel: the Griffin backbone plus a scalar head (W -> 1, no bias) read at each row's last real
// token (the completion's <end_of_turn>), and its Hugging Face style folder: config.json = the backbone's
// config + num_labels 1 (+ reward_mean / reward_std over the training pairs), weights = the backbone under
// "model." plus the head as "score.weight" (transformers' *ForSequenceClassification layout).
//
//   RewardModel rm = init_reward_model("runs/sft/final", /*seed=*/0);   // head drawn small
//   torch::Tensor r = rm->forward(tokens, segment_pos, last);             // (B)
//   save_reward_model(rm, "runs/rm/final");  RewardModel back = load_reward_model("runs/rm/final");
#pragma once

#include "model/griffin.h"

#include <torch/nn/modules/linear.h>

#include <string>

namespace rg::rlhf {

class RewardModelImpl : public torch::nn::Module {
 public:
  explicit RewardModelImpl(Griffin backbone);
  // tokens, segment_pos (B, T) int64; last (B) int64 the position to read -> rewards (B) float32.
  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& segment_pos, const torch::Tensor& last);
  // hidden (B, T, W) -> rewards (B) float32 at `last`.
  torch::Tensor score_hidden(const torch::Tensor& hidden, const torch::Tensor& last);

  Griffin model{nullptr};
  torch::nn::Linear score{nullptr};  // (1, W)
  double reward_mean = 0, reward_std = 1;  // of the training pairs' rewards, saved for reward normalisation
};
TORCH_MODULE(RewardModel);

// True when DIR/config.json declares a sequence-scoring head (num_labels): a reward model folder.
bool is_reward_model_dir(const std::string& dir);

// The SFT (or any causal LM) folder's backbone with a new head, N(0, (1 / (W + 1))^2) as OpenRLHF draws
// it: initial rewards are O(1 / sqrt(W)), small next to the loss's unit scale. Seeded by `seed`. Throws
// std::invalid_argument naming the folder when it already is a reward model.
RewardModel init_reward_model(const std::string& sft_dir, int64_t seed);
// Throws std::invalid_argument naming the folder when it is not a reward model (a policy folder).
RewardModel load_reward_model(const std::string& dir, torch::Dtype dtype = torch::kFloat);
// Atomic: the folder is written next to `dir` and renamed into place.
void save_reward_model(const RewardModel& model, const std::string& dir, torch::Dtype dtype = torch::kFloat);

}  // namespace rg::rlhf
