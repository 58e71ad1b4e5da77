// Activation recomputation per residual block: the forward runs without keeping the block's inner
// activations; backward re-runs the block with autograd on and back-propagates through it. Installed on a
// Griffin with set_block_runner, so the model itself knows nothing of it.
#pragma once

#include "model/griffin.h"

namespace rg::trainer {

// Runs block(x, segment_pos) keeping only x for backward.
torch::Tensor recomputed_block(ResidualBlock& block, const torch::Tensor& x, const torch::Tensor& segment_pos);

inline void enable_recompute(Griffin& model) { model->set_block_runner(recomputed_block); }

}  // namespace rg::trainer
