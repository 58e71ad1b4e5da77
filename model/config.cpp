// ModelConfig validation, presets and the analytic parameter count (docs/architecture.md §1 and 12).
#include "model/config.h"

#include "model/config_limits.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
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

// A size in 1..max (or 0..max when zero_ok): the sizes' products must stay far from int64 overflow.
void require_size(int64_t v, const std::string& field, int64_t max, bool zero_ok = false) {
  const int64_t min = zero_ok ? 0 : 1;
  require(v >= min && v <= max, field, std::to_string(min) + " to " + std::to_string(max), v);
}

// A finite real in [lo, hi] (or (lo, hi] when open_low); NaN fails every comparison, so test the inside.
void require_real(double v, const std::string& field, double lo, double hi, bool open_low, const std::string& note) {
  const bool ok = std::isfinite(v) && (open_low ? v > lo : v >= lo) && v <= hi;
  if (!ok) {
    std::ostringstream s;
    s << "model." << field << ": expected a finite number in " << (open_low ? "(" : "[") << lo << ", " << hi << "]"
      << note << ", got " << v;
    throw std::invalid_argument(s.str());
  }
}

// a * b, or std::invalid_argument when it overflows int64 (a config from a hand-edited config.json).
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_mul_overflow(a, b, &out)) {
    throw std::invalid_argument("model: the parameter count overflows a 64-bit integer (" + std::to_string(a) +
                                " x " + std::to_string(b) + ")");
  }
  return out;
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) {
    throw std::invalid_argument("model: the parameter count overflows a 64-bit integer");
  }
  return out;
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
  using namespace limits;
  require_size(vocab_size, "vocab_size", kMaxVocabSize);
  require_size(width, "width", kMaxWidth);
  require_size(depth, "depth", kMaxDepth);
  require_size(num_heads, "num_heads", kMaxHeads);
  require_size(num_kv_heads, "num_kv_heads", kMaxHeads);
  require(num_heads % num_kv_heads == 0, "num_kv_heads",
          "a divisor of num_heads (" + std::to_string(num_heads) + ")", num_kv_heads);
  require_size(head_dim, "head_dim", kMaxHeadDim);
  require(head_dim % 2 == 0, "head_dim", "an even number", head_dim);
  require_size(mlp_hidden, "mlp_hidden", kMaxMlpHidden);
  require_size(attention_window, "attention_window", kMaxAttentionWindow, /*zero_ok=*/true);
  // Unused without recurrent blocks (gemma-2b has lru_width 0), but bounded anyway for the count below.
  require_size(lru_width, "lru_width", kMaxWidth, /*zero_ok=*/true);
  require_size(conv_width, "conv_width", kMaxConvWidth, /*zero_ok=*/true);
  if (block_pattern.empty()) throw std::invalid_argument("model.block_pattern: expected at least one block type");
  if (num_blocks_of(BlockType::kRecurrent) > 0) {
    require(lru_width > 0 && lru_width % num_heads == 0, "lru_width",
            "> 0 and a multiple of num_heads (" + std::to_string(num_heads) + ")", lru_width);
    require(conv_width > 0, "conv_width", "> 0", conv_width);
  }
  const bool fraction_ok = rope_fraction > 0.0 && rope_fraction <= 1.0;  // false for NaN
  const int64_t rotated = fraction_ok ? static_cast<int64_t>(std::llround(head_dim * rope_fraction)) : 1;
  if (!fraction_ok || rotated % 2 != 0) {
    throw std::invalid_argument("model.rope_fraction: expected a value in (0, 1] that rotates an even "
                                "number of each head's " + std::to_string(head_dim) + " dims, got " +
                                std::to_string(rope_fraction));
  }
  require_real(rope_base, "rope_base", 0, kMaxRopeBase, /*open_low=*/true, "");
  require_real(logits_soft_cap, "logits_soft_cap", 0, kMaxLogitsSoftCap, /*open_low=*/false, " (0 = none)");
  require_real(norm_eps, "norm_eps", 0, kMaxNormEps, /*open_low=*/true, "");
  const int64_t total = count_parameters(*this).total;  // throws on int64 overflow
  if (total > kMaxParameters) {
    throw std::invalid_argument("model: " + std::to_string(total) + " parameters, more than the " +
                                std::to_string(kMaxParameters) + " supported (check width, depth, " +
                                "mlp_hidden and vocab_size)");
  }
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
  if (name == "gemma-100m") {  // the baseline at recurrentgemma-100m's size (Figure 1): mlp_hidden matches it
    c.vocab_size = 32000; c.width = 768; c.depth = 12; c.num_heads = 12; c.num_kv_heads = 1;
    c.head_dim = 64; c.lru_width = 0; c.mlp_hidden = 2480; c.attention_window = 0;
    c.block_pattern = {BlockType::kAttention}; c.logits_soft_cap = 0.0; c.rope_fraction = 1.0;
    c.use_bias = false;
    c.embed_scale_bf16 = false;
    return c;
  }
  throw std::invalid_argument("unknown model preset '" + name + "' (known: tiny, recurrentgemma-100m, "
                              "recurrentgemma-2b, recurrentgemma-9b, gemma-2b, gemma-100m)");
}

std::vector<std::string> ModelConfig::preset_names() {
  return {"tiny", "recurrentgemma-100m", "recurrentgemma-2b", "recurrentgemma-9b", "gemma-2b", "gemma-100m"};
}

ParameterCount count_parameters(const ModelConfig& c) {
  // Every product and sum is checked: validate() calls this to bound the total, so it must not overflow
  // on the very configs it is there to refuse. Fields are sizes (>= 0) by the time validate() calls it.
  const auto mul = [](std::initializer_list<int64_t> f) {
    int64_t p = 1;
    for (const int64_t x : f) p = checked_mul(p, x);
    return p;
  };
  const auto add = [](std::initializer_list<int64_t> t) {
    int64_t s = 0;
    for (const int64_t x : t) s = checked_add(s, x);
    return s;
  };
  ParameterCount n;
  const int64_t W = c.width, L = c.lru_width, E = c.mlp_hidden, K = c.conv_width, H = c.num_heads;
  const int64_t bias = c.use_bias ? 1 : 0;
  n.embedding = mul({c.vocab_size, W});
  const int64_t recurrent = c.num_blocks_of(BlockType::kRecurrent);
  const int64_t attention = c.num_blocks_of(BlockType::kAttention);
  if (recurrent > 0) {
    n.recurrent_block = add({mul({3, W, L}),            // linear_x, linear_y (W->L), linear_out (L->W)
                             mul({2, L}), W,             // their biases
                             mul({K, L}), L,             // conv1d w, b
                             L,                          // a_param
                             mul({2, add({mul({L, L}) / H, L})})});  // input and recurrence gates, block-diagonal
  }
  if (attention > 0) {
    const int64_t q = mul({W, H, c.head_dim}), kv = mul({2, W, c.num_kv_heads, c.head_dim});
    n.attention_block = add({q, kv, mul({H, c.head_dim, W}), bias * W});
  }
  n.mlp_block = add({mul({3, W, E}), mul({bias, add({mul({2, E}), W})})});
  const int64_t per_block = add({mul({2, W}), n.mlp_block});  // two norms and the MLP in every block
  n.total = add({n.embedding, W,                               // final norm
                 mul({c.depth, per_block}), mul({recurrent, n.recurrent_block}),
                 mul({attention, n.attention_block})});
  return n;
}

}  // namespace rg
