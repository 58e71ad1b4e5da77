// [rlhf]: binds rlhf::RlhfConfig to user-facing keys for `rgemma reward` (margin, center_rewards) and
// `rgemma dpo` (beta, loss, label_smoothing); each command gets only its own keys, so a DPO key given to
// reward is an unknown-key error rather than silently ignored.
#pragma once

#include "configs/options.h"
#include "rlhf/rlhf_config.h"

namespace rg::config {

void add_rlhf_options(Options& options, rlhf::RlhfConfig* rlhf, bool dpo);

}  // namespace rg::config
