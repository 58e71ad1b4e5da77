// Tokenizer: any sentencepiece model (Gemma's tokenizer.model or one trained here), used through the
// dlopen'd shim so that processes running LibTorch can tokenize (see sentencepiece_shim.h for why).
// Special ids are read from the model file, never hard-coded.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rg {

class Tokenizer {
 public:
  // Loads a sentencepiece model; throws data::BadDataFile (exit 2) naming the path when it is not a regular
  // file or not a model.
  static Tokenizer load(const std::string& model_path);
  // Runs sentencepiece's trainer (`spm_train`, or $RG_SPM_TRAIN) as a child process with the given
  // flags, e.g. {"--input=a.txt", "--model_prefix=out/tok", "--vocab_size=4000"}. Its log goes to
  // `log_path`; on failure the error carries the log's last lines.
  static void train_raw(const std::vector<std::string>& flags, const std::string& log_path);

  std::vector<int32_t> encode(std::string_view text) const;  // no BOS / EOS added
  std::string decode(const std::vector<int32_t>& ids) const;
  int32_t piece_to_id(const std::string& piece) const;  // -1 when not in the vocabulary
  std::string id_to_piece(int32_t id) const;
  bool is_special(int32_t id) const;  // control or user-defined piece such as <end_of_turn>

  int32_t vocab_size() const { return vocab_size_; }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t unk_id() const { return unk_id_; }
  const std::string& path() const { return path_; }

 private:
  struct Handle;
  std::shared_ptr<Handle> handle_;
  std::string path_;
  int32_t vocab_size_ = 0, bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, unk_id_ = -1;
};

// Flags for train_raw() giving Gemma's layout: pad 0, eos 1, bos 2, unk 3 (pieces <pad> <eos> <bos> <unk>),
// <start_of_turn>/<end_of_turn> as single user-defined pieces, byte fallback, and identity normalisation
// with whitespace kept and no dummy prefix, so decode(encode(text)) == text. `inputs` is comma-separated.
std::vector<std::string> gemma_training_flags(const std::string& inputs, const std::string& model_prefix,
                                              int64_t vocab_size, const std::string& model_type = "unigram",
                                              int64_t input_sentence_size = 2000000);

// Where librg_sentencepiece.so is looked for: $RG_SENTENCEPIECE_SHIM, else next to librg_data.so.
std::string sentencepiece_shim_path();

}  // namespace rg
