// load_pretrained / save_pretrained: ModelConfig from config.json, then the tensors by their HF names.
#include "model/pretrained.h"

#include "model/io/hf_checkpoint.h"
#include "model/io/hf_config.h"

namespace rg {

Griffin load_pretrained(const std::string& dir, torch::Dtype dtype) {
  io::HfArch arch;
  const ModelConfig config = io::read_hf_config(dir, &arch);
  io::check_config_fits_weights(config, arch, dir, dir + "/config.json");  // before allocating the model
  Griffin model(config, /*initialise=*/false);
  model->to(dtype);
  io::load_state(*model, dir, arch);
  return model;
}

void save_pretrained(const Griffin& model, const std::string& dir, torch::Dtype dtype) {
  io::save_state(*model, model->config(), dir, dtype);
}

}  // namespace rg
