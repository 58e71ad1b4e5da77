// Fixtures the data tests build themselves: a scratch folder, and a real sentencepiece model trained (once
// per process) on generated English-like text with the flags `rgemma tokenizer train` uses.
#pragma once

#include "data/prepare.h"
#include "data/tokenizer.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace rg::data::test {

namespace fs = std::filesystem;

// A fresh folder under the temp directory, removed when the test process exits.
inline fs::path scratch_dir(const std::string& name) {
  struct Cleanup {
    std::vector<fs::path> dirs;
    ~Cleanup() {
      std::error_code ec;
      for (const auto& d : dirs) fs::remove_all(d, ec);
    }
  };
  static Cleanup cleanup;
  const fs::path dir = fs::temp_directory_path() / ("rg_data_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  cleanup.dirs.push_back(dir);
  return dir;
}

inline void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// A sentence of generated words; every word is in the tokenizer's training text.
inline std::string sentence(std::mt19937& rng, int words = 8) {
  static const std::vector<std::string> vocab = {
      "the", "whale", "ship", "sea", "captain", "harpoon", "white", "deep", "sailor", "wind", "storm", "boat",
      "ocean", "call", "me", "Ishmael", "years", "ago", "never", "mind", "how", "long", "precisely", "little",
      "money", "in", "my", "purse", "and", "nothing", "particular", "to", "interest", "on", "shore"};
  std::string s;
  for (int w = 0; w < words; ++w) s += (w ? " " : "") + vocab[rng() % vocab.size()];
  return s + ".";
}

inline const std::string& tokenizer_path() {
  static const std::string path = [] {
    const fs::path dir = scratch_dir("tokenizer");
    std::mt19937 rng(11);
    std::ofstream corpus(dir / "corpus.txt");
    for (int line = 0; line < 3000; ++line) corpus << sentence(rng, 10) << "\n";
    corpus << "user\nmodel\nsystem\nWhat is a whale? A large sea animal. Why? Because. 0123456789\n";
    corpus.close();
    Tokenizer::train_raw(gemma_training_flags((dir / "corpus.txt").string(), (dir / "tok").string(), 320),
                         (dir / "train.log").string());
    return (dir / "tok.model").string();
  }();
  return path;
}

inline const Tokenizer& tokenizer() {
  static const Tokenizer tok = Tokenizer::load(tokenizer_path());
  return tok;
}

// Prepare options writing `out` with the test tokenizer and no validation split.
inline PrepareOptions prepare_options(const fs::path& out) {
  PrepareOptions o;
  o.tokenizer = tokenizer_path();
  o.output = out.string();
  o.validation_fraction = 0;
  return o;
}

}  // namespace rg::data::test
