// Where a command's model comes from: a Hugging Face folder (--model DIR) or a [model] config with random
// weights (--config FILE / --model.KEY=VALUE, seeded by --seed). Shared by generate, logits and bench.
#pragma once

#include "configs/options.h"
#include "model/griffin.h"

#include <string>

namespace rg::tools {

struct ModelSource {
  std::string dir;               // HF folder; empty = build from `config` with random weights
  std::string dtype = "float32";
  int64_t init_seed = 0;
  ModelConfig config;
};

// Binds --model, --dtype, --init-seed and every [model] key.
void add_model_source_options(config::Options& options, ModelSource* source);
// The model, in the requested dtype. Throws ConfigError when --model and [model] keys are both given.
Griffin make_model(const ModelSource& source, const config::Options& options);

// "2,651,17" -> {2, 651, 17}; throws ConfigError naming `key` on anything but comma-separated integers.
std::vector<int64_t> parse_ids(const std::string& text, const std::string& key);

}  // namespace rg::tools
