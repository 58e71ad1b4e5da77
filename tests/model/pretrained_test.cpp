// Hugging Face folders of a real Griffin: save -> load gives identical tensors and logits (Griffin and the
// Gemma baseline), bf16 storage, a folder for another shape is refused naming the tensors (before allocating
// when the config is far larger than the weights), and `rgemma logits` (the command users run to check
// parity) writes the in-process forward's logits (to float32 summation order). The folder format itself
// (names, shards, re-saving a loaded model, refusals) is tested in hf_checkpoint_test.cpp.
#include "model/pretrained.h"

#include "model/io/hf_config.h"
#include "model/io/safetensors.h"
#include "tests/float_tolerance.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace rg {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("rg_pretrained_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir.parent_path());
  return dir;
}

ModelConfig small_config() {
  ModelConfig c = ModelConfig::preset("tiny");
  c.depth = 4;  // recurrent, recurrent, attention, recurrent
  return c;
}

// What is load_pretrained's own: it builds the model config.json describes (the architecture read from it,
// the parameters left uninitialised) and fills every parameter, so the reloaded model computes the same logits.
TEST(Pretrained, RoundTripIsExact) {
  ModelConfig gemma = ModelConfig::preset("gemma-2b");  // all-attention, global: saved as HF Gemma
  gemma.vocab_size = 256, gemma.width = 32, gemma.depth = 2, gemma.num_heads = 2, gemma.head_dim = 16;
  gemma.mlp_hidden = 48;
  for (const ModelConfig& c : {small_config(), gemma}) {
    const std::string what = c.all_attention() ? "gemma" : "griffin";
    torch::manual_seed(1);
    Griffin model(c);
    const fs::path a = temp_dir(what);
    save_pretrained(model, a.string());
    Griffin reloaded = load_pretrained(a.string());
    EXPECT_EQ(reloaded->config().depth, c.depth) << what;
    io::HfArch arch;
    io::read_hf_config(a.string(), &arch);
    EXPECT_EQ(arch == io::HfArch::kGemma, c.all_attention()) << what << ": config.json's model_type";
    const auto p0 = model->named_parameters(), p1 = reloaded->named_parameters();
    ASSERT_EQ(p0.size(), p1.size()) << what;
    for (const auto& item : p0) EXPECT_TRUE(torch::equal(item.value(), p1[item.key()])) << what << " " << item.key();
    const torch::Tensor tokens = torch::randint(256, {2, 20}, torch::kLong);
    const torch::Tensor pos = torch::arange(20, torch::kLong).repeat({2, 1});
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(model(tokens, pos), reloaded(tokens, pos))) << what;
  }
}

TEST(Pretrained, Bfloat16FolderLoadsAsEitherDtype) {
  torch::manual_seed(2);
  Griffin model(small_config());
  const fs::path dir = temp_dir("bf16");
  save_pretrained(model, dir.string(), torch::kBFloat16);
  Griffin as_bf16 = load_pretrained(dir.string(), torch::kBFloat16);
  Griffin as_f32 = load_pretrained(dir.string(), torch::kFloat);
  EXPECT_EQ(as_bf16->dtype(), torch::kBFloat16);
  const torch::Tensor expected = model->embed_tokens->weight.to(torch::kBFloat16);
  EXPECT_TRUE(torch::equal(as_bf16->embed_tokens->weight, expected));
  EXPECT_TRUE(torch::equal(as_f32->embed_tokens->weight, expected.to(torch::kFloat)));
}

TEST(Pretrained, MismatchedFolderNamesEveryTensor) {
  torch::manual_seed(3);
  ModelConfig wide = small_config();
  Griffin model(wide);
  const fs::path dir = temp_dir("mismatch");
  save_pretrained(model, dir.string());
  // Same config.json but weights of a narrower model: every tensor's shape is wrong.
  ModelConfig narrow = wide;
  narrow.width = 32;
  Griffin other(narrow);
  rg::io::TensorMap tensors;
  for (const auto& item : other->named_parameters()) tensors["model." + item.key()] = item.value().detach();
  rg::io::write_safetensors((dir / "model.safetensors").string(), tensors);
  try {
    load_pretrained(dir.string());
    FAIL() << "expected an error";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.embed_tokens.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.layers.2.temporal_block.q_proj.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("64"), std::string::npos) << msg;
  }
}

// A config.json whose vocab_size (2^24, within the limits) cannot match the stored embedding [256, 64] is
// refused before the 4 GB model it describes is allocated, naming the file and both shapes.
TEST(Pretrained, HugeConfigIsRefusedBeforeAllocating) {
  torch::manual_seed(5);
  Griffin model(small_config());
  const fs::path dir = temp_dir("huge");
  save_pretrained(model, dir.string());
  std::ifstream in(dir / "config.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string key = "\"vocab_size\": 256";
  ASSERT_NE(text.find(key), std::string::npos) << text;
  text.replace(text.find(key), key.size(), "\"vocab_size\": 16777216");
  std::ofstream(dir / "config.json", std::ios::trunc) << text;
  try {
    load_pretrained(dir.string());
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find((dir / "config.json").string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("[16777216,64] but 'model.embed_tokens.weight' in model.safetensors is [256,64]"),
              std::string::npos) << msg;
  }
}

TEST(Pretrained, LogitsCommandWritesTheForwardPass) {
  torch::manual_seed(4);
  Griffin model(small_config());
  const fs::path dir = temp_dir("cli");
  save_pretrained(model, (dir / "model").string());
  const torch::Tensor tokens = torch::randint(256, {2, 30}, torch::kInt);
  torch::Tensor pos = torch::arange(30, torch::kInt).repeat({2, 1});
  pos[1].narrow(0, 11, 19).copy_(torch::arange(19, torch::kInt));  // a second document in row 1
  rg::io::write_safetensors((dir / "in.safetensors").string(), {{"tokens", tokens}, {"segment_pos", pos}});
  const std::string cmd = std::string(RG_RGEMMA) + " logits --model " + (dir / "model").string() + " --input " +
                          (dir / "in.safetensors").string() + " --output " + (dir / "out.safetensors").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const torch::Tensor logits = rg::io::read_safetensors((dir / "out.safetensors").string()).at("logits");
  torch::NoGradGuard no_grad;
  const torch::Tensor expected = model(tokens.to(torch::kLong), pos.to(torch::kLong));
  ASSERT_EQ(logits.sizes(), expected.sizes());
  // `rgemma logits` runs in another process with its own thread count, so its matmuls may sum in another
  // order: two float32 evaluations of the model (|logits| <= 30, the soft cap; longest sum 192, the MLP;
  // 4 blocks x 3 sums + the head).
  EXPECT_LT((logits - expected).abs().max().item<double>(), test::float32_vs_float32(30.0, 192, 13));
}

}  // namespace
}  // namespace rg
