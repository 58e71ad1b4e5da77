// model/io/hf_config.cpp: config.json both ways for every preset, HF's fields, the Hub's files, refusals.
#include "model/io/hf_config.h"

#include "tests/model/io_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

namespace rg::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace io_test;

void expect_same_config(const ModelConfig& a, const ModelConfig& b, const std::string& what) {
  EXPECT_EQ(a.vocab_size, b.vocab_size) << what;
  EXPECT_EQ(a.width, b.width) << what;
  EXPECT_EQ(a.depth, b.depth) << what;
  EXPECT_EQ(a.num_heads, b.num_heads) << what;
  EXPECT_EQ(a.num_kv_heads, b.num_kv_heads) << what;
  EXPECT_EQ(a.head_dim, b.head_dim) << what;
  EXPECT_EQ(a.lru_width, b.lru_width) << what;
  EXPECT_EQ(a.mlp_hidden, b.mlp_hidden) << what;
  EXPECT_EQ(a.conv_width, b.conv_width) << what;
  EXPECT_EQ(a.attention_window, b.attention_window) << what;
  EXPECT_EQ(format_block_pattern(a.block_pattern), format_block_pattern(b.block_pattern)) << what;
  EXPECT_EQ(a.logits_soft_cap, b.logits_soft_cap) << what;
  EXPECT_EQ(a.rope_base, b.rope_base) << what;
  EXPECT_EQ(a.rope_fraction, b.rope_fraction) << what;
  EXPECT_EQ(a.use_bias, b.use_bias) << what;
  EXPECT_EQ(a.embed_scale_bf16, b.embed_scale_bf16) << what;
  EXPECT_EQ(a.norm_eps, b.norm_eps) << what;
}

TEST_F(IoTest, ConfigRoundTripsForEveryPresetThroughAFile) {
  for (const auto& name : ModelConfig::preset_names()) {
    const ModelConfig c = ModelConfig::preset(name);
    write_hf_config(path(name + ".json"), c, at::kBFloat16);
    HfArch arch;
    expect_same_config(read_hf_config(path(name + ".json"), &arch), c, name);
    EXPECT_EQ(arch, c.all_attention() ? HfArch::kGemma : HfArch::kRecurrentGemma) << name;
  }
  // A tiny variant with what HF RecurrentGemma cannot express still comes back exactly.
  ModelConfig odd = ModelConfig::preset("tiny");
  odd.use_bias = false;
  odd.embed_scale_bf16 = false;
  odd.block_pattern = {BlockType::kRecurrent, BlockType::kAttention};
  expect_same_config(from_hf_config(to_hf_config(odd)), odd, "tiny without biases");
}

TEST_F(IoTest, ConfigFieldsFollowHuggingFace) {
  const json r = to_hf_config(ModelConfig::preset("recurrentgemma-2b"), at::kBFloat16);
  EXPECT_EQ(r["model_type"], "recurrent_gemma");
  EXPECT_EQ(r["architectures"], json({"RecurrentGemmaForCausalLM"}));
  EXPECT_EQ(r["intermediate_size"], 15360);  // 2E (spec 14.8)
  EXPECT_EQ(r["hidden_size"], 2560);
  EXPECT_EQ(r["lru_width"], 2560);
  EXPECT_EQ(r["head_dim"], 256);
  EXPECT_EQ(r["num_key_value_heads"], 1);
  EXPECT_EQ(r["attention_window_size"], 2048);
  EXPECT_EQ(r["block_types"], json({"recurrent", "recurrent", "attention"}));
  EXPECT_EQ(r["partial_rotary_factor"], 0.5);
  EXPECT_EQ(r["logits_soft_cap"], 30.0);
  EXPECT_DOUBLE_EQ(r["final_w_init_variance_scale"].get<double>(), 2.0 / 26);
  EXPECT_EQ(r["bos_token_id"], 2);
  EXPECT_EQ(r["eos_token_id"], 1);
  EXPECT_EQ(r["pad_token_id"], 0);
  EXPECT_EQ(r["torch_dtype"], "bfloat16");
  EXPECT_EQ(r["attention_bias"], false);
  EXPECT_FALSE(r.contains("use_bias"));  // only written when HF's fixed choice does not hold
  const json g = to_hf_config(ModelConfig::preset("gemma-2b"));
  EXPECT_EQ(g["model_type"], "gemma");
  EXPECT_EQ(g["architectures"], json({"GemmaForCausalLM"}));
  EXPECT_EQ(g["intermediate_size"], 16384);  // E itself for Gemma
  EXPECT_FALSE(g.contains("logits_soft_cap"));
  EXPECT_FALSE(g.contains("partial_rotary_factor"));
  EXPECT_FALSE(g.contains("use_bias"));
}

// The config.json as the Hub serves it for google/gemma-2b (google/recurrentgemma-2b's is in
// io_test_util.h), and the "_block_types" spelling that transformers' save_pretrained writes.
const char kHubGemma2b[] = R"({
  "architectures": ["GemmaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 2,
  "eos_token_id": 1, "head_dim": 256, "hidden_act": "gelu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 16384, "max_position_embeddings": 8192, "model_type": "gemma", "num_attention_heads": 8,
  "num_hidden_layers": 18, "num_key_value_heads": 1, "pad_token_id": 0, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 10000.0, "torch_dtype": "bfloat16", "transformers_version": "4.38.0.dev0",
  "use_cache": true, "vocab_size": 256000})";

TEST_F(IoTest, HubConfigsGiveThePresets) {
  expect_same_config(from_hf_config(json::parse(kHubRecurrentGemma2b)), ModelConfig::preset("recurrentgemma-2b"),
                     "hub recurrentgemma-2b");
  json saved = json::parse(kHubRecurrentGemma2b);
  saved["_block_types"] = saved["block_types"];
  saved.erase("block_types");
  expect_same_config(from_hf_config(saved), ModelConfig::preset("recurrentgemma-2b"), "_block_types");
  // transformers >= 5 nests the RoPE numbers under rope_parameters.
  json v5 = json::parse(kHubRecurrentGemma2b);
  v5["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000.0}, {"partial_rotary_factor", 0.5}};
  v5.erase("rope_theta");
  v5.erase("partial_rotary_factor");
  expect_same_config(from_hf_config(v5), ModelConfig::preset("recurrentgemma-2b"), "rope_parameters");
  v5["rope_parameters"]["rope_type"] = "yarn";
  EXPECT_NE(error_of([&] { from_hf_config(v5); }).find("field 'rope_parameters': 'rope_type'"), std::string::npos);
  // HF Gemma multiplies by sqrt(W) in the activation dtype: unrounded in float32.
  ModelConfig gemma = ModelConfig::preset("gemma-2b");
  gemma.embed_scale_bf16 = false;
  expect_same_config(from_hf_config(json::parse(kHubGemma2b)), gemma, "hub gemma-2b");
}

TEST_F(IoTest, ConfigErrorsNameTheFileAndTheField) {
  auto error_for = [&](const std::function<void(json&)>& edit) {
    json j = json::parse(kHubRecurrentGemma2b);
    edit(j);
    spit(path("config.json"), j.dump());
    return error_of([&] { read_hf_config(dir_.string()); });
  };
  const std::string file = path("config.json");
  std::string e = error_for([](json& j) { j.erase("hidden_size"); });
  EXPECT_NE(e.find(file + ": field 'hidden_size': missing"), std::string::npos) << e;
  e = error_for([](json& j) { j["sliding_window_magic"] = 3; });
  EXPECT_NE(e.find(file + ": field 'sliding_window_magic': unknown"), std::string::npos) << e;
  e = error_for([](json& j) { j["block_types"] = {"recurrent", "mamba"}; });
  EXPECT_NE(e.find("field 'block_types': entry 1 is 'mamba'"), std::string::npos) << e;
  e = error_for([](json& j) { j["model_type"] = "llama"; });
  EXPECT_NE(e.find("field 'model_type': 'llama' is not supported"), std::string::npos) << e;
  e = error_for([](json& j) { j["intermediate_size"] = 15361; });
  EXPECT_NE(e.find("field 'intermediate_size'"), std::string::npos) << e;
  e = error_for([](json& j) { j["hidden_size"] = "2560"; });
  EXPECT_NE(e.find("field 'hidden_size': expected an integer"), std::string::npos) << e;
  e = error_for([](json& j) { j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}}; });
  EXPECT_NE(e.find(file + ": field 'rope_scaling': RoPE scaling is not implemented"), std::string::npos) << e;
  e = error_for([](json& j) { j["quantization_config"] = {{"quant_method", "gptq"}}; });
  EXPECT_NE(e.find(file + ": field 'quantization_config': unknown"), std::string::npos) << e;
  // Bookkeeping that newer transformers write is not an error.
  EXPECT_EQ(error_for([](json& j) {
              j["rope_scaling"] = nullptr;
              j["_attn_implementation_autoset"] = true;
              j["dtype"] = "bfloat16";
            }),
            "(no error)");
  e = error_for([](json& j) { j["attention_bias"] = true; });
  EXPECT_NE(e.find("field 'attention_bias'"), std::string::npos) << e;
  e = error_for([](json& j) { j["num_key_value_heads"] = 3; });  // validate(): 10 % 3 != 0
  EXPECT_NE(e.find(file + ": model.num_kv_heads"), std::string::npos) << e;
  spit(path("config.json"), "{ not json");
  e = error_of([&] { read_hf_config(dir_.string()); });
  EXPECT_NE(e.find(file + ": not valid JSON"), std::string::npos) << e;
}

// config.json corruptions, each with the message's telling words. Values come from the released 2B config.
TEST_F(IoTest, MalformedConfigsAreRefusedNamingTheField) {
  const std::string file = path("config.json");
  const std::string hub = json::parse(kHubRecurrentGemma2b).dump();
  auto with = [&](const std::string& key, const std::string& value) {  // replace one top-level "key":value
    json j = json::parse(hub);
    j.erase(key);
    std::string text = j.dump();
    return text.substr(0, text.size() - 1) + ",\"" + key + "\":" + value + "}";
  };
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"empty", "", "not valid JSON"},
      {"not JSON", "vocab_size = 3", "not valid JSON"},
      {"an array", "[1, 2]", "expected a JSON object"},
      {"NaN literal", with("rms_norm_eps", "NaN"), "not valid JSON"},
      {"infinite eps", with("rms_norm_eps", "1e999"), "number overflow"},
      {"string width", with("hidden_size", "\"2560\""), "field 'hidden_size': expected an integer"},
      {"float width", with("hidden_size", "2560.5"), "field 'hidden_size': expected an integer"},
      {"object width", with("hidden_size", "{\"a\":1}"), "field 'hidden_size': expected an integer, got an object"},
      {"negative width", with("hidden_size", "-2560"), "width"},
      {"u64 vocab", with("vocab_size", "18446744073709551615"), "field 'vocab_size': expected at most 2147483647"},
      {"huge layers", with("num_hidden_layers", "1000000000"), "field 'num_hidden_layers': expected at most"},
      {"bool window", with("attention_window_size", "true"), "field 'attention_window_size': expected an integer"},
      {"unknown type", with("model_type", "\"mamba\""), "field 'model_type': 'mamba' is not supported"},
      {"numeric type", with("model_type", "7"), "field 'model_type': '7' is not supported"},
      {"long string", with("hidden_activation", "\"" + std::string(100000, 'x') + "\""), "chars)"},
  };
  for (const auto& [what, text, says] : cases) {
    spit(file, text);
    expect_refused(what, [&] { read_hf_config(dir_.string()); }, file, says);
  }
  spit(file, hub);
  EXPECT_NO_THROW(read_hf_config(dir_.string())) << "the unmodified config must load";
  // The parser refuses 1e999; a JSON value built in code can still hold infinity.
  json j = json::parse(hub);
  j["rms_norm_eps"] = std::numeric_limits<double>::infinity();
  expect_refused("infinity in code", [&] { from_hf_config(j, "cfg"); }, "cfg",
                 "field 'rms_norm_eps': expected a finite number");
}

}  // namespace
}  // namespace rg::io
