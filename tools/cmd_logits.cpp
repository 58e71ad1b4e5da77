// `rgemma logits`: the parallel forward of a model folder on token ids from a safetensors file, written
// as float32 logits to another: the command for checking parity against other implementations.
#include "model/io/safetensors.h"
#include "tools/command.h"
#include "tools/model_source.h"

#include <iostream>

namespace {

// An input tensor must be integer-typed (a float "id" would be truncated silently) and (B, T).
torch::Tensor integer_matrix(const rg::io::TensorMap& in, const std::string& name, const std::string& input) {
  const torch::Tensor& t = in.at(name);
  if (!c10::isIntegralType(t.scalar_type(), /*includeBool=*/false)) {
    throw rg::config::ConfigError(input + ": '" + name + "' must be an integer tensor (I32), got " +
                                  rg::io::safetensors_dtype_name(t.scalar_type()));
  }
  if (t.dim() != 2 || t.numel() == 0) {
    throw rg::config::ConfigError(input + ": '" + name + "' must be (B, T) with B, T >= 1, got shape " +
                                  c10::str(t.sizes()));
  }
  return t.to(torch::kLong);
}

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

  rg::tools::require_input_file(input, "input");
  const rg::io::TensorMap in = rg::io::read_safetensors(input);
  for (const auto& [name, t] : in) {
    if (name != "tokens" && name != "segment_pos") {
      throw rg::config::ConfigError(input + ": unexpected tensor '" + name + "' (expected 'tokens' and optionally "
                                    "'segment_pos')");
    }
  }
  if (!in.count("tokens")) throw rg::config::ConfigError(input + ": no tensor 'tokens' (B, T) of int32 ids");
  const torch::Tensor tokens = integer_matrix(in, "tokens", input);  // (B, T)
  torch::Tensor pos;
  if (in.count("segment_pos")) {
    pos = integer_matrix(in, "segment_pos", input);  // (B, T)
    if (!pos.sizes().equals(tokens.sizes())) {
      throw rg::config::ConfigError(input + ": segment_pos " + c10::str(pos.sizes()) + " must have the shape of tokens " +
                                    c10::str(tokens.sizes()));
    }
    // Positions within each document; -1 marks padding (as the sampler's left padding does).
    if (pos.min().item<int64_t>() < -1 || pos.max().item<int64_t>() > std::numeric_limits<int32_t>::max()) {
      throw rg::config::ConfigError(input + ": segment_pos values must lie in [-1, 2^31), got " +
                                    std::to_string(pos.min().item<int64_t>()) + " to " +
                                    std::to_string(pos.max().item<int64_t>()));
    }
  } else {
    pos = torch::arange(tokens.size(1), torch::kLong).repeat({tokens.size(0), 1});  // one document per row
  }
  rg::Griffin model = rg::tools::make_model(source, options);
  const int64_t V = model->config().vocab_size;
  if (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= V) {
    throw rg::config::ConfigError(input + ": token ids must lie in [0, " + std::to_string(V) + "), got " +
                                  std::to_string(tokens.min().item<int64_t>()) + " to " +
                                  std::to_string(tokens.max().item<int64_t>()));
  }
  // The output (B, T, V) in the model's dtype and again as float32: the bulk of what the forward allocates.
  const double logits_bytes = static_cast<double>(tokens.numel()) * V *
                              (4.0 + static_cast<double>(c10::elementSize(model->dtype())));
  const std::string what = "logits: " + std::to_string(tokens.size(0)) + " x " + std::to_string(tokens.size(1)) +
                           " tokens x vocabulary " + std::to_string(V) + " (" + rg::tools::bytes_text(logits_bytes) +
                           " of logits)";
  rg::tools::require_memory(logits_bytes, what);
  torch::NoGradGuard no_grad;
  model->eval();
  torch::Tensor logits;
  rg::tools::with_memory_context(what, [&] { logits = model(tokens, pos).to(torch::kFloat); });  // (B, T, V)
  if (!torch::isfinite(logits).all().item<bool>()) {
    // A parity file full of NaN compares as "different" everywhere and hides the cause: say it here.
    throw std::runtime_error("the forward pass produced NaN or infinite logits (corrupt weights" +
                             (source.dir.empty() ? std::string(")") : " in " + source.dir + "?)") + "; nothing written");
  }
  rg::io::write_safetensors(output, {{"logits", logits}});
  std::cerr << "logits: " << tokens.size(0) << " x " << tokens.size(1) << " tokens -> " << output << "\n";
  return 0;
}

}  // namespace

RG_COMMAND("logits", "parallel forward of a model on token ids (safetensors in, float32 logits out)", run_logits);
