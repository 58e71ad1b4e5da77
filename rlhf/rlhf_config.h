// RlhfConfig: the [rlhf] section of `rgemma reward` and `rgemma dpo` (bound to keys with help text in
// configs/rlhf_options.cpp). Defaults follow TRL where TRL's are sound; docs/rlhf.md lists the differences.
#pragma once

#include <string>

namespace rg::rlhf {

struct RlhfConfig {
  // reward
  double margin = 0;              // subtracted from r_chosen - r_rejected; a pair's own `margin` field wins
  double center_rewards = 0;      // TRL's center_rewards_coefficient (off by default there too)
  // dpo
  double beta = 0.1;              // TRL's default: strength of the KL anchor to the reference
  std::string loss = "sigmoid";   // sigmoid (DPO) | ipo
  double label_smoothing = 0;     // cDPO: assumed probability that a label is flipped, in [0, 0.5)
};

}  // namespace rg::rlhf
