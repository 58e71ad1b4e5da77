// run_pair_training, top to bottom: set-up (device, pairs, model, reference log-probs for DPO, optimizer,
// resume), then per step: this rank's pairs -> forward -> per-pair loss -> backward -> reduce-scatter ->
// clip -> AdamW -> all-gather -> schedule -> log -> evaluate -> checkpoint; at the end the final folder.
//
// Written beside trainer/trainer.cpp rather than inside it because its step takes pairs, not token rows; the
// parts both loops share are trainer/run_support.h's (device, dtype, run folder, optimizer settings, schedule)
// and trainer/run_checkpoint.h's (the save/restore pair).
// Loss normalisation: the step's loss is the mean per-pair loss over the global batch;
// each rank back-propagates its per-pair sum divided by the global pair count, and gradients are summed.
#include "rlhf/pair_trainer.h"

#include "data/dataset.h"
#include "data/loader.h"
#include "model/pretrained.h"
#include "rlhf/losses.h"
#include "rlhf/pair_batch.h"
#include "rlhf/reward_model.h"
#include "trainer/checkpoint.h"
#include "trainer/faults.h"
#include "trainer/metrics.h"
#include "trainer/recompute.h"
#include "trainer/run_checkpoint.h"
#include "trainer/run_support.h"
#include "trainer/schedule.h"
#include "trainer/trainer.h"
#include "trainer/zero_optimizer.h"

#include <torch/cuda.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

namespace rg::rlhf {
namespace {

namespace fs = std::filesystem;
using trainer::TrainSetupError;
using trainer::Clock;
using trainer::broadcast_parameters;
using trainer::guess_peak_flops;
using trainer::pick_device;
using trainer::seconds_since;
using Stats = std::map<std::string, torch::Tensor>;  // name -> (P) per-pair values

// What differs between reward-model training and DPO: the trained module, the per-pair statistics of a
// batch (and the backward of scale * sum(loss) when scale != 0), and the final folder.
class PairObjective {
 public:
  virtual ~PairObjective() = default;
  virtual torch::nn::Module& module() = 0;
  virtual Griffin& backbone() = 0;
  // `ids` are the batch's pair indices into the split's pair list (validation or train).
  virtual Stats run(const PairBatch& b, const std::vector<int64_t>& ids, bool validation, double scale) = 0;
  // Means over pairs -> the metrics written (derived ones added).
  virtual void derive(std::map<std::string, double>& means) const { (void)means; }
  virtual std::string accuracy_key() const = 0;
  virtual std::string margin_key() const = 0;
  virtual void save_final(const std::string& dir, torch::Dtype dtype) = 0;
};

class RewardObjective : public PairObjective {
 public:
  RewardObjective(RewardModel rm, const RlhfConfig& c) : rm_(std::move(rm)), c_(c) {}
  torch::nn::Module& module() override { return *rm_; }
  Griffin& backbone() override { return rm_->model; }
  RewardModel& reward_model() { return rm_; }
  Stats run(const PairBatch& b, const std::vector<int64_t>&, bool, double scale) override {
    const int64_t P = b.pairs;
    const torch::Tensor r = rm_->forward(b.tokens, b.segment_pos, b.last);  // (2P)
    const torch::Tensor rc = r.narrow(0, 0, P), rr = r.narrow(0, P, P);     // (P)
    const torch::Tensor margin = pair_margins(b, c_.margin);  // (P) or undefined (no margins)
    const torch::Tensor loss = reward_pair_loss(rc, rr, margin, c_.center_rewards);  // (P)
    if (scale != 0) (loss.sum() * scale).backward();
    const torch::Tensor rcd = rc.detach(), rrd = rr.detach();
    return {{"loss", loss.detach()}, {"accuracy", (rcd > rrd).to(torch::kFloat)}, {"margin", rcd - rrd},
            {"reward_sum", rcd + rrd}, {"reward_sq", rcd * rcd + rrd * rrd}};
  }
  void derive(std::map<std::string, double>& m) const override {
    const double mean = m["reward_sum"] / 2;
    m["reward_mean"] = mean;
    m["reward_std"] = std::sqrt(std::max(0.0, m["reward_sq"] / 2 - mean * mean));
    m.erase("reward_sum"), m.erase("reward_sq");
  }
  std::string accuracy_key() const override { return "accuracy"; }
  std::string margin_key() const override { return "margin"; }
  void save_final(const std::string& dir, torch::Dtype dtype) override { save_reward_model(rm_, dir, dtype); }

 private:
  RewardModel rm_;
  RlhfConfig c_;
};

class DpoObjective : public PairObjective {
 public:
  DpoObjective(Griffin policy, const RlhfConfig& c) : policy_(std::move(policy)), c_(c) {
    o_.beta = c.beta, o_.loss = parse_dpo_loss(c.loss), o_.label_smoothing = c.label_smoothing;
  }
  torch::nn::Module& module() override { return *policy_; }
  Griffin& backbone() override { return policy_; }
  // Reference log-probabilities per pair: (2, n) float32 rows chosen / rejected, summed over completion tokens.
  void set_reference(torch::Tensor train, torch::Tensor validation) {
    ref_train_ = std::move(train), ref_val_ = std::move(validation);
  }
  Stats run(const PairBatch& b, const std::vector<int64_t>& ids, bool validation, double scale) override {
    const int64_t P = b.pairs;
    const torch::Tensor hidden = policy_->hidden(b.tokens, b.segment_pos);  // (2P, T, W)
    const torch::Tensor lp = chunked_sequence_logps(policy_, hidden, b.targets, b.completion_mask);  // (2P)
    const torch::Tensor idx = torch::tensor(ids, torch::kLong).to(lp.device());
    const torch::Tensor& ref = validation ? ref_val_ : ref_train_;
    torch::Tensor ref_lp = torch::cat({ref[0].index_select(0, idx), ref[1].index_select(0, idx)});  // (2P)
    // IPO works on per-token means (TRL's ipo; the IPO paper's length-normalised log-likelihoods).
    const bool ipo = o_.loss == DpoLossType::kIpo;
    torch::Tensor pol = lp.clone().requires_grad_(scale != 0);
    torch::Tensor pol_n = ipo ? pol / b.completion_tokens : pol;
    const torch::Tensor ref_n = ipo ? ref_lp / b.completion_tokens : ref_lp;
    const torch::Tensor loss = dpo_pair_loss(pol_n.narrow(0, 0, P), pol_n.narrow(0, P, P), ref_n.narrow(0, 0, P),
                                             ref_n.narrow(0, P, P), o_);  // (P)
    if (scale != 0) {
      (loss.sum() * scale).backward();
      backward_sequence_logps(policy_, hidden, b.targets, b.completion_mask, pol.grad());
    }
    const torch::Tensor reward = (o_.beta * (lp - ref_lp)).detach();  // (2P) TRL's implicit rewards
    const torch::Tensor rc = reward.narrow(0, 0, P), rr = reward.narrow(0, P, P);
    return {{"loss", loss.detach()},         {"rewards/chosen", rc},
            {"rewards/rejected", rr},        {"rewards/accuracy", (rc > rr).to(torch::kFloat)},
            {"rewards/margin", rc - rr},     {"logps/chosen", lp.narrow(0, 0, P)},
            {"logps/rejected", lp.narrow(0, P, P)}};
  }
  std::string accuracy_key() const override { return "rewards/accuracy"; }
  std::string margin_key() const override { return "rewards/margin"; }
  void save_final(const std::string& dir, torch::Dtype dtype) override { save_pretrained(policy_, dir, dtype); }

 private:
  Griffin policy_;
  RlhfConfig c_;
  DpoOptions o_;
  torch::Tensor ref_train_, ref_val_;
};

// Sums of per-pair statistics over a set of batches (and, for accuracy, per kind), reduced over ranks.
struct StatSums {
  std::map<std::string, double> sum;
  double pairs = 0;
  std::vector<double> kind_correct, kind_count;

  void add(const Stats& s, const PairBatch& b, const std::string& accuracy_key) {
    for (const auto& [name, t] : s) sum[name] += t.sum().item<double>();
    pairs += static_cast<double>(b.pairs);
    if (kind_count.empty()) return;
    const torch::Tensor acc = s.at(accuracy_key).cpu();
    for (int64_t i = 0; i < b.pairs; ++i) {
      if (b.kinds[i] < 0) continue;
      kind_correct[b.kinds[i]] += acc[i].item<double>();
      kind_count[b.kinds[i]] += 1;
    }
  }
  // Collective; every rank must hold the same keys (all ranks run the same objective).
  std::map<std::string, double> means(comm::Communicator& comm) {
    pairs = comm.all_reduce_scalar(pairs);
    std::map<std::string, double> out;
    for (auto& [name, v] : sum) out[name] = comm.all_reduce_scalar(v) / std::max(pairs, 1.0);
    for (size_t k = 0; k < kind_count.size(); ++k) {
      kind_correct[k] = comm.all_reduce_scalar(kind_correct[k]);
      kind_count[k] = comm.all_reduce_scalar(kind_count[k]);
    }
    return out;
  }
};

// Pairs longer than seq_len tokens (prompt + the longer completion) are left out: a cut completion
// would lose the <end_of_turn> the reward is read at.
std::vector<data::PreferencePair> fitting_pairs(std::vector<data::PreferencePair> all, int64_t seq_len, int64_t* dropped) {
  std::vector<data::PreferencePair> kept;
  for (auto& p : all) {
    const size_t longest = p.prompt.size() + std::max(p.chosen.size(), p.rejected.size());
    if (static_cast<int64_t>(longest) > seq_len) ++*dropped;
    else kept.push_back(std::move(p));
  }
  return kept;
}

// Runs fn(batch, ids) over chunks of `chunk` consecutive pairs of `pairs` (chunk k on rank k % world,
// at most max_chunks chunks): the same chunks whatever the world size, so the values are too.
template <class Fn>
void for_my_chunks(const std::vector<data::PreferencePair>& pairs, int64_t chunk, int64_t max_chunks,
                   const comm::Communicator& comm, int32_t pad, const torch::Device& device,
                   const std::function<int32_t(const std::string&)>& kind_index, Fn fn) {
  const int64_t n = static_cast<int64_t>(pairs.size());
  const int64_t chunks = std::min<int64_t>((n + chunk - 1) / chunk, max_chunks);
  for (int64_t k = comm.rank(); k < chunks; k += comm.world_size()) {
    std::vector<const data::PreferencePair*> ptrs;
    std::vector<int64_t> ids;
    for (int64_t i = k * chunk; i < std::min(n, (k + 1) * chunk); ++i) ptrs.push_back(&pairs[i]), ids.push_back(i);
    fn(make_pair_batch(ptrs, pad, device, kind_index), ids);
  }
}

std::string fmt(double v, int precision = 4) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(precision);
  s << v;
  return s.str();
}

// Progress of DPO's reference pass on rank 0, one line per tenth of the pairs (the pass takes tens of
// seconds on the tiny CPU preset, minutes on big sets):
//   "reference log-probabilities: 1400/4661 pairs | 48.2 pairs/s | eta 1m07s"
// Rank 0 sees only its own chunks; chunk k of a split is on rank k % world, so when rank 0 has done d of
// its chunks the ranks together have done about d x world chunks (exact once the split is done).
class RefPassProgress {
 public:
  RefPassProgress(std::function<void(const std::string&)> say, int64_t total_pairs, int64_t chunk, int world)
      : say_(std::move(say)), total_(total_pairs), chunk_(chunk), world_(world), start_(Clock::now()) {}
  void begin_split(int64_t split_pairs) { base_ += split_size_, split_size_ = split_pairs, chunks_done_ = 0; }
  void chunk_done() {
    ++chunks_done_;
    const int64_t done = std::min(split_size_, chunks_done_ * world_ * chunk_) + base_;
    if (done * 10 / std::max<int64_t>(total_, 1) <= printed_tenths_ && done < total_) return;
    printed_tenths_ = done * 10 / std::max<int64_t>(total_, 1);
    const double s = seconds_since(start_), rate = s > 0 ? done / s : 0;
    say_("reference log-probabilities: " + std::to_string(done) + "/" + std::to_string(total_) + " pairs | " +
         fmt(rate, 1) + " pairs/s | eta " + trainer::format_duration(rate > 0 ? (total_ - done) / rate : 0));
  }

 private:
  std::function<void(const std::string&)> say_;  // prints on rank 0 only
  int64_t total_, chunk_, world_;
  Clock::time_point start_;
  int64_t base_ = 0, split_size_ = 0, chunks_done_ = 0, printed_tenths_ = 0;
};

}  // namespace

int run_pair_training(PairTask task, const trainer::TrainConfig& c, const RlhfConfig& rc, comm::Communicator& comm,
                      const std::string& effective_config) {
  const int rank = comm.rank(), world = comm.world_size();
  const trainer::RankZeroLog say(comm);
  const char* task_name = task == PairTask::kReward ? "reward" : "dpo";

  // ---- set-up ---------------------------------------------------------------------------------------------
  const int64_t global_pairs = c.data.micro_batch * c.train.grad_accum * world;
  if (c.train.global_batch > 0 && c.train.global_batch != global_pairs) {
    throw TrainSetupError("train.global_batch: " + std::to_string(c.train.global_batch) +
                          " pairs requested, but data.micro_batch (" + std::to_string(c.data.micro_batch) +
                          ") x train.grad_accum (" + std::to_string(c.train.grad_accum) + ") x ranks (" +
                          std::to_string(world) + ") = " + std::to_string(global_pairs) +
                          "; change train.grad_accum or data.micro_batch so the product matches");
  }
  if (c.train.init_from.empty()) throw TrainSetupError("train.init_from: required (the SFT model folder to start from)");
  const data::DatasetInfo info = data::read_dataset_info(c.data.train);
  if (info.kind != data::DatasetKind::kPreference) {
    throw TrainSetupError("data.train: " + c.data.train + " is a " + data::kind_name(info.kind) +
                          " dataset; rgemma " + task_name + " needs a preference dataset (rgemma prepare preference)");
  }
  const torch::Device device = pick_device(c.train.device, comm);
  const bool bf16 = trainer::use_bf16(c.train.dtype, device);

  std::unique_ptr<PairObjective> objective;
  RewardObjective* reward_objective = nullptr;
  DpoObjective* dpo_objective = nullptr;
  try {
    if (task == PairTask::kReward) {
      auto r = std::make_unique<RewardObjective>(init_reward_model(c.train.init_from, c.train.seed), rc);
      reward_objective = r.get();
      objective = std::move(r);
    } else {
      if (is_reward_model_dir(c.train.init_from)) {
        throw std::invalid_argument(c.train.init_from + ": is a reward model (config.json has num_labels); "
                                    "rgemma dpo starts from an SFT policy folder");
      }
      auto d = std::make_unique<DpoObjective>(load_pretrained(c.train.init_from), rc);
      dpo_objective = d.get();
      objective = std::move(d);
    }
  } catch (const std::invalid_argument& e) {
    throw TrainSetupError(std::string("train.init_from: ") + e.what());
  }
  Griffin& backbone = objective->backbone();
  try {
    data::check_compatible(info, backbone->config().vocab_size,
                           c.data.tokenizer.empty() ? "" : data::tokenizer_id(c.data.tokenizer));
  } catch (const data::DataError& e) {
    throw TrainSetupError(std::string("data.train: ") + e.what() + "; the model is train.init_from " + c.train.init_from);
  }
  objective->module().to(device);
  broadcast_parameters(objective->module(), comm);

  const fs::path out = c.train.out, ckpt_root = out / "checkpoints";
  trainer::prepare_run_folder(out.string(), effective_config, comm);

  int64_t dropped = 0;
  const std::vector<data::PreferencePair> train = fitting_pairs(data::read_preference(c.data.train, "train"), c.data.seq_len, &dropped);
  const std::vector<data::PreferencePair> val = fitting_pairs(data::read_preference(c.data.train, "validation"), c.data.seq_len, &dropped);
  if (train.empty()) {
    throw TrainSetupError("data.train: " + c.data.train + " has no training pair of at most data.seq_len (" +
                          std::to_string(c.data.seq_len) + ") tokens");
  }
  if (dropped > 0) say("left out " + std::to_string(dropped) + " pairs longer than data.seq_len (" + std::to_string(c.data.seq_len) + " tokens)");
  const int32_t pad = info.tokenizer.special.pad >= 0 ? info.tokenizer.special.pad : 0;
  std::map<std::string, int32_t> kind_ids;
  for (size_t k = 0; k < info.pair_kinds.size(); ++k) kind_ids[info.pair_kinds[k]] = static_cast<int32_t>(k);
  auto kind_index = [&kind_ids](const std::string& k) {
    auto it = kind_ids.find(k);
    return it == kind_ids.end() ? -1 : it->second;
  };

  if (dpo_objective) {
    // The reference is the start model: its log-probabilities are computed once per pair here, shared by
    // all ranks, and the policy trains from the same weights (TRL's precompute_ref_log_probs).
    const auto t0 = Clock::now();
    torch::NoGradGuard no_grad;
    backbone->eval();
    RefPassProgress progress(say, static_cast<int64_t>(train.size() + val.size()), c.data.micro_batch, world);
    auto reference = [&](const std::vector<data::PreferencePair>& pairs) {
      const int64_t n = static_cast<int64_t>(pairs.size());
      torch::Tensor ref = torch::zeros({2, std::max<int64_t>(n, 1)}, torch::TensorOptions(torch::kFloat).device(device));
      progress.begin_split(n);
      for_my_chunks(pairs, c.data.micro_batch, INT64_MAX, comm, pad, device, kind_index,
                    [&](const PairBatch& b, const std::vector<int64_t>& ids) {
                      const torch::Tensor lp = chunked_sequence_logps(backbone, backbone->hidden(b.tokens, b.segment_pos),
                                                                      b.targets, b.completion_mask);  // (2P)
                      const torch::Tensor idx = torch::tensor(ids, torch::kLong).to(device);
                      ref[0].index_copy_(0, idx, lp.narrow(0, 0, b.pairs));
                      ref[1].index_copy_(0, idx, lp.narrow(0, b.pairs, b.pairs));
                      progress.chunk_done();
                    });
      comm.all_reduce_sum(ref);  // each pair was computed on exactly one rank, zeros elsewhere
      return ref;
    };
    dpo_objective->set_reference(reference(train), reference(val));
    backbone->train();
    say("reference log-probabilities: " + std::to_string(train.size() + val.size()) + " pairs in " +
        fmt(seconds_since(t0), 1) + " s");
  }
  if (c.train.recompute) trainer::enable_recompute(backbone);

  trainer::ZeroOptimizer optimizer(trainer::zero_params_from(objective->module().named_parameters()), comm,
                                   trainer::zero_config_from(c.optim, bf16));
  const trainer::LrSchedule schedule = trainer::schedule_from(c);

  trainer::RunCheckpoint checkpoint(ckpt_root.string(), static_cast<int>(c.checkpoint.keep_last), objective->module(),
                                    optimizer, schedule, comm, c.train.seed);
  trainer::TrainerState state;
  uint64_t cursor = 0;  // global pairs consumed
  std::optional<trainer::Resumed> resumed;
  try {  // every file is checked before anything is loaded; a checkpoint unfit to resume is exit 2
    resumed = checkpoint.restore(c.checkpoint.resume, c.train.steps);
  } catch (const trainer::CheckpointError& e) {
    throw TrainSetupError(e.what());
  }
  if (resumed) {
    state = resumed->state, cursor = resumed->cursor;
    std::ostringstream s;
    s << "resumed from " << resumed->dir << " at step " << state.step;
    if (state.world_size != world) s << "; resharded from " << state.world_size << " to " << world << " ranks";
    if (!resumed->schedule_changes.empty()) s << "; schedule changed: " << resumed->schedule_changes;
    say(s.str());
  }
  std::unique_ptr<trainer::MetricsWriter> metrics;
  if (rank == 0) metrics = std::make_unique<trainer::MetricsWriter>((out / "metrics.jsonl").string(), state.step);
  const ModelConfig& mc = backbone->config();
  // The pair rows are at most seq_len long; training FLOPs as pretrain counts them (the DPO loop's second
  // LM-head pass is not counted).
  const double flops_per_token = trainer::model_flops_per_token(mc, backbone->num_parameters(), c.data.seq_len);
  const double peak = (c.train.peak_flops > 0 ? c.train.peak_flops : guess_peak_flops(device, bf16)) * world;
  data::EpochOrder order(static_cast<int64_t>(train.size()), static_cast<uint64_t>(c.data.seed));
  {
    std::ostringstream s;
    s << task_name << ": " << backbone->num_parameters() << " backbone parameters on " << world << " rank(s), "
      << device << ", " << (bf16 ? "bf16 params + fp32 master" : "fp32") << "\n"
      << "batch: " << c.data.micro_batch << " pairs x " << c.train.grad_accum << " accumulation x " << world
      << " ranks = " << global_pairs << " pairs/step; " << train.size() << " training pairs, " << val.size()
      << " validation\n"
      << optimizer.summary();
    say(s.str());
  }

  auto save_checkpoint = [&](int64_t step) {
    state.step = step;
    say("checkpoint: " + checkpoint.save(state, cursor));
  };

  auto evaluate = [&](int64_t step) {
    if (val.empty()) return;
    torch::NoGradGuard no_grad;
    backbone->eval();
    StatSums sums;
    sums.kind_correct.assign(info.pair_kinds.size(), 0), sums.kind_count.assign(info.pair_kinds.size(), 0);
    for_my_chunks(val, c.data.micro_batch, c.train.eval_batches * world, comm, pad, device, kind_index,
                  [&](const PairBatch& b, const std::vector<int64_t>& ids) {
                    sums.add(objective->run(b, ids, /*validation=*/true, 0.0), b, objective->accuracy_key());
                  });
    backbone->train();
    std::map<std::string, double> m = sums.means(comm);
    objective->derive(m);
    if (rank != 0) return;
    nlohmann::json line = {{"step", step}, {"val_pairs", sums.pairs}};
    for (const auto& [k, v] : m) line["val_" + k] = v;
    std::ostringstream s;
    s << "eval step " << step << ": val_loss " << fmt(m["loss"]) << ", accuracy " << fmt(m[objective->accuracy_key()], 3);
    for (size_t k = 0; k < info.pair_kinds.size(); ++k) {
      if (sums.kind_count[k] == 0) continue;
      const double acc = sums.kind_correct[k] / sums.kind_count[k];
      line["val_accuracy/" + info.pair_kinds[k]] = acc;
      s << ", " << info.pair_kinds[k] << " " << fmt(acc, 3);
    }
    std::cout << s.str() << std::endl;
    metrics->write_json(line);
  };

  trainer::install_stop_signal_handlers();
  trainer::NonFiniteGuard guard(static_cast<int>(c.train.max_nonfinite), state.skipped_steps);
  const int64_t start_step = state.step;
  const auto run_start = Clock::now();
  auto interval_start = Clock::now();

  // ---- the loop ---------------------------------------------------------------------------------------------
  for (int64_t step = state.step; step < c.train.steps; ++step) {
    const double lr = schedule.lr_at(step);
    optimizer.zero_grad();
    StatSums sums;
    double local_tokens = 0;
    for (int64_t i = 0; i < c.train.grad_accum; ++i) {
      // Micro-step i covers global pairs [cursor + i * mb * world, ...); rank r takes the r-th block of mb.
      const uint64_t first = cursor + static_cast<uint64_t>((i * world + rank) * c.data.micro_batch);
      std::vector<const data::PreferencePair*> ptrs;
      std::vector<int64_t> ids;
      for (int64_t j = 0; j < c.data.micro_batch; ++j) {
        const int64_t id = order.at(first + static_cast<uint64_t>(j));
        ptrs.push_back(&train[id]), ids.push_back(id);
      }
      const PairBatch b = make_pair_batch(ptrs, pad, device, kind_index);
      sums.add(objective->run(b, ids, /*validation=*/false, 1.0 / static_cast<double>(global_pairs)), b,
               objective->accuracy_key());
      local_tokens += static_cast<double>(b.real_tokens);
    }
    cursor += static_cast<uint64_t>(global_pairs);
    std::map<std::string, double> m = sums.means(comm);
    objective->derive(m);
    const double tokens = comm.all_reduce_scalar(local_tokens);
    optimizer.reduce_gradients(1.0);  // each rank's gradient already carries the global normalisation
    const double grad_norm = optimizer.clip_grad_norm(c.train.max_grad_norm);
    const bool skipped = guard.should_skip(comm, step, m["loss"], grad_norm);
    if (!skipped) optimizer.step(lr);
    else say("step " + std::to_string(step + 1) + ": non-finite loss or gradient, update skipped");
    state.tokens += static_cast<int64_t>(tokens);
    state.skipped_steps = guard.skipped_total();

    if (rank == 0) {
      trainer::StepMetrics sm;
      sm.step = step + 1, sm.loss = m["loss"], sm.lr = lr, sm.grad_norm = grad_norm, sm.tokens = state.tokens;
      const double dt = seconds_since(interval_start);
      sm.tokens_per_s = tokens / std::max(dt, 1e-9);
      sm.mfu = trainer::mfu(flops_per_token, tokens, dt, peak);
      sm.skipped_steps = state.skipped_steps;
      nlohmann::json line = trainer::to_json(sm);
      for (const auto& [k, v] : m) line[k] = v;
      metrics->write_json(line);
      if ((step + 1) % c.train.log_every == 0 || step + 1 == c.train.steps || step == start_step) {
        std::cout << trainer::format_step_line(sm, c.train.steps, seconds_since(run_start), start_step) << " | acc "
                  << fmt(m[objective->accuracy_key()], 3) << " | margin " << fmt(m[objective->margin_key()]) << std::endl;
      }
    }
    interval_start = Clock::now();
    if (trainer::due_after(step + 1, c.train.eval_every, c.train.steps)) evaluate(step + 1);
    const bool stop = trainer::stop_requested_any(comm);
    if (stop || trainer::due_after(step + 1, c.checkpoint.every, c.train.steps)) save_checkpoint(step + 1);
    if (stop) {
      say("stopped by signal " + std::to_string(trainer::stop_signal()) + " after step " + std::to_string(step + 1) +
          "; continue with --checkpoint.resume=auto");
      return 0;
    }
  }

  // ---- the end --------------------------------------------------------------------------------------------
  evaluate(c.train.steps);
  if (start_step < c.train.steps) save_checkpoint(c.train.steps);
  if (reward_objective) {
    // The final model's reward mean and std over the training pairs (both completions), saved with it so that
    // PPO can normalise rewards without another pass.
    torch::NoGradGuard no_grad;
    backbone->eval();
    double sum = 0, sq = 0, count = 0;
    for_my_chunks(train, c.data.micro_batch, INT64_MAX, comm, pad, device, kind_index,
                  [&](const PairBatch& b, const std::vector<int64_t>&) {
                    const torch::Tensor r = reward_objective->reward_model()->forward(b.tokens, b.segment_pos, b.last).to(torch::kDouble);
                    sum += r.sum().item<double>(), sq += (r * r).sum().item<double>(), count += r.size(0);
                  });
    sum = comm.all_reduce_scalar(sum), sq = comm.all_reduce_scalar(sq), count = comm.all_reduce_scalar(count);
    const double mean = sum / std::max(count, 1.0);
    reward_objective->reward_model()->reward_mean = mean;
    reward_objective->reward_model()->reward_std = std::sqrt(std::max(0.0, sq / std::max(count, 1.0) - mean * mean));
  }
  if (rank == 0) {
    objective->save_final((out / "final").string(), bf16 ? torch::kBFloat16 : torch::kFloat);
    std::cout << "done: " << c.train.steps << " steps; " << (reward_objective ? "reward model" : "policy") << " in "
              << (out / "final").string() << " (Hugging Face layout)" << std::endl;
  }
  comm.barrier();
  return 0;
}

}  // namespace rg::rlhf
