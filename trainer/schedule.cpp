// LrSchedule: warmup + cosine / linear / constant.
#include "trainer/schedule.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace rg::trainer {

void LrSchedule::validate() const {
  auto fail = [](const std::string& msg) { throw std::invalid_argument("lr schedule: " + msg); };
  if (!(peak_lr > 0) || !std::isfinite(peak_lr)) fail("peak_lr must be a positive number, got " + std::to_string(peak_lr));
  if (warmup_steps < 0) fail("warmup_steps must be >= 0, got " + std::to_string(warmup_steps));
  if (total_steps < 1) fail("total_steps must be >= 1, got " + std::to_string(total_steps));
  if (warmup_steps > total_steps) {
    fail("warmup_steps (" + std::to_string(warmup_steps) + ") exceeds total_steps (" + std::to_string(total_steps) + ")");
  }
  if (min_lr_ratio < 0 || min_lr_ratio > 1) fail("min_lr_ratio must be in [0, 1], got " + std::to_string(min_lr_ratio));
}

double LrSchedule::lr_at(int64_t step) const {
  if (step < warmup_steps) return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (decay == LrDecay::kConstant) return peak_lr;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / span);  // [0, 1]
  const double shape = decay == LrDecay::kCosine ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;  // 1 -> 0
  return peak_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * shape);
}

nlohmann::json LrSchedule::to_json() const {
  return {{"peak_lr", peak_lr},
          {"warmup_steps", warmup_steps},
          {"total_steps", total_steps},
          {"decay", name_of(lr_decay_names(), decay)},
          {"min_lr_ratio", min_lr_ratio}};
}

LrSchedule LrSchedule::from_json(const nlohmann::json& j) {
  LrSchedule s;
  s.peak_lr = j.at("peak_lr").get<double>();
  s.warmup_steps = j.at("warmup_steps").get<int64_t>();
  s.total_steps = j.at("total_steps").get<int64_t>();
  const std::string decay = j.at("decay").get<std::string>();
  bool known = false;
  for (const auto& [name, value] : lr_decay_names()) {
    if (name == decay) s.decay = value, known = true;
  }
  if (!known) throw std::invalid_argument("lr schedule: unknown decay '" + decay + "'");
  s.min_lr_ratio = j.at("min_lr_ratio").get<double>();
  s.validate();
  return s;
}

}  // namespace rg::trainer
