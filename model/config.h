// ModelConfig: every architectural number of a RecurrentGemma / Gemma model, the named presets, and the
// parameter count computed from the config alone (no allocation). Bound to the `[model]` section of the
// config files by configs/options.cpp; the field names are the user-facing key names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rg {

enum class BlockType { kRecurrent, kAttention };

// "recurrent,recurrent,attention" <-> {kRecurrent, kRecurrent, kAttention}. Throws std::invalid_argument
// naming the bad entry.
std::vector<BlockType> parse_block_pattern(const std::string& text);
std::string format_block_pattern(const std::vector<BlockType>& pattern);

struct ModelConfig {
  int64_t vocab_size = 256;        // V
  int64_t width = 64;              // W, the residual stream width
  int64_t depth = 3;               // number of residual blocks
  int64_t num_heads = 2;           // H: attention heads, and the RG-LRU gates' block count
  int64_t num_kv_heads = 1;        // 1 = multi-query attention
  int64_t head_dim = 32;           // hd; W / H for the published models
  int64_t lru_width = 64;          // L, width of the recurrent branch
  int64_t mlp_hidden = 192;        // E, GeGLU hidden width (HF's intermediate_size / 2)
  int64_t conv_width = 4;          // K, temporal width of the causal depthwise conv
  int64_t attention_window = 16;   // w: each query sees itself and w previous tokens; 0 = global
  std::vector<BlockType> block_pattern = {BlockType::kRecurrent, BlockType::kRecurrent,
                                          BlockType::kAttention};  // repeated to depth
  double logits_soft_cap = 30.0;   // 0 = no cap
  double rope_base = 10000.0;
  double rope_fraction = 0.5;      // fraction of each head's dims that RoPE rotates
  bool use_bias = true;            // biases on the MLP projections and the attention output
  bool embed_scale_bf16 = true;    // multiply embeddings by sqrt(W) rounded to bfloat16 (reference rule)
  double norm_eps = 1e-6;

  // Throws std::invalid_argument naming the field and what was expected.
  void validate() const;

  BlockType block_type(int64_t i) const { return block_pattern[i % block_pattern.size()]; }
  int64_t num_blocks_of(BlockType type) const;
  bool all_attention() const { return num_blocks_of(BlockType::kRecurrent) == 0; }
  // sqrt(W), rounded to bfloat16 when embed_scale_bf16 (50.5 for W = 2560).
  double embed_scale() const;

  // Named presets, identical to configs/model/<name>.ini (a test keeps them in step).
  static ModelConfig preset(const std::string& name);  // throws std::invalid_argument on unknown
  static std::vector<std::string> preset_names();
};

struct ParameterCount {
  int64_t total = 0;
  int64_t embedding = 0;
  int64_t recurrent_block = 0;  // one recurrent temporal block (0 if none)
  int64_t attention_block = 0;  // one attention temporal block (0 if none)
  int64_t mlp_block = 0;        // one MLP block
  int64_t non_embedding() const { return total - embedding; }
};

// Counts what the model allocates for `config` (tied embedding counted once).
ParameterCount count_parameters(const ModelConfig& config);

}  // namespace rg
