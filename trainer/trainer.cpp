// The training loop, top to bottom in run_training(): set-up (device, model, data, optimizer, resume), then
// per step: micro-batches -> forward -> masked loss -> backward -> reduce-scatter -> clip -> AdamW ->
// all-gather -> schedule -> log -> evaluate -> checkpoint.
//
// Loss normalisation: the loss of a step is sum(CE * mask) / sum(mask) over the whole global batch (all
// ranks, all micro-batches). Each rank back-propagates its partial sum divided by the global count and the
// gradients are summed over ranks, so any split of the same global batch over ranks and micro-batches
// trains the same model.
#include "trainer/trainer.h"

#include "data/dataset.h"
#include "data/loader.h"
#include "model/io/hf_config.h"
#include "model/io/safetensors.h"
#include "model/pretrained.h"
#include "trainer/checkpoint.h"
#include "trainer/faults.h"
#include "trainer/metrics.h"
#include "trainer/preflight.h"
#include "trainer/recompute.h"
#include "trainer/run_support.h"
#include "trainer/schedule.h"
#include "trainer/zero_optimizer.h"

#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

namespace rg::trainer {
namespace {

namespace fs = std::filesystem;


MicroBatch to_device(const data::Batch& b, const torch::Device& device) {
  auto ints = [&](const std::vector<int32_t>& v) {
    return torch::from_blob(const_cast<int32_t*>(v.data()), {b.rows, b.seq}, torch::kInt).to(device, torch::kLong);
  };
  MicroBatch d{ints(b.tokens), ints(b.targets), ints(b.segment_pos),
                // copy=true: on the CPU .to() would otherwise alias the Batch's vector, which dies here.
                torch::from_blob(const_cast<float*>(b.loss_mask.data()), {b.rows, b.seq}, torch::kFloat)
                    .to(device, torch::kFloat, /*non_blocking=*/false, /*copy=*/true)};
  for (int64_t r = 0; r < b.rows; ++r) {
    double row = 0;
    for (int64_t p = 0; p < b.seq; ++p) row += b.loss_mask[r * b.seq + p];
    d.mask_sum += row;
    if (row == 0) ++d.unsupervised_rows;
  }
  return d;
}

// The data set's kind, vocabulary, tokenizer, special ids and split sizes against the run, before any work
// (TrainSetupError, exit 2). Returns what it read.
data::DatasetInfo check_training_data(Task task, const TrainConfig& c, int64_t model_vocab_size) {
  const data::DatasetInfo info = data::read_dataset_info(c.data.train);
  const auto want_kind = task == Task::kPretrain ? data::DatasetKind::kText : data::DatasetKind::kChat;
  if (info.kind != want_kind) {
    throw TrainSetupError("data.train: " + c.data.train + " is a " + data::kind_name(info.kind) + " dataset; rgemma " +
                          (task == Task::kPretrain ? "pretrain" : "sft") + " needs a " + data::kind_name(want_kind) +
                          " dataset (rgemma prepare " + data::kind_name(want_kind) + ")");
  }
  std::string tokenizer;
  if (!c.data.tokenizer.empty()) {
    try {
      tokenizer = data::tokenizer_id(c.data.tokenizer);
    } catch (const data::DataError& e) {
      throw TrainSetupError(std::string("data.tokenizer: ") + e.what());
    }
  }
  check_dataset_fits_model(info, model_vocab_size, tokenizer);
  check_split_fits_row(info, /*validation=*/false, c.data.seq_len, c.data.pack);
  check_split_fits_row(info, /*validation=*/true, c.data.seq_len, c.data.pack);
  return info;
}

// The first parameter holding a NaN or Inf, on any rank; "" when every weight is finite. Collective.
std::string nonfinite_parameter(Griffin& model, comm::Communicator& comm) {
  torch::NoGradGuard no_grad;
  std::string name;
  for (const auto& p : model->named_parameters()) {
    if (!torch::isfinite(p.value()).all().item<bool>()) {
      name = p.key();
      break;
    }
  }
  const bool anywhere = comm.all_reduce_scalar(name.empty() ? 0.0 : 1.0, /*max=*/true) > 0;
  return anywhere && name.empty() ? std::string("a parameter on another rank") : name;
}

// Test hook (RG_FAULT_INJECT=nan-weights-at=N): what a diverged update leaves behind.
void poison_weights(Griffin& model) {
  torch::NoGradGuard no_grad;
  model->parameters().front().view(-1)[0].fill_(std::numeric_limits<double>::quiet_NaN());
}

// This host's physical memory in bytes; 0 when unknown.
double physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<double>(pages) * static_cast<double>(page_size) : 0;
}

// Where a failed run can be picked up again, for its error message.
std::string last_checkpoint_note(const fs::path& ckpt_root) {
  const auto latest = find_latest_complete(ckpt_root.string());
  return latest ? "the last checkpoint, " + *latest + ", is kept (resume from it with a lower optim.lr)"
                : "there is no earlier checkpoint to resume from (see checkpoint.every)";
}

}  // namespace

double masked_token_loss(Griffin& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                         const torch::Tensor& loss_mask, double backward_scale, int64_t chunk_tokens) {
  const int64_t W = hidden.size(-1);
  // Backward is cut at the hidden states: each chunk's logits are freed after its own backward, and the
  // accumulated d(hidden) is sent through the blocks once.
  const torch::Tensor h = hidden.detach().requires_grad_(backward_scale != 0);
  const torch::Tensor flat = h.reshape({-1, W}), t = targets.reshape(-1), m = loss_mask.reshape(-1);  // (N, W), (N)
  double total = 0;
  for (int64_t s = 0; s < flat.size(0); s += chunk_tokens) {
    const int64_t n = std::min(chunk_tokens, flat.size(0) - s);
    const torch::Tensor logits = model->logits(flat.narrow(0, s, n)).to(torch::kFloat);  // (n, V)
    namespace F = torch::nn::functional;
    const torch::Tensor ce = F::cross_entropy(logits, t.narrow(0, s, n), F::CrossEntropyFuncOptions().reduction(torch::kNone));
    const torch::Tensor sum = (ce * m.narrow(0, s, n)).sum();
    if (backward_scale != 0) (sum * backward_scale).backward();
    total += sum.item<double>();
  }
  if (backward_scale != 0 && h.grad().defined()) hidden.backward(h.grad());
  return total;
}

StepResult train_step(Griffin& model, ZeroOptimizer& optimizer, comm::Communicator& comm,
                      const std::vector<MicroBatch>& micro, double max_grad_norm, double lr, NonFiniteGuard& guard,
                      int64_t step) {
  double local_count = 0, local_unsupervised = 0;
  for (const MicroBatch& b : micro) local_count += b.mask_sum, local_unsupervised += b.unsupervised_rows;
  const double global_count = comm.all_reduce_scalar(local_count);
  StepResult r;
  r.unsupervised_rows = static_cast<int64_t>(comm.all_reduce_scalar(local_unsupervised));
  if (!(global_count > 0)) {  // every rank sees the same sum, so every rank throws
    int64_t rows = 0;
    for (const MicroBatch& b : micro) rows += b.tokens.size(0);
    throw std::runtime_error(
        "step " + std::to_string(step) + ": no target of the global batch (" + std::to_string(rows * comm.world_size()) +
        " rows of " + std::to_string(micro.empty() ? 0 : micro.front().tokens.size(1)) +
        " tokens) is supervised: every loss mask is 0, so the step would report loss 0 and train on nothing (SFT: "
        "the model turns start after data.seq_len tokens; raise data.seq_len or prepare shorter prompts)");
  }
  optimizer.zero_grad();
  double local_loss = 0;
  for (const MicroBatch& b : micro) {
    local_loss += masked_token_loss(model, model->hidden(b.tokens, b.segment_pos), b.targets, b.loss_mask,
                                    1.0 / global_count);
  }
  r.loss = comm.all_reduce_scalar(local_loss) / global_count;
  optimizer.reduce_gradients(1.0);  // each rank's gradient already carries the global normalisation
  r.grad_norm = optimizer.clip_grad_norm(max_grad_norm);
  r.skipped = guard.should_skip(comm, step, r.loss, r.grad_norm);
  if (!r.skipped) optimizer.step(lr);
  return r;
}

int run_training(Task task, const TrainConfig& c, const ModelConfig& model_config, comm::Communicator& comm,
                 const std::string& effective_config) {
  const int rank = comm.rank(), world = comm.world_size();
  auto say = [rank](const std::string& line) {
    if (rank == 0) std::cout << line << std::endl;
  };
  const char* task_name = task == Task::kPretrain ? "pretrain" : "sft";

  // ---- checks before any work: sizes, ids and settings that cannot work stop here (exit 2) ---------------------
  const BatchShape batch = global_batch_shape(c.data.micro_batch, c.train.grad_accum, world, c.data.seq_len,
                                              c.train.global_batch);
  const int64_t global_rows = batch.rows;
  const torch::Device device = pick_device(c.train.device, comm);
  const bool bf16 = c.train.dtype == "bfloat16" || (c.train.dtype == "auto" && device.is_cuda());
  // With init_from the folder's config.json defines the model; read it (not the weights) to check against.
  const ModelConfig planned = c.train.init_from.empty() ? model_config : io::read_hf_config(c.train.init_from);
  const data::DatasetInfo data_info = check_training_data(task, c, planned.vocab_size);
  LrSchedule schedule{c.optim.lr, c.optim.warmup_steps, c.train.steps, c.optim.decay, c.optim.min_lr_ratio};
  try {
    schedule.validate();
  } catch (const std::invalid_argument& e) {
    throw TrainSetupError(std::string("[optim] ") + e.what());
  }
  FaultInjection faults;
  try {
    faults = FaultInjection::from_env();
  } catch (const std::invalid_argument& e) {
    throw TrainSetupError(e.what());
  }
  const MemoryEstimate memory =
      estimate_memory(count_parameters(planned).total, bf16, world, c.optim.zero_stage, c.data.micro_batch,
                      c.train.grad_accum, c.data.seq_len, planned.vocab_size);

  // ---- set-up ---------------------------------------------------------------------------------------------
  const fs::path out = c.train.out, ckpt_root = out / "checkpoints";
  if (rank == 0) {
    fs::create_directories(out);
    io::write_text_atomically((out / "config.ini").string(), effective_config);
  }
  comm.barrier();

  Griffin model{nullptr};
  try {
    if (!c.train.init_from.empty()) {
      model = load_pretrained(c.train.init_from);
    } else {
      torch::manual_seed(static_cast<uint64_t>(c.train.seed));
      model = Griffin(model_config);
    }
    model->to(device);
  } catch (...) {
    rethrow_one_line("building the model on " + device.str(), memory.describe());
  }
  broadcast_parameters(*model, comm);
  if (c.train.recompute) enable_recompute(model);
  const ModelConfig& mc = model->config();

  data::LoaderOptions lo;
  lo.path = c.data.train, lo.rank = rank, lo.world_size = world, lo.seq_len = c.data.seq_len;
  lo.micro_batch = c.data.micro_batch, lo.seed = static_cast<uint64_t>(c.data.seed), lo.pack = c.data.pack;
  data::Loader loader(lo);
  // Opened once here (the split was checked to fill a row), so an evaluation cannot fail on its size late.
  std::unique_ptr<data::Loader> validation;
  if (data_info.validation.sequences > 0) {
    data::LoaderOptions vo = lo;
    vo.split = "validation", vo.shuffle = false, vo.prefetch = 0;
    validation = std::make_unique<data::Loader>(vo);
  }

  ZeroConfig zc;
  zc.stage = static_cast<int>(c.optim.zero_stage), zc.beta1 = c.optim.beta1, zc.beta2 = c.optim.beta2;
  zc.eps = c.optim.eps, zc.weight_decay = c.optim.weight_decay;
  if (bf16) zc.param_dtype = torch::kBFloat16;
  std::unique_ptr<ZeroOptimizer> optimizer_holder;
  try {
    optimizer_holder = std::make_unique<ZeroOptimizer>(zero_params_from(model->named_parameters()), comm, zc);
  } catch (...) {
    rethrow_one_line("creating the optimizer state", memory.describe());
  }
  ZeroOptimizer& optimizer = *optimizer_holder;

  TrainerState state;
  std::optional<std::string> dir;
  try {  // every file is checked before anything is loaded; a checkpoint unfit to resume is exit 2
    dir = resolve_resume(c.checkpoint.resume, ckpt_root.string());
    if (dir) {
      std::vector<std::pair<std::string, torch::Tensor>> named;
      for (const auto& p : model->named_parameters()) named.emplace_back(p.key(), p.value());
      state = read_resume_state(*dir, c.train.steps, named);
      optimizer.load_state(*dir);  // also writes the restored master weights into the model
      if (!load_rng_state(*dir, rank)) torch::manual_seed(static_cast<uint64_t>(c.train.seed) + 7919 * rank);
    }
  } catch (const CheckpointError& e) {
    throw TrainSetupError(e.what());
  }
  if (dir) {
    loader.seek(static_cast<uint64_t>(state.data_cursor.at("cursor").get<int64_t>()));  // checked >= 0
    std::ostringstream s;
    s << "resumed from " << *dir << " at step " << state.step << " (" << state.tokens << " tokens)";
    if (state.world_size != world) s << "; resharded from " << state.world_size << " to " << world << " ranks";
    say(s.str());
  }
  CheckpointWriter writer(ckpt_root.string(), static_cast<int>(c.checkpoint.keep_last), comm);
  std::unique_ptr<MetricsWriter> metrics;
  if (rank == 0) metrics = std::make_unique<MetricsWriter>((out / "metrics.jsonl").string(), state.step);

  const int64_t tokens_per_step = batch.tokens;
  const double flops_per_token = training_flops_per_token(
      static_cast<double>(model->num_parameters()), mc.num_blocks_of(BlockType::kAttention),
      mc.num_heads * mc.head_dim,
      mc.attention_window > 0 ? std::min(mc.attention_window + 1, c.data.seq_len) : c.data.seq_len);
  const double peak = (c.train.peak_flops > 0 ? c.train.peak_flops : guess_peak_flops(device, bf16)) * world;
  {
    std::ostringstream s;
    s << task_name << ": " << model->num_parameters() << " parameters on " << world << " rank(s), " << device
      << ", " << (bf16 ? "bf16 params + fp32 master" : "fp32") << (c.train.recompute ? ", recompute" : "") << "\n"
      << "batch: " << c.data.micro_batch << " rows x " << c.train.grad_accum << " accumulation x " << world
      << " ranks = " << global_rows << " rows of " << c.data.seq_len << " tokens (" << tokens_per_step
      << " tokens/step); " << loader.samples_per_epoch() << " rows per epoch\n"
      << optimizer.summary() << "\n"
      << "memory: " << memory.describe();
    say(s.str());
  }
  if (!device.is_cuda() && memory.total() > physical_memory() && physical_memory() > 0) {
    say("warning: that is more than this machine's " + format_bytes(physical_memory()) +
        " of memory; expect the first step to run out of it");
  }

  auto save_checkpoint = [&](int64_t step) {
    // A checkpoint of non-finite weights would only rotate a good one out (checkpoint.keep_last).
    const std::string bad = nonfinite_parameter(model, comm);
    if (!bad.empty()) {
      throw NonFiniteError("the weights after step " + std::to_string(step) + " are not finite (NaN/Inf in " + bad +
                           "): checkpoint " + checkpoint_dir_name(step) + " not written and training stopped; " +
                           last_checkpoint_note(ckpt_root));
    }
    state.step = step;
    state.world_size = world;
    state.schedule = schedule.to_json();
    state.data_cursor = {{"cursor", loader.cursor()}};
    const std::string dir = writer.save(step, [&](const std::string& tmp) {
      optimizer.save_state(tmp);
      save_rng_state(tmp, rank);
      if (rank == 0) {
        std::vector<std::pair<std::string, torch::Tensor>> named;
        for (const auto& p : model->named_parameters()) named.emplace_back(p.key(), p.value());
        save_weights(tmp, named);
        write_trainer_state(tmp, state);
      }
    });
    say("checkpoint: " + dir);
  };

  // The evaluation progress bar redraws itself: only on a terminal, not in a log file.
  const bool interactive = isatty(STDOUT_FILENO);
  auto evaluate = [&](int64_t step) {
    if (!validation) return;
    data::Loader& val = *validation;
    val.seek(0);  // every evaluation reads the same batches
    const int64_t per_pass = c.data.micro_batch * world;
    const int64_t batches = std::max<int64_t>(1, std::min(c.train.eval_batches, val.samples_per_epoch() / per_pass));
    torch::NoGradGuard no_grad;
    model->eval();
    double loss = 0, count = 0;
    for (int64_t i = 0; i < batches; ++i) {
      const MicroBatch b = to_device(val.next(), device);
      loss += masked_token_loss(model, model->hidden(b.tokens, b.segment_pos), b.targets, b.loss_mask, 0.0);
      count += b.mask_sum;
      if (rank == 0 && interactive) std::cout << "\r" << format_progress_bar(i + 1, batches) << std::flush;
    }
    model->train();
    loss = comm.all_reduce_scalar(loss), count = comm.all_reduce_scalar(count);
    if (!(count > 0)) {  // a loss of 0 would read as a perfect model
      say(std::string(interactive ? "\r" : "") + "eval step " + std::to_string(step) +
          ": no supervised target in the validation batches (every loss mask is 0); no val_loss");
      return;
    }
    const double val_loss = loss / count;
    if (rank == 0) {
      std::cout << (interactive ? "\r" : "") << "eval step " << step << ": val_loss " << val_loss << ", ppl "
                << std::exp(val_loss) << (interactive ? "          " : "") << std::endl;
      metrics->write_eval(step, state.tokens, val_loss);
    }
  };

  install_stop_signal_handlers();
  NonFiniteGuard guard(static_cast<int>(c.train.max_nonfinite), state.skipped_steps);
  const int64_t start_step = state.step;
  const auto run_start = Clock::now();
  auto interval_start = Clock::now();
  int64_t interval_tokens = 0;
  int64_t unsupervised_rows = 0;  // rows without a supervised target, summed over the steps of this process

  // ---- the loop ---------------------------------------------------------------------------------------------
  for (int64_t step = state.step; step < c.train.steps; ++step) {
    const double lr = schedule.lr_at(step);
    StepResult r;
    try {
      std::vector<MicroBatch> micro;
      for (int64_t i = 0; i < c.train.grad_accum; ++i) micro.push_back(to_device(loader.next(), device));
      if (faults.nan_loss(step + 1)) {
        for (MicroBatch& b : micro) b.loss_mask.fill_(std::numeric_limits<double>::quiet_NaN());
      }
      r = train_step(model, optimizer, comm, micro, c.train.max_grad_norm, lr, guard, step + 1);
    } catch (...) {
      rethrow_one_line("training step " + std::to_string(step + 1), memory.describe());
    }
    if (faults.nan_weights_at == step + 1) poison_weights(model);
    if (r.unsupervised_rows > 0 && unsupervised_rows == 0) {
      say("warning: step " + std::to_string(step + 1) + ": " + std::to_string(r.unsupervised_rows) + " of " +
          std::to_string(global_rows) + " rows have no supervised target (loss mask all 0; SFT: the model turn "
          "starts after data.seq_len = " + std::to_string(c.data.seq_len) +
          " tokens) and train on nothing; warned once, the total is reported at the end");
    }
    unsupervised_rows += r.unsupervised_rows;
    if (r.skipped) {
      say("step " + std::to_string(step + 1) + ": non-finite loss or gradient, update skipped (" +
          std::to_string(guard.consecutive()) + " in a row)");
    }
    const double loss = r.loss, grad_norm = r.grad_norm;
    state.tokens += tokens_per_step;
    state.skipped_steps = guard.skipped_total();
    interval_tokens += tokens_per_step;

    if (rank == 0) {
      StepMetrics m;
      m.step = step + 1, m.loss = loss, m.lr = lr, m.grad_norm = grad_norm, m.tokens = state.tokens;
      const double dt = seconds_since(interval_start);
      m.tokens_per_s = interval_tokens / std::max(dt, 1e-9);
      m.mfu = mfu(flops_per_token, interval_tokens, dt, peak);
      m.skipped_steps = state.skipped_steps;
      metrics->write(m);
      if ((step + 1) % c.train.log_every == 0 || step + 1 == c.train.steps || step == start_step) {
        std::cout << format_step_line(m, c.train.steps, seconds_since(run_start), start_step) << std::endl;
        interval_start = Clock::now(), interval_tokens = 0;
      }
    }
    // The checkpoint first: an evaluation that fails must not cost the steps since the last one.
    const bool stop = stop_requested_any(comm);
    if (stop || (c.checkpoint.every > 0 && (step + 1) % c.checkpoint.every == 0 && step + 1 < c.train.steps)) {
      save_checkpoint(step + 1);
    }
    if (stop) {
      say("stopped by signal " + std::to_string(stop_signal()) + " after step " + std::to_string(step + 1) +
          "; continue with --checkpoint.resume=auto");
      return 0;
    }
    if (c.train.eval_every > 0 && (step + 1) % c.train.eval_every == 0 && step + 1 < c.train.steps) evaluate(step + 1);
  }

  // ---- the end --------------------------------------------------------------------------------------------
  // A run that ended on skipped steps did not finish: no final/, and no end checkpoint to rotate out a good one.
  if (guard.consecutive() > 0) {
    const int64_t first = c.train.steps - guard.consecutive() + 1;
    throw NonFiniteError("the last " + std::to_string(guard.consecutive()) + " step(s) (" + std::to_string(first) +
                         (first < c.train.steps ? "-" + std::to_string(c.train.steps) : std::string()) + " of " +
                         std::to_string(c.train.steps) + ") were skipped for a non-finite loss or gradient, so the "
                         "weights are still those of step " + std::to_string(first - 1) +
                         ": the run did not finish, no final/ and no end checkpoint were written; " +
                         last_checkpoint_note(ckpt_root));
  }
  if (start_step < c.train.steps) {
    save_checkpoint(c.train.steps);  // refuses non-finite weights, so no final/ from them either
  } else if (const std::string bad = nonfinite_parameter(model, comm); !bad.empty()) {
    throw NonFiniteError("the weights of " + ckpt_root.string() + "'s last checkpoint are not finite (NaN/Inf in " +
                         bad + "); no final/ written");
  }
  evaluate(c.train.steps);
  if (rank == 0) {
    save_pretrained(model, (out / "final").string(), bf16 ? torch::kBFloat16 : torch::kFloat);
    std::cout << "done: " << c.train.steps << " steps, " << state.tokens << " tokens";
    if (unsupervised_rows > 0) std::cout << " (" << unsupervised_rows << " rows had no supervised target)";
    std::cout << "; weights in " << (out / "final").string() << " (Hugging Face layout)" << std::endl;
  }
  comm.barrier();
  return 0;
}

}  // namespace rg::trainer
