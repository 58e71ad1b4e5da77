// ModelConfig <-> Hugging Face config.json, both ways (docs/architecture.md §1, 12, 14): RecurrentGemma
// (model_type "recurrent_gemma") and the Gemma transformer baseline (model_type "gemma").
// Owns the choice of HF architecture for a config and the field-by-field translation, including the
// quirks: intermediate_size is 2E for RecurrentGemma but E for Gemma; block_types is the repeated pattern.
#pragma once

#include "model/config.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <string>

namespace rg::io {

enum class HfArch { kRecurrentGemma, kGemma };

// Gemma when every block is attention and attention is global; RecurrentGemma otherwise.
HfArch hf_arch(const ModelConfig& config);
const char* hf_model_type(HfArch arch);  // "recurrent_gemma" / "gemma"

// config.json for `config`; `dtype` becomes torch_dtype. Fields HF cannot express for the chosen
// model_type (e.g. use_bias = false on RecurrentGemma, a soft cap on Gemma) are written under extra
// keys ("use_bias", "embed_scale_bf16", "logits_soft_cap", "partial_rotary_factor") that
// from_hf_config reads back, so the round trip is exact; HF itself ignores them.
nlohmann::json to_hf_config(const ModelConfig& config, at::ScalarType dtype = at::kFloat);

// Reads a config.json object. Throws std::invalid_argument "<source>: field '<name>': ..." for a
// missing required field, a field of the wrong type, a value rgemma does not implement, or a field
// it does not know (an unknown field may change the architecture, so it is never silently ignored;
// generation/training bookkeeping and transformers' private "_..." keys are known and skipped). Reads
// rope_theta / partial_rotary_factor from top level or from transformers >= 5's "rope_parameters".
// The result is validate()d. `arch` (optional) receives the model_type.
ModelConfig from_hf_config(const nlohmann::json& json, const std::string& source = "config.json",
                           HfArch* arch = nullptr);

// File forms. read_hf_config accepts the file or the folder holding config.json.
ModelConfig read_hf_config(const std::string& path, HfArch* arch = nullptr);
void write_hf_config(const std::string& path, const ModelConfig& config, at::ScalarType dtype = at::kFloat);

}  // namespace rg::io
