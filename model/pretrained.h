// Griffin <-> Hugging Face model folders (config.json + safetensors weights): the one call every command
// and trainer uses to load a released RecurrentGemma (or a folder rgemma saved) and to save one.
#pragma once

#include "model/griffin.h"

#include <string>

namespace rg {

// Builds the model that DIR's config.json describes and loads its weights, converted to `dtype`.
// Errors name the folder and every missing, unexpected or misshapen tensor.
Griffin load_pretrained(const std::string& dir, torch::Dtype dtype = torch::kFloat);

// Writes config.json and the weights (as `dtype`) atomically into DIR.
void save_pretrained(const Griffin& model, const std::string& dir, torch::Dtype dtype = torch::kFloat);

}  // namespace rg
