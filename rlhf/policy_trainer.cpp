// run_policy_training, top to bottom: set-up (device, prompts, policy, reference, reward, value model,
// optimizer, resume), then per update: rollouts -> scores -> reference / old log-probs (+ values) ->
// advantages -> epochs x minibatches of clipped updates -> metrics -> evaluation -> checkpoint.
//
// Batch arithmetic: each rank samples train.grad_accum chunks of data.micro_batch prompts (x G samples for
// GRPO) per update; the global prompt batch is micro_batch x grad_accum x ranks. Chunk a of rank r takes
// global prompts [cursor + (a * ranks + r) * micro_batch, ...), each sampled with a seed of (data.seed,
// update, global prompt index), so a prompt's samples do not depend on the number of ranks. Each optimizer
// step (rlhf.minibatches per epoch) takes the same row slice of every chunk; the loss is divided by the
// global number of tokens (or sequences) of that minibatch, and gradients are summed over ranks, so with
// rlhf.minibatches = 1 any number of ranks follows the single-process trajectory given the same rollouts.
//
// PPO trains the policy and the value model as one module with one optimizer (TRL's PolicyAndValueWrapper),
// so both are in one optimizer state; their checkpoint is one weights file with "policy." / "value." names.
#include "rlhf/policy_trainer.h"

#include "data/dataset.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "model/io/atomic_write.h"
#include "model/pretrained.h"
#include "rlhf/policy_losses.h"
#include "rlhf/reward_model.h"
#include "rlhf/rollout.h"
#include "rlhf/verifiable_reward.h"
#include "trainer/checkpoint.h"
#include "trainer/faults.h"
#include "trainer/metrics.h"
#include "trainer/run_support.h"
#include "trainer/schedule.h"
#include "trainer/trainer.h"
#include "trainer/zero_optimizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

namespace rg::rlhf {
namespace {

namespace fs = std::filesystem;
using trainer::Clock;
using trainer::seconds_since;
using trainer::TrainSetupError;

constexpr const char* kRlStateFile = "rl_state.json";

// The trained parts: the policy and, for PPO, the value model (a reward-model-shaped network read at every
// completion position).
class PolicyValueImpl : public torch::nn::Module {
 public:
  PolicyValueImpl(Griffin p, RewardModel v) {
    policy = register_module("policy", std::move(p));
    if (v) value = register_module("value", std::move(v));
  }
  Griffin policy{nullptr};
  RewardModel value{nullptr};
};
TORCH_MODULE(PolicyValue);

// The value model's prediction at every completion column: (B, C) float32.
torch::Tensor value_predictions(RewardModel& v, const RolloutBatch& b) {
  const torch::Tensor hidden = v->model->hidden(b.tokens, b.segment_pos);  // (B, T, W)
  const int64_t B = b.index.size(0), C = b.index.size(1), W = hidden.size(2);
  const torch::Tensor h = hidden.gather(1, b.index.unsqueeze(2).expand({B, C, W}));
  return v->score->forward(h).squeeze(2).to(torch::kFloat) * b.mask;
}

RolloutBatch select_rows(const RolloutBatch& b, const torch::Tensor& rows) {
  RolloutBatch s;
  s.tokens = b.tokens.index_select(0, rows), s.segment_pos = b.segment_pos.index_select(0, rows);
  s.index = b.index.index_select(0, rows), s.targets = b.targets.index_select(0, rows);
  s.mask = b.mask.index_select(0, rows), s.last = b.last.index_select(0, rows);
  s.lengths = b.lengths.index_select(0, rows);
  return s;
}

// The reward of a completion: reward_model_weight x (normalised, clipped) reward model score +
// verifiable_weight x answer match - missing_stop_penalty when it never stopped.
class Scorer {
 public:
  Scorer(const RlhfConfig& c, RewardModel rm, std::unique_ptr<Tokenizer> tok) : c_(c), rm_(std::move(rm)), tok_(std::move(tok)) {}
  // answers: per prompt of the chunk (nullptr: none). Returns (B) float32 scores and fills `success` (B)
  // with the verifiable reward (0/1) when there is one.
  torch::Tensor score(const RolloutBatch& b, const Rollouts& r, const std::vector<const std::optional<std::string>*>& answers,
                      const std::vector<int64_t>& stop_ids, torch::Tensor* success) {
    torch::NoGradGuard no_grad;
    const int64_t B = r.rows();
    torch::Tensor s = torch::zeros({B}, b.mask.options());
    if (rm_) {
      torch::Tensor x = rm_->forward(b.tokens, b.segment_pos, b.last).to(torch::kFloat);
      if (c_.normalize_reward) x = (x - rm_->reward_mean) / std::max(rm_->reward_std, 1e-8);
      if (c_.reward_clip > 0) x = x.clamp(-c_.reward_clip, c_.reward_clip);
      s += c_.reward_model_weight * x;
    }
    if (tok_) {
      std::vector<float> v(B, 0.f);
      for (int64_t i = 0; i < B; ++i) {
        const auto* answer = answers[i / r.group];
        if (!answer || !answer->has_value()) continue;
        std::vector<int32_t> ids = r.completions[i];
        if (!ids.empty() && std::find(stop_ids.begin(), stop_ids.end(), ids.back()) != stop_ids.end()) ids.pop_back();
        v[i] = static_cast<float>(verifiable_reward(tok_->decode(ids), **answer));
      }
      const torch::Tensor m = torch::tensor(v).to(s.device());
      if (success) *success = m;
      s += c_.verifiable_weight * m;
    }
    if (c_.missing_stop_penalty > 0) {
      std::vector<float> miss(B);
      for (int64_t i = 0; i < B; ++i) miss[i] = r.stopped[i] ? 0.f : 1.f;
      s -= c_.missing_stop_penalty * torch::tensor(miss).to(s.device());
    }
    return s;
  }
  RewardModel& reward_model() { return rm_; }

 private:
  RlhfConfig c_;
  RewardModel rm_;
  std::unique_ptr<Tokenizer> tok_;
};

// One chunk of rollouts and everything the updates need from it.
struct Chunk {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<const std::optional<std::string>*> answers;
  Rollouts r;
  RolloutBatch b;
  torch::Tensor old_logp, ref_logp, values, scores, success, advantages, returns, kl_k1, entropy;
};

// Sums of named scalars, all-reduced in key order (every rank holds the same keys).
std::map<std::string, double> reduce_sums(std::map<std::string, double> sums, comm::Communicator& comm) {
  for (auto& [k, v] : sums) v = comm.all_reduce_scalar(v);
  return sums;
}

std::string fmt_rl(double v, int precision = 4) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(precision);
  s << v;
  return s.str();
}

double read_kl_coef(const std::string& dir) {
  const trainer::CheckpointJson j = trainer::CheckpointJson::read((fs::path(dir) / kRlStateFile).string());
  const trainer::CheckpointJson v = j.at("kl_coef");
  if (!v.value().is_number() || !std::isfinite(v.value().get<double>()) || v.value().get<double>() < 0) {
    v.fail("expected a finite number >= 0");
  }
  return v.value().get<double>();
}

}  // namespace

int run_policy_training(PolicyAlgorithm algorithm, const trainer::TrainConfig& c, const RlhfConfig& rc,
                        comm::Communicator& comm, const std::string& effective_config) {
  const bool ppo = algorithm == PolicyAlgorithm::kPpo;
  const int rank = comm.rank(), world = comm.world_size();
  auto say = [rank](const std::string& line) {
    if (rank == 0) std::cout << line << std::endl;
  };
  const char* name = ppo ? "ppo" : "grpo";
  const int64_t G = ppo ? 1 : rc.group;

  // ---- set-up ---------------------------------------------------------------------------------------------
  if (c.train.init_from.empty()) throw TrainSetupError("train.init_from: required (the SFT policy folder to start from)");
  const int64_t chunk_rows = c.data.micro_batch * G;
  if (chunk_rows % rc.minibatches != 0) {
    throw TrainSetupError("rlhf.minibatches: " + std::to_string(rc.minibatches) + " does not divide the " +
                          std::to_string(chunk_rows) + " rows of a rollout chunk (data.micro_batch x rlhf.group)");
  }
  const int64_t global_prompts = c.data.micro_batch * c.train.grad_accum * world;
  if (c.train.global_batch > 0 && c.train.global_batch != global_prompts) {
    throw TrainSetupError("train.global_batch: " + std::to_string(c.train.global_batch) + " prompts requested, but data.micro_batch (" +
                          std::to_string(c.data.micro_batch) + ") x train.grad_accum (" + std::to_string(c.train.grad_accum) +
                          ") x ranks (" + std::to_string(world) + ") = " + std::to_string(global_prompts));
  }
  const data::DatasetInfo info = data::read_dataset_info(c.data.train);
  if (info.kind != data::DatasetKind::kPrompts) {
    throw TrainSetupError("data.train: " + c.data.train + " is a " + data::kind_name(info.kind) + " dataset; rgemma " + name +
                          " needs a prompt set (rgemma prepare prompts)");
  }
  const torch::Device device = trainer::pick_device(c.train.device, comm);
  const bool bf16 = trainer::use_bf16(c.train.dtype, device);

  Griffin policy{nullptr}, reference{nullptr};
  try {
    if (is_reward_model_dir(c.train.init_from)) {
      throw std::invalid_argument(c.train.init_from + ": is a reward model (config.json has num_labels); rgemma " +
                                  std::string(name) + " starts from an SFT policy folder");
    }
    policy = load_pretrained(c.train.init_from);
    reference = load_pretrained(c.train.init_from);
  } catch (const std::invalid_argument& e) {
    throw TrainSetupError(std::string("train.init_from: ") + e.what());
  }
  const int64_t V = policy->config().vocab_size;
  auto load_rm = [&](const std::string& dir, const std::string& key) {
    RewardModel m{nullptr};
    try {
      m = load_reward_model(dir);
    } catch (const std::invalid_argument& e) {
      throw TrainSetupError(key + ": " + e.what());
    }
    if (m->model->config().vocab_size != V) {
      throw TrainSetupError(key + ": " + dir + " has a vocabulary of " + std::to_string(m->model->config().vocab_size) +
                            " tokens, the policy (train.init_from " + c.train.init_from + ") has " + std::to_string(V) +
                            "; the reward model must be trained on the policy's tokenizer");
    }
    return m;
  };
  RewardModel reward{nullptr};
  if (!rc.reward_model.empty()) reward = load_rm(rc.reward_model, "rlhf.reward_model");
  try {
    data::check_compatible(info, V, c.data.tokenizer.empty() ? "" : data::tokenizer_id(c.data.tokenizer));
  } catch (const data::DataError& e) {
    throw TrainSetupError(std::string("data.train: ") + e.what() + "; the policy is train.init_from " + c.train.init_from);
  }

  data::PromptSet train_set = data::read_prompt_set(c.data.train, "train");
  data::PromptSet val_set = data::read_prompt_set(c.data.train, "validation");
  std::unique_ptr<Tokenizer> tokenizer;
  if (rc.verifiable_weight != 0) {
    if (!train_set.has_answers()) {
      throw TrainSetupError("data.train: " + c.data.train + " has no `answer` field; rlhf.verifiable_weight needs a prompt set "
                            "prepared from JSONL with answers (rgemma prepare prompts)");
    }
    if (c.data.tokenizer.empty()) {
      throw TrainSetupError("data.tokenizer: required with rlhf.verifiable_weight (completions are decoded to text to match answers)");
    }
    tokenizer = std::make_unique<Tokenizer>(Tokenizer::load(c.data.tokenizer));
  }
  // Prompts longer than seq_len are left out (their training rows would not fit), and so are prompts without an
  // answer when the answer is the only reward (every sample would score 0: no signal, only cost).
  const bool answers_only = !reward && rc.verifiable_weight != 0;
  {
    auto keep = [&](data::PromptSet& s) {
      data::PromptSet k;
      for (size_t i = 0; i < s.prompts.size(); ++i) {
        if (static_cast<int64_t>(s.prompts[i].size()) > c.data.seq_len) continue;
        if (answers_only && (i >= s.answers.size() || !s.answers[i].has_value())) continue;
        k.prompts.push_back(std::move(s.prompts[i]));
        k.answers.push_back(i < s.answers.size() ? s.answers[i] : std::nullopt);
      }
      const int64_t dropped = static_cast<int64_t>(s.prompts.size() - k.prompts.size());
      k.answered = s.answered;
      s = std::move(k);
      return dropped;
    };
    const int64_t dropped = keep(train_set) + keep(val_set);
    if (dropped > 0) {
      say("left out " + std::to_string(dropped) + " prompts longer than data.seq_len (" + std::to_string(c.data.seq_len) + ")" +
          (answers_only ? " or without an answer (the verifiable reward is the only reward)" : ""));
    }
  }
  if (train_set.prompts.empty()) throw TrainSetupError("data.train: " + c.data.train + " has no training prompt of at most data.seq_len tokens");

  RewardModel value{nullptr};
  if (ppo) {
    const std::string from = !rc.value_from.empty() ? rc.value_from : rc.reward_model;
    if (!from.empty()) {
      value = load_rm(from, rc.value_from.empty() ? "rlhf.reward_model" : "rlhf.value_from");
    } else {
      try {
        value = init_reward_model(c.train.init_from, c.train.seed);
      } catch (const std::invalid_argument& e) {
        throw TrainSetupError(std::string("train.init_from: ") + e.what());
      }
    }
  }
  PolicyValue trained(policy, value);
  trained->to(device);
  reference->to(device), reference->eval();
  if (reward) reward->to(device), reward->eval();
  for (auto& p : reference->parameters()) p.requires_grad_(false);
  if (reward) {
    for (auto& p : reward->parameters()) p.requires_grad_(false);
  }
  trainer::broadcast_parameters(*trained, comm);
  Scorer scorer(rc, reward, std::move(tokenizer));

  const fs::path out = c.train.out, ckpt_root = out / "checkpoints";
  if (rank == 0) {
    fs::create_directories(out);
    io::write_text_atomically((out / "config.ini").string(), effective_config);
  }
  comm.barrier();

  const data::SpecialIds& sp = info.tokenizer.special;
  RolloutOptions ro;
  ro.group = G, ro.max_new_tokens = rc.max_new_tokens, ro.temperature = rc.temperature;
  ro.pad_id = sp.pad >= 0 ? sp.pad : 0;
  for (int32_t id : {sp.eos, sp.end_of_turn}) {
    if (id >= 0) ro.stop_ids.push_back(id);
  }

  trainer::ZeroConfig zc;
  zc.stage = static_cast<int>(c.optim.zero_stage), zc.beta1 = c.optim.beta1, zc.beta2 = c.optim.beta2;
  zc.eps = c.optim.eps, zc.weight_decay = c.optim.weight_decay;
  if (bf16) zc.param_dtype = torch::kBFloat16;
  trainer::ZeroOptimizer optimizer(trainer::zero_params_from(trained->named_parameters()), comm, zc);
  trainer::LrSchedule schedule{c.optim.lr, c.optim.warmup_steps, c.train.steps, c.optim.decay, c.optim.min_lr_ratio};
  try {
    schedule.validate();
  } catch (const std::invalid_argument& e) {
    throw TrainSetupError(std::string("[optim] ") + e.what());
  }

  KlController kl_ctl;
  kl_ctl.value = rc.kl_coef, kl_ctl.target = ppo ? rc.kl_target : 0, kl_ctl.horizon = rc.kl_horizon;
  trainer::TrainerState state;
  uint64_t cursor = 0;  // global prompts consumed
  if (auto dir = trainer::resolve_resume(c.checkpoint.resume, ckpt_root.string())) {
    optimizer.load_state(*dir);
    state = trainer::read_trainer_state(*dir);
    cursor = state.data_cursor.at("cursor").get<uint64_t>();
    kl_ctl.value = read_kl_coef(*dir);
    if (!trainer::load_rng_state(*dir, rank)) torch::manual_seed(static_cast<uint64_t>(c.train.seed) + 7919 * rank);
    std::ostringstream s;
    s << "resumed from " << *dir << " at step " << state.step;
    if (state.world_size != world) s << "; resharded from " << state.world_size << " to " << world << " ranks";
    say(s.str());
  }
  trainer::CheckpointWriter writer(ckpt_root.string(), static_cast<int>(c.checkpoint.keep_last), comm);
  std::unique_ptr<trainer::MetricsWriter> metrics;
  if (rank == 0) metrics = std::make_unique<trainer::MetricsWriter>((out / "metrics.jsonl").string(), state.step);
  data::EpochOrder order(static_cast<int64_t>(train_set.prompts.size()), static_cast<uint64_t>(c.data.seed));
  {
    std::ostringstream s;
    s << name << (ppo ? "" : " (" + rc.estimator + ")") << ": " << policy->num_parameters() << " policy parameters"
      << (ppo ? " + value model" : "") << " on " << world << " rank(s), " << device << "\n"
      << "batch: " << c.data.micro_batch << " prompts x " << c.train.grad_accum << " chunks x " << world << " ranks = "
      << global_prompts << " prompts x " << G << " samples per update; " << rc.epochs << " epoch(s) x " << rc.minibatches
      << " minibatch(es); " << train_set.prompts.size() << " training prompts, " << val_set.prompts.size() << " validation\n"
      << optimizer.summary();
    say(s.str());
  }

  auto save_checkpoint = [&](int64_t step) {
    state.step = step;
    state.world_size = world;
    state.schedule = schedule.to_json();
    state.data_cursor = {{"cursor", cursor}};
    const std::string dir = writer.save(step, [&](const std::string& tmp) {
      optimizer.save_state(tmp);
      trainer::save_rng_state(tmp, rank);
      if (rank == 0) {
        std::vector<std::pair<std::string, torch::Tensor>> named;
        for (const auto& p : trained->named_parameters()) named.emplace_back(p.key(), p.value());
        trainer::save_weights(tmp, named);
        trainer::write_trainer_state(tmp, state);
        nlohmann::json rl = {{"kl_coef", kl_ctl.value}};
        io::write_text_atomically((fs::path(tmp) / kRlStateFile).string(), rl.dump(2) + "\n");
      }
    });
    say("checkpoint: " + dir);
  };

  // Held-out prompts: one sample each with fixed seeds (the same at every evaluation), mean score and success.
  auto evaluate = [&](int64_t step) {
    const int64_t n = std::min<int64_t>(rc.eval_prompts, static_cast<int64_t>(val_set.prompts.size()));
    if (n == 0) return;
    torch::NoGradGuard no_grad;
    policy->eval();
    std::map<std::string, double> sums = {{"score", 0}, {"success", 0}, {"count", 0}, {"length", 0}};
    RolloutOptions eo = ro;
    eo.group = 1;
    for (int64_t first = rank * c.data.micro_batch; first < n; first += world * c.data.micro_batch) {
      Chunk k;
      eo.seeds.clear();
      for (int64_t i = first; i < std::min(n, first + c.data.micro_batch); ++i) {
        k.prompts.push_back(val_set.prompts[i]);
        k.answers.push_back(&val_set.answers[i]);
        eo.seeds.push_back(rollout_seed(static_cast<uint64_t>(c.data.seed), ~0ULL, static_cast<uint64_t>(i)));
      }
      k.r = sample_rollouts(policy, k.prompts, eo);
      k.b = make_rollout_batch(k.prompts, k.r, eo.pad_id, device);
      const torch::Tensor s = scorer.score(k.b, k.r, k.answers, eo.stop_ids, &k.success);
      sums["score"] += s.sum().item<double>();
      sums["count"] += static_cast<double>(k.r.rows());
      sums["length"] += k.b.lengths.sum().item<double>();
      if (k.success.defined()) sums["success"] += k.success.sum().item<double>();
    }
    policy->train();
    sums = reduce_sums(sums, comm);
    if (rank != 0) return;
    const double cnt = std::max(sums["count"], 1.0);
    nlohmann::json line = {{"step", step}, {"val_prompts", sums["count"]}, {"val_score", sums["score"] / cnt},
                           {"val_response_length", sums["length"] / cnt}};
    std::string extra;
    if (rc.verifiable_weight != 0) line["val_success"] = sums["success"] / cnt, extra = ", success " + fmt_rl(sums["success"] / cnt, 3);
    std::cout << "eval step " << step << ": score " << fmt_rl(sums["score"] / cnt) << extra << " (" << sums["count"] << " held-out prompts)" << std::endl;
    metrics->write_json(line);
  };

  trainer::install_stop_signal_handlers();
  trainer::NonFiniteGuard guard(static_cast<int>(c.train.max_nonfinite), state.skipped_steps);
  const int64_t start_step = state.step;
  const auto run_start = Clock::now();
  if (start_step == 0) evaluate(0);
  const KlEstimator kl_estimator = parse_kl_estimator(rc.kl_estimator);
  const AdvantageEstimator adv_estimator = parse_advantage_estimator(rc.estimator);
  PolicyLossOptions po;
  po.clip_eps = rc.clip_eps, po.aggregation = parse_loss_aggregation(rc.loss_aggregation);
  po.kl_loss = kl_estimator;
  po.kl_loss_beta = (!ppo && rc.kl_in == "loss") ? rc.kl_coef : 0.0;

  // ---- the loop ---------------------------------------------------------------------------------------------
  for (int64_t step = state.step; step < c.train.steps; ++step) {
    const double lr = schedule.lr_at(step);
    std::map<std::string, double> sums;
    double t_rollout = 0, t_score = 0, t_ref = 0;
    const auto t_update = Clock::now();

    // Rollouts and everything computed from them once.
    std::vector<Chunk> chunks(c.train.grad_accum);
    for (int64_t a = 0; a < c.train.grad_accum; ++a) {
      Chunk& k = chunks[a];
      torch::NoGradGuard no_grad;
      policy->eval();
      ro.seeds.clear();
      const uint64_t first = cursor + static_cast<uint64_t>((a * world + rank) * c.data.micro_batch);
      for (int64_t j = 0; j < c.data.micro_batch; ++j) {
        const uint64_t g = first + static_cast<uint64_t>(j);
        const int64_t id = order.at(g);
        k.prompts.push_back(train_set.prompts[id]);
        k.answers.push_back(&train_set.answers[id]);
        ro.seeds.push_back(rollout_seed(static_cast<uint64_t>(c.data.seed), static_cast<uint64_t>(step), g));
      }
      auto t0 = Clock::now();
      k.r = sample_rollouts(policy, k.prompts, ro);
      k.b = make_rollout_batch(k.prompts, k.r, ro.pad_id, device);
      const TokenLogps old = completion_logps(policy, k.b, rc.temperature);
      k.old_logp = old.logp, k.entropy = old.entropy;
      if (ppo) k.values = value_predictions(trained->value, k.b);
      policy->train();
      t_rollout += seconds_since(t0);
      t0 = Clock::now();
      k.scores = scorer.score(k.b, k.r, k.answers, ro.stop_ids, &k.success);
      t_score += seconds_since(t0);
      t0 = Clock::now();
      k.ref_logp = completion_logps(reference, k.b, rc.temperature).logp;
      t_ref += seconds_since(t0);
      k.kl_k1 = kl_estimate(k.old_logp, k.ref_logp, KlEstimator::kK1) * k.b.mask;
      if (ppo) {
        const PpoTargets t = ppo_targets(k.scores, k.old_logp, k.ref_logp, k.values, k.b.mask, kl_estimator, kl_ctl.value,
                                         rc.gamma, rc.lambda, /*whiten_advantages=*/false);
        k.advantages = t.advantages, k.returns = t.returns;
        sums["reward"] += (t.rewards.sum(1)).sum().item<double>();
        // Global whitening: sums here, applied below once every rank's are known.
        sums["adv_sum"] += (t.advantages * k.b.mask).sum().item<double>();
        sums["adv_sq"] += (t.advantages * t.advantages * k.b.mask).sum().item<double>();
      } else {
        const double in_reward = rc.kl_in == "reward" ? rc.kl_coef : 0.0;
        const GroupTargets t = group_targets(k.scores, k.old_logp, k.ref_logp, k.b.mask, G, adv_estimator, rc.scale_rewards,
                                             kl_estimator, in_reward);
        k.advantages = t.advantages;
        sums["reward"] += t.sequence_rewards.sum().item<double>();
        const auto [spread, flat] = group_reward_spread(t.sequence_rewards, G);
        sums["group_reward_std"] += spread * static_cast<double>(k.r.prompts);
        sums["zero_std_groups"] += flat * static_cast<double>(k.r.prompts);
      }
      sums["rows"] += static_cast<double>(k.r.rows());
      sums["prompts"] += static_cast<double>(k.r.prompts);
      sums["tokens"] += k.b.mask.sum().item<double>();
      sums["score"] += k.scores.sum().item<double>();
      sums["kl"] += k.kl_k1.sum().item<double>();
      sums["entropy"] += k.entropy.sum().item<double>();
      sums["stopped"] += static_cast<double>(std::count(k.r.stopped.begin(), k.r.stopped.end(), true));
      if (k.success.defined()) sums["success"] += k.success.sum().item<double>();
    }
    if (rc.verifiable_weight == 0) sums.erase("success");
    const double rollout_wall = comm.all_reduce_scalar(t_rollout, /*max=*/true);
    std::map<std::string, double> roll = reduce_sums(sums, comm);
    const double rows = std::max(roll["rows"], 1.0), tokens = std::max(roll["tokens"], 1.0);
    if (ppo) {
      const double mean = roll["adv_sum"] / tokens;
      const double var = (roll["adv_sq"] - tokens * mean * mean) / std::max(tokens - 1, 1.0);
      for (auto& k : chunks) k.advantages = (k.advantages - mean) * (1.0 / std::sqrt(var + 1e-8)) * k.b.mask;
    }

    // Updates: epochs x minibatches, each minibatch the same row slice of every chunk.
    const auto t_train0 = Clock::now();
    std::map<std::string, double> train_sums;
    double grad_norm = 0, loss_total = 0;
    bool skipped_any = false;
    const int64_t slice = chunk_rows / rc.minibatches;
    for (int64_t e = 0; e < rc.epochs; ++e) {
      for (int64_t m = 0; m < rc.minibatches; ++m) {
        optimizer.zero_grad();
        const torch::Tensor rows_idx = torch::arange(m * slice, (m + 1) * slice, torch::kLong).to(device);
        double local_norm = 0;
        for (auto& k : chunks) {
          local_norm += po.aggregation == LossAggregation::kToken ? k.b.mask.index_select(0, rows_idx).sum().item<double>()
                                                                  : static_cast<double>(slice);
        }
        const double normaliser = std::max(comm.all_reduce_scalar(local_norm), 1.0);
        double local_loss = 0;
        for (auto& k : chunks) {
          const RolloutBatch sb = select_rows(k.b, rows_idx);
          const torch::Tensor old = k.old_logp.index_select(0, rows_idx), ref = k.ref_logp.index_select(0, rows_idx);
          const torch::Tensor adv = k.advantages.index_select(0, rows_idx);
          const TokenLogps lp = completion_logps(policy, sb, rc.temperature);
          const PolicyLoss pl = policy_loss(lp.logp, old, ref, adv, sb.mask, po, normaliser);
          torch::Tensor loss = pl.loss;
          train_sums["clipfrac"] += pl.clipped.sum().item<double>();
          train_sums["approx_kl"] += 0.5 * ((lp.logp.detach() - old).pow(2) * sb.mask).sum().item<double>();
          train_sums["policy_loss"] += pl.loss.item<double>();
          train_sums["update_tokens"] += sb.mask.sum().item<double>();
          if (ppo) {
            const torch::Tensor v = value_predictions(trained->value, sb);
            const torch::Tensor ret = k.returns.index_select(0, rows_idx);
            const ClippedLoss vl = clipped_value_loss(v, k.values.index_select(0, rows_idx), ret, rc.value_clip);
            const torch::Tensor value_loss = aggregate_loss(vl.loss, sb.mask, po.aggregation, normaliser);
            loss = loss + rc.value_coef * value_loss;
            train_sums["value_loss"] += value_loss.item<double>();
            train_sums["vf_clipfrac"] += (vl.clipped * sb.mask).sum().item<double>();
          }
          loss.backward();
          local_loss += loss.item<double>();
        }
        optimizer.reduce_gradients(1.0);  // each rank's gradient already carries the global normalisation
        grad_norm = optimizer.clip_grad_norm(c.train.max_grad_norm);
        const bool skipped = guard.should_skip(comm, step, local_loss, grad_norm);
        if (!skipped) optimizer.step(lr);
        skipped_any |= skipped;
        loss_total += comm.all_reduce_scalar(local_loss);
      }
    }
    if (ppo) {  // explained variance of the rollout's values against the returns, over all tokens of all ranks
      std::map<std::string, double> ev;
      for (auto& k : chunks) {
        const torch::Tensor r = k.returns.to(torch::kDouble), d = (k.returns - k.values).to(torch::kDouble), mk = k.b.mask.to(torch::kDouble);
        ev["r"] += (r * mk).sum().item<double>(), ev["r2"] += (r * r * mk).sum().item<double>();
        ev["d"] += (d * mk).sum().item<double>(), ev["d2"] += (d * d * mk).sum().item<double>();
      }
      ev = reduce_sums(ev, comm);
      const double vr = ev["r2"] / tokens - std::pow(ev["r"] / tokens, 2), vd = ev["d2"] / tokens - std::pow(ev["d"] / tokens, 2);
      roll["explained_variance"] = vr > 0 ? 1 - vd / vr : 0;
    }
    const double t_train = seconds_since(t_train0);
    std::map<std::string, double> tr = reduce_sums(train_sums, comm);
    if (skipped_any) say("step " + std::to_string(step + 1) + ": non-finite loss or gradient, update(s) skipped");
    cursor += static_cast<uint64_t>(global_prompts);
    state.tokens += static_cast<int64_t>(roll["tokens"]);
    state.skipped_steps = guard.skipped_total();
    const double mean_kl = roll["kl"] / rows;
    if (ppo) kl_ctl.update(mean_kl, static_cast<int64_t>(roll["rows"]));

    if (rank == 0) {
      const double opt_steps = static_cast<double>(rc.epochs * rc.minibatches);
      const double update_tokens = std::max(tr["update_tokens"], 1.0);
      nlohmann::json line = {{"step", step + 1},
                             {"lr", lr},
                             {"loss", loss_total / opt_steps},
                             {"grad_norm", grad_norm},
                             {"tokens", state.tokens},
                             {"score", roll["score"] / rows},
                             {"reward", roll["reward"] / rows},
                             {"kl", mean_kl},
                             {"kl_coef", ppo ? kl_ctl.value : rc.kl_coef},
                             {"entropy", roll["entropy"] / tokens},
                             {"response_length", roll["tokens"] / rows},
                             {"stopped", roll["stopped"] / rows},
                             {"clipfrac", tr["clipfrac"] / update_tokens},
                             {"approx_kl", tr["approx_kl"] / update_tokens},
                             {"policy_loss", tr["policy_loss"] / opt_steps},
                             {"time/rollout_s", rollout_wall},
                             {"time/scoring_s", t_score},
                             {"time/reference_s", t_ref},
                             {"time/training_s", t_train},
                             {"time/update_s", seconds_since(t_update)},
                             {"rollout_tokens_per_s", roll["tokens"] / std::max(rollout_wall, 1e-9)},
                             {"skipped_steps", state.skipped_steps}};
      if (roll.count("success")) line["success"] = roll["success"] / rows;
      if (ppo) {
        line["value_loss"] = tr["value_loss"] / opt_steps;
        line["vf_clipfrac"] = tr["vf_clipfrac"] / update_tokens;
        line["explained_variance"] = roll["explained_variance"];
      } else {
        const double prompts = std::max(roll["prompts"], 1.0);
        line["group_reward_std"] = roll["group_reward_std"] / prompts;
        line["zero_std_groups"] = roll["zero_std_groups"] / prompts;
      }
      metrics->write_json(line);
      if ((step + 1) % c.train.log_every == 0 || step + 1 == c.train.steps || step == start_step) {
        const double elapsed = seconds_since(run_start);
        const double per_step = elapsed / static_cast<double>(step + 1 - start_step);
        std::ostringstream s;
        s << "step " << (step + 1) << "/" << c.train.steps << " | score " << fmt_rl(roll["score"] / rows) << " | reward "
          << fmt_rl(roll["reward"] / rows) << " | kl " << fmt_rl(mean_kl) << " | len " << fmt_rl(roll["tokens"] / rows, 1);
        if (roll.count("success")) s << " | success " << fmt_rl(roll["success"] / rows, 3);
        s << " | clip " << fmt_rl(tr["clipfrac"] / update_tokens, 3) << " | rollout " << fmt_rl(rollout_wall, 1) << "s train "
          << fmt_rl(t_train, 1) << "s | " << trainer::format_count(roll["tokens"] / std::max(rollout_wall, 1e-9))
          << " tok/s | eta " << trainer::format_duration(per_step * static_cast<double>(c.train.steps - step - 1));
        std::cout << s.str() << std::endl;
      }
    }
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
  if (rank == 0) {
    const torch::Dtype dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
    save_pretrained(policy, (out / "final").string(), dtype);
    if (ppo) save_reward_model(trained->value, (out / "final-value").string(), dtype);
    std::cout << "done: " << c.train.steps << " updates; policy in " << (out / "final").string() << " (Hugging Face layout)"
              << std::endl;
  }
  comm.barrier();
  return 0;
}

}  // namespace rg::rlhf
