// prepare: what users have (text files, JSONL chats, preference pairs, prompts) -> HDF5 token datasets,
// streamed (memory independent of corpus size), every bad input refused with file:line, the output
// written to a temporary file and renamed only on success. `rgemma prepare` is a thin layer over these.
#pragma once

#include "data/dataset.h"

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace rg::data {

struct PrepareProgress {
  int64_t bytes_done = 0, bytes_total = 0;  // input bytes processed (tokenized and written) / in all inputs
  int64_t examples = 0, tokens = 0;         // written so far, both splits
  bool done = false;                        // the last call
};

struct PrepareOptions {
  std::string tokenizer;              // sentencepiece model path
  std::string output;                 // the .h5 file to create (replaced atomically)
  double validation_fraction = 0.01;  // example k is held out when floor((k+1) f) > floor(k f)
  std::string document = "file";      // text files: "file" (one document each) or "block" (blank-line separated)
  std::string text_field = "text";    // JSONL text inputs: the field holding a document
  int64_t max_tokens = 0;             // chat, preference, prompts: longest example kept (0: no limit)
  std::string overlong = "drop";      // "drop" or "truncate" examples longer than max_tokens (prompts: drop)
  int threads = 0;                    // text: tokenizing threads (0: every core); the output is the same for any
  size_t segment_bytes = 0;           // text: longest piece of a document tokenized at once (0: kSegmentBytes).
                                      // Changing it changes the ids of documents longer than it; tests only.
  std::function<void(const PrepareProgress&)> progress;
};

struct PrepareSummary {
  DatasetKind kind = DatasetKind::kText;
  std::string output;
  SplitCounts train, validation;
  int64_t empty = 0;      // text documents with no text, skipped
  int64_t truncated = 0;  // over-long examples cut to max_tokens
  int64_t dropped = 0;    // over-long examples left out
  int64_t answers = 0;    // prompts: prompts kept that carry an `answer` (both splits)
  std::vector<std::string> pair_kinds;
};

// Each throws DataError (file:line for a bad example) and leaves no output behind on failure.
// Inputs may be files or directories (searched recursively, in sorted order).
PrepareSummary prepare_text(const std::vector<std::string>& inputs, const PrepareOptions& options);
PrepareSummary prepare_chat(const std::vector<std::string>& inputs, const PrepareOptions& options);
PrepareSummary prepare_preference(const std::vector<std::string>& inputs, const PrepareOptions& options);
PrepareSummary prepare_prompts(const std::vector<std::string>& inputs, const PrepareOptions& options);

// A progress bar on `out` (bytes, examples, tokens, tokens/s), redrawn in place on a terminal; otherwise one
// summary line once finished. The last line adds the process's peak resident memory.
std::function<void(const PrepareProgress&)> console_progress(std::ostream& out, const std::string& label);

// This process's peak resident memory so far (VmHWM of /proc/self/status), in bytes; -1 where unknown.
int64_t peak_resident_bytes();

// "train: 1,234 documents, 567,890 tokens; validation: ...": the summary `rgemma prepare` prints.
std::string describe(const PrepareSummary& summary);

}  // namespace rg::data
