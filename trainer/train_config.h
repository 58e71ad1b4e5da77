// TrainConfig: every setting of `rgemma pretrain` and `rgemma sft`, by config section ([data], [train],
// [optim], [checkpoint]); bound to user-facing keys in configs/train_options.cpp. Defaults are what a
// tiny CPU run wants; configs/train/*.ini hold the real presets.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rg::trainer {

// The named-choice settings, parsed from their names once (configs/train_options.cpp) and compared as
// enums everywhere else. Each table is the one spelling of its names: the option's help and error
// message, the printed config.ini and (for LrDecay) the checkpoint's schedule JSON all use it.
template <class E>
using NameTable = std::vector<std::pair<std::string, E>>;

enum class LrDecay { kCosine, kLinear, kConstant };  // optim.decay, and LrSchedule's (trainer/schedule.h)
inline const NameTable<LrDecay>& lr_decay_names() {
  static const NameTable<LrDecay> names{
      {"cosine", LrDecay::kCosine}, {"linear", LrDecay::kLinear}, {"constant", LrDecay::kConstant}};
  return names;
}

enum class TrainDtype { kFloat32, kBFloat16, kAuto };  // train.dtype; use_bf16() (run_support.h) resolves auto
inline const NameTable<TrainDtype>& train_dtype_names() {
  static const NameTable<TrainDtype> names{
      {"float32", TrainDtype::kFloat32}, {"bfloat16", TrainDtype::kBFloat16}, {"auto", TrainDtype::kAuto}};
  return names;
}

enum class TrainDevice { kCpu, kCuda, kAuto };  // train.device; pick_device() (run_support.h) resolves auto
inline const NameTable<TrainDevice>& train_device_names() {
  static const NameTable<TrainDevice> names{
      {"cpu", TrainDevice::kCpu}, {"cuda", TrainDevice::kCuda}, {"auto", TrainDevice::kAuto}};
  return names;
}

// The name of `value` in `table` ("" for a value the table lacks, which a cast could make).
template <class E>
std::string name_of(const NameTable<E>& table, E value) {
  for (const auto& [name, v] : table) {
    if (v == value) return name;
  }
  return "";
}

struct DataConfig {
  std::string train;              // HDF5 dataset from `rgemma prepare text` (pretrain) or `prepare chat` (sft)
  std::string stages;             // later mixtures: "STEP: SPEC; STEP: SPEC" (data::parse_stages); "" = none
  std::string tokenizer;          // optional: the tokenizer.model the run expects; the dataset must match it
  int64_t seq_len = 256;          // T of every micro-batch row
  int64_t micro_batch = 4;        // rows per rank per micro-step
  bool pack = true;               // pack documents into rows (pretrain); false = one padded example per row
  int64_t seed = 0;               // data order: epoch e is a permutation seeded by (seed, e)
};

struct TrainSection {
  std::string out = "runs/run";   // run folder: config.ini, metrics.jsonl, checkpoints/, final/
  std::string init_from;          // Hugging Face folder to start from (released RecurrentGemma, an earlier run)
  int64_t steps = 100;            // optimizer updates in the whole run
  int64_t grad_accum = 1;         // micro-batches per update on each rank
  int64_t global_batch = 0;       // rows per update, all ranks; 0 = micro_batch x grad_accum x ranks (checked if set)
  double max_grad_norm = 1.0;     // clip by the global norm across shards (0 = off)
  TrainDtype dtype = TrainDtype::kAuto;    // auto: bfloat16 on CUDA, float32 on CPU (use_bf16)
  bool recompute = false;         // recompute each block's activations in backward (less memory, ~1.3x time)
  int64_t log_every = 10;         // console line every N steps (metrics.jsonl gets every step)
  int64_t eval_every = 0;         // validation loss every N steps (0 = only at the end)
  int64_t eval_batches = 8;       // micro-batches per rank per evaluation
  int64_t seed = 0;               // weight init when not init_from
  int64_t max_nonfinite = 5;      // NaN/Inf steps in a row before stopping
  double peak_flops = 0;          // per device dense peak for MFU; 0 = a guess from the device
  TrainDevice device = TrainDevice::kAuto;  // auto: CUDA when available (pick_device)
  std::string comm = "auto";      // auto (NCCL on CUDA / MPI on CPU under mpirun, else single) | single | mpi | nccl
};

struct OptimConfig {
  double lr = 3e-4;
  int64_t warmup_steps = 10;
  LrDecay decay = LrDecay::kCosine;  // after warmup, down to min_lr_ratio * lr (trainer/schedule.h)
  double min_lr_ratio = 0.1;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;      // not applied to norms, biases and the RG-LRU recurrent_param
  int64_t zero_stage = 1;         // 1: shard optimizer state; 2: also shard gradients
};

struct CheckpointConfig {
  int64_t every = 50;             // steps between checkpoints (0 = only at the end and on SIGTERM/SIGINT)
  int64_t keep_last = 3;
  std::string resume = "auto";    // auto (newest complete checkpoint, if any) | none | a checkpoint folder
};

struct TrainConfig {
  DataConfig data;
  TrainSection train;
  OptimConfig optim;
  CheckpointConfig checkpoint;
};

}  // namespace rg::trainer
