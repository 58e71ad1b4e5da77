// `rgemma logits`: the parallel forward of a model folder on token ids from a safetensors file, written
// as float32 logits to another: the command for checking parity against other implementations.
#include "model/io/safetensors.h"
#include "tools/command.h"
#include "tools/model_source.h"

#include <iostream>

namespace {

int run_logits(int argc, char** argv) {
  rg::config::Options options(argv[0],
                              "Run the parallel forward pass on int32 `tokens` (B, T) and optional `segment_pos` (B, T)\n"
                              "from --input and write float32 `logits` (B, T, V) to --output (safetensors).");
  rg::tools::ModelSource source;
  std::string input, output;
  options.add("input", &input, "safetensors file with int32 tokens (B, T) [and segment_pos (B, T)]")
      .add("output", &output, "safetensors file to write with float32 logits (B, T, V)");
  rg::tools::add_model_source_options(options, &source);
  options.required("input").required("output");
  if (!options.parse(argc, argv)) return 0;

  const rg::io::TensorMap in = rg::io::read_safetensors(input);
  const auto tokens_it = in.find("tokens");
  if (tokens_it == in.end() || tokens_it->second.dim() != 2) {
    throw rg::config::ConfigError(input + ": expected a 2-d integer tensor named 'tokens' (B, T)");
  }
  const torch::Tensor tokens = tokens_it->second.to(torch::kLong);  // (B, T)
  torch::Tensor pos;
  if (auto it = in.find("segment_pos"); it != in.end()) {
    if (!it->second.sizes().equals(tokens.sizes())) {
      throw rg::config::ConfigError(input + ": segment_pos must have the shape of tokens");
    }
    pos = it->second.to(torch::kLong);
  } else {
    pos = torch::arange(tokens.size(1), torch::kLong).repeat({tokens.size(0), 1});  // one document per row
  }
  rg::Griffin model = rg::tools::make_model(source, options);
  const int64_t V = model->config().vocab_size;
  if (tokens.numel() && (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= V)) {
    throw rg::config::ConfigError(input + ": token ids must lie in [0, " + std::to_string(V) + ")");
  }
  torch::NoGradGuard no_grad;
  model->eval();
  const torch::Tensor logits = model(tokens, pos).to(torch::kFloat);  // (B, T, V)
  rg::io::write_safetensors(output, {{"logits", logits}});
  std::cerr << "logits: " << tokens.size(0) << " x " << tokens.size(1) << " tokens -> " << output << "\n";
  return 0;
}

}  // namespace

RG_COMMAND("logits", "parallel forward of a model on token ids (safetensors in, float32 logits out)", run_logits);
