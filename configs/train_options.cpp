// [data], [train], [optim], [checkpoint]: binds TrainConfig to user-facing keys, with the checks that
// need only the config (the batch arithmetic needs the world size and is checked by the trainer).
// Every number has a declared range (shown by --help); the products of the batch sizes are checked
// without overflow before any work, so the trainer's own arithmetic (times the rank count) stays small.
#include "configs/sections.h"

namespace rg::config {
namespace {

// Sane maxima, each far beyond a real run and small enough that the products below cannot overflow int64.
constexpr int64_t kMaxRows = int64_t{1} << 20;      // data.micro_batch, train.grad_accum, train.eval_batches
constexpr int64_t kMaxSeqLen = int64_t{1} << 20;    // data.seq_len: 1M tokens per row
constexpr int64_t kMaxSteps = int64_t{1} << 40;     // train.steps and every step count or interval
// micro_batch x seq_len: one (B, T) micro-batch; 2^31 tokens keeps its int32 token ids and int64 logits
// offsets (x V <= 2^24) far from overflow.
constexpr int64_t kMaxMicroTokens = int64_t{1} << 31;
// x grad_accum: tokens per rank per update; the trainer multiplies it by the rank count, which stays
// inside int64 for any rank count below 2^23.
constexpr int64_t kMaxRankTokens = int64_t{1} << 40;
constexpr int64_t kMaxGlobalRows = int64_t{1} << 40;  // train.global_batch: kMaxRows on each of 2^20 ranks
// x steps: all tokens one rank sees in the run. 2^53 keeps it, and the run's total over up to 2^10
// ranks, exact in the double that metrics and tokens/s use and inside int64.
constexpr int64_t kMaxRunTokens = int64_t{1} << 53;

}  // namespace

void add_train_options(Options& o, trainer::TrainConfig* c) {
  auto& d = c->data;
  o.add("data.train", &d.train,
        "training data (HDF5 from rgemma prepare): a file, a folder of shards, a glob or a comma-separated list; "
        "or a weighted mixture 'web/:0.7, code/:0.2, books.h5:0.1' (docs/data-formats.md)")
      .add("data.stages", &d.stages,
           "later mixtures of the same run: 'STEP: SPEC; STEP: SPEC', e.g. '5000: books.h5:0.5, code/:0.5' switches "
           "to that mixture after update 5000 (docs/data-formats.md)")
      .add("data.tokenizer", &d.tokenizer, "tokenizer.model the dataset must have been made with (optional)")
      .add("data.seq_len", &d.seq_len, "tokens per row").range(1, kMaxSeqLen)
      .add("data.micro_batch", &d.micro_batch, "rows per rank per micro-step").range(1, kMaxRows)
      .add("data.pack", &d.pack, "pack documents into rows (false: one padded example per row)")
      .add("data.seed", &d.seed, "data order seed");
  auto& t = c->train;
  o.add("train.out", &t.out, "run folder (config, metrics.jsonl, checkpoints/, final/)")
      .add("train.init_from", &t.init_from, "Hugging Face model folder to start from (else [model] config)")
      .add("train.steps", &t.steps, "optimizer updates").range(1, kMaxSteps)
      .add("train.grad_accum", &t.grad_accum, "micro-batches per update per rank").range(1, kMaxRows)
      .add("train.global_batch", &t.global_batch, "rows per update over all ranks (0 = derived; else checked)")
      .range(0, kMaxGlobalRows)
      .add("train.max_grad_norm", &t.max_grad_norm, "global-norm clipping (0 = off)").range(0, 1e6)
      .add("train.dtype", &t.dtype, trainer::train_dtype_names(), "parameter dtype; auto: bf16 on CUDA, fp32 on CPU")
      .add("train.recompute", &t.recompute, "recompute block activations in backward")
      .add("train.log_every", &t.log_every, "console line every N steps").range(1, kMaxSteps)
      .add("train.eval_every", &t.eval_every, "validation every N steps (0 = at the end only)").range(0, kMaxSteps)
      .add("train.eval_batches", &t.eval_batches, "validation micro-batches per rank").range(1, kMaxRows)
      .add("train.seed", &t.seed, "weight init seed")
      // Stored in an int by the trainer's guard.
      .add("train.max_nonfinite", &t.max_nonfinite, "NaN/Inf steps in a row before stopping").range(1, 1000000)
      // 1e21 FLOP/s is ~1000x an H100's dense bf16 peak.
      .add("train.peak_flops", &t.peak_flops, "device dense peak FLOP/s for MFU (0 = guess)").range(0, 1e21)
      .add("train.device", &t.device, trainer::train_device_names(), "device; auto: CUDA when available")
      .add("train.comm", &t.comm,
           "communicator: auto (NCCL on CUDA under mpirun, else MPI under mpirun, else single) | single | mpi | nccl");
  auto& op = c->optim;
  using B = Options::Bounds;
  // AdamW: beta = 1 divides by zero in the bias correction (1 - beta^t); lr and weight decay at most 1
  // keep the decoupled decay p *= 1 - lr * wd from flipping the weights' sign; eps > 1 swamps every update.
  o.add("optim.lr", &op.lr, "peak learning rate").range(0, 1, B::kOpenLow)
      .add("optim.warmup_steps", &op.warmup_steps, "linear warmup steps (at most train.steps)").range(0, kMaxSteps)
      .add("optim.decay", &op.decay, trainer::lr_decay_names(), "learning-rate decay after warmup")
      .add("optim.min_lr_ratio", &op.min_lr_ratio, "final lr / peak lr").range(0, 1)
      .add("optim.beta1", &op.beta1, "AdamW beta1").range(0, 1, B::kOpenHigh)
      .add("optim.beta2", &op.beta2, "AdamW beta2").range(0, 1, B::kOpenHigh)
      .add("optim.eps", &op.eps, "AdamW epsilon").range(0, 1, B::kOpenLow)
      .add("optim.weight_decay", &op.weight_decay, "decoupled weight decay (not on norms, biases, recurrent_param)")
      .range(0, 1)
      .add("optim.zero_stage", &op.zero_stage, "1: shard optimizer state; 2: also gradients").range(1, 2);
  auto& ck = c->checkpoint;
  o.add("checkpoint.every", &ck.every, "steps between checkpoints (0 = end and signals only)").range(0, kMaxSteps)
      .add("checkpoint.keep_last", &ck.keep_last, "complete checkpoints kept").range(1, 1000000)
      .add("checkpoint.resume", &ck.resume, "auto | none | a checkpoint folder");
  o.required("data.train");
  o.on_parsed([&o, c] {
    // Each factor is in range already; the products are what can still be absurd (or, with wider
    // ranges, overflow), so they are multiplied with overflow checks and blamed on the later factor.
    const auto product = [&o](const char* key, int64_t a, int64_t b, int64_t max, const std::string& what) {
      int64_t p = 0;
      if (__builtin_mul_overflow(a, b, &p) || p > max) {
        o.fail(key, what + " = " + std::to_string(a) + " x " + std::to_string(b) + " is more than the " +
                        std::to_string(max) + " supported");
      }
      return p;
    };
    const int64_t micro = product("data.micro_batch", c->data.micro_batch, c->data.seq_len, kMaxMicroTokens,
                                  "tokens per micro-batch (data.micro_batch x data.seq_len)");
    const int64_t per_update = product("train.grad_accum", micro, c->train.grad_accum, kMaxRankTokens,
                                       "tokens per rank per update (micro-batch tokens x train.grad_accum)");
    product("train.steps", per_update, c->train.steps, kMaxRunTokens,
            "tokens per rank in the run (tokens per update x train.steps)");
    const auto& op = c->optim;
    if (op.warmup_steps > c->train.steps) {
      o.fail("optim.warmup_steps", "expected 0 to train.steps (" + std::to_string(c->train.steps) + "), got " +
                                       std::to_string(op.warmup_steps));
    }
    const std::string& comm = c->train.comm;
    if (comm != "auto" && comm != "single" && comm != "mpi" && comm != "nccl") {
      o.fail("train.comm", "expected auto, single, mpi or nccl, got '" + comm + "'");
    }
  });
}

}  // namespace rg::config
