// [rlhf] keys with their help text and the checks that need only the config.
#include "configs/rlhf_options.h"

namespace rg::config {

void add_rlhf_options(Options& o, rlhf::RlhfConfig* c, bool dpo) {
  if (!dpo) {
    o.add("rlhf.margin", &c->margin, "reward loss: -logsigmoid(r_chosen - r_rejected - margin), for pairs without their own margin field")
        .add("rlhf.center_rewards", &c->center_rewards,
             "reward loss: + coefficient * mean((r_chosen + r_rejected)^2), pins the reward offset (0 = off)");
    o.on_parsed([&o, c] {
      if (c->center_rewards < 0) o.fail("rlhf.center_rewards", "expected a value >= 0, got " + std::to_string(c->center_rewards));
    });
    return;
  }
  o.add("rlhf.beta", &c->beta, "DPO temperature: strength of the anchor to the reference (TRL default 0.1)")
      .add("rlhf.loss", &c->loss, "sigmoid (DPO) | ipo")
      .add("rlhf.label_smoothing", &c->label_smoothing, "cDPO: probability that a preference label is flipped, [0, 0.5)");
  o.on_parsed([&o, c] {
    if (!(c->beta > 0)) o.fail("rlhf.beta", "expected a positive value, got " + std::to_string(c->beta));
    if (c->loss != "sigmoid" && c->loss != "ipo") o.fail("rlhf.loss", "expected sigmoid or ipo, got '" + c->loss + "'");
    if (!(c->label_smoothing >= 0 && c->label_smoothing < 0.5)) {
      o.fail("rlhf.label_smoothing", "expected a value in [0, 0.5), got " + std::to_string(c->label_smoothing));
    }
    if (c->loss == "ipo" && c->label_smoothing != 0) {
      o.fail("rlhf.label_smoothing", "applies to the sigmoid loss only; rlhf.loss is ipo");
    }
  });
}

void add_online_rlhf_options(Options& o, rlhf::RlhfConfig* c, bool ppo) {
  using B = Options::Bounds;
  if (ppo) {
    c->group = 1, c->kl_estimator = "k1", c->kl_in = "reward", c->epochs = 4, c->kl_coef = 0.05;
  } else {
    c->group = 8, c->kl_estimator = "k3", c->kl_in = "loss", c->epochs = 1, c->kl_coef = 0.04;
  }
  o.add("rlhf.max_new_tokens", &c->max_new_tokens, "longest completion sampled (tokens)").range(1, 1 << 20)
      .add("rlhf.temperature", &c->temperature, "sampling temperature, applied to every log-probability too").range(1e-3, 100)
      .add("rlhf.reward_model", &c->reward_model, "reward model folder (rgemma reward); empty: none")
      .add("rlhf.reward_model_weight", &c->reward_model_weight, "weight of the reward model's score in the reward")
      .add("rlhf.normalize_reward", &c->normalize_reward, "normalise the reward model's score with its saved reward_mean / reward_std")
      .add("rlhf.reward_clip", &c->reward_clip, "clip the (normalised) reward model score to [-c, c]; 0 = off").range(0, 1e9)
      .add("rlhf.verifiable_weight", &c->verifiable_weight,
           "weight of the built-in verifiable reward (1 when the completion contains the prompt's `answer`); 0 = off")
      .add("rlhf.missing_stop_penalty", &c->missing_stop_penalty,
           "subtracted from the score of completions that reach max_new_tokens without <end_of_turn>/EOS").range(0, 1e9)
      .add("rlhf.kl_estimator", &c->kl_estimator, "per-token KL estimator to the reference: k1 (log ratio) | k3 (Schulman's, >= 0)")
      .add("rlhf.kl_coef", &c->kl_coef, "beta: weight of the KL to the reference (0 allowed)").range(0, 1e6)
      .add("rlhf.loss_aggregation", &c->loss_aggregation, "token (mean over all completion tokens) | sequence (mean of per-sequence means)")
      .add("rlhf.clip_eps", &c->clip_eps, "policy ratio clip: [1 - eps, 1 + eps]").range(0, 10, B::kOpenLow)
      .add("rlhf.epochs", &c->epochs, "passes over each rollout batch").range(1, 1000)
      .add("rlhf.minibatches", &c->minibatches, "optimizer steps per pass (the rollout rows of each rank split evenly)").range(1, 1 << 20)
      .add("rlhf.eval_prompts", &c->eval_prompts, "held-out prompts sampled at each evaluation (0 = none)").range(0, 1 << 30);
  if (ppo) {
    o.add("rlhf.kl_target", &c->kl_target, "adaptive KL controller's per-sequence target (0 = fixed rlhf.kl_coef)").range(0, 1e9)
        .add("rlhf.kl_horizon", &c->kl_horizon, "adaptive KL controller's horizon, in samples").range(1, 1e12)
        .add("rlhf.gamma", &c->gamma, "GAE discount").range(0, 1)
        .add("rlhf.lambda", &c->lambda, "GAE lambda").range(0, 1)
        .add("rlhf.value_clip", &c->value_clip, "value prediction clip around the rollout's values").range(0, 1e9, B::kOpenLow)
        .add("rlhf.value_coef", &c->value_coef, "weight of the value loss").range(0, 1e6)
        .add("rlhf.value_from", &c->value_from,
             "value model start: a reward model folder; empty: rlhf.reward_model, or the SFT backbone with a new head");
  } else {
    o.add("rlhf.group", &c->group, "G: samples per prompt, from one prompt encoding copied G times").range(2, 1 << 16)
        .add("rlhf.estimator", &c->estimator, "grpo (group-normalised advantages) | rloo (leave-one-out baseline)")
        .add("rlhf.kl_in", &c->kl_in, "loss (the estimator per token in the loss, GRPO paper) | reward (k1 summed into the sequence reward)")
        .add("rlhf.scale_rewards", &c->scale_rewards, "grpo: divide advantages by the group's reward std (false: Dr. GRPO)");
  }
  o.on_parsed([&o, c, ppo] {
    if (c->kl_estimator != "k1" && c->kl_estimator != "k3") o.fail("rlhf.kl_estimator", "expected k1 or k3, got '" + c->kl_estimator + "'");
    if (c->loss_aggregation != "token" && c->loss_aggregation != "sequence") {
      o.fail("rlhf.loss_aggregation", "expected token or sequence, got '" + c->loss_aggregation + "'");
    }
    if (c->reward_model.empty() && c->verifiable_weight == 0) {
      o.fail("rlhf.reward_model", "no reward: set rlhf.reward_model (a reward model folder) and/or rlhf.verifiable_weight");
    }
    if (ppo) return;
    if (c->estimator != "grpo" && c->estimator != "rloo") o.fail("rlhf.estimator", "expected grpo or rloo, got '" + c->estimator + "'");
    if (c->kl_in != "loss" && c->kl_in != "reward") o.fail("rlhf.kl_in", "expected loss or reward, got '" + c->kl_in + "'");
    if (c->kl_in == "reward" && c->kl_estimator != "k1" && c->kl_coef > 0) {
      o.fail("rlhf.kl_estimator", "rlhf.kl_in = reward uses k1 (the log ratio summed over the sequence), got " + c->kl_estimator);
    }
  });
}

}  // namespace rg::config
