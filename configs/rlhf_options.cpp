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

}  // namespace rg::config
