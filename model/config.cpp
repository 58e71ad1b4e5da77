// ModelConfig validation, presets and the analytic parameter count (spec sections 1 and 12).
#include "model/config.h"

#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace rg {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

void require(bool ok, const std::string& field, const std::string& expected, int64_t got) {
  if (!ok) {
    throw std::invalid_argument("model." + field + ": expected " + expected + ", got " +
                                std::to_string(got));
  }
}

// Rounds to the nearest bfloat16 (round-to-nearest-even on the dropped 16 bits).
double round_to_bf16(double value) {
  float f = static_cast<float>(value);
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  bits += 0x7FFF + ((bits >> 16) & 1);
  bits &= 0xFFFF0000u;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

}  // namespace

std::vector<BlockType> parse_block_pattern(const std::string& text) {
  std::vector<BlockType> pattern;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item = trim(item);
    if (item == "recurrent" || item == "r" || item == "R") {
      pattern.push_back(BlockType::kRecurrent);
    } else if (item == "attention" || item == "a" || item == "A") {
      pattern.push_back(BlockType::kAttention);
    } else {
      throw std::invalid_argument("model.block_pattern: expected a comma-separated list of "
                                  "'recurrent' and 'attention', got entry '" + item + "'");
    }
  }
  if (pattern.empty()) {
    throw std::invalid_argument("model.block_pattern: expected at least one block type, got ''");
  }
  return pattern;
}

std::string format_block_pattern(const std::vector<BlockType>& pattern) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (i) out += ",";
    out += pattern[i] == BlockType::kRecurrent ? "recurrent" : "attention";
  }
  return out;
}

void ModelConfig::validate() const {
  require(vocab_size > 0, "vocab_size", "> 0", vocab_size);
  require(width > 0, "width", "> 0", width);
  require(depth > 0, "depth", "> 0", depth);
  require(num_heads > 0, "num_heads", "> 0", num_heads);
  require(num_kv_heads > 0 && num_heads % num_kv_heads == 0, "num_kv_heads",
          "> 0 and a divisor of num_heads (" + std::to_string(num_heads) + ")", num_kv_heads);
  require(head_dim > 0 && head_dim % 2 == 0, "head_dim", "a positive even number", head_dim);
  require(mlp_hidden > 0, "mlp_hidden", "> 0", mlp_hidden);
  require(attention_window >= 0, "attention_window", ">= 0 (0 = global)", attention_window);
  if (block_pattern.empty()) throw std::invalid_argument("model.block_pattern: expected at least one block type");
  if (num_blocks_of(BlockType::kRecurrent) > 0) {
    require(lru_width > 0 && lru_width % num_heads == 0, "lru_width",
            "> 0 and a multiple of num_heads (" + std::to_string(num_heads) + ")", lru_width);
    require(conv_width > 0, "conv_width", "> 0", conv_width);
  }
  const int64_t rotated = static_cast<int64_t>(std::llround(head_dim * rope_fraction));
  if (!(rope_fraction > 0.0 && rope_fraction <= 1.0) || rotated % 2 != 0) {
    throw std::invalid_argument("model.rope_fraction: expected a value in (0, 1] that rotates an even "
                                "number of each head's " + std::to_string(head_dim) + " dims, got " +
                                std::to_string(rope_fraction));
  }
  if (!(rope_base > 0)) throw std::invalid_argument("model.rope_base: expected > 0, got " + std::to_string(rope_base));
  if (logits_soft_cap < 0) {
    throw std::invalid_argument("model.logits_soft_cap: expected >= 0 (0 = none), got " +
                                std::to_string(logits_soft_cap));
  }
  if (!(norm_eps > 0)) throw std::invalid_argument("model.norm_eps: expected > 0, got " + std::to_string(norm_eps));
}

int64_t ModelConfig::num_blocks_of(BlockType type) const {
  int64_t n = 0;
  for (int64_t i = 0; i < depth; ++i) n += block_type(i) == type;
  return n;
}

double ModelConfig::embed_scale() const {
  const double s = std::sqrt(static_cast<double>(width));
  return embed_scale_bf16 ? round_to_bf16(s) : s;
}

ModelConfig ModelConfig::preset(const std::string& name) {
  ModelConfig c;  // defaults are the "tiny" preset
  if (name == "tiny") return c;
  if (name == "recurrentgemma-2b") {
    c.vocab_size = 256000; c.width = 2560; c.depth = 26; c.num_heads = 10; c.num_kv_heads = 1;
    c.head_dim = 256; c.lru_width = 2560; c.mlp_hidden = 7680; c.attention_window = 2048;
    return c;
  }
  if (name == "recurrentgemma-9b") {
    c.vocab_size = 256000; c.width = 4096; c.depth = 38; c.num_heads = 16; c.num_kv_heads = 1;
    c.head_dim = 256; c.lru_width = 4096; c.mlp_hidden = 12288; c.attention_window = 2048;
    return c;
  }
  if (name == "recurrentgemma-100m") {  // single-machine experiments and benchmarks
    c.vocab_size = 32000; c.width = 768; c.depth = 12; c.num_heads = 12; c.num_kv_heads = 1;
    c.head_dim = 64; c.lru_width = 768; c.mlp_hidden = 2304; c.attention_window = 2048;
    return c;
  }
  if (name == "gemma-2b") {  // the transformer baseline: global MQA, full RoPE, no biases, no soft cap
    c.vocab_size = 256000; c.width = 2048; c.depth = 18; c.num_heads = 8; c.num_kv_heads = 1;
    c.head_dim = 256; c.lru_width = 0; c.mlp_hidden = 16384; c.attention_window = 0;
    c.block_pattern = {BlockType::kAttention}; c.logits_soft_cap = 0.0; c.rope_fraction = 1.0;
    c.use_bias = false;
    c.embed_scale_bf16 = false;  // HF Gemma multiplies by sqrt(W) in the activation dtype
    return c;
  }
  throw std::invalid_argument("unknown model preset '" + name + "' (known: tiny, recurrentgemma-100m, "
                              "recurrentgemma-2b, recurrentgemma-9b, gemma-2b)");
}

std::vector<std::string> ModelConfig::preset_names() {
  return {"tiny", "recurrentgemma-100m", "recurrentgemma-2b", "recurrentgemma-9b", "gemma-2b"};
}

ParameterCount count_parameters(const ModelConfig& c) {
  ParameterCount n;
  const int64_t W = c.width, L = c.lru_width, E = c.mlp_hidden, K = c.conv_width, H = c.num_heads;
  const int64_t bias = c.use_bias ? 1 : 0;
  n.embedding = c.vocab_size * W;
  if (c.num_blocks_of(BlockType::kRecurrent) > 0) {
    n.recurrent_block = 3 * W * L           // linear_x, linear_y (W->L), linear_out (L->W)
                        + 2 * L + W         // their biases
                        + K * L + L         // conv1d w, b
                        + L                 // a_param
                        + 2 * (L * L / H + L);  // input and recurrence gates, block-diagonal
  }
  if (c.num_blocks_of(BlockType::kAttention) > 0) {
    const int64_t q = W * H * c.head_dim, kv = 2 * W * c.num_kv_heads * c.head_dim;
    n.attention_block = q + kv + H * c.head_dim * W + bias * W;
  }
  n.mlp_block = 3 * W * E + bias * (2 * E + W);
  n.total = n.embedding + W;  // final norm
  for (int64_t i = 0; i < c.depth; ++i) {
    n.total += 2 * W + n.mlp_block;
    n.total += c.block_type(i) == BlockType::kRecurrent ? n.recurrent_block : n.attention_block;
  }
  return n;
}

}  // namespace rg
