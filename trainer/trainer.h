// The pretraining / SFT loop: data-parallel over a Communicator, ZeRO-sharded AdamW, gradient
// accumulation, clipping, schedule, validation, atomic checkpoints with exact resume (also at another world
// size), signal-safe stops and metrics. Pretraining and SFT are the same loop: the dataset's loss mask
// says which targets count (every next token inside a document, or model turns only). The loop's parts
// (set-up, step, evaluation, save/restore, end) are named in trainer.cpp's header; the save/restore pair is
// RunCheckpoint (run_checkpoint.h), shared with the RLHF loops.
//
//   return rg::trainer::run_training(Task::kPretrain, config, model_config, comm, effective_config_text);
#pragma once

#include "model/config.h"
#include "model/griffin.h"
#include "trainer/comm/communicator.h"
#include "trainer/faults.h"
#include "trainer/train_config.h"
#include "trainer/zero_optimizer.h"

#include <stdexcept>
#include <string>

namespace rg::trainer {

enum class Task { kPretrain, kSft };

// A setting that cannot work with this job (batch arithmetic, dataset kind); the command exits with 2.
class TrainSetupError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Next-token cross entropy summed over the targets where loss_mask is 1, computed over token chunks of the
// final hidden states so that (B, T, V) logits never exist at once (V = 256000 for Gemma). When
// `backward_scale` is non-zero it also back-propagates loss_sum * backward_scale into the model.
// hidden (B, T, W), targets (B, T) int64, loss_mask (B, T) float. Returns the summed loss (float64).
double masked_token_loss(Griffin& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                         const torch::Tensor& loss_mask, double backward_scale, int64_t chunk_tokens = 2048);

// One micro-batch on the training device. tokens, targets, segment_pos (rows, seq) int64; loss_mask float.
struct MicroBatch {
  torch::Tensor tokens, targets, segment_pos, loss_mask;
  double mask_sum = 0;  // targets that count
  int64_t unsupervised_rows = 0;  // rows whose loss mask is all 0 (SFT: the model turn starts past seq_len)
};

struct StepResult {
  double loss = 0;       // sum(CE * mask) / sum(mask) over the global batch
  double grad_norm = 0;  // before clipping
  bool skipped = false;  // non-finite loss or gradient on some rank: no update
  int64_t unsupervised_rows = 0;  // rows of the global batch without a single supervised target
};

// One optimizer update over this rank's micro-batches (collective): forward, masked loss normalised by the
// global target count, backward, reduce-scatter, clip, AdamW at `lr` unless the guard says skip. `step` is
// the 1-based number of this update, for messages. Throws std::runtime_error (on every rank) when no target
// of the global batch is supervised: such a step would report loss 0 and train on nothing.
StepResult train_step(Griffin& model, ZeroOptimizer& optimizer, comm::Communicator& comm,
                      const std::vector<MicroBatch>& micro, double max_grad_norm, double lr, NonFiniteGuard& guard,
                      int64_t step);

// Runs the loop. effective_config (INI text) is written to the run folder as config.ini. Returns 0 when the
// requested steps are done or a stop signal was honoured (after a checkpoint). Throws TrainSetupError for
// unusable settings (found before any work), std::runtime_error (one line) for everything else, among them a
// run that ends on skipped non-finite steps or with non-finite weights: then no final/ and no end checkpoint
// are written, and the earlier checkpoints stay as they were.
int run_training(Task task, const TrainConfig& config, const ModelConfig& model_config, comm::Communicator& comm,
                 const std::string& effective_config);

}  // namespace rg::trainer
