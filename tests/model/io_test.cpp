// Checkpoint I/O: safetensors bytes checked by an independent reader (and a hand-built file read by
// ours), every validation error, sharded folders, config.json both ways for the presets and HF's own
// files, and load/save of a small module that carries the HF parameter names of docs/architecture.md §12.
#include "model/io/hf_checkpoint.h"
#include "model/io/hf_config.h"
#include "model/io/input_file.h"
#include "model/io/safetensors.h"
#include "model/griffin.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

namespace rg::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("rg_io_test." + std::to_string(::getpid()) + "." + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}
// A safetensors file from a header string and raw data, built by hand (no code under test).
std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<uint64_t>(header.size()) >> (8 * i)) & 0xFF);
  return out + header + data;
}
bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// ---------------------------------------------------------------------------------------------------
// safetensors

TEST_F(IoTest, RoundTripIsBitExactForEveryDtype) {
  torch::manual_seed(1);
  TensorMap in;
  in["f32"] = torch::randn({3, 5});
  in["f64"] = torch::randn({4}, torch::kDouble);
  // Every bf16 / f16 bit pattern class (NaN payloads, infinities, subnormals) from random 16-bit words.
  in["bf16"] = torch::randint(-32768, 32768, {7, 3}, torch::kShort).view(torch::kBFloat16);
  in["f16"] = torch::randint(-32768, 32768, {2, 9}, torch::kShort).view(torch::kHalf);
  in["i32"] = torch::randint(-1000000, 1000000, {2, 6}, torch::kInt);
  in["i64"] = torch::randint(-1000000, 1000000, {5}, torch::kLong) * 1000003;
  in["u8"] = torch::randint(0, 256, {3}, torch::kByte);
  in["bool"] = torch::randint(0, 2, {4}, torch::kBool);
  in["scalar"] = torch::tensor(2.5f).reshape({});
  in["empty"] = torch::zeros({0, 3});
  in["strided"] = torch::randn({4, 6}).t();  // non-contiguous input is written in logical order
  write_safetensors(path("a.safetensors"), in, {{"format", "pt"}});
  Metadata meta;
  const TensorMap out = read_safetensors(path("a.safetensors"), &meta);
  EXPECT_EQ(meta, (Metadata{{"format", "pt"}}));
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [name, t] : in) {
    ASSERT_TRUE(out.count(name)) << name;
    EXPECT_TRUE(same_bytes(out.at(name), t)) << name;
  }
  // No temporary file is left next to the output.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST_F(IoTest, WrittenBytesMatchTheFormatReadIndependently) {
  TensorMap in;
  in["a"] = torch::arange(6, torch::kFloat).reshape({2, 3});
  in["b"] = torch::tensor({1.0f, -2.0f, 0.5f}).to(torch::kBFloat16);
  in["c"] = torch::tensor({1, -1, 256, 65536}, torch::kInt).reshape({2, 2});
  write_safetensors(path("x.safetensors"), in, {{"format", "pt"}});

  const std::string bytes = slurp(path("x.safetensors"));
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u) << "the data buffer must start 8-byte aligned";
  ASSERT_LE(8 + n, bytes.size());
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  const auto last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}') << "padding after the JSON must be spaces";
  const json h = json::parse(header);
  EXPECT_EQ(h["__metadata__"], json({{"format", "pt"}}));
  EXPECT_EQ(h["a"]["dtype"], "F32");
  EXPECT_EQ(h["a"]["shape"], json({2, 3}));
  EXPECT_EQ(h["b"]["dtype"], "BF16");
  EXPECT_EQ(h["c"]["dtype"], "I32");
  EXPECT_EQ(h["c"]["shape"], json({2, 2}));
  const std::string data = bytes.substr(8 + n);
  auto range = [&](const char* name) {
    const auto off = h[name]["data_offsets"];
    return data.substr(off[0].get<size_t>(), off[1].get<size_t>() - off[0].get<size_t>());
  };
  // Every tensor starts aligned for its dtype (readers may map the data directly).
  EXPECT_EQ(h["a"]["data_offsets"][0].get<size_t>() % 4, 0u);
  EXPECT_EQ(h["b"]["data_offsets"][0].get<size_t>() % 2, 0u);
  EXPECT_EQ(h["c"]["data_offsets"][0].get<size_t>() % 4, 0u);
  // The buffer is fully indexed: the three ranges add up to it.
  EXPECT_EQ(range("a").size() + range("b").size() + range("c").size(), data.size());
  const float a_expected[6] = {0, 1, 2, 3, 4, 5};
  EXPECT_EQ(range("a"), std::string(reinterpret_cast<const char*>(a_expected), 24));
  // bf16 of 1, -2, 0.5 is the top half of the float: 0x3F80, 0xC000, 0x3F00, little-endian.
  EXPECT_EQ(range("b"), std::string("\x80\x3F\x00\xC0\x00\x3F", 6));
  EXPECT_EQ(range("c"), std::string("\x01\x00\x00\x00\xFF\xFF\xFF\xFF\x00\x01\x00\x00\x00\x00\x01\x00", 16));
}

TEST_F(IoTest, ReadsAHandBuiltFile) {
  // Offsets deliberately not in header order, header padded with spaces, one unaligned F32.
  const std::string data = std::string("\x00\x3F", 2) + std::string("\x00\x00\x80\x3F\x00\x00\x00\xC0", 8);
  const std::string header =
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[2,10]},"h":{"dtype":"BF16","shape":[1,1],"data_offsets":[0,2]}})"
      "   ";
  spit(path("h.safetensors"), make_file(header, data));
  SafetensorsFile f(path("h.safetensors"));
  EXPECT_TRUE(f.metadata().empty());
  const at::Tensor w = f.load("w");
  EXPECT_EQ(w.scalar_type(), torch::kFloat);
  EXPECT_EQ(w[0].item<float>(), 1.0f);
  EXPECT_EQ(w[1].item<float>(), -2.0f);
  const at::Tensor h = f.load("h");
  EXPECT_EQ(h.sizes(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(h.to(torch::kFloat).item<float>(), 0.5f);
}

TEST_F(IoTest, BadFilesNameTheFileAndTheTensor) {
  TensorMap in;
  in["alpha"] = torch::ones({4, 4});
  in["beta"] = torch::ones({3});
  write_safetensors(path("good.safetensors"), in);
  const std::string good = slurp(path("good.safetensors"));

  spit(path("cut.safetensors"), good.substr(0, good.size() - 5));
  std::string e = error_of([&] { SafetensorsFile f(path("cut.safetensors")); });
  EXPECT_NE(e.find("cut.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("'beta'"), std::string::npos) << e;  // beta is laid out last, so it runs past the end
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;

  spit(path("tiny.safetensors"), "abc");
  e = error_of([&] { SafetensorsFile f(path("tiny.safetensors")); });
  EXPECT_NE(e.find("tiny.safetensors: truncated"), std::string::npos) << e;

  spit(path("garbage.safetensors"), std::string("\xff\xff\xff\xff\xff\xff\xff\x7f garbage garbage", 24));
  e = error_of([&] { SafetensorsFile f(path("garbage.safetensors")); });
  EXPECT_NE(e.find("garbage.safetensors: bad header length"), std::string::npos) << e;

  spit(path("json.safetensors"), make_file("{\"a\": [1, 2", ""));
  e = error_of([&] { SafetensorsFile f(path("json.safetensors")); });
  EXPECT_NE(e.find("json.safetensors: bad header JSON"), std::string::npos) << e;

  const std::string zeros(16, '\0');
  spit(path("overlap.safetensors"),
       make_file(R"({"p":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"q":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 zeros));
  e = error_of([&] { SafetensorsFile f(path("overlap.safetensors")); });
  EXPECT_NE(e.find("'q'"), std::string::npos) << e;
  EXPECT_NE(e.find("overlap tensor 'p'"), std::string::npos) << e;

  spit(path("hole.safetensors"),
       make_file(R"({"p":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"q":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
                 zeros));
  e = error_of([&] { SafetensorsFile f(path("hole.safetensors")); });
  EXPECT_NE(e.find("'q' starts at byte 12"), std::string::npos) << e;

  spit(path("shape.safetensors"), make_file(R"({"p":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,16]}})", zeros));
  e = error_of([&] { SafetensorsFile f(path("shape.safetensors")); });
  EXPECT_NE(e.find("shape.safetensors: tensor 'p': shape [3,2] of BF16"), std::string::npos) << e;

  spit(path("dtype.safetensors"), make_file(R"({"p":{"dtype":"F8_E4M3","shape":[16],"data_offsets":[0,16]}})", zeros));
  e = error_of([&] { SafetensorsFile f(path("dtype.safetensors")); });
  EXPECT_NE(e.find("tensor 'p': unsupported dtype 'F8_E4M3'"), std::string::npos) << e;

  spit(path("trail.safetensors"), make_file(R"({"p":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", zeros));
  e = error_of([&] { SafetensorsFile f(path("trail.safetensors")); });
  EXPECT_NE(e.find("trailing bytes"), std::string::npos) << e;

  e = error_of([&] { SafetensorsFile f(path("absent.safetensors")); });
  EXPECT_NE(e.find("absent.safetensors: cannot open"), std::string::npos) << e;
}

TEST_F(IoTest, ShardedFoldersWriteReadAndReplaceEachOther) {
  torch::manual_seed(2);
  TensorMap in;
  for (int i = 0; i < 5; ++i) in["model.t" + std::to_string(i)] = torch::randn({10, 10});  // 400 bytes each
  in["model.big"] = torch::randn({300});                                                    // 1200 bytes
  const std::string folder = path("w");
  write_weights(folder, in, /*max_shard_bytes=*/1000);
  const json index = json::parse(slurp(folder + "/model.safetensors.index.json"));
  std::set<std::string> files;
  for (const auto& [name, file] : index["weight_map"].items()) files.insert(file.get<std::string>());
  // big (over the limit) gets its own shard; the five 400-byte tensors go two by two: 4 shards.
  EXPECT_EQ(files, (std::set<std::string>{"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                                          "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"}));
  EXPECT_EQ(index["metadata"]["total_size"].get<int64_t>(), 5 * 400 + 1200);
  EXPECT_EQ(index["weight_map"].size(), in.size());
  EXPECT_FALSE(fs::exists(folder + "/model.safetensors"));
  TensorMap out = read_weights(folder);
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [name, t] : in) EXPECT_TRUE(same_bytes(out.at(name), t)) << name;

  // An index that points a tensor at the wrong shard is an error naming both.
  json broken = index;
  const std::string victim = "model.t0";
  const std::string right = index["weight_map"][victim];
  broken["weight_map"][victim] = right == "model-00001-of-00004.safetensors" ? "model-00002-of-00004.safetensors"
                                                                              : "model-00001-of-00004.safetensors";
  spit(folder + "/model.safetensors.index.json", broken.dump());
  const std::string e = error_of([&] { WeightsFolder f(folder); });
  EXPECT_NE(e.find("'model.t0'"), std::string::npos) << e;

  // Writing the same folder unsharded replaces the shards.
  write_weights(folder, in);
  int n = 0;
  for (const auto& entry : fs::directory_iterator(folder)) {
    ++n;
    EXPECT_EQ(entry.path().filename(), "model.safetensors");
  }
  EXPECT_EQ(n, 1);
  out = read_weights(folder);
  for (const auto& [name, t] : in) EXPECT_TRUE(same_bytes(out.at(name), t)) << name;

  const std::string empty = path("empty");
  fs::create_directories(empty);
  EXPECT_NE(error_of([&] { WeightsFolder f(empty); }).find("no model.safetensors"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------
// config.json

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

// The config.json files as the Hub serves them (google/recurrentgemma-2b, google/gemma-2b), and the
// "_block_types" spelling that transformers' save_pretrained writes.
const char kHubRecurrentGemma2b[] = R"({
  "architectures": ["RecurrentGemmaForCausalLM"], "attention_bias": false, "attention_window_size": 2048,
  "block_types": ["recurrent", "recurrent", "attention"], "bos_token_id": 2, "conv1d_width": 4,
  "embeddings_scale_by_sqrt_dim": true, "eos_token_id": 1, "final_w_init_variance_scale": 0.07692307692307693,
  "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2560, "intermediate_size": 15360,
  "logits_soft_cap": 30.0, "lru_width": 2560, "model_type": "recurrent_gemma", "num_attention_heads": 10,
  "num_hidden_layers": 26, "num_key_value_heads": 1, "pad_token_id": 0, "partial_rotary_factor": 0.5,
  "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "torch_dtype": "float32", "transformers_version": "4.40.0.dev0",
  "vocab_size": 256000, "w_init_variance_scale": 0.01})";
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

// ---------------------------------------------------------------------------------------------------
// load_state / save_state on a module with the model's parameter names

// A module tree built from dotted names, so named_parameters() yields exactly those names.
struct Node : torch::nn::Module {
  using torch::nn::Module::register_module;
  using torch::nn::Module::register_parameter;
};
std::shared_ptr<Node> build_module(const std::vector<std::pair<std::string, std::vector<int64_t>>>& params) {
  auto root = std::make_shared<Node>();
  std::map<std::string, std::shared_ptr<Node>> nodes{{"", root}};
  for (const auto& [name, shape] : params) {
    std::string prefix;
    auto parent = root;
    size_t start = 0, dot;
    while ((dot = name.find('.', start)) != std::string::npos) {
      const std::string part = name.substr(start, dot - start);
      const std::string full = prefix.empty() ? part : prefix + "." + part;
      if (!nodes.count(full)) nodes[full] = parent->register_module(part, std::make_shared<Node>());
      parent = nodes[full];
      prefix = full;
      start = dot + 1;
    }
    parent->register_parameter(name.substr(start), torch::zeros(shape));
  }
  return root;
}

// docs/architecture.md §12's names and shapes for `c` (module names: HF without "model.").
std::vector<std::pair<std::string, std::vector<int64_t>>> model_params(const ModelConfig& c) {
  const int64_t W = c.width, L = c.lru_width, H = c.num_heads, E = c.mlp_hidden, hd = c.head_dim;
  std::vector<std::pair<std::string, std::vector<int64_t>>> p = {{"embed_tokens.weight", {c.vocab_size, W}}};
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string b = "layers." + std::to_string(i) + ".";
    p.push_back({b + "temporal_pre_norm.weight", {W}});
    p.push_back({b + "channel_pre_norm.weight", {W}});
    const std::string t = b + "temporal_block.";
    if (c.block_type(i) == BlockType::kRecurrent) {
      for (const char* lin : {"linear_x", "linear_y"}) {
        p.push_back({t + lin + ".weight", {L, W}});
        p.push_back({t + lin + ".bias", {L}});
      }
      p.push_back({t + "linear_out.weight", {W, L}});
      p.push_back({t + "linear_out.bias", {W}});
      p.push_back({t + "conv_1d.weight", {L, 1, c.conv_width}});
      p.push_back({t + "conv_1d.bias", {L}});
      p.push_back({t + "rg_lru.recurrent_param", {L}});
      p.push_back({t + "rg_lru.input_gate_weight", {H, L / H, L / H}});
      p.push_back({t + "rg_lru.input_gate_bias", {H, L / H}});
      p.push_back({t + "rg_lru.recurrent_gate_weight", {H, L / H, L / H}});
      p.push_back({t + "rg_lru.recurrent_gate_bias", {H, L / H}});
    } else {
      p.push_back({t + "q_proj.weight", {H * hd, W}});
      p.push_back({t + "k_proj.weight", {c.num_kv_heads * hd, W}});
      p.push_back({t + "v_proj.weight", {c.num_kv_heads * hd, W}});
      p.push_back({t + "o_proj.weight", {W, H * hd}});
      if (c.use_bias) p.push_back({t + "o_proj.bias", {W}});
    }
    const std::string m = b + "mlp_block.";
    p.push_back({m + "gate_proj.weight", {E, W}});
    p.push_back({m + "up_proj.weight", {E, W}});
    p.push_back({m + "down_proj.weight", {W, E}});
    if (c.use_bias) {
      p.push_back({m + "gate_proj.bias", {E}});
      p.push_back({m + "up_proj.bias", {E}});
      p.push_back({m + "down_proj.bias", {W}});
    }
  }
  p.push_back({"final_norm.weight", {W}});
  return p;
}

ModelConfig small_griffin() {
  ModelConfig c = ModelConfig::preset("tiny");
  c.vocab_size = 32; c.width = 8; c.lru_width = 8; c.num_heads = 2; c.head_dim = 4; c.mlp_hidden = 12;
  return c;  // depth 3: recurrent, recurrent, attention
}
ModelConfig small_gemma() {
  ModelConfig c = ModelConfig::preset("gemma-2b");
  c.vocab_size = 32; c.width = 8; c.depth = 2; c.num_heads = 2; c.head_dim = 4; c.mlp_hidden = 12;
  return c;
}

void randomise(torch::nn::Module& m, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard g;
  for (auto& p : m.parameters()) p.normal_();
}

void expect_equal_params(const torch::nn::Module& a, const torch::nn::Module& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) EXPECT_TRUE(same_bytes(item.value(), pb[item.key()])) << item.key();
}

TEST_F(IoTest, HfFolderRoundTripsLoadSaveReload) {
  const ModelConfig c = small_griffin();
  auto a = build_module(model_params(c));
  randomise(*a, 3);
  save_state(*a, c, path("hf"));
  // The folder is what HF expects: config.json + model.safetensors with "model."-prefixed names.
  EXPECT_TRUE(fs::exists(path("hf/config.json")));
  const TensorMap files = read_weights(path("hf"));
  EXPECT_EQ(files.size(), a->named_parameters().size());
  for (const auto& item : a->named_parameters()) {
    ASSERT_TRUE(files.count("model." + item.key())) << item.key();
    EXPECT_TRUE(same_bytes(files.at("model." + item.key()), item.value())) << item.key();
  }
  EXPECT_EQ(files.at("model.layers.0.temporal_block.conv_1d.weight").sizes(), (std::vector<int64_t>{8, 1, 4}));
  EXPECT_EQ(SafetensorsFile(path("hf/model.safetensors")).metadata().at("format"), "pt");

  auto b = build_module(model_params(read_hf_config(path("hf"))));
  load_state(*b, path("hf"));
  expect_equal_params(*a, *b);

  // Save the reloaded model again, sharded: the reloaded folder holds identical tensors.
  save_state(*b, c, path("hf2"), at::kFloat, SaveOptions{/*max_shard_bytes=*/2048});
  EXPECT_TRUE(fs::exists(path("hf2/model.safetensors.index.json")));
  const TensorMap files2 = read_weights(path("hf2"));
  ASSERT_EQ(files2.size(), files.size());
  for (const auto& [name, t] : files) EXPECT_TRUE(same_bytes(files2.at(name), t)) << name;
  auto d = build_module(model_params(c));
  load_state(*d, path("hf2"));
  expect_equal_params(*a, *d);
}

TEST_F(IoTest, Bf16FilesLoadIntoFloatParameters) {
  const ModelConfig c = small_griffin();
  auto a = build_module(model_params(c));
  randomise(*a, 4);
  save_state(*a, c, path("bf16"), at::kBFloat16);
  EXPECT_EQ(read_hf_config(path("bf16")).width, 8);
  EXPECT_EQ(json::parse(slurp(path("bf16/config.json")))["torch_dtype"], "bfloat16");
  SafetensorsFile f(path("bf16/model.safetensors"));
  EXPECT_EQ(f.info("model.final_norm.weight").dtype, at::kBFloat16);
  auto b = build_module(model_params(c));
  load_state(*b, path("bf16"));
  for (const auto& item : a->named_parameters()) {
    const at::Tensor expected = item.value().to(at::kBFloat16).to(at::kFloat);
    EXPECT_TRUE(same_bytes(b->named_parameters()[item.key()], expected)) << item.key();
  }
}

TEST_F(IoTest, LoadReportsEveryProblemAndChangesNothing) {
  const ModelConfig c = small_griffin();
  auto a = build_module(model_params(c));
  randomise(*a, 5);
  TensorMap tensors;
  for (const auto& item : a->named_parameters()) tensors["model." + item.key()] = item.value().clone();
  tensors.erase("model.layers.1.temporal_block.rg_lru.recurrent_param");
  tensors["model.layers.0.temporal_block.q_proj.weight"] = torch::ones({8, 8});
  tensors["model.layers.2.mlp_block.up_proj.weight"] = torch::ones({12, 9});
  tensors["model.layers.0.temporal_block.linear_x.bias"] = torch::ones({8}, torch::kInt);

  auto b = build_module(model_params(c));  // zeros
  const std::string e = error_of([&] { load_state(*b, tensors, HfArch::kRecurrentGemma, "my-source"); });
  EXPECT_NE(e.find("my-source: cannot load weights into the model (4 problems)"), std::string::npos) << e;
  EXPECT_NE(e.find("missing tensor 'model.layers.1.temporal_block.rg_lru.recurrent_param'"), std::string::npos) << e;
  EXPECT_NE(e.find("unexpected tensor 'model.layers.0.temporal_block.q_proj.weight' [8,8]"), std::string::npos) << e;
  EXPECT_NE(e.find("wrong shape for 'model.layers.2.mlp_block.up_proj.weight': file [12,9] (my-source), model [12,8]"),
            std::string::npos) << e;
  EXPECT_NE(e.find("wrong dtype for 'model.layers.0.temporal_block.linear_x.bias'"), std::string::npos) << e;
  for (const auto& p : b->parameters()) EXPECT_EQ(p.abs().sum().item<float>(), 0.0f);

  // The same through a folder names the shard file.
  tensors.erase("model.layers.0.temporal_block.q_proj.weight");
  tensors.erase("model.layers.0.temporal_block.linear_x.bias");
  write_weights(path("bad"), tensors);
  const std::string f = error_of([&] { load_state(*b, path("bad"), HfArch::kRecurrentGemma); });
  EXPECT_NE(f.find("(3 problems)"), std::string::npos) << f;
  EXPECT_NE(f.find("file [12,9] (model.safetensors), model [12,8]"), std::string::npos) << f;
  EXPECT_NE(f.find("missing tensor 'model.layers.0.temporal_block.linear_x.bias'"), std::string::npos) << f;
}

TEST_F(IoTest, LmHeadMustEqualTheEmbedding) {
  const ModelConfig c = small_griffin();
  auto a = build_module(model_params(c));
  randomise(*a, 6);
  TensorMap tensors;
  for (const auto& item : a->named_parameters()) tensors["model." + item.key()] = item.value();
  tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].to(at::kBFloat16).to(at::kFloat);
  tensors["model.embed_tokens.weight"] = tensors["lm_head.weight"];
  auto b = build_module(model_params(c));
  load_state(*b, tensors, HfArch::kRecurrentGemma);  // tied copy: accepted, ignored
  EXPECT_TRUE(same_bytes(b->named_parameters()["embed_tokens.weight"], tensors["lm_head.weight"]));
  tensors["lm_head.weight"] = tensors["lm_head.weight"] + 1;
  const std::string e = error_of([&] { load_state(*b, tensors, HfArch::kRecurrentGemma); });
  EXPECT_NE(e.find("'lm_head.weight' (tensors) differs from 'model.embed_tokens.weight'"), std::string::npos) << e;
}

TEST_F(IoTest, GemmaBaselineUsesGemmaNames) {
  const ModelConfig c = small_gemma();
  EXPECT_EQ(hf_arch(c), HfArch::kGemma);
  auto a = build_module(model_params(c));
  randomise(*a, 7);
  save_state(*a, c, path("gemma"));
  const TensorMap files = read_weights(path("gemma"));
  for (const char* name : {"model.embed_tokens.weight", "model.norm.weight", "model.layers.1.input_layernorm.weight",
                           "model.layers.1.post_attention_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.0.self_attn.o_proj.weight", "model.layers.0.mlp.gate_proj.weight",
                           "model.layers.1.mlp.down_proj.weight"}) {
    EXPECT_TRUE(files.count(name)) << name;
  }
  EXPECT_EQ(files.size(), a->named_parameters().size());
  EXPECT_EQ(to_hf_name("layers.3.temporal_block.k_proj.weight", HfArch::kGemma), "model.layers.3.self_attn.k_proj.weight");
  EXPECT_EQ(from_hf_name("model.layers.3.self_attn.k_proj.weight", HfArch::kGemma), "layers.3.temporal_block.k_proj.weight");
  EXPECT_EQ(from_hf_name("model.norm.weight", HfArch::kGemma), "final_norm.weight");
  EXPECT_EQ(from_hf_name("lm_head.weight", HfArch::kGemma), "");

  auto b = build_module(model_params(c));
  load_state(*b, path("gemma"));
  expect_equal_params(*a, *b);
  // Without config.json the naming is recognised from the tensor names.
  fs::remove(path("gemma/config.json"));
  auto d = build_module(model_params(c));
  load_state(*d, path("gemma"));
  expect_equal_params(*a, *d);
}

TEST_F(IoTest, SaveReplacesAFolderAtomicallyAndKeepsOtherFiles) {
  const ModelConfig c = small_griffin();
  auto a = build_module(model_params(c));
  randomise(*a, 8);
  save_state(*a, c, path("m"), at::kFloat, SaveOptions{/*max_shard_bytes=*/2048});
  spit(path("m/tokenizer.model"), "spm");
  const std::string before = slurp(path("m/model.safetensors.index.json"));

  // A save that fails (config does not match the model) leaves the folder as it was.
  ModelConfig wrong = c;
  wrong.vocab_size = 33;
  const std::string e = error_of([&] { save_state(*a, wrong, path("m")); });
  EXPECT_NE(e.find("embed_tokens.weight is [32,8]"), std::string::npos) << e;
  EXPECT_EQ(slurp(path("m/model.safetensors.index.json")), before);

  randomise(*a, 9);
  save_state(*a, c, path("m"));  // now unsharded
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(path("m"))) names.insert(entry.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"config.json", "model.safetensors", "tokenizer.model"}));
  EXPECT_EQ(slurp(path("m/tokenizer.model")), "spm");
  auto b = build_module(model_params(c));
  load_state(*b, path("m"));
  expect_equal_params(*a, *b);
  // Nothing else was left beside the folder (temporary or old copies).
  std::set<std::string> siblings;
  for (const auto& entry : fs::directory_iterator(dir_)) siblings.insert(entry.path().filename().string());
  EXPECT_EQ(siblings, (std::set<std::string>{"m"}));
}

// The real model carries exactly the names and shapes of docs/architecture.md §12, and an HF folder written from
// it reloads into a fresh model that computes the same logits.
TEST_F(IoTest, GriffinRoundTripsThroughAnHfFolder) {
  for (const ModelConfig& c : {small_griffin(), small_gemma()}) {
    const std::string what = c.all_attention() ? "gemma" : "griffin";
    torch::manual_seed(10);
    Griffin a(c);
    std::map<std::string, std::vector<int64_t>> expected, actual;
    for (const auto& [name, shape] : model_params(c)) expected[name] = shape;
    for (const auto& item : a->named_parameters()) actual[item.key()] = item.value().sizes().vec();
    EXPECT_EQ(actual, expected) << what;

    save_state(*a, c, path(what));
    torch::manual_seed(11);
    Griffin b(read_hf_config(path(what)));
    ASSERT_FALSE(same_bytes(a->embed_tokens->weight, b->embed_tokens->weight)) << "differently seeded inits";
    load_state(*b, path(what));
    expect_equal_params(*a, *b);
    const at::Tensor tokens = torch::randint(0, c.vocab_size, {2, 7}, torch::kLong);
    const at::Tensor pos = torch::arange(7, torch::kLong).repeat({2, 1});
    torch::NoGradGuard g;
    EXPECT_TRUE(same_bytes(a->forward(tokens, pos), b->forward(tokens, pos))) << what;
  }
}

// ---------------------------------------------------------------------------------------------------
// Hostile and malformed inputs: every one refused with a one-line message naming the file, never a crash
// or a hang.

// "[[[...1...]]]" nested `depth` levels deep.
std::string nested(size_t depth) { return std::string(depth, '[') + "1" + std::string(depth, ']'); }

void expect_refused(const std::string& what, const std::function<void()>& f, const std::string& names,
                    const std::string& says) {
  const std::string e = error_of(f);
  EXPECT_NE(e, "(no error)") << what;
  EXPECT_NE(e.find(names), std::string::npos) << what << ": message does not name " << names << ": " << e;
  EXPECT_NE(e.find(says), std::string::npos) << what << ": message lacks '" << says << "': " << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << what << ": not one line: " << e;
}

// A reader blocked on a FIFO is released after two seconds by writing "{}" into it, so that a test of the
// refusal fails (`released` becomes true) instead of hanging the suite.
class FifoRelease {
 public:
  explicit FifoRelease(std::string path) : path_(std::move(path)), thread_([this] { run(); }) {}
  ~FifoRelease() {
    done_ = true;
    thread_.join();
  }
  bool released() const { return released_; }

 private:
  void run() {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!done_ && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (done_) return;
    const int fd = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK);  // succeeds only when a reader waits
    if (fd >= 0) {
      released_ = true;
      (void)!::write(fd, "{}", 2);
      ::close(fd);
    }
  }
  std::string path_;
  std::atomic<bool> done_{false}, released_{false};
  std::thread thread_;
};

TEST_F(IoTest, DeeplyNestedJsonIsRefusedNotACrash) {
  // 100,000 levels: nlohmann's dump(), copy and == recurse once per level and overflow the stack.
  json base = json::parse(kHubRecurrentGemma2b);
  std::string text = base.dump();
  const std::string key = "\"hidden_size\":2560";
  ASSERT_NE(text.find(key), std::string::npos);
  text.replace(text.find(key), key.size(), "\"hidden_size\":" + nested(100000));
  spit(path("config.json"), text);
  expect_refused("config", [&] { read_hf_config(dir_.string()); }, path("config.json"), "nested deeper than 64");

  spit(path("deep.safetensors"), make_file("{\"__metadata__\":{\"a\":" + nested(100000) + "}}", ""));
  expect_refused("header", [&] { SafetensorsFile f(path("deep.safetensors")); }, path("deep.safetensors"),
                 "nested deeper than 64");

  fs::create_directories(path("sharded"));
  spit(path("sharded/model.safetensors.index.json"), "{\"weight_map\":{\"a\":" + nested(100000) + "}}");
  expect_refused("index", [&] { WeightsFolder w(path("sharded")); }, "model.safetensors.index.json",
                 "nested deeper than 64");

  // The bound is a depth, not a size: 64 levels parse, 65 do not.
  EXPECT_NO_THROW(parse_json_bounded(nested(64), "x"));
  expect_refused("65 levels", [&] { parse_json_bounded(nested(65), "x.json"); }, "x.json", "nested deeper");
}

TEST_F(IoTest, NonRegularFilesAreRefusedWithoutBlocking) {
  fs::create_directories(path("m"));
  ASSERT_EQ(::mkfifo(path("m/config.json").c_str(), 0600), 0);
  {
    FifoRelease release(path("m/config.json"));
    expect_refused("config FIFO", [&] { read_hf_config(path("m")); }, path("m/config.json"), "FIFO");
    EXPECT_FALSE(release.released()) << "read_hf_config blocked on a FIFO";
  }
  ASSERT_EQ(::mkfifo(path("m/model.safetensors").c_str(), 0600), 0);
  {
    FifoRelease release(path("m/model.safetensors"));
    expect_refused("weights FIFO", [&] { SafetensorsFile f(path("m/model.safetensors")); },
                   path("m/model.safetensors"), "not a regular file");
    EXPECT_FALSE(release.released()) << "SafetensorsFile blocked on a FIFO";
  }
  fs::create_directories(path("folder.safetensors"));
  expect_refused("folder", [&] { SafetensorsFile f(path("folder.safetensors")); }, path("folder.safetensors"),
                 "is a folder");
  expect_refused("device", [&] { SafetensorsFile f("/dev/zero"); }, "/dev/zero", "not a regular file");
  expect_refused("device config", [&] { read_hf_config("/dev/zero"); }, "/dev/zero", "is a device");
  expect_refused("missing config", [&] { read_hf_config(path("nope")); }, path("nope"), "no such file");
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

// Weights-folder corruptions: each refused by WeightsFolder / load_state before the module changes.
TEST_F(IoTest, MalformedWeightsAreRefusedNamingTheFile) {
  const ModelConfig c = small_griffin();
  auto module = build_module(model_params(c));
  randomise(*module, 3);
  save_state(*module, c, path("good"));
  const std::string good = slurp(path("good/model.safetensors"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(good[i]);
  const json header = json::parse(good.substr(8, n));
  const std::string data = good.substr(8 + n);
  const TensorMap tensors = read_weights(path("good"));
  const std::string norm_a = "model.layers.0.temporal_pre_norm.weight", norm_b = "model.layers.0.channel_pre_norm.weight";
  auto edited = [&](const std::function<void(json&)>& edit) {
    json h = header;
    edit(h);
    return make_file(h.dump(), data);
  };
  auto without = [&](const std::string& name) {
    TensorMap t = tensors;
    t.erase(name);
    return t;
  };
  struct Case {
    std::string what;
    std::function<void(const std::string& dir)> make;  // writes the folder's weights
    std::string says;
  };
  auto file = [](const std::string& bytes) {
    return [bytes](const std::string& dir) { spit(dir + "/model.safetensors", bytes); };
  };
  auto weights = [](const TensorMap& t) {
    return [t](const std::string& dir) { write_safetensors(dir + "/model.safetensors", t); };
  };
  std::string long_length = good;
  for (int i = 0; i < 8; ++i) long_length[i] = static_cast<char>(((good.size() + 100) >> (8 * i)) & 0xFF);
  TensorMap extra = tensors, wrong = tensors;
  extra["model.layers.0.extra.weight"] = torch::zeros({3});
  wrong[norm_a] = torch::zeros({c.width + 1});
  const std::vector<Case> cases = {
      {"truncated", file(good.substr(0, good.size() - 5)), "truncated"},
      {"cut in the header", file(good.substr(0, 20)), "bad header length"},
      {"header length beyond the file", file(long_length), "bad header length"},
      {"header not JSON", file(make_file("{\"a\" 1}", data)), "bad header JSON"},
      {"offsets past the end", file(edited([&](json& h) { h[norm_a]["data_offsets"][1] = data.size() + 64; })),
       "run past the data buffer"},
      // The later of two same-size tensors moved onto the earlier: overlap is met before the hole it leaves.
      {"overlapping offsets", file(edited([&](json& h) {
         const bool a_first = h[norm_a]["data_offsets"][0].get<uint64_t>() < h[norm_b]["data_offsets"][0].get<uint64_t>();
         h[a_first ? norm_b : norm_a]["data_offsets"] = h[a_first ? norm_a : norm_b]["data_offsets"];
       })),
       "overlap"},
      {"offsets not shape x dtype", file(edited([&](json& h) { h[norm_a]["shape"] = {c.width + 1}; })),
       "does not match its"},
      {"unknown dtype", file(edited([&](json& h) { h[norm_a]["dtype"] = "F8_E5M2"; })), "unsupported dtype 'F8_E5M2'"},
      {"shape product overflow",
       file(edited([&](json& h) { h[norm_a]["shape"] = {uint64_t{1} << 40, uint64_t{1} << 40}; })),
       "does not match its"},
      {"negative shape", file(edited([&](json& h) { h[norm_a]["shape"] = {-8}; })), "shape entries must be integers"},
      {"missing tensor", weights(without(norm_a)), "missing tensor '" + norm_a + "'"},
      {"extra tensor", weights(extra), "unexpected tensor 'model.layers.0.extra.weight'"},
      {"wrong shape", weights(wrong), "wrong shape for '" + norm_a + "'"},
      {"index names a missing shard",
       [&](const std::string& dir) {
         write_safetensors(dir + "/model-00001-of-00002.safetensors", without(norm_a));
         json map = json::object();
         for (const auto& [name, t] : tensors) map[name] = "model-00001-of-00002.safetensors";
         map[norm_a] = "model-00002-of-00002.safetensors";
         spit(dir + "/model.safetensors.index.json", json({{"weight_map", map}}).dump());
       },
       "names shard 'model-00002-of-00002.safetensors', which is not in the folder"},
  };
  for (const auto& k : cases) {
    const std::string dir = path("bad");
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(path("good/config.json"), dir + "/config.json");
    k.make(dir);
    auto target = build_module(model_params(c));
    expect_refused(k.what, [&] { load_state(*target, dir); }, dir, k.says);
    for (const auto& p : target->parameters()) EXPECT_EQ(p.abs().sum().item<double>(), 0.0) << k.what << ": changed";
  }
}

// A config.json that cannot belong to the folder's weights is refused before a model is allocated: with a
// vocab_size of 2^24 and hidden_size 2^16 the model alone would be 4 TiB of float32. Small mismatches
// are left to load_state, whose report names every tensor.
TEST_F(IoTest, ConfigThatCannotFitTheWeightsIsRefusedBeforeAllocating) {
  const ModelConfig c = small_griffin();
  auto module = build_module(model_params(c));
  save_state(*module, c, path("m"));
  EXPECT_NO_THROW(check_config_fits_weights(c, HfArch::kRecurrentGemma, path("m")));
  ModelConfig wider = c;
  wider.width = 16, wider.lru_width = 16;  // cheap to build: left to load_state's tensor-by-tensor report
  EXPECT_NO_THROW(check_config_fits_weights(wider, HfArch::kRecurrentGemma, path("m")));
  ModelConfig huge = c;
  huge.vocab_size = int64_t{1} << 24;
  huge.width = int64_t{1} << 16;
  expect_refused("huge vocab", [&] { check_config_fits_weights(huge, HfArch::kRecurrentGemma, path("m"), "cfg.json"); },
                 "cfg.json", "vocab_size x hidden_size = [16777216,65536]");
  ModelConfig deep = c;
  deep.depth = 1000, deep.mlp_hidden = 1 << 20;  // the embedding matches; 2.5e10 MLP parameters do not exist
  expect_refused("deep", [&] { check_config_fits_weights(deep, HfArch::kRecurrentGemma, path("m"), "cfg.json"); },
                 "cfg.json", "parameters but the weights");
}

}  // namespace
}  // namespace rg::io
