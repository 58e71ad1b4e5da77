// ModelConfig: parameter counts against the figures published in the spec (section 1), computed
// independently from the per-block counts and the architecture table.
#include "model/config.h"

#include <gtest/gtest.h>

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
  EXPECT_NEAR(exact.embed_scale(), 50.596443, 1e-6);
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

TEST(ModelConfig, AllPresetsValidate) {
  for (const auto& name : ModelConfig::preset_names()) EXPECT_NO_THROW(ModelConfig::preset(name).validate()) << name;
  EXPECT_THROW(ModelConfig::preset("7b"), std::invalid_argument);
}

}  // namespace
}  // namespace rg
