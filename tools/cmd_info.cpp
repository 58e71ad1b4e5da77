// `rgemma info`: a model's shape and parameter count, computed from its config without allocating it.
#include "configs/sections.h"
#include "tools/command.h"

#include <iostream>
#include <sstream>

namespace {

std::string grouped(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

int run_info(int argc, char** argv) {
  rg::config::Options options(argv[0], "Print a model's shape and parameter count, computed from its config "
                                       "(no weights are allocated).");
  rg::ModelConfig model;
  rg::config::add_model_options(options, &model);
  if (!options.parse(argc, argv)) return 0;

  const rg::ParameterCount n = rg::count_parameters(model);
  const int64_t recurrent = model.num_blocks_of(rg::BlockType::kRecurrent);
  const int64_t attention = model.num_blocks_of(rg::BlockType::kAttention);
  std::cout << "model: width " << model.width << ", depth " << model.depth << " (" << recurrent
            << " recurrent, " << attention << " attention), heads " << model.num_heads << ", vocab "
            << model.vocab_size << ", window "
            << (model.attention_window ? std::to_string(model.attention_window) : std::string("global"))
            << "\n";
  std::cout << "parameters: " << grouped(n.total) << "\n";
  std::cout << "  embedding: " << grouped(n.embedding) << "\n";
  std::cout << "  non-embedding: " << grouped(n.non_embedding()) << "\n";
  if (recurrent) std::cout << "  per recurrent block: " << grouped(n.recurrent_block) << "\n";
  if (attention) std::cout << "  per attention block: " << grouped(n.attention_block) << "\n";
  std::cout << "  per MLP block: " << grouped(n.mlp_block) << "\n";
  std::ostringstream mem;
  mem.precision(2);
  // In double: n.total * 4 in int64 would overflow long before a double loses the figure's precision.
  const double gib = static_cast<double>(n.total) / 1073741824.0;
  mem << std::fixed << "weights: " << gib * 2 << " GiB in bfloat16, " << gib * 4 << " GiB in float32";
  std::cout << mem.str() << "\n";
  return 0;
}

}  // namespace

RG_COMMAND("info", "print a model's shape and parameter count from its config", run_info);
