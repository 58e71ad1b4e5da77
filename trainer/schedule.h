// Learning-rate schedules as pure functions of the step: linear warmup, then cosine or linear decay to
// min_lr_ratio * peak_lr at total_steps (and flat after), or constant. Nothing here keeps state, so a
// resumed run gets the same learning rates from the step number alone.
#pragma once

#include "trainer/train_config.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace rg::trainer {

// peak_lr, decay and min_lr_ratio default to [optim]'s (OptimConfig in train_config.h); a run always sets
// every field from its config (trainer/run_support.h's schedule_from), the step counts included.
struct LrSchedule {
  double peak_lr = OptimConfig{}.lr;
  int64_t warmup_steps = 0;     // lr rises linearly over steps [0, warmup_steps)
  int64_t total_steps = 1000;   // decay ends here
  LrDecay decay = OptimConfig{}.decay;  // JSON: its name in lr_decay_names() (train_config.h)
  double min_lr_ratio = OptimConfig{}.min_lr_ratio;  // final lr = min_lr_ratio * peak_lr

  // Throws std::invalid_argument naming the field. (decay is an enum: the config parser and from_json
  // accept only its names.)
  void validate() const;
  // Learning rate for the update made at 0-based `step` (the first update uses step 0, so warmup never
  // starts at an lr of exactly zero: step s < warmup gets peak * (s + 1) / warmup).
  double lr_at(int64_t step) const;

  // decay is written and read as its name ("cosine", ...), as checkpoints have always held it.
  nlohmann::json to_json() const;
  static LrSchedule from_json(const nlohmann::json& j);  // throws std::invalid_argument for an unknown decay
};

}  // namespace rg::trainer
