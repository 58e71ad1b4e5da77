// [model] section: binds ModelConfig to user-facing keys, with the ranges of model/config_limits.h so that
// a huge or non-finite value is refused at its key before anything is sized from it.
#include "configs/sections.h"
#include "model/config_limits.h"

#include <memory>

namespace rg::config {

void add_model_options(Options& o, ModelConfig* m) {
  using namespace rg::limits;
  using B = Options::Bounds;
  auto pattern = std::make_shared<std::string>(format_block_pattern(m->block_pattern));
  o.add("model.vocab_size", &m->vocab_size, "vocabulary size V (must match the tokenizer)").range(1, kMaxVocabSize)
      .add("model.width", &m->width, "model width W").range(1, kMaxWidth)
      .add("model.depth", &m->depth, "number of residual blocks").range(1, kMaxDepth)
      .add("model.num_heads", &m->num_heads, "attention heads (also the RG-LRU gate blocks)").range(1, kMaxHeads)
      .add("model.num_kv_heads", &m->num_kv_heads, "key/value heads (1 = multi-query)").range(1, kMaxHeads)
      .add("model.head_dim", &m->head_dim, "dimension of each attention head (even)").range(2, kMaxHeadDim)
      // 0 is allowed for models without recurrent blocks (gemma-2b); validate() requires more otherwise.
      .add("model.lru_width", &m->lru_width, "RG-LRU width L").range(0, kMaxWidth)
      .add("model.mlp_hidden", &m->mlp_hidden, "GeGLU hidden width E (HF intermediate_size / 2)").range(1, kMaxMlpHidden)
      .add("model.conv_width", &m->conv_width, "causal Conv1D width K").range(0, kMaxConvWidth)
      .add("model.attention_window", &m->attention_window, "local attention window w (0 = global)")
      .range(0, kMaxAttentionWindow)
      .add("model.block_pattern", pattern.get(), "block types repeated to depth, e.g. recurrent,recurrent,attention")
      .add("model.logits_soft_cap", &m->logits_soft_cap, "final logit soft cap c: c*tanh(x/c) (0 = none)")
      .range(0, kMaxLogitsSoftCap)
      .add("model.rope_base", &m->rope_base, "RoPE base frequency").range(0, kMaxRopeBase, B::kOpenLow)
      .add("model.rope_fraction", &m->rope_fraction, "fraction of each head's dims rotated by RoPE").range(0, 1, B::kOpenLow)
      .add("model.use_bias", &m->use_bias, "biases on MLP projections and attention output")
      .add("model.embed_scale_bf16", &m->embed_scale_bf16, "round the sqrt(W) embedding scale to bfloat16")
      .add("model.norm_eps", &m->norm_eps, "RMSNorm epsilon").range(0, kMaxNormEps, B::kOpenLow);
  o.on_parsed([m, pattern] {
    m->block_pattern = parse_block_pattern(*pattern);
    m->validate();
  });
}

}  // namespace rg::config
