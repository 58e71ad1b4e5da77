// `rgemma tokenizer train`: a sentencepiece model with Gemma's special-id layout (pad 0, eos 1, bos 2,
// unk 3), <start_of_turn>/<end_of_turn> as single pieces and byte fallback, checked after training and
// moved into place only when it passes.
#include "configs/options.h"
#include "data/tokenizer.h"
#include "tools/command.h"
#include "tools/model_source.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <stdexcept>

namespace {

namespace fs = std::filesystem;

void verify(const rg::Tokenizer& tok) {
  const int32_t start = tok.piece_to_id("<start_of_turn>"), end = tok.piece_to_id("<end_of_turn>");
  if (tok.pad_id() != 0 || tok.eos_id() != 1 || tok.bos_id() != 2 || tok.unk_id() != 3 || start < 0 || end < 0 ||
      tok.encode("<start_of_turn>") != std::vector<int32_t>{start} ||
      tok.encode("<end_of_turn>") != std::vector<int32_t>{end}) {
    throw std::runtime_error("the trained model lacks Gemma's special-id layout (pad 0, eos 1, bos 2, unk 3, "
                             "single-piece turn markers)");
  }
}

int run_tokenizer(int argc, char** argv) {
  const std::string verb = argc >= 2 ? argv[1] : "";
  if (verb != "train") throw rg::config::ConfigError("expected 'train' after 'tokenizer', got '" + verb + "'");
  const std::string command = std::string(argv[0]) + " train";
  rg::config::Options options(command, "Train a sentencepiece tokenizer with Gemma's special tokens.");
  std::vector<std::string> inputs;
  std::string output, model_type = "unigram";
  int64_t vocab = 8000, sentences = 2000000;
  options.add("input", &inputs, "text files, one sentence per line")
      .add("vocab-size", &vocab, "number of pieces, special tokens included")
      .add("output", &output, "model file to write, e.g. tok.model (a .vocab file goes beside it)")
      .add("model-type", &model_type, "unigram or bpe")
      .add("input-sentence-size", &sentences, "lines sampled from the inputs for training")
      .required("input").required("output");
  std::vector<const char*> args = {command.c_str()};
  for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
  if (!options.parse(static_cast<int>(args.size()), args.data())) return 0;
  if (vocab < 16) options.fail("vocab-size", "expected at least 16");
  if (model_type != "unigram" && model_type != "bpe") options.fail("model-type", "expected unigram or bpe");
  std::string joined;
  for (const auto& in : inputs) {
    rg::tools::require_input_file(in, "input");  // a FIFO or folder would hang or fail inside sentencepiece
    joined += (joined.empty() ? "" : ",") + in;
  }

  // Train into a scratch folder beside the output so that a failure leaves nothing at `output`.
  const fs::path scratch = output + ".tmp-" + std::to_string(::getpid());
  fs::create_directories(scratch);
  try {
    rg::Tokenizer::train_raw(rg::gemma_training_flags(joined, (scratch / "tok").string(), vocab, model_type, sentences),
                             (scratch / "train.log").string());
    verify(rg::Tokenizer::load((scratch / "tok.model").string()));
    fs::rename(scratch / "tok.model", output);
    fs::rename(scratch / "tok.vocab", fs::path(output).replace_extension(".vocab"));
    fs::remove_all(scratch);
  } catch (...) {
    fs::remove_all(scratch);
    throw;
  }
  const rg::Tokenizer tok = rg::Tokenizer::load(output);
  std::cout << output << ": " << tok.vocab_size() << " pieces (" << model_type << "), pad " << tok.pad_id()
            << " eos " << tok.eos_id() << " bos " << tok.bos_id() << " unk " << tok.unk_id()
            << " <start_of_turn> " << tok.piece_to_id("<start_of_turn>") << " <end_of_turn> "
            << tok.piece_to_id("<end_of_turn>") << ", byte fallback\n";
  return 0;
}

}  // namespace

RG_COMMAND("tokenizer", "train a sentencepiece tokenizer with Gemma's special tokens", run_tokenizer);
