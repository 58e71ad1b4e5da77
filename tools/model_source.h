// Where a command's model comes from: a Hugging Face folder (--model DIR) or a [model] config with random
// weights (--config FILE / --model.KEY=VALUE, seeded by --init-seed). Shared by generate, logits and bench,
// with the checks every command applies to what users hand it: id lists, input files, memory estimates.
#pragma once

#include "configs/options.h"
#include "model/griffin.h"

#include <cstdint>
#include <functional>
#include <limits>
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
// The model, in the requested dtype. Throws ConfigError (exit 2) when --model and [model] keys are both
// given, for a folder that is not a model folder or whose config.json is refused, and, when `compute`
// (the command runs the model, on the CPU), for float16. Refuses a model larger than this machine's
// memory before allocating it, and names the parameter bytes when allocation fails anyway.
Griffin make_model(const ModelSource& source, const config::Options& options, bool compute = true);

// "2,651,17" -> {2, 651, 17}: comma-separated decimal integers, each in [min, max], spaces around an item
// allowed. Anything else ("2 3", "1-2", "2,,3", "", "0x10", overflow) throws ConfigError naming `key`.
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& key, int64_t min = 0,
                                    int64_t max = std::numeric_limits<int64_t>::max());
// Token ids: parse_int_list with ids >= 0 (check_ids bounds them by the vocabulary once it is known).
std::vector<int64_t> parse_ids(const std::string& text, const std::string& key);
// Throws ConfigError "command line: KEY: token id N is outside the model's vocabulary [0, V)".
void check_ids(const std::vector<int64_t>& ids, int64_t vocab_size, const std::string& key);

// Throws ConfigError "command line: KEY: PATH: ..." unless PATH is an existing regular file (FIFOs,
// folders and devices are refused: reading them blocks or never ends).
void require_input_file(const std::string& path, const std::string& key);

// Memory: the machine's physical memory, and a refusal (std::runtime_error, exit 1) of a step whose
// estimated `bytes` exceed it, naming `what` ("generate: the sampling state ...").
uint64_t physical_memory_bytes();
std::string bytes_text(double bytes);  // "1.5 GB"
void require_memory(double bytes, const std::string& what);
// Runs fn; an allocation failure inside it (std::bad_alloc, LibTorch's allocator errors) becomes
// std::runtime_error "WHAT: out of memory (...)". `what` says what needed how much.
void with_memory_context(const std::string& what, const std::function<void()>& fn);

}  // namespace rg::tools
