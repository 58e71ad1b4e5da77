// TrainConfig: every setting of `rgemma pretrain` and `rgemma sft`, by config section ([data], [train],
// [optim], [checkpoint]); bound to user-facing keys in configs/train_options.cpp. Defaults are what a
// tiny CPU run wants; configs/train/*.ini hold the real presets.
#pragma once

#include <cstdint>
#include <string>

namespace rg::trainer {

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
  std::string dtype = "auto";     // float32 | bfloat16 | auto (bfloat16 on CUDA, float32 on CPU)
  bool recompute = false;         // recompute each block's activations in backward (less memory, ~1.3x time)
  int64_t log_every = 10;         // console line every N steps (metrics.jsonl gets every step)
  int64_t eval_every = 0;         // validation loss every N steps (0 = only at the end)
  int64_t eval_batches = 8;       // micro-batches per rank per evaluation
  int64_t seed = 0;               // weight init when not init_from
  int64_t max_nonfinite = 5;      // NaN/Inf steps in a row before stopping
  double peak_flops = 0;          // per device dense peak for MFU; 0 = a guess from the device
  std::string device = "auto";    // cpu | cuda | auto
  std::string comm = "auto";      // auto (NCCL on CUDA / MPI on CPU under mpirun, else single) | single | mpi | nccl
};

struct OptimConfig {
  double lr = 3e-4;
  int64_t warmup_steps = 10;
  std::string decay = "cosine";   // cosine | linear | constant
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
