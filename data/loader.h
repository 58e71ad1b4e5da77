// Loader: hands each rank its share of (tokens, targets, segment_pos, loss_mask) micro-batches from a text
// or chat dataset, deterministically from (seed, epoch), read ahead on a background thread.
//
// A "sample" is one row of seq_len positions (docs/data-formats.md): packed, the k-th seq_len-window of the
// epoch's shuffled document stream; unpacked, one whole (truncated, padded) document. The cursor counts
// global samples: each next() consumes samples [cursor, cursor + micro_batch * world_size) and rank r
// takes the contiguous block [cursor + r * micro_batch, cursor + (r + 1) * micro_batch). So world size 2
// covers exactly what world size 1 covers in two steps, and seek(cursor) resumes at any world size.
//
//   rg::data::LoaderOptions o;
//   o.path = "corpus.h5", o.rank = r, o.world_size = n, o.seq_len = 2048, o.micro_batch = 4;
//   rg::data::Loader loader(o);
//   rg::data::Batch b = loader.next();   // b.tokens: (micro_batch, seq_len)
#pragma once

#include "data/dataset.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rg::data {

struct Batch {                       // one micro-batch, row-major (rows, seq)
  int64_t rows = 0, seq = 0;
  std::vector<int32_t> tokens;       // (rows, seq) input ids
  std::vector<int32_t> targets;      // (rows, seq) next-token ids; pad id where there is no target
  std::vector<int32_t> segment_pos;  // (rows, seq) position inside its document, restarting at 0 per document
  std::vector<float> loss_mask;      // (rows, seq) 1 where the target counts (pretraining: every real next
                                     // token inside a document; SFT: model-turn content + <end_of_turn>)
};

// Samples and tokens (samples x seq_len) one source has served up to the cursor, all ranks together.
struct SourceUsage {
  std::string name;  // "" for a dataset that is not a mixture
  double weight = 1;
  uint64_t samples = 0;
  int64_t tokens = 0;
  uint64_t stage_samples = 0;  // of those, served in the current stage (samples - the stage's base)
  int64_t stage_tokens = 0;
};

struct LoaderOptions {
  std::string path;               // data.train: a dataset, shards, or a weighted mixture (data/sources.h)
  int rank = 0, world_size = 1;
  int64_t seq_len = 0, micro_batch = 0;
  uint64_t seed = 0;              // document order of epoch e is a permutation seeded by (seed, e)
  bool pack = true;               // false: one document per row, truncated to seq_len, padded with pad id
  bool shuffle = true;            // false: documents in file order every epoch (validation)
  std::string split = "train";    // or "validation"
  int prefetch = 2;               // micro-batches read ahead (0: read in next() on the caller's thread)
};

class Loader {
 public:
  explicit Loader(LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  Batch next();                  // this rank's next micro-batch
  uint64_t cursor() const;       // global samples consumed so far (same value on every rank)
  void seek(uint64_t cursor);    // resume: the next next() starts at global sample `cursor`

  // Mixtures: global sample g is drawn from source k with probability weight_k / sum of weights (a hash of
  // (seed, stage, g), so every rank and world size agrees), and is that source's next sample. The position for
  // a checkpoint: {"cursor", "sources": {name: samples}, "weights": {name: w}, "stage": {"start", "index",
  // "base": {name: samples}}}. restore() of a state from the same mixture is seek(cursor) (exact at any world
  // size); from another one (data.train changed) it starts a new stage at the saved cursor in which each source
  // continues from the samples it had served (a source of an earlier stage from its count in `history`, 0 for a
  // new one); the stage that ends joins "history" as {index, start, end, sources: {name: samples served by the
  // end}, stage_samples: {name: samples served within it}}. Returns a line describing a switch, else "".
  nlohmann::json state() const;
  std::string restore(const nlohmann::json& state);
  std::vector<SourceUsage> usage() const;  // per source, at the cursor
  uint64_t stage() const;                  // 0, +1 at each switch of mixture on restore()

  int64_t vocab_size() const;
  std::string tokenizer_id() const;
  const DatasetInfo& info() const;
  int64_t samples_per_epoch() const;  // packed: floor(split tokens / seq_len); unpacked: documents (mixtures:
                                      // summed over the sources, so epoch() is approximate there)
  uint64_t epoch() const { return cursor() / static_cast<uint64_t>(samples_per_epoch()); }

  // The rows of global samples [first, first + count), read on the caller's thread (what the prefetch
  // thread runs; also direct access for tests and evaluation).
  Batch samples(uint64_t first, int64_t count) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The permutation of [0, n) used for epoch `epoch`: Fisher-Yates driven by splitmix64 (identical on every
// platform and standard library, unlike std::shuffle).
std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, uint64_t epoch);

// Item g of an endless stream over n items: epoch g / n, position g % n of that epoch's permutation. Keeps the
// current epoch's permutation. Used where whole examples (preference pairs, prompts) are drawn in order.
class EpochOrder {
 public:
  EpochOrder(int64_t n, uint64_t seed) : n_(n), seed_(seed) {}
  int64_t at(uint64_t g) {
    const uint64_t epoch = g / static_cast<uint64_t>(n_);
    if (epoch != epoch_ || perm_.empty()) perm_ = epoch_permutation(n_, seed_, epoch), epoch_ = epoch;
    return perm_[g % static_cast<uint64_t>(n_)];
  }

 private:
  int64_t n_;
  uint64_t seed_, epoch_ = 0;
  std::vector<int64_t> perm_;
};

}  // namespace rg::data
