// Hugging Face model folders: tensor names (docs/architecture.md §12), the weights folder (model.safetensors or
// shards + model.safetensors.index.json), and loading / saving a module's parameters through them.
// Module parameter names are the HF names without "model." for RecurrentGemma; for the Gemma baseline
// the block names are translated (temporal_block -> self_attn, mlp_block -> mlp, ...).
#pragma once

#include "model/config.h"
#include "model/io/hf_config.h"
#include "model/io/safetensors.h"

#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rg::io {

// "layers.0.temporal_block.linear_x.weight" -> "model.layers.0.temporal_block.linear_x.weight"
// (Gemma: "layers.0.temporal_block.q_proj.weight" -> "model.layers.0.self_attn.q_proj.weight").
std::string to_hf_name(const std::string& name, HfArch arch);
// The inverse; "" for a name that is not under "model." (e.g. "lm_head.weight").
std::string from_hf_name(const std::string& hf_name, HfArch arch);

// The tensors of a weights folder, every file mapped and every header validated up front; the index is
// checked against the shards (each listed tensor is in its shard, each shard tensor is listed, no name
// twice). Prefers model.safetensors when both forms are present, as HF does.
class WeightsFolder {
 public:
  explicit WeightsFolder(const std::string& dir);
  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  const std::string& file_of(const std::string& name) const;  // the shard's path
  at::Tensor view(const std::string& name) const;  // zero-copy; valid while this object lives

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor -> index in files_
};

// Refuses, before any model is built, a config that cannot match DIR's weights: an embedding shape
// other than the stored one, or more parameters than the folder holds. A corrupt or hostile config.json
// (vocab_size 2e9, a thousand layers) then fails with a message naming `config_source` and the fields,
// instead of allocating the model first. Throws std::invalid_argument; weights errors as WeightsFolder.
void check_config_fits_weights(const ModelConfig& config, HfArch arch, const std::string& dir,
                               const std::string& config_source = "config.json");

// Every tensor of a folder as owned CPU tensors.
TensorMap read_weights(const std::string& dir);

// HF's default shard size limit (transformers save_pretrained, max_shard_size="5GB").
constexpr uint64_t kDefaultMaxShardBytes = 5000ull * 1000 * 1000;

// Writes `tensors` into `dir` (created if needed) as model.safetensors, or as
// model-0000k-of-0000n.safetensors + model.safetensors.index.json when they exceed max_shard_bytes
// (a tensor larger than the limit gets a shard of its own). Every file is written atomically; weight
// files of an earlier save that the new set does not use are removed afterwards. `order` (optional)
// is the order in which tensors fill shards; default is by name.
void write_weights(const std::string& dir, const TensorMap& tensors, uint64_t max_shard_bytes = kDefaultMaxShardBytes,
                   const std::vector<std::string>& order = {}, at::ScalarType dtype = at::ScalarType::Undefined);

// Copies HF-named tensors into `model`'s parameters (converted to each parameter's dtype and device, in
// place, without autograd). Every parameter must be present with its exact shape; buffers are loaded
// when present and otherwise left alone; lm_head.weight, if present, must equal embed_tokens.weight and
// is otherwise ignored. All problems (missing, unexpected, wrong shape with both shapes, non-floating
// data for a floating parameter, untied lm_head) are collected and thrown together as one
// std::runtime_error naming `source` and each tensor; nothing is copied unless everything checks out.
void load_state(torch::nn::Module& model, const TensorMap& hf_tensors, HfArch arch,
                const std::string& source = "tensors");
// The same from a folder. The naming scheme comes from the folder's config.json when it has one
// (model_type), otherwise from the tensor names ("model.layers.N.self_attn." means Gemma).
void load_state(torch::nn::Module& model, const std::string& dir);
void load_state(torch::nn::Module& model, const std::string& dir, HfArch arch);

struct SaveOptions {
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;
};

// Writes an HF model folder for `model` at `dir`: config.json (from `config`) and its parameters as
// `dtype` (float32, bfloat16 or float16; non-floating tensors keep theirs) in HF names. Atomic: the
// folder is built next to `dir` and renamed into place; files already in `dir` that are not config or
// weights (a tokenizer, say) are carried over. Throws if the model's embedding does not match `config`.
void save_state(const torch::nn::Module& model, const ModelConfig& config, const std::string& dir,
                at::ScalarType dtype = at::kFloat, const SaveOptions& options = {});

}  // namespace rg::io
