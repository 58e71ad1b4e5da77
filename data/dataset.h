// The HDF5 token-dataset format (docs/data-formats.md): its attributes (format version, tokenizer identity,
// vocab size, special ids), the streaming writer used by `rgemma prepare` (temporary file, then rename), the
// validating reader of one sequence set, and the compatibility check a trainer runs against its model.
//
//   rg::data::DatasetInfo info = rg::data::read_dataset_info("corpus.h5");
//   rg::data::check_compatible(info, model.vocab_size, rg::data::tokenizer_id("tok.model"));
#pragma once

#include "data/data_error.h"  // DataError (exit 1), BadDataFile (exit 2)
#include "data/tokenizer.h"

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rg::data {

constexpr int64_t kFormatVersion = 1;
constexpr const char* kFormatName = "rgemma-tokens";


enum class DatasetKind { kText, kChat, kPreference, kPrompts };
std::string kind_name(DatasetKind kind);  // "text" "chat" "preference" "prompts"

// Special ids as the tokenizer model defines them; -1 where the model has none.
struct SpecialIds {
  int32_t pad = -1, eos = -1, bos = -1, unk = -1, start_of_turn = -1, end_of_turn = -1;
};
SpecialIds special_ids(const Tokenizer& tokenizer);

// "fnv1a64:<16 hex digits>" of the model file's bytes: equal files give equal ids wherever they live.
std::string tokenizer_id(const std::string& model_path);

struct TokenizerIdentity {
  std::string id, path;
  int64_t vocab_size = 0;
  SpecialIds special;
};
TokenizerIdentity identify(const Tokenizer& tokenizer);

struct SplitCounts {
  int64_t sequences = 0;  // documents, conversations, pairs or prompts
  int64_t tokens = 0;     // over all sequence sets of the split
};

struct DatasetInfo {
  std::string path;
  int64_t format_version = 0;
  DatasetKind kind = DatasetKind::kText;
  TokenizerIdentity tokenizer;
  double validation_fraction = 0;
  SplitCounts train, validation;
  std::vector<std::string> pair_kinds;  // preference sets: names indexed by the `kind` dataset
  std::string created_by;
};

// Opens `path` and validates that it is an rgemma token dataset this build reads: throws BadDataFile (exit 2)
// naming the path for a missing, non-regular, truncated, foreign or too-new file, and naming the attribute
// for one missing, of the wrong type or out of range (docs/data-formats.md lists every check).
DatasetInfo read_dataset_info(const std::string& path);

// Refuses a dataset whose vocabulary or tokenizer differ from the model's, both values in the message.
// An empty model_tokenizer_id skips the tokenizer comparison (the model's tokenizer is unknown).
void check_compatible(const DatasetInfo& info, int64_t model_vocab_size, const std::string& model_tokenizer_id = "");

// Streams sequences into a new dataset file. Everything goes to `<path>.tmp-<pid>`; commit() renames it to
// `path`, and destruction without commit() deletes it, so a failed prepare leaves no partial output.
class DatasetWriter {
 public:
  DatasetWriter(const std::string& path, DatasetKind kind, const TokenizerIdentity& tokenizer,
                double validation_fraction, const std::string& created_by);
  ~DatasetWriter();
  DatasetWriter(const DatasetWriter&) = delete;
  DatasetWriter& operator=(const DatasetWriter&) = delete;

  // Appends one sequence to the set `set` ("" for text/chat; "prompt", "chosen", "rejected" for
  // preference; "prompt" for prompts) of split `validation` ? "validation" : "train". A mask (chat) must
  // have one entry per token and is stored as `loss_mask`.
  void add(bool validation, const std::string& set, const std::vector<int32_t>& tokens,
           const std::vector<uint8_t>* mask = nullptr);
  // The same in parts, for sets without a mask (a long text document streamed as it is tokenized):
  // append() any number of times, then end_sequence().
  void append(bool validation, const std::string& set, const int32_t* tokens, size_t n);
  void end_sequence(bool validation, const std::string& set);
  // Ends one example: counts it, and for preference sets records its kind (index into pair_kinds) and its
  // margin (NaN for none; the caller refuses non-finite margins from the input).
  void end_example(bool validation, int32_t pair_kind = -1, double margin = std::numeric_limits<double>::quiet_NaN());
  // Prompt sets: the reference answer of the prompt of the same split added last (std::nullopt: none), one call
  // per prompt (commit() checks), stored as UTF-8 bytes under /SPLIT/answer.
  void add_answer(bool validation, const std::optional<std::string>& answer);
  SplitCounts counts(bool validation) const;
  void commit(const std::vector<std::string>& pair_kinds = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One sequence set of a dataset file: `tokens` (int32), `offsets` (int64, sequences + 1) and, for chat,
// `loss_mask` (uint8, required). At open: the stored types, the kind's datasets, offsets, lengths and the
// split's counts are validated, and the mask's values when it is small enough; tokens are read on demand,
// each id checked against the vocabulary and each mask value against {0, 1}. Problems: BadDataFile.
class SequenceReader {
 public:
  SequenceReader(const std::string& path, const std::string& split, const std::string& set = "");
  ~SequenceReader();
  SequenceReader(SequenceReader&&) noexcept;

  const DatasetInfo& info() const;
  int64_t size() const;  // number of sequences
  int64_t length(int64_t i) const;
  int64_t total_tokens() const;
  bool has_mask() const;
  // Tokens [begin, end) of sequence i (and their mask when mask != nullptr and the set has one).
  void read(int64_t i, int64_t begin, int64_t end, int32_t* tokens, uint8_t* mask = nullptr) const;
  std::vector<int32_t> tokens(int64_t i) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Small sets read whole (RLHF prompt and preference sets are thousands of examples, not billions of tokens).
struct PreferencePair {
  std::vector<int32_t> prompt;    // <bos> + turns + "<start_of_turn>model\n"
  std::vector<int32_t> chosen;    // completion content + <end_of_turn>
  std::vector<int32_t> rejected;  // same, for the rejected completion
  std::string kind;               // empty when the source gave none
  std::optional<double> margin;   // the source's `margin` field (finite), if it gave one
};
std::vector<PreferencePair> read_preference(const std::string& path, const std::string& split = "train");
std::vector<std::vector<int32_t>> read_prompts(const std::string& path, const std::string& split = "train");

// A prompt set with its reference answers (the JSONL `answer` field, for verifiable rewards such as GRPO's).
struct PromptSet {
  std::vector<std::vector<int32_t>> prompts;          // as read_prompts
  std::vector<std::optional<std::string>> answers;    // one per prompt: its answer's UTF-8 text, or none
  int64_t answered = 0;                               // prompts with an answer (0 in files from before answers)
  bool has_answers() const { return answered > 0; }
};
PromptSet read_prompt_set(const std::string& path, const std::string& split = "train");

}  // namespace rg::data
