// model/io/hf_checkpoint.cpp: HF names (docs/architecture.md §12), weights folders, load_state / save_state.
#include "model/io/hf_checkpoint.h"
#include "model/io/hf_config.h"
#include "model/io/safetensors.h"
#include "model/griffin.h"

#include "tests/model/io_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace rg::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace io_test;

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

// The real model carries exactly the names and shapes of docs/architecture.md §12 that model_params() lists, so
// the tests above, on modules built from that list, stand for it. Saving a real model and loading it back
// (same tensors, same logits, Griffin and Gemma) is Pretrained.RoundTripIsExact in pretrained_test.cpp.
TEST_F(IoTest, GriffinCarriesTheHfNamesAndShapes) {
  for (const ModelConfig& c : {small_griffin(), small_gemma()}) {
    const std::string what = c.all_attention() ? "gemma" : "griffin";
    torch::manual_seed(10);
    Griffin a(c);
    std::map<std::string, std::vector<int64_t>> expected, actual;
    for (const auto& [name, shape] : model_params(c)) expected[name] = shape;
    for (const auto& item : a->named_parameters()) actual[item.key()] = item.value().sizes().vec();
    EXPECT_EQ(actual, expected) << what;
  }
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
