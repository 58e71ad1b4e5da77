// The save/restore pair of a training run: one list of stateful parts that a checkpoint writes and resume
// reads back, part by part in the same order (torchtitan's CheckpointManager keeps such a list). Every
// training loop (pretrain/SFT in trainer.cpp, reward/DPO in rlhf/pair_trainer.cpp) saves and resumes
// through it; the directory mechanics (atomic writes, the COMPLETE marker, file checks) are checkpoint.h's.
//
//   part            file(s) in step-XXXXXX/                        written by   read back on resume
//   optimizer       optim-layout.json, optim-rank<r>-of-<N>.pt     every rank   fp32 master + moments, resharded to
//                                                                               this world size; master -> model
//   model weights   weights.safetensors                            rank 0       header checked before loading; values
//                                                                               compared with the restored model
//   RNG             rng-rank<r>.pt                                 every rank   restored (a rank the save did not have
//                                                                               is reseeded from the run's seed)
//   counters        trainer_state.json: step, tokens,              rank 0       checked against the marker, the
//                   skipped_steps, world_size                                   optimizer and train.steps
//   data position   trainer_state.json: data_cursor.cursor         rank 0       returned; the loop seeks its data
//   schedule        trainer_state.json: schedule                   rank 0       parsed and compared with this run's;
//                                                                               a change (a lower optim.lr, more
//                                                                               train.steps) is reported, not refused
//
//   RunCheckpoint ckpt(out / "checkpoints", keep_last, *model, optimizer, schedule, comm, seed);
//   if (auto r = ckpt.restore(c.checkpoint.resume, c.train.steps)) { state = r->state; loader.seek(r->cursor); }
//   ...
//   ckpt.save(state, loader.cursor());
#pragma once

#include "trainer/checkpoint.h"
#include "trainer/comm/communicator.h"
#include "trainer/schedule.h"
#include "trainer/zero_optimizer.h"

#include <torch/nn/module.h>

#include <cstdint>
#include <optional>
#include <string>

namespace rg::trainer {

// What restore() brought back.
struct Resumed {
  std::string dir;               // the checkpoint folder
  TrainerState state;            // counters as saved (world_size is the save's)
  uint64_t cursor = 0;           // the data position: rows (pretrain/SFT) or pairs (reward/DPO) consumed
  std::string schedule_changes;  // "" or e.g. "peak_lr 0.0003 -> 0.0001, total_steps 100 -> 200"
};

class RunCheckpoint {
 public:
  // `module` is what the optimizer trains (its named parameters are the weights file's names); `seed`
  // reseeds the RNG of ranks a smaller save did not have (seed + 7919 * rank).
  RunCheckpoint(const std::string& root, int keep_last, torch::nn::Module& module, ZeroOptimizer& optimizer,
                const LrSchedule& schedule, comm::Communicator& comm, int64_t seed);

  // Collective. Refuses non-finite weights (NonFiniteError: such a checkpoint would only rotate a good one
  // out), then writes every part for `state` at data position `cursor` into <root>/step-XXXXXX (state.step)
  // and returns that folder. state.world_size and state.schedule are filled in here.
  std::string save(TrainerState state, uint64_t cursor);

  // Collective. `resume` is checkpoint.resume: "auto" (the newest complete checkpoint, if any), "none"/""
  // (nullopt: a fresh start) or a checkpoint folder. Checks every file before loading anything, then
  // restores every part. Throws CheckpointError (one line naming file and field; the commands exit 2).
  std::optional<Resumed> restore(const std::string& resume, int64_t max_steps);

  // For error messages of a run that cannot finish: which checkpoint is kept, or that there is none.
  std::string last_checkpoint_note() const;
  const std::string& root() const { return writer_.root(); }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> named_weights() const;
  CheckpointWriter writer_;
  torch::nn::Module& module_;
  ZeroOptimizer& optimizer_;
  const LrSchedule& schedule_;
  comm::Communicator& comm_;
  int64_t seed_;
};

// The first parameter of `module` holding a NaN or Inf, on any rank; "" when every weight is finite.
// Collective.
std::string nonfinite_parameter(torch::nn::Module& module, comm::Communicator& comm);

// The first of `named` whose values differ from the same tensor in dir's weights.safetensors (compared at
// the narrower of the two dtypes, so a bf16 save matches the fp32 master it was cast from), as
// "'name' differs (max |diff| X)"; "" when all agree. Shapes and names must already be checked.
std::string weights_mismatch(const std::string& dir, const std::vector<std::pair<std::string, torch::Tensor>>& named);

// Renders the fields of `saved` that differ from `now` ("" when none).
std::string schedule_changes(const LrSchedule& saved, const LrSchedule& now);

}  // namespace rg::trainer
