// [data], [train], [optim], [checkpoint]: binds TrainConfig to user-facing keys, with the checks that
// need only the config (the batch arithmetic needs the world size and is checked by the trainer).
#include "configs/sections.h"

namespace rg::config {

void add_train_options(Options& o, trainer::TrainConfig* c) {
  auto& d = c->data;
  o.add("data.train", &d.train, "training dataset (HDF5 from rgemma prepare)")
      .add("data.tokenizer", &d.tokenizer, "tokenizer.model the dataset must have been made with (optional)")
      .add("data.seq_len", &d.seq_len, "tokens per row")
      .add("data.micro_batch", &d.micro_batch, "rows per rank per micro-step")
      .add("data.pack", &d.pack, "pack documents into rows (false: one padded example per row)")
      .add("data.seed", &d.seed, "data order seed");
  auto& t = c->train;
  o.add("train.out", &t.out, "run folder (config, metrics.jsonl, checkpoints/, final/)")
      .add("train.init_from", &t.init_from, "Hugging Face model folder to start from (else [model] config)")
      .add("train.steps", &t.steps, "optimizer updates")
      .add("train.grad_accum", &t.grad_accum, "micro-batches per update per rank")
      .add("train.global_batch", &t.global_batch, "rows per update over all ranks (0 = derived; else checked)")
      .add("train.max_grad_norm", &t.max_grad_norm, "global-norm clipping (0 = off)")
      .add("train.dtype", &t.dtype, "float32 | bfloat16 | auto (bf16 on CUDA, fp32 on CPU)")
      .add("train.recompute", &t.recompute, "recompute block activations in backward")
      .add("train.log_every", &t.log_every, "console line every N steps")
      .add("train.eval_every", &t.eval_every, "validation every N steps (0 = at the end only)")
      .add("train.eval_batches", &t.eval_batches, "validation micro-batches per rank")
      .add("train.seed", &t.seed, "weight init seed")
      .add("train.max_nonfinite", &t.max_nonfinite, "NaN/Inf steps in a row before stopping")
      .add("train.peak_flops", &t.peak_flops, "device dense peak FLOP/s for MFU (0 = guess)")
      .add("train.device", &t.device, "cpu | cuda | auto");
  auto& op = c->optim;
  o.add("optim.lr", &op.lr, "peak learning rate")
      .add("optim.warmup_steps", &op.warmup_steps, "linear warmup steps")
      .add("optim.decay", &op.decay, "cosine | linear | constant")
      .add("optim.min_lr_ratio", &op.min_lr_ratio, "final lr / peak lr")
      .add("optim.beta1", &op.beta1, "AdamW beta1").add("optim.beta2", &op.beta2, "AdamW beta2")
      .add("optim.eps", &op.eps, "AdamW epsilon")
      .add("optim.weight_decay", &op.weight_decay, "decoupled weight decay (not on norms, biases, recurrent_param)")
      .add("optim.zero_stage", &op.zero_stage, "1: shard optimizer state; 2: also gradients");
  auto& ck = c->checkpoint;
  o.add("checkpoint.every", &ck.every, "steps between checkpoints (0 = end and signals only)")
      .add("checkpoint.keep_last", &ck.keep_last, "complete checkpoints kept")
      .add("checkpoint.resume", &ck.resume, "auto | none | a checkpoint folder");
  o.required("data.train");
  o.on_parsed([&o, c] {
    auto positive = [&o](const char* key, int64_t v) {
      if (v <= 0) o.fail(key, "expected a positive integer, got " + std::to_string(v));
    };
    positive("data.seq_len", c->data.seq_len);
    positive("data.micro_batch", c->data.micro_batch);
    positive("train.steps", c->train.steps);
    positive("train.grad_accum", c->train.grad_accum);
    positive("train.log_every", c->train.log_every);
    positive("checkpoint.keep_last", c->checkpoint.keep_last);
    const auto& op = c->optim;
    if (!(op.lr > 0)) o.fail("optim.lr", "expected a positive learning rate, got " + std::to_string(op.lr));
    if (op.warmup_steps < 0 || op.warmup_steps > c->train.steps) {
      o.fail("optim.warmup_steps", "expected 0 to train.steps (" + std::to_string(c->train.steps) + "), got " +
                                       std::to_string(op.warmup_steps));
    }
    if (op.decay != "cosine" && op.decay != "linear" && op.decay != "constant") {
      o.fail("optim.decay", "expected cosine, linear or constant, got '" + op.decay + "'");
    }
    if (op.min_lr_ratio < 0 || op.min_lr_ratio > 1) {
      o.fail("optim.min_lr_ratio", "expected a value in [0, 1], got " + std::to_string(op.min_lr_ratio));
    }
    if (c->optim.zero_stage != 1 && c->optim.zero_stage != 2) {
      o.fail("optim.zero_stage", "expected 1 or 2, got " + std::to_string(c->optim.zero_stage));
    }
    const std::string& dtype = c->train.dtype;
    if (dtype != "float32" && dtype != "bfloat16" && dtype != "auto") {
      o.fail("train.dtype", "expected float32, bfloat16 or auto, got '" + dtype + "'");
    }
    if (c->train.device != "cpu" && c->train.device != "cuda" && c->train.device != "auto") {
      o.fail("train.device", "expected cpu, cuda or auto, got '" + c->train.device + "'");
    }
  });
}

}  // namespace rg::config
