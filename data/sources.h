// sources: what `data.train` names, as datasets made of shards. One spec gives either one dataset (a file, a
// folder of shards, a glob, or a comma-separated list of those) or a weighted mixture of named datasets
// (`web/:0.7, code/:0.2, books.h5:0.1`); ShardedReader reads one dataset's shards as one concatenated file.
// Grammar and checks: docs/data-formats.md, "Shards and mixtures".
//
//   auto sources = rg::data::parse_sources("web/:0.7, code=/data/code-*.h5:0.3");
//   rg::data::ShardedReader web(sources[0].shards, "train");  // documents of every shard, in shard order
#pragma once

#include "data/dataset.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rg::data {

struct SourceSpec {
  std::string name;                 // "web" for "web/:0.7" (NAME=... names it); "" for an unweighted spec
  std::vector<std::string> shards;  // the dataset's files, in order (folders and globs sorted)
  double weight = 1;                // as written (not normalised); 1 for an unweighted spec
};

// Parses and expands a spec: every entry PATH, PATH:WEIGHT or NAME=PATH:WEIGHT, comma-separated. Without any
// weight, all entries are the shards of one dataset; with weights, every entry is one source of a mixture.
// Throws BadDataFile (exit 2) naming the entry: a weight that is not a positive number, a weight missing on
// some entries, a path (or glob) naming no file, a folder without .h5 files, two sources of one name.
std::vector<SourceSpec> parse_sources(const std::string& spec);

// `data.stages`: the mixtures a run switches to later, as `STEP: SPEC` entries separated by ';' (SPEC as for
// data.train), e.g. "5000: books.h5:0.5, code/:0.5; 9000: books.h5:1". Stage k takes over after STEP updates.
// Throws BadDataFile (exit 2) naming the entry: no ':' after the step, a step that is not a positive integer,
// steps not increasing, an empty spec. The specs are not expanded here (parse_sources / read_sources_info).
struct StageSpec {
  int64_t step = 0;  // the stage's first batch is that of update step + 1
  std::string spec;
};
std::vector<StageSpec> parse_stages(const std::string& stages);

// The spec of one source alone (its shards, comma-separated): what a per-source validation loader reads.
std::string source_path(const SourceSpec& source);

// One split of a dataset made of shards, read as the concatenation of the shards' sequences in order (so a
// set of shards serves exactly the samples of the single file they were split from). At open every shard is
// validated (SequenceReader) and checked against the first: same kind, tokenizer id, vocabulary and special
// ids; a shard without training sequences is refused as empty. Problems: BadDataFile naming the shard.
class ShardedReader {
 public:
  ShardedReader(const std::vector<std::string>& shards, const std::string& split);
  ~ShardedReader();
  ShardedReader(ShardedReader&&) noexcept;

  const DatasetInfo& info() const;  // the first shard's, with the splits' counts summed over the shards
  int64_t size() const;             // sequences over all shards
  int64_t length(int64_t i) const;
  int64_t total_tokens() const;
  bool has_mask() const;
  void read(int64_t i, int64_t begin, int64_t end, int32_t* tokens, uint8_t* mask = nullptr) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Throws BadDataFile naming other.path when `other` cannot be read beside `first` (another kind, tokenizer,
// vocabulary or special ids).
void check_same_dataset(const DatasetInfo& first, const DatasetInfo& other);

// Every source's shards checked together: ShardedReader's checks, and across sources the same tokenizer,
// vocabulary and kind (one model reads them all). Returns the first shard's info with the counts summed over
// every shard of every source and `path` set to the spec: what a trainer checks against its model.
DatasetInfo read_sources_info(const std::string& spec);

}  // namespace rg::data
