// ModelConfig: parameter counts against the figures published in the spec (section 1), computed
// independently from the per-block counts and the architecture table.
#include "model/config.h"

#include <gtest/gtest.h>

#include <limits>

namespace rg {
namespace {

TEST(ModelConfig, RecurrentGemma2BCountsMatchSpec) {
  const ParameterCount n = count_parameters(ModelConfig::preset("recurrentgemma-2b"));
  EXPECT_EQ(n.total, 2682862080);
  EXPECT_EQ(n.embedding, 655360000);
  EXPECT_EQ(n.non_embedding(), 2027502080);
  EXPECT_EQ(n.recurrent_block, 20999680);
  EXPECT_EQ(n.attention_block, 14420480);
  EXPECT_EQ(n.mlp_block, 59000320);
}

TEST(ModelConfig, RecurrentGemma9BCountsMatchSpec) {
  const ParameterCount n = count_parameters(ModelConfig::preset("recurrentgemma-9b"));
  EXPECT_EQ(n.total, 8579977216);
  EXPECT_EQ(n.embedding, 1048576000);
  EXPECT_EQ(n.non_embedding(), 7531401216);
}

TEST(ModelConfig, Gemma2BBaselineCountMatchesPublishedModel) {
  // Gemma 2B (transformer): 2,506,172,416 parameters, no biases, 18 global MQA blocks.
  const ModelConfig c = ModelConfig::preset("gemma-2b");
  EXPECT_TRUE(c.all_attention());
  EXPECT_EQ(count_parameters(c).total, 2506172416);
}

TEST(ModelConfig, BlockPatternRepeatsToDepth) {
  const ModelConfig c = ModelConfig::preset("recurrentgemma-2b");
  for (int64_t i = 0; i < c.depth; ++i) {
    EXPECT_EQ(c.block_type(i) == BlockType::kAttention, i % 3 == 2) << "block " << i;
  }
  EXPECT_EQ(c.num_blocks_of(BlockType::kRecurrent), 18);
  EXPECT_EQ(c.num_blocks_of(BlockType::kAttention), 8);
}

TEST(ModelConfig, EmbedScaleIsRoundedToBfloat16) {
  EXPECT_DOUBLE_EQ(ModelConfig::preset("recurrentgemma-2b").embed_scale(), 50.5);  // sqrt(2560) = 50.596
  EXPECT_DOUBLE_EQ(ModelConfig::preset("recurrentgemma-9b").embed_scale(), 64.0);
  ModelConfig exact = ModelConfig::preset("recurrentgemma-2b");
  exact.embed_scale_bf16 = false;
  EXPECT_NEAR(exact.embed_scale(), 50.596443, 1e-6);  // sqrt(2560), the literal rounded to 6 decimals
}

TEST(ModelConfig, ValidateNamesTheField) {
  ModelConfig c;
  c.lru_width = 63;  // not a multiple of num_heads = 2
  try {
    c.validate();
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.lru_width"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_block_pattern("recurrent,mamba"), std::invalid_argument);
  EXPECT_EQ(format_block_pattern(parse_block_pattern(" recurrent, attention ")), "recurrent,attention");
}

// The message of validate() for `c`, or "" when it passes.
std::string validate_error(const ModelConfig& c) {
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ValidateRefusesNonFiniteReals) {
  // NaN fails every comparison, so a check written as `x < 0` lets it through; each field must name itself.
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const double bad : {nan, inf, -inf}) {
    ModelConfig c;
    c.logits_soft_cap = bad;
    EXPECT_NE(validate_error(c).find("model.logits_soft_cap"), std::string::npos) << bad;
    c = ModelConfig{};
    c.norm_eps = bad;
    EXPECT_NE(validate_error(c).find("model.norm_eps"), std::string::npos) << bad;
    c = ModelConfig{};
    c.rope_base = bad;
    EXPECT_NE(validate_error(c).find("model.rope_base"), std::string::npos) << bad;
    c = ModelConfig{};
    c.rope_fraction = bad;
    EXPECT_NE(validate_error(c).find("model.rope_fraction"), std::string::npos) << bad;
  }
}

TEST(ModelConfig, ValidateBoundsSizes) {
  ModelConfig c;
  c.vocab_size = 1000000000000000000;  // `rgemma info` printed negative GiB for this
  EXPECT_NE(validate_error(c).find("model.vocab_size"), std::string::npos);
  c = ModelConfig{};
  c.attention_window = int64_t{1} << 40;  // the sampling state would hold 2^40 keys per block
  EXPECT_NE(validate_error(c).find("model.attention_window"), std::string::npos);
  c = ModelConfig{};
  c.width = -64;
  EXPECT_NE(validate_error(c).find("model.width"), std::string::npos);
  // Each field within its own limit, but together 1024 blocks of a 2^16 x 2^20 MLP: 3 * 2^36 * 1024 =
  // 2.1e14 parameters, over the supported 2^42 = 4.4e12.
  c = ModelConfig{};
  c.width = 65536, c.mlp_hidden = 1 << 20, c.depth = 1024, c.lru_width = 65536, c.num_heads = 1024;
  c.head_dim = 64;
  EXPECT_NE(validate_error(c).find("parameters, more than"), std::string::npos) << validate_error(c);
}

TEST(ModelConfig, ParameterCountRefusesOverflowInsteadOfWrapping) {
  // 2^40 x 2^40 embedding entries do not fit in int64: the count must say so, not return a wrapped value.
  ModelConfig c;
  c.vocab_size = int64_t{1} << 40;
  c.width = int64_t{1} << 40;
  EXPECT_THROW(count_parameters(c), std::invalid_argument);
  EXPECT_NE(validate_error(c).find("model.vocab_size"), std::string::npos);
}

TEST(ModelConfig, AllPresetsValidate) {
  for (const auto& name : ModelConfig::preset_names()) EXPECT_NO_THROW(ModelConfig::preset(name).validate()) << name;
  EXPECT_THROW(ModelConfig::preset("7b"), std::invalid_argument);
}

}  // namespace
}  // namespace rg
