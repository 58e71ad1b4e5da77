// The sentencepiece shim inside a process that also runs LibTorch (linking both directly segfaults before
// main). A real model is trained here on generated text, then loaded, and must round-trip text.
#include "data/tokenizer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace rg {
namespace {

namespace fs = std::filesystem;

// Trains a small model with Gemma's special-id layout; shared by the tests below.
std::string trained_model() {
  static std::string path = [] {
    const fs::path dir = fs::temp_directory_path() / ("rg_tok_test_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const std::vector<std::string> words = {"the", "whale", "ship", "sea", "captain", "harpoon", "white",
                                            "deep", "sailor", "wind", "storm", "boat", "ocean", "call"};
    std::mt19937 rng(7);
    std::ofstream corpus(dir / "corpus.txt");
    for (int line = 0; line < 2000; ++line) {
      for (int w = 0; w < 12; ++w) corpus << words[rng() % words.size()] << (w == 11 ? ".\n" : " ");
    }
    corpus.close();
    Tokenizer::train_raw({"--input=" + (dir / "corpus.txt").string(), "--model_prefix=" + (dir / "tok").string(),
                          "--vocab_size=300", "--model_type=unigram", "--byte_fallback=true", "--pad_id=0",
                          "--eos_id=1", "--bos_id=2", "--unk_id=3", "--add_dummy_prefix=false",
                          "--remove_extra_whitespaces=false",
                          "--user_defined_symbols=<start_of_turn>,<end_of_turn>"},
                         (dir / "train.log").string());
    return (dir / "tok.model").string();
  }();
  return path;
}

TEST(Tokenizer, LoadsInsideALibTorchProcessAndRoundTrips) {
  const torch::Tensor t = torch::arange(6, torch::kFloat).reshape({2, 3}).matmul(torch::ones({3, 1}));
  ASSERT_FLOAT_EQ(t.sum().item<float>(), 15.0f);  // LibTorch is live in this process
  const Tokenizer tok = Tokenizer::load(trained_model());
  EXPECT_EQ(tok.vocab_size(), 300);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  const std::string text = "the white whale called the captain of the ship";
  const std::vector<int32_t> ids = tok.encode(text);
  EXPECT_FALSE(ids.empty());
  EXPECT_EQ(tok.decode(ids), text);
  // Bytes never seen in training survive through byte fallback.
  EXPECT_EQ(tok.decode(tok.encode("Ahab: 42 é")), "Ahab: 42 é");
}

TEST(Tokenizer, TurnMarkersAreSinglePieces) {
  const Tokenizer tok = Tokenizer::load(trained_model());
  const int32_t start = tok.piece_to_id("<start_of_turn>");
  ASSERT_GE(start, 0);
  EXPECT_TRUE(tok.is_special(start));
  const auto ids = tok.encode("<start_of_turn>user");
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], start);
  EXPECT_EQ(tok.id_to_piece(start), "<start_of_turn>");
  EXPECT_EQ(tok.piece_to_id("<no_such_piece>"), -1);
  EXPECT_THROW(tok.id_to_piece(100000), std::out_of_range);
}

TEST(Tokenizer, MissingOrForeignFileNamesThePath) {
  const std::string bogus = (fs::temp_directory_path() / "rg_not_a_model.txt").string();
  std::ofstream(bogus) << "hello";
  try {
    Tokenizer::load(bogus);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(bogus), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace rg
