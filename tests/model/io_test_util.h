// Shared by the model/io tests (safetensors, hf_config, hf_checkpoint, input_file): the IoTest fixture
// (a fresh temporary folder per test), byte helpers that use no code under test, and the Hub's config.json.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

// A named namespace, not an anonymous one: every file's TEST_F(IoTest, ...) must see the same fixture class.
namespace rg::io::io_test {

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("rg_io_test." + std::to_string(::getpid()) + "." + info->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
inline void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}
// A safetensors file from a header string and raw data, built by hand (no code under test).
inline std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((static_cast<uint64_t>(header.size()) >> (8 * i)) & 0xFF);
  return out + header + data;
}
inline bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.numel() * x.element_size()) == 0;
}
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

// `f` throws a one-line message that names `names` and says `says`.
inline void expect_refused(const std::string& what, const std::function<void()>& f, const std::string& names,
                           const std::string& says) {
  const std::string e = error_of(f);
  EXPECT_NE(e, "(no error)") << what;
  EXPECT_NE(e.find(names), std::string::npos) << what << ": message does not name " << names << ": " << e;
  EXPECT_NE(e.find(says), std::string::npos) << what << ": message lacks '" << says << "': " << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << what << ": not one line: " << e;
}

// The config.json as the Hub serves it (google/recurrentgemma-2b).
inline constexpr char kHubRecurrentGemma2b[] = R"({
  "architectures": ["RecurrentGemmaForCausalLM"], "attention_bias": false, "attention_window_size": 2048,
  "block_types": ["recurrent", "recurrent", "attention"], "bos_token_id": 2, "conv1d_width": 4,
  "embeddings_scale_by_sqrt_dim": true, "eos_token_id": 1, "final_w_init_variance_scale": 0.07692307692307693,
  "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2560, "intermediate_size": 15360,
  "logits_soft_cap": 30.0, "lru_width": 2560, "model_type": "recurrent_gemma", "num_attention_heads": 10,
  "num_hidden_layers": 26, "num_key_value_heads": 1, "pad_token_id": 0, "partial_rotary_factor": 0.5,
  "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "torch_dtype": "float32", "transformers_version": "4.40.0.dev0",
  "vocab_size": 256000, "w_init_variance_scale": 0.01})";

}  // namespace rg::io::io_test
