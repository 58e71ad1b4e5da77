// model/io/safetensors.cpp: bytes checked by an independent reader, a hand-built file, every header error.
#include "model/io/safetensors.h"

#include "tests/model/io_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <string>

namespace rg::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace io_test;

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

}  // namespace
}  // namespace rg::io
