// The pretrain/SFT loop in named parts, in the order run_training() calls them:
//   plan_run()      checks before any work (batch arithmetic, data set, schedule, memory; exit 2)
//   set_up_run()    run folder, model, data, optimizer, RunCheckpoint (+ restore on resume), metrics
//   switch_data_if_due()  before an update: the data.stages mixture due at that step
//   train_step()    one update: micro-batches -> hidden() -> masked_token_loss -> backward ->
//                   reduce-scatter -> clip -> AdamW -> all-gather (declared in trainer.h)
//   record_step()   counters, metrics.jsonl, the console line
//   evaluate()      validation loss
//   finish_run()    refuses a run that ended on skipped steps, saves the end checkpoint and final/
// Saving and resuming go through RunCheckpoint (run_checkpoint.h), which lists the parts a checkpoint holds.
//
// Loss normalisation: the loss of a step is sum(CE * mask) / sum(mask) over the whole global batch (all
// ranks, all micro-batches). Each rank back-propagates its partial sum divided by the global count and the
// gradients are summed over ranks, so any split of the same global batch over ranks and micro-batches
// trains the same model.
#include "trainer/trainer.h"

#include "data/dataset.h"
#include "data/loader.h"
#include "data/sources.h"
#include "model/io/hf_config.h"
#include "model/config.h"
#include "model/pretrained.h"
#include "trainer/checkpoint.h"
#include "trainer/faults.h"
#include "trainer/metrics.h"
#include "trainer/preflight.h"
#include "trainer/recompute.h"
#include "trainer/run_checkpoint.h"
#include "trainer/run_support.h"
#include "trainer/schedule.h"
#include "trainer/zero_optimizer.h"

#include <ATen/record_function.h>
#include <torch/cuda.h>
#include <torch/nn/functional/loss.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
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
  const data::DatasetInfo info = data::read_sources_info(c.data.train);  // a file, shards or a mixture
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
  // data.stages: each later mixture is read by the same model, so it must match data.train's data.
  std::vector<data::StageSpec> stages;
  try {
    stages = data::parse_stages(c.data.stages);
  } catch (const std::exception& e) {
    throw TrainSetupError(std::string("data.stages: ") + e.what());
  }
  for (const data::StageSpec& stage : stages) {
    try {
      const data::DatasetInfo later = data::read_sources_info(stage.spec);
      if (later.kind != info.kind) {
        throw TrainSetupError(stage.spec + " is a " + data::kind_name(later.kind) + " dataset, data.train a " +
                              data::kind_name(info.kind) + " one");
      }
      data::check_same_dataset(info, later);
      check_split_fits_row(later, /*validation=*/false, c.data.seq_len, c.data.pack);
    } catch (const std::exception& e) {
      std::string why = e.what();  // parse_sources names "data.train entry '...'"; here it is this stage's
      if (why.rfind("data.train ", 0) == 0) why.erase(0, 11);
      throw TrainSetupError("data.stages: stage at step " + std::to_string(stage.step) + ": " + why);
    }
  }
  return info;
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


// ---- set-up -------------------------------------------------------------------------------------------------

// What the checks before any work found; each check that fails throws TrainSetupError (exit 2).
struct RunPlan {
  BatchShape batch;
  torch::Device device = torch::kCPU;
  bool bf16 = false;
  data::DatasetInfo data_info;
  LrSchedule schedule;
  FaultInjection faults;
  MemoryEstimate memory;
};

RunPlan plan_run(Task task, const TrainConfig& c, const ModelConfig& model_config, const comm::Communicator& comm) {
  RunPlan p;
  p.batch = global_batch_shape(c.data.micro_batch, c.train.grad_accum, comm.world_size(), c.data.seq_len,
                               c.train.global_batch);
  p.device = pick_device(c.train.device, comm);
  p.bf16 = use_bf16(c.train.dtype, p.device);
  // With init_from the folder's config.json defines the model; read it (not the weights) to check against.
  const ModelConfig planned = c.train.init_from.empty() ? model_config : io::read_hf_config(c.train.init_from);
  p.data_info = check_training_data(task, c, planned.vocab_size);
  p.schedule = schedule_from(c);
  try {
    p.faults = FaultInjection::from_env();
  } catch (const std::invalid_argument& e) {
    throw TrainSetupError(e.what());
  }
  p.memory = estimate_memory(count_parameters(planned).total, p.bf16, comm.world_size(), c.optim.zero_stage,
                             c.data.micro_batch, c.train.grad_accum, c.data.seq_len, planned.vocab_size);
  return p;
}

// Everything the loop works on, built once by set_up_run() and never moved (RunCheckpoint holds references).
struct Run {
  Run(const TrainConfig& config, comm::Communicator& communicator, RunPlan p)
      : c(config), comm(communicator), plan(std::move(p)), say(communicator), out(config.train.out) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  const TrainConfig& c;
  comm::Communicator& comm;
  const RunPlan plan;
  const RankZeroLog say;
  const fs::path out;
  Griffin model{nullptr};
  std::unique_ptr<data::Loader> loader, validation;  // validation: null when the split is empty
  std::string data_spec;                             // what `loader` reads: data.train or a data.stages spec
  std::vector<data::StageSpec> stages;               // data.stages
  // Mixtures: one validation loader per source whose split fills a row (val_loss/<name>); val_loss pools them.
  std::vector<std::pair<std::string, std::unique_ptr<data::Loader>>> source_validation;
  std::unique_ptr<ZeroOptimizer> optimizer;
  std::unique_ptr<RunCheckpoint> checkpoint;
  std::unique_ptr<MetricsWriter> metrics;  // rank 0 only
  TrainerState state;                      // counters; state.step = updates done
  double flops_per_token = 0, peak_flops = 0;
};

Griffin build_model(const Run& run, const ModelConfig& model_config) {
  Griffin model{nullptr};
  try {
    if (!run.c.train.init_from.empty()) {
      model = load_pretrained(run.c.train.init_from);
    } else {
      torch::manual_seed(static_cast<uint64_t>(run.c.train.seed));
      model = Griffin(model_config);
    }
    model->to(run.plan.device);
  } catch (...) {
    rethrow_one_line("building the model on " + run.plan.device.str(), run.plan.memory.describe());
  }
  broadcast_parameters(*model, run.comm);
  if (run.c.train.recompute) enable_recompute(model);
  return model;
}

data::LoaderOptions loader_options(const Run& run, const std::string& spec) {
  const TrainConfig& c = run.c;
  data::LoaderOptions lo;
  lo.path = spec, lo.rank = run.comm.rank(), lo.world_size = run.comm.world_size();
  lo.seq_len = c.data.seq_len, lo.micro_batch = c.data.micro_batch, lo.seed = static_cast<uint64_t>(c.data.seed);
  lo.pack = c.data.pack;
  return lo;
}

// The training data after `done` updates: the spec of the last data.stages entry whose step is <= done, else
// data.train.
const std::string& data_spec_at(const Run& run, int64_t done) {
  const std::string* spec = &run.c.data.train;
  for (const data::StageSpec& stage : run.stages) {
    if (stage.step <= done) spec = &stage.spec;
  }
  return *spec;
}

void open_data(Run& run) {
  const TrainConfig& c = run.c;
  run.stages = data::parse_stages(c.data.stages);  // checked by plan_run
  run.data_spec = c.data.train;
  run.loader = std::make_unique<data::Loader>(loader_options(run, run.data_spec));
  // Opened once here (the split was checked to fill a row), so an evaluation cannot fail on its size late.
  data::LoaderOptions vo = loader_options(run, c.data.train);
  vo.split = "validation", vo.shuffle = false, vo.prefetch = 0;
  const std::vector<data::SourceSpec> sources = data::parse_sources(c.data.train);
  if (sources.front().name.empty()) {
    if (run.plan.data_info.validation.sequences > 0) run.validation = std::make_unique<data::Loader>(vo);
    return;
  }
  // Every named source of data.train and of the mixtures of data.stages (the first of a name), so val_loss
  // and val_loss/<source> are measured on the same data before and after a switch.
  std::vector<data::SourceSpec> all = sources;
  for (const data::StageSpec& stage : run.stages) {
    for (const data::SourceSpec& later : data::parse_sources(stage.spec)) {
      bool known = later.name.empty();
      for (const data::SourceSpec& s : all) known = known || s.name == later.name;
      if (!known) all.push_back(later);
    }
  }
  for (const auto& source : all) {
    const data::DatasetInfo info = data::read_sources_info(data::source_path(source));
    if (info.validation.tokens < (c.data.pack ? c.data.seq_len : 1)) continue;
    vo.path = data::source_path(source);
    run.source_validation.emplace_back(source.name, std::make_unique<data::Loader>(vo));
  }
}

// Before update done + 1: moves the loader to the data.stages mixture due after `done` updates, if it is not
// there yet. The new loader continues from the old one's state (Loader::restore: a new stage in which each
// source keeps its count); the switch goes to the console and to metrics.jsonl. On resume (done = the
// checkpoint's step) the same call happens before the same batch, so a resumed run switches as one that ran on.
void switch_data_if_due(Run& run, int64_t done) {
  const std::string& spec = data_spec_at(run, done);
  if (spec == run.data_spec) return;
  auto next = std::make_unique<data::Loader>(loader_options(run, spec));
  const nlohmann::json before = run.loader->state();
  std::string note = next->restore(before);  // "data.train changed: stage 1 from ...": here data.stages did
  if (const std::string changed = "data.train changed: "; note.rfind(changed, 0) == 0) note.erase(0, changed.size());
  run.loader = std::move(next);
  run.data_spec = spec;
  run.say("after step " + std::to_string(done) + ": data.stages: " + spec +
          (note.empty() ? "" : "; " + note));
  if (run.metrics) {
    const nlohmann::json after = run.loader->state();
    // "step" is the first update on the new data: a resume from the checkpoint of step `done` drops this line
    // with the later ones (MetricsWriter keeps steps <= done) and writes it again, instead of twice.
    nlohmann::json line = {{"step", done + 1}, {"data_switch", spec}, {"data_stage", run.loader->stage()}};
    if (after.contains("history") && !after["history"].empty()) line["data_stage_ended"] = after["history"].back();
    run.metrics->write_json(line);
  }
}

// Restores every part of the checkpoint checkpoint.resume names, if any; a checkpoint unfit to resume is exit 2.
void resume(Run& run) {
  std::optional<Resumed> r;
  try {
    r = run.checkpoint->restore(run.c.checkpoint.resume, run.c.train.steps);
  } catch (const CheckpointError& e) {
    throw TrainSetupError(e.what());
  }
  if (!r) return;
  run.state = r->state;
  // The checkpoint holds the loader of update `step`, which read the mixture due after step - 1 updates (a
  // switch due after `step` itself happens in the loop, before the next update, as in a run that went on).
  if (const std::string& spec = data_spec_at(run, run.state.step - 1); spec != run.data_spec) {
    run.loader = std::make_unique<data::Loader>(loader_options(run, spec));
    run.data_spec = spec;
  }
  const std::string data_note = run.loader->restore(r->state.data_cursor);  // a mixture: each source's count
  std::ostringstream s;
  s << "resumed from " << r->dir << " at step " << run.state.step << " (" << run.state.tokens << " tokens)";
  if (run.state.world_size != run.comm.world_size()) {
    s << "; resharded from " << run.state.world_size << " to " << run.comm.world_size() << " ranks";
  }
  if (!r->schedule_changes.empty()) s << "; schedule changed: " << r->schedule_changes;
  if (!data_note.empty()) s << "; " << data_note;
  run.say(s.str());
}

void print_summary(const Run& run, Task task) {
  const TrainConfig& c = run.c;
  std::ostringstream s;
  s << (task == Task::kPretrain ? "pretrain" : "sft") << ": " << run.model->num_parameters() << " parameters on "
    << run.comm.world_size() << " rank(s), " << run.plan.device << ", "
    << (run.plan.bf16 ? "bf16 params + fp32 master" : "fp32") << (c.train.recompute ? ", recompute" : "") << "\n"
    << "batch: " << c.data.micro_batch << " rows x " << c.train.grad_accum << " accumulation x "
    << run.comm.world_size() << " ranks = " << run.plan.batch.rows << " rows of " << c.data.seq_len << " tokens ("
    << run.plan.batch.tokens << " tokens/step); " << run.loader->samples_per_epoch() << " rows per epoch\n"
    << run.optimizer->summary() << "\n"
    << "memory: " << run.plan.memory.describe();
  for (const data::StageSpec& stage : run.stages) s << "\ndata after step " << stage.step << ": " << stage.spec;
  run.say(s.str());
  if (!run.plan.device.is_cuda() && run.plan.memory.total() > physical_memory() && physical_memory() > 0) {
    run.say("warning: that is more than this machine's " + format_bytes(physical_memory()) +
            " of memory; expect the first step to run out of it");
  }
}

std::unique_ptr<Run> set_up_run(Task task, const TrainConfig& c, const ModelConfig& model_config,
                                comm::Communicator& comm, const std::string& effective_config) {
  auto run = std::make_unique<Run>(c, comm, plan_run(task, c, model_config, comm));
  prepare_run_folder(run->out.string(), effective_config, comm);
  run->model = build_model(*run, model_config);
  open_data(*run);
  try {
    run->optimizer = std::make_unique<ZeroOptimizer>(zero_params_from(run->model->named_parameters()), comm,
                                                     zero_config_from(c.optim, run->plan.bf16));
  } catch (...) {
    rethrow_one_line("creating the optimizer state", run->plan.memory.describe());
  }
  run->checkpoint = std::make_unique<RunCheckpoint>((run->out / "checkpoints").string(),
                                                    static_cast<int>(c.checkpoint.keep_last), *run->model,
                                                    *run->optimizer, run->plan.schedule, comm, c.train.seed);
  resume(*run);
  if (comm.rank() == 0) {
    run->metrics = std::make_unique<MetricsWriter>((run->out / "metrics.jsonl").string(), run->state.step);
  }
  run->flops_per_token = model_flops_per_token(run->model->config(), run->model->num_parameters(), c.data.seq_len);
  run->peak_flops =
      (c.train.peak_flops > 0 ? c.train.peak_flops : guess_peak_flops(run->plan.device, run->plan.bf16)) *
      comm.world_size();
  print_summary(*run, task);
  return run;
}

// ---- evaluation ---------------------------------------------------------------------------------------------

// Validation loss (summed masked CE / supervised targets) over the same first batches every time, all ranks;
// nullopt when no validation target is supervised. Collective.
std::optional<double> validation_loss(Run& run, data::Loader& val, bool progress_bar, double* sum = nullptr,
                                      double* targets = nullptr) {
  val.seek(0);
  const int64_t per_pass = run.c.data.micro_batch * run.comm.world_size();
  const int64_t batches = std::max<int64_t>(1, std::min(run.c.train.eval_batches, val.samples_per_epoch() / per_pass));
  torch::NoGradGuard no_grad;
  run.model->eval();
  double loss = 0, count = 0;
  for (int64_t i = 0; i < batches; ++i) {
    const MicroBatch b = to_device(val.next(), run.plan.device);
    loss += masked_token_loss(run.model, run.model->hidden(b.tokens, b.segment_pos), b.targets, b.loss_mask, 0.0);
    count += b.mask_sum;
    if (run.comm.rank() == 0 && progress_bar) std::cout << "\r" << format_progress_bar(i + 1, batches) << std::flush;
  }
  run.model->train();
  loss = run.comm.all_reduce_scalar(loss), count = run.comm.all_reduce_scalar(count);
  if (sum) *sum += loss, *targets += count;
  if (!(count > 0)) return std::nullopt;  // a loss of 0 would read as a perfect model
  return loss / count;
}

// Evaluates, prints and logs val_loss after update `step`; nothing without a validation split. Collective.
void evaluate(Run& run, int64_t step) {
  if (!run.validation && run.source_validation.empty()) return;
  // The progress bar redraws itself: only on a terminal, not in a log file.
  const bool interactive = isatty(STDOUT_FILENO);
  std::optional<double> val_loss;
  nlohmann::json per_source = nlohmann::json::object();
  if (run.validation) {
    val_loss = validation_loss(run, *run.validation, interactive);
  } else {  // a mixture: each source's loss, and val_loss over all their targets
    double sum = 0, targets = 0;
    for (auto& [name, loader] : run.source_validation) {
      if (const auto l = validation_loss(run, *loader, interactive, &sum, &targets)) per_source["val_loss/" + name] = *l;
    }
    if (targets > 0) val_loss = sum / targets;
  }
  const std::string cr = interactive ? "\r" : "";
  if (!val_loss) {
    run.say(cr + "eval step " + std::to_string(step) +
            ": no supervised target in the validation batches (every loss mask is 0); no val_loss");
    return;
  }
  if (run.comm.rank() == 0) {
    std::cout << cr << "eval step " << step << ": val_loss " << *val_loss << ", ppl " << std::exp(*val_loss)
              << (interactive ? "          " : "") << std::endl;
    run.metrics->write_eval(step, run.state.tokens, *val_loss);
    if (!per_source.empty()) {
      for (const auto& [key, v] : per_source.items()) std::cout << "  " << key << " " << v.get<double>();
      std::cout << std::endl;
      per_source["step"] = step;
      run.metrics->write_json(per_source);
    }
  }
}

// ---- one step -----------------------------------------------------------------------------------------------

// Update number `step` (1-based): this rank's micro-batches through train_step, with the test hooks of
// RG_FAULT_INJECT applied.
StepResult next_step(Run& run, int64_t step, double lr, NonFiniteGuard& guard) {
  StepResult r;
  try {
    std::vector<MicroBatch> micro;
    for (int64_t i = 0; i < run.c.train.grad_accum; ++i) micro.push_back(to_device(run.loader->next(), run.plan.device));
    if (run.plan.faults.nan_loss(step)) {
      for (MicroBatch& b : micro) b.loss_mask.fill_(std::numeric_limits<double>::quiet_NaN());
    }
    r = train_step(run.model, *run.optimizer, run.comm, micro, run.c.train.max_grad_norm, lr, guard, step);
  } catch (...) {
    rethrow_one_line("training step " + std::to_string(step), run.plan.memory.describe());
  }
  if (run.plan.faults.nan_weights_at == step) poison_weights(run.model);
  return r;
}

// Throughput and warnings across steps of this process.
struct Progress {
  int64_t start_step = 0;  // the step the run started or resumed at
  Clock::time_point run_start = Clock::now(), interval_start = Clock::now();
  int64_t interval_tokens = 0;
  int64_t unsupervised_rows = 0;  // rows without a supervised target, summed over the steps of this process
};

// After update `step` (1-based): counters, warnings, metrics.jsonl and (every train.log_every) the console line.
void record_step(Run& run, Progress& progress, int64_t step, double lr, const StepResult& r,
                 const NonFiniteGuard& guard) {
  const TrainConfig& c = run.c;
  if (r.unsupervised_rows > 0 && progress.unsupervised_rows == 0) {
    run.say("warning: step " + std::to_string(step) + ": " + std::to_string(r.unsupervised_rows) + " of " +
            std::to_string(run.plan.batch.rows) + " rows have no supervised target (loss mask all 0; SFT: the model "
            "turn starts after data.seq_len = " + std::to_string(c.data.seq_len) +
            " tokens) and train on nothing; warned once, the total is reported at the end");
  }
  progress.unsupervised_rows += r.unsupervised_rows;
  if (r.skipped) {
    run.say("step " + std::to_string(step) + ": non-finite loss or gradient, update skipped (" +
            std::to_string(guard.consecutive()) + " in a row)");
  }
  run.state.step = step;
  run.state.tokens += run.plan.batch.tokens;
  run.state.skipped_steps = guard.skipped_total();
  progress.interval_tokens += run.plan.batch.tokens;
  if (run.comm.rank() != 0) return;
  StepMetrics m;
  m.step = step, m.loss = r.loss, m.lr = lr, m.grad_norm = r.grad_norm, m.tokens = run.state.tokens;
  const double dt = seconds_since(progress.interval_start);
  m.tokens_per_s = progress.interval_tokens / std::max(dt, 1e-9);
  m.mfu = mfu(run.flops_per_token, progress.interval_tokens, dt, run.peak_flops);
  m.skipped_steps = run.state.skipped_steps;
  nlohmann::json line = to_json(m);
  for (const auto& u : run.loader->usage()) {  // a mixture's tokens per source, in the run and in this stage
    if (u.name.empty()) continue;
    line["data_tokens/" + u.name] = u.tokens, line["data_stage_tokens/" + u.name] = u.stage_tokens;
    line["data_stage"] = run.loader->stage();
  }
  run.metrics->write_json(line);
  if (step % c.train.log_every == 0 || step == c.train.steps || step == progress.start_step + 1) {
    std::cout << format_step_line(m, c.train.steps, seconds_since(progress.run_start), progress.start_step) << std::endl;
    progress.interval_start = Clock::now(), progress.interval_tokens = 0;
  }
}

void save_checkpoint(Run& run) {
  run.state.data_cursor = run.loader->state();  // a mixture adds each source's count and the stage
  run.say("checkpoint: " + run.checkpoint->save(run.state, run.loader->cursor()));
}

// ---- the end ------------------------------------------------------------------------------------------------

// After the last step: a run that ended on skipped steps did not finish (no final/, and no end checkpoint
// to rotate out a good one); otherwise the end checkpoint, the last evaluation and final/.
int finish_run(Run& run, const NonFiniteGuard& guard, const Progress& progress) {
  const int64_t steps = run.c.train.steps;
  if (guard.consecutive() > 0) {
    const int64_t first = steps - guard.consecutive() + 1;
    throw NonFiniteError("the last " + std::to_string(guard.consecutive()) + " step(s) (" + std::to_string(first) +
                         (first < steps ? "-" + std::to_string(steps) : std::string()) + " of " +
                         std::to_string(steps) + ") were skipped for a non-finite loss or gradient, so the "
                         "weights are still those of step " + std::to_string(first - 1) +
                         ": the run did not finish, no final/ and no end checkpoint were written; " +
                         run.checkpoint->last_checkpoint_note());
  }
  if (progress.start_step < steps) {
    save_checkpoint(run);  // refuses non-finite weights, so no final/ from them either
  } else if (const std::string bad = nonfinite_parameter(*run.model, run.comm); !bad.empty()) {
    throw NonFiniteError("the weights of " + run.checkpoint->root() + "'s last checkpoint are not finite (NaN/Inf in " +
                         bad + "); no final/ written");
  }
  evaluate(run, steps);
  if (run.comm.rank() == 0) {
    const fs::path final_dir = run.out / "final";
    save_pretrained(run.model, final_dir.string(), run.plan.bf16 ? torch::kBFloat16 : torch::kFloat);
    std::cout << "done: " << steps << " steps, " << run.state.tokens << " tokens";
    if (progress.unsupervised_rows > 0) std::cout << " (" << progress.unsupervised_rows << " rows had no supervised target)";
    std::cout << "; weights in " << final_dir.string() << " (Hugging Face layout)" << std::endl;
  }
  run.comm.barrier();
  return 0;
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
    RECORD_USER_SCOPE("rg::loss_chunk");  // logits, cross entropy and their backward (`bench step --profile`)
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
  const std::unique_ptr<Run> run = set_up_run(task, c, model_config, comm, effective_config);
  install_stop_signal_handlers();
  NonFiniteGuard guard(static_cast<int>(c.train.max_nonfinite), run->state.skipped_steps);
  Progress progress;
  progress.start_step = run->state.step;
  for (int64_t step = run->state.step + 1; step <= c.train.steps; ++step) {  // 1-based update number
    switch_data_if_due(*run, step - 1);
    const double lr = run->plan.schedule.lr_at(step - 1);
    const StepResult r = next_step(*run, step, lr, guard);
    record_step(*run, progress, step, lr, r, guard);
    // The checkpoint first: an evaluation that fails must not cost the steps since the last one.
    const bool stop = stop_requested_any(comm);
    if (stop || due_after(step, c.checkpoint.every, c.train.steps)) save_checkpoint(*run);
    if (stop) {
      run->say("stopped by signal " + std::to_string(stop_signal()) + " after step " + std::to_string(step) +
               "; continue with --checkpoint.resume=auto");
      return 0;
    }
    if (due_after(step, c.train.eval_every, c.train.steps)) evaluate(*run, step);
  }
  return finish_run(*run, guard, progress);
}

}  // namespace rg::trainer
