// ZeroOptimizer: data-parallel AdamW with the optimizer state sharded over ranks (ZeRO stage 1 and 2).
// It owns the flat parameter layout (and its "layout index" JSON), bucketed gradient reduce-scatter,
// global-norm clipping across shards, the fp32 master slice, the parameter all-gather, and per-shard
// state files that can be re-sliced for a different world size.
//
//   ZeroConfig config;
//   config.stage = 2;
//   ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm, config);
//   opt.zero_grad();  loss.backward();  // (x accumulation steps)
//   opt.reduce_gradients();            // average over ranks, keep this rank's slice
//   double norm = opt.clip_grad_norm(1.0);
//   opt.step(lr);                      // AdamW on the slice, all-gather into the model
//
// Flat layout: parameters in the given order, back to back, total padded with zeros to a multiple of the
// world size P = N * S; rank r owns elements [r*S, (r+1)*S). The layout of the unpadded part does not
// depend on N, which is what makes resharding a matter of reading different ranges.
#pragma once

#include "trainer/comm/communicator.h"
#include "trainer/train_config.h"

#include <torch/types.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace rg::trainer {

struct ZeroParam {
  std::string name;
  torch::Tensor param;       // a leaf tensor with requires_grad; its storage is re-pointed into the flat buffer
  bool weight_decay = true;  // false for norms, biases, the LRU's recurrent/a parameter
};

// Default decay rule: no decay for tensors with fewer than two dimensions (norm scales, biases, the LRU
// gate parameter) or names mentioning a norm or ending in "recurrent_param" / "a_param".
bool default_weight_decay(const std::string& name, const torch::Tensor& param);

// Wraps named parameters (e.g. module->named_parameters()) with default_weight_decay applied.
template <typename NamedParams>
std::vector<ZeroParam> zero_params_from(const NamedParams& named) {
  std::vector<ZeroParam> out;
  for (const auto& item : named) out.push_back({item.key(), item.value(), default_weight_decay(item.key(), item.value())});
  return out;
}

// The defaults are [optim]'s (OptimConfig in train_config.h), written once there.
struct ZeroConfig {
  // 1: full gradients live in one persistent flat buffer; 2: only the slice persists
  int stage = static_cast<int>(OptimConfig{}.zero_stage);
  double beta1 = OptimConfig{}.beta1;
  double beta2 = OptimConfig{}.beta2;
  double eps = OptimConfig{}.eps;
  // decoupled (AdamW): p -= lr * wd * p, only on params marked weight_decay
  double weight_decay = OptimConfig{}.weight_decay;
  int64_t bucket_numel = 1 << 23;  // elements per rank per reduce-scatter / all-gather bucket (32 MiB fp32)
  // Parameter dtype after construction. Undefined keeps the given dtype; kBFloat16 turns fp32 params into
  // bf16 copies while the fp32 master slice keeps the full-precision values.
  std::optional<torch::ScalarType> param_dtype;
};

class ZeroOptimizer {
 public:
  // Collective. All ranks must pass the same parameters (names, shapes, dtypes) in the same order, with
  // identical values (the caller broadcasts or seeds them). Parameters listed twice (tied weights) are
  // kept once, under their first name; frozen (requires_grad false) and empty ones are left out.
  // Build it after the model has its final device and dtype: moving the model afterwards (module->to())
  // replaces the parameters' storage and detaches them from the flat buffer. Stage 1 expects gradients to
  // be zeroed by zero_grad() (or the module's in-place zero_grad); a replaced .grad is copied back in.
  ZeroOptimizer(std::vector<ZeroParam> params, comm::Communicator& comm, ZeroConfig config = {});

  // Zeroes the gradients (stage 1: the flat buffer; stage 2: drops the per-parameter gradients).
  void zero_grad();
  // Collective. Sums the gradients over ranks in buckets, multiplies by grad_scale (default 1/world_size,
  // i.e. the mean of per-rank mean losses) and keeps this rank's slice in fp32. Stage 2 then frees the
  // full-size gradients. A parameter that received no gradient counts as zero.
  void reduce_gradients(std::optional<double> grad_scale = std::nullopt);
  // Collective. Global L2 norm of the reduced gradient (sum of squared slices, all-reduced; the padding is
  // zero, so it equals the unsharded norm). Scales the slice by max_norm / norm when the norm exceeds
  // max_norm (> 0). Returns the norm before clipping; NaN/Inf pass through so callers can skip the step.
  double clip_grad_norm(double max_norm);
  // Collective. One AdamW step with learning rate lr on the master slice, then all-gathers the updated
  // parameters (cast to the parameter dtype) into the model.
  void step(double lr);
  // Collective. Writes the master slice into the model parameters (after load_state, or to undo a
  // manual edit of the weights).
  void sync_params_from_master();

  // State files (collective): every rank writes "optim-rank<r>-of-<N>.pt" into dir, rank 0 also writes
  // "optim-layout.json". load_state accepts shards written at any world size with the same parameter layout
  // and rebuilds this rank's slice from the ranges it overlaps; it then syncs the model parameters.
  void save_state(const std::string& dir) const;
  void load_state(const std::string& dir);

  // The layout index: names, shapes, dtypes, offsets, decay flags, total / padded / per-rank numel.
  nlohmann::json layout_json() const;
  // One line for the start-up print, e.g. "ZeRO-2 over 4 ranks: 2.68G params in 290 tensors, 671M per
  // rank (padding 2); optimizer state 8.05 GB per rank (unsharded 32.2 GB), gradients 2.68 GB per rank".
  std::string summary() const;

  int64_t step_count() const { return step_; }
  int64_t total_numel() const { return total_; }
  int64_t padded_numel() const { return shard_ * world_; }
  int64_t shard_numel() const { return shard_; }
  int64_t shard_offset() const { return shard_ * rank_; }
  // Optimizer-state bytes on this rank: the fp32 master, exp_avg and exp_avg_sq slices (3 * 4 * S).
  // unsharded_optimizer_bytes is the same figure for one rank holding everything (3 * 4 * total).
  int64_t optimizer_bytes() const { return 3 * 4 * shard_; }
  int64_t unsharded_optimizer_bytes() const { return 3 * 4 * total_; }
  // Persistent gradient bytes on this rank: the fp32 slice, plus for stage 1 the full flat buffer.
  int64_t gradient_bytes() const;
  // This rank's reduced, scaled, clipped fp32 gradient slice (S) — read-only view for tests and logging.
  const torch::Tensor& grad_slice() const { return grad_slice_; }
  const torch::Tensor& master_slice() const { return master_; }

 private:
  struct Entry {
    std::string name;
    torch::Tensor param;  // view into flat_params_
    int64_t offset = 0, numel = 0;
    bool weight_decay = true;
  };
  // [begin, end) in this rank's slice coordinates with weight decay on.
  struct DecayRun {
    int64_t begin, end;
  };
  // Copies gradient elements [begin, begin + out.numel()) of the flat layout into out (fp32), zeros
  // where a parameter has no gradient or in the padding.
  void gather_grad_range(int64_t begin, torch::Tensor out) const;
  void reattach_flat_grads();

  comm::Communicator& comm_;
  ZeroConfig config_;
  int rank_ = 0, world_ = 1;
  std::vector<Entry> entries_;
  int64_t total_ = 0, shard_ = 0;
  torch::Tensor flat_params_;  // (N*S) parameter dtype; every parameter is a view of it
  torch::Tensor flat_grads_;   // (N*S) parameter dtype; stage 1 only, parameters' .grad are views of it
  torch::Tensor master_;       // (S) fp32
  torch::Tensor exp_avg_;      // (S) fp32
  torch::Tensor exp_avg_sq_;   // (S) fp32
  torch::Tensor grad_slice_;   // (S) fp32
  std::vector<DecayRun> decay_runs_;
  int64_t step_ = 0;
};

}  // namespace rg::trainer
