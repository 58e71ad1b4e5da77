// ModelSource: --model DIR (load_pretrained) or [model] keys with a seeded random init.
#include "tools/model_source.h"

#include "configs/sections.h"
#include "model/io/safetensors.h"
#include "model/pretrained.h"
#include "rlhf/reward_model.h"

#include <sstream>

namespace rg::tools {

void add_model_source_options(config::Options& o, ModelSource* s) {
  o.add("model", &s->dir, "Hugging Face model folder (config.json + safetensors); else [model] keys, random weights")
      .add("dtype", &s->dtype, "float32 | bfloat16 | float16")
      .add("init-seed", &s->init_seed, "seed of the random weights when no --model is given");
  config::add_model_options(o, &s->config);
}

Griffin make_model(const ModelSource& s, const config::Options& o) {
  torch::Dtype dtype;
  try {
    dtype = io::parse_float_dtype(s.dtype);
  } catch (const std::exception& e) {
    o.fail("dtype", e.what());
  }
  if (!s.dir.empty()) {
    for (const char* key : {"model.vocab_size", "model.width", "model.depth", "model.block_pattern"}) {
      if (o.given(key)) o.fail(key, "conflicts with --model (the folder's config.json defines the model)");
    }
    if (rlhf::is_reward_model_dir(s.dir)) {  // a backbone plus a score head, not a language model
      throw config::ConfigError("command line: model: " + s.dir + " is a reward model (config.json has num_labels, "
                                "a score head), not a causal LM; rgemma score --model takes it");
    }
    return load_pretrained(s.dir, dtype);
  }
  torch::manual_seed(static_cast<uint64_t>(s.init_seed));
  Griffin model(s.config);
  model->to(dtype);
  return model;
}

std::vector<int64_t> parse_ids(const std::string& text, const std::string& key) {
  std::vector<int64_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t used = 0;
    try {
      ids.push_back(std::stoll(item, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || item.find_first_not_of(" 0123456789-") != std::string::npos) {
      throw config::ConfigError("command line: " + key + ": expected comma-separated token ids, got '" + item + "'");
    }
  }
  return ids;
}

}  // namespace rg::tools
