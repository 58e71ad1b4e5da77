// The token-dataset format: writer (temporary file + rename), validating reader, dataset info and the
// model-compatibility check. The layout itself is documented in docs/data-formats.md.
#include "data/dataset.h"

#include "data/h5.h"
#include "data/text.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace rg::data {
namespace {

namespace fs = std::filesystem;

const char* split_name(bool validation) { return validation ? "validation" : "train"; }

// The sequence sets each kind of dataset holds, and whether they carry a loss mask.
std::vector<std::pair<std::string, bool>> sets_of(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kText: return {{"", false}};
    case DatasetKind::kChat: return {{"", true}};
    case DatasetKind::kPreference: return {{"prompt", false}, {"chosen", false}, {"rejected", false}};
    case DatasetKind::kPrompts: return {{"prompt", false}};
  }
  return {};
}

DatasetKind parse_kind(const std::string& name, const std::string& where) {
  for (DatasetKind k : {DatasetKind::kText, DatasetKind::kChat, DatasetKind::kPreference, DatasetKind::kPrompts}) {
    if (kind_name(k) == name) return k;
  }
  throw BadDataFile(where + ": unknown dataset kind '" + name + "'");
}

// Opens an existing dataset file read-only, telling apart missing, foreign and truncated files.
h5::Handle open_file(const std::string& path) {
  h5::quiet();
  require_regular_file(path, "an rgemma HDF5 dataset");
  std::lock_guard<std::recursive_mutex> g(h5::lock());
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    throw BadDataFile(path + ": not an HDF5 file (no HDF5 signature: a foreign or truncated file)");
  }
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) throw BadDataFile(path + ": cannot open as HDF5 (the file is truncated or damaged)");
  return file;
}

DatasetInfo read_info(hid_t file, const std::string& path) {
  const hid_t root = file;
  if (!h5::has_attr(root, "format")) {
    throw BadDataFile(path + ": not an rgemma token dataset (an HDF5 file without the 'format' attribute)");
  }
  const std::string format = h5::read_string_attr(root, "format", path);
  if (format != kFormatName) {
    throw BadDataFile(path + ": not an rgemma token dataset (format '" + format + "', expected '" + kFormatName + "')");
  }
  DatasetInfo info;
  info.path = path;
  info.format_version = h5::read_int_attr(root, "format_version", path);
  if (info.format_version > kFormatVersion || info.format_version < 1) {
    throw BadDataFile(path + ": format version " + std::to_string(info.format_version) +
                    " is not one this build reads (1.." + std::to_string(kFormatVersion) + ")");
  }
  info.kind = parse_kind(h5::read_string_attr(root, "kind", path), path);
  info.tokenizer.id = h5::read_string_attr(root, "tokenizer_id", path);
  info.tokenizer.path = h5::read_string_attr(root, "tokenizer_path", path);
  // Token ids are int32 on disk and in batches, so the vocabulary must fit one.
  info.tokenizer.vocab_size = h5::read_int_attr(root, "vocab_size", path);
  if (info.tokenizer.vocab_size < 1 || info.tokenizer.vocab_size > std::numeric_limits<int32_t>::max()) {
    throw BadDataFile(path + ": attribute 'vocab_size' is " + std::to_string(info.tokenizer.vocab_size) +
                      ", expected 1 to 2147483647");
  }
  // A special id is -1 (the tokenizer has none) or a token of the vocabulary; the kinds' own pieces must exist
  // (prepare refuses tokenizers without them), so a file without them was not written by it.
  const bool chat = info.kind == DatasetKind::kChat || info.kind == DatasetKind::kPreference ||
                    info.kind == DatasetKind::kPrompts;
  auto id = [&](const char* name, bool required) {
    const int64_t v = h5::read_int_attr(root, name, path);
    if (v < (required ? 0 : -1) || v >= info.tokenizer.vocab_size) {
      throw BadDataFile(path + ": attribute '" + name + "' is " + std::to_string(v) + ", expected " +
                        (required ? "" : "-1 (none) or ") + "0 to vocab_size - 1 (" +
                        std::to_string(info.tokenizer.vocab_size - 1) + ")" +
                        (required ? " for a " + kind_name(info.kind) + " dataset" : ""));
    }
    return static_cast<int32_t>(v);
  };
  info.tokenizer.special = {id("pad_id", false), id("eos_id", false), id("bos_id", true), id("unk_id", false),
                            id("start_of_turn_id", chat), id("end_of_turn_id", chat)};
  info.validation_fraction = h5::read_double_attr(root, "validation_fraction", path);
  if (!(info.validation_fraction >= 0 && info.validation_fraction < 1)) {  // NaN fails both
    throw BadDataFile(path + ": attribute 'validation_fraction' is " + std::to_string(info.validation_fraction) +
                      ", expected a fraction in [0, 1)");
  }
  info.created_by = h5::read_string_attr(root, "created_by", path);
  for (bool validation : {false, true}) {
    h5::Handle group = h5::open_group(root, split_name(validation), path);
    const std::string where = path + ":/" + split_name(validation);
    SplitCounts& c = validation ? info.validation : info.train;
    c.sequences = h5::read_int_attr(group.get(), "sequences", where);
    c.tokens = h5::read_int_attr(group.get(), "tokens", where);
    if (c.sequences < 0 || c.tokens < 0) {
      throw BadDataFile(where + ": negative attribute 'sequences' or 'tokens' (" + std::to_string(c.sequences) +
                        ", " + std::to_string(c.tokens) + ")");
    }
  }
  if (h5::has_attr(root, "pair_kinds")) {
    std::stringstream s(h5::read_string_attr(root, "pair_kinds", path));
    for (std::string k; std::getline(s, k);) info.pair_kinds.push_back(k);
  }
  return info;
}

}  // namespace

std::string kind_name(DatasetKind kind) {
  switch (kind) {
    case DatasetKind::kText: return "text";
    case DatasetKind::kChat: return "chat";
    case DatasetKind::kPreference: return "preference";
    case DatasetKind::kPrompts: return "prompts";
  }
  return "?";
}

SpecialIds special_ids(const Tokenizer& tokenizer) {
  SpecialIds s;
  s.pad = tokenizer.pad_id(), s.eos = tokenizer.eos_id(), s.bos = tokenizer.bos_id(), s.unk = tokenizer.unk_id();
  s.start_of_turn = tokenizer.piece_to_id("<start_of_turn>");
  s.end_of_turn = tokenizer.piece_to_id("<end_of_turn>");
  return s;
}

std::string tokenizer_id(const std::string& model_path) {
  require_regular_file(model_path, "a sentencepiece model");  // hashing /dev/zero would never end
  std::ifstream in(model_path, std::ios::binary);
  if (!in) throw DataError(model_path + ": cannot open tokenizer model");
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64: stable, dependency-free; identity, not security
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buf[i]);
      h *= 1099511628211ull;
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string("fnv1a64:") + hex;
}

TokenizerIdentity identify(const Tokenizer& tokenizer) {
  TokenizerIdentity t;
  t.id = tokenizer_id(tokenizer.path());
  t.path = fs::absolute(tokenizer.path()).string();
  t.vocab_size = tokenizer.vocab_size();
  t.special = special_ids(tokenizer);
  return t;
}

DatasetInfo read_dataset_info(const std::string& path) {
  h5::Handle file = open_file(path);
  try {
    return read_info(file.get(), path);
  } catch (const DataError&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(e.what());
  }
}

void check_compatible(const DatasetInfo& info, int64_t model_vocab_size, const std::string& model_tokenizer_id) {
  if (info.tokenizer.vocab_size != model_vocab_size) {
    throw DataError(info.path + ": dataset vocab_size " + std::to_string(info.tokenizer.vocab_size) +
                    " differs from the model's vocab_size " + std::to_string(model_vocab_size) +
                    " (tokenizer " + info.tokenizer.path + ")");
  }
  if (!model_tokenizer_id.empty() && info.tokenizer.id != model_tokenizer_id) {
    throw DataError(info.path + ": dataset was tokenized with " + info.tokenizer.id + " (" + info.tokenizer.path +
                    ") but the model uses tokenizer " + model_tokenizer_id);
  }
}

// ---------------------------------------------------------------------------------------------- writer

struct DatasetWriter::Impl {
  struct Set {
    h5::Handle group;
    std::unique_ptr<h5::Appender<int32_t>> tokens;
    std::unique_ptr<h5::Appender<int64_t>> offsets;
    std::unique_ptr<h5::Appender<uint8_t>> mask;
    int64_t sequence_start = 0;  // tokens before the sequence being written
  };
  std::string path, tmp;
  DatasetKind kind;
  h5::Handle file;
  h5::Handle splits[2];
  std::map<std::string, Set> sets[2];
  std::unique_ptr<h5::Appender<int32_t>> pair_kind[2];
  std::unique_ptr<h5::Appender<double>> pair_margin[2];  // NaN where the pair has none
  // Prompt sets: /SPLIT/answer (UTF-8 bytes of every answer concatenated, offsets, 1 where the prompt has one).
  h5::Handle answer_group[2];
  std::unique_ptr<h5::Appender<uint8_t>> answer_text[2], answer_present[2];
  std::unique_ptr<h5::Appender<int64_t>> answer_offsets[2];
  int64_t answer_rows[2] = {0, 0}, answers_given[2] = {0, 0};
  SplitCounts counts[2];
  bool committed = false;

  // Closes every open dataset and group (nothing is flushed here: commit() flushes first).
  void close_objects() {
    for (int v = 0; v < 2; ++v) {
      sets[v].clear();
      pair_kind[v].reset(), pair_margin[v].reset();
      answer_text[v].reset(), answer_offsets[v].reset(), answer_present[v].reset();
      answer_group[v].reset();
      splits[v].reset();
    }
  }
};

DatasetWriter::DatasetWriter(const std::string& path, DatasetKind kind, const TokenizerIdentity& tokenizer,
                             double validation_fraction, const std::string& created_by)
    : impl_(std::make_unique<Impl>()) {
  h5::quiet();
  Impl& m = *impl_;
  m.path = path, m.kind = kind;
  m.tmp = path + ".tmp-" + std::to_string(::getpid());
  std::lock_guard<std::recursive_mutex> g(h5::lock());
  m.file = h5::Handle(H5Fcreate(m.tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!m.file.valid()) throw DataError(m.tmp + ": cannot create (is the directory writable?)");
  const hid_t root = m.file.get();
  h5::write_attr(root, "format", std::string(kFormatName));
  h5::write_attr(root, "format_version", kFormatVersion);
  h5::write_attr(root, "kind", kind_name(kind));
  h5::write_attr(root, "tokenizer_id", tokenizer.id);
  h5::write_attr(root, "tokenizer_path", tokenizer.path);
  h5::write_attr(root, "vocab_size", tokenizer.vocab_size);
  const SpecialIds& s = tokenizer.special;
  h5::write_attr(root, "pad_id", int64_t{s.pad});
  h5::write_attr(root, "eos_id", int64_t{s.eos});
  h5::write_attr(root, "bos_id", int64_t{s.bos});
  h5::write_attr(root, "unk_id", int64_t{s.unk});
  h5::write_attr(root, "start_of_turn_id", int64_t{s.start_of_turn});
  h5::write_attr(root, "end_of_turn_id", int64_t{s.end_of_turn});
  h5::write_attr(root, "validation_fraction", validation_fraction);
  h5::write_attr(root, "created_by", created_by);
  constexpr int64_t kChunk = 1 << 14;  // 64 KiB of int32: small enough for shuffled reads of short docs
  for (int v = 0; v < 2; ++v) {
    m.splits[v] = h5::create_group(root, split_name(v));
    for (const auto& [name, with_mask] : sets_of(kind)) {
      Impl::Set set;
      hid_t parent = m.splits[v].get();
      if (!name.empty()) {
        set.group = h5::create_group(parent, name);
        parent = set.group.get();
      }
      set.tokens = std::make_unique<h5::Appender<int32_t>>(parent, "tokens", kChunk);
      set.offsets = std::make_unique<h5::Appender<int64_t>>(parent, "offsets", 4096);
      const int64_t zero = 0;
      set.offsets->append(&zero, 1);
      if (with_mask) set.mask = std::make_unique<h5::Appender<uint8_t>>(parent, "loss_mask", kChunk);
      m.sets[v].emplace(name, std::move(set));
    }
    if (kind == DatasetKind::kPreference) {
      m.pair_kind[v] = std::make_unique<h5::Appender<int32_t>>(m.splits[v].get(), "kind", 4096);
      m.pair_margin[v] = std::make_unique<h5::Appender<double>>(m.splits[v].get(), "margin", 4096);
    }
    if (kind == DatasetKind::kPrompts) {
      m.answer_group[v] = h5::create_group(m.splits[v].get(), "answer");
      m.answer_text[v] = std::make_unique<h5::Appender<uint8_t>>(m.answer_group[v].get(), "text", 4096);
      m.answer_offsets[v] = std::make_unique<h5::Appender<int64_t>>(m.answer_group[v].get(), "offsets", 4096);
      m.answer_present[v] = std::make_unique<h5::Appender<uint8_t>>(m.answer_group[v].get(), "present", 4096);
      const int64_t zero = 0;
      m.answer_offsets[v]->append(&zero, 1);
    }
  }
}


DatasetWriter::~DatasetWriter() {
  if (!impl_->committed) {
    impl_->close_objects();
    impl_->file.reset();
    std::remove(impl_->tmp.c_str());
  }
}

namespace {

template <class Sets>
auto& writer_set(Sets& sets, const std::string& set) {
  auto it = sets.find(set);
  if (it == sets.end()) throw std::logic_error("DatasetWriter: no sequence set '" + set + "'");
  return it->second;
}

}  // namespace

void DatasetWriter::add(bool validation, const std::string& set, const std::vector<int32_t>& tokens,
                        const std::vector<uint8_t>* mask) {
  Impl::Set& s = writer_set(impl_->sets[validation], set);
  if (static_cast<bool>(s.mask) != (mask != nullptr) || (mask && mask->size() != tokens.size())) {
    throw std::logic_error("DatasetWriter: loss mask missing or of the wrong length for set '" + set + "'");
  }
  s.tokens->append(tokens.data(), tokens.size());
  if (mask) s.mask->append(mask->data(), mask->size());
  end_sequence(validation, set);
}

void DatasetWriter::append(bool validation, const std::string& set, const int32_t* tokens, size_t n) {
  Impl::Set& s = writer_set(impl_->sets[validation], set);
  if (s.mask) throw std::logic_error("DatasetWriter: set '" + set + "' has a loss mask; use add()");
  s.tokens->append(tokens, n);
}

void DatasetWriter::end_sequence(bool validation, const std::string& set) {
  Impl::Set& s = writer_set(impl_->sets[validation], set);
  const int64_t end = s.tokens->size();
  impl_->counts[validation].tokens += end - s.sequence_start;
  s.sequence_start = end;
  s.offsets->append(&end, 1);
}

void DatasetWriter::end_example(bool validation, int32_t pair_kind, double margin) {
  impl_->counts[validation].sequences += 1;
  if (impl_->pair_kind[validation]) impl_->pair_kind[validation]->append(&pair_kind, 1);
  if (impl_->pair_margin[validation]) impl_->pair_margin[validation]->append(&margin, 1);
}

void DatasetWriter::add_answer(bool validation, const std::optional<std::string>& answer) {
  Impl& m = *impl_;
  if (!m.answer_text[validation]) throw std::logic_error("DatasetWriter: answers belong to prompt sets only");
  if (answer) m.answer_text[validation]->append(reinterpret_cast<const uint8_t*>(answer->data()), answer->size());
  const int64_t end = m.answer_text[validation]->size();
  const uint8_t present = answer ? 1 : 0;
  m.answer_offsets[validation]->append(&end, 1);
  m.answer_present[validation]->append(&present, 1);
  m.answer_rows[validation] += 1, m.answers_given[validation] += present;
}

SplitCounts DatasetWriter::counts(bool validation) const { return impl_->counts[validation]; }

void DatasetWriter::commit(const std::vector<std::string>& pair_kinds) {
  Impl& m = *impl_;
  {
    std::lock_guard<std::recursive_mutex> g(h5::lock());
    for (int v = 0; v < 2; ++v) {
      for (auto& [name, set] : m.sets[v]) {
        set.tokens->flush(), set.offsets->flush();
        if (set.mask) set.mask->flush();
      }
      if (m.pair_kind[v]) m.pair_kind[v]->flush();
      if (m.pair_margin[v]) m.pair_margin[v]->flush();
      if (m.answer_text[v]) {
        if (m.answer_rows[v] != m.counts[v].sequences) {
          throw std::logic_error("DatasetWriter: add_answer() must be called once per prompt");
        }
        m.answer_text[v]->flush(), m.answer_offsets[v]->flush(), m.answer_present[v]->flush();
        h5::write_attr(m.answer_group[v].get(), "answers", m.answers_given[v]);
      }
      h5::write_attr(m.splits[v].get(), "sequences", m.counts[v].sequences);
      h5::write_attr(m.splits[v].get(), "tokens", m.counts[v].tokens);
    }
    if (!pair_kinds.empty()) {
      std::string joined;
      for (const auto& k : pair_kinds) joined += k + "\n";
      h5::write_attr(m.file.get(), "pair_kinds", joined);
    }
    m.close_objects();
    if (H5Fflush(m.file.get(), H5F_SCOPE_GLOBAL) < 0) throw DataError(m.tmp + ": flush failed (disk full?)");
    m.file.reset();
  }
  std::error_code ec;
  fs::rename(m.tmp, m.path, ec);
  if (ec) throw DataError(m.path + ": cannot rename " + m.tmp + " into place: " + ec.message());
  m.committed = true;
}

// ---------------------------------------------------------------------------------------------- reader

struct SequenceReader::Impl {
  DatasetInfo info;
  h5::Handle file, group, tokens, mask;
  std::vector<int64_t> offsets;  // (sequences + 1)
  std::string where;             // "path:/train/prompt"
};

namespace {

// A chat set's mask decides which tokens are learned: any value but 0/1 means the file is not what
// prepare wrote (the loader would read 2 as "learn", and a float mask converted on read as anything).
void check_mask_values(const uint8_t* mask, int64_t count, int64_t first, const std::string& where) {
  for (int64_t k = 0; k < count; ++k) {
    if (mask[k] > 1) {
      throw BadDataFile(where + "/loss_mask[" + std::to_string(first + k) + "]: value " + std::to_string(mask[k]) +
                        ", expected 0 or 1");
    }
  }
}

// Masks up to this many entries (256 MiB of uint8, under a second to read) are checked whole at open, so a
// bad one stops a run before it starts; larger ones are checked as each row is read.
constexpr int64_t kMaskScanAtOpen = int64_t{1} << 28;

}  // namespace

SequenceReader::SequenceReader(const std::string& path, const std::string& split, const std::string& set)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.file = open_file(path);
  try {
    m.info = read_info(m.file.get(), path);
    if (split != "train" && split != "validation") {
      throw DataError(path + ": unknown split '" + split + "' (train or validation)");
    }
    const std::string group_path = set.empty() ? split : split + "/" + set;
    m.where = path + ":/" + group_path;
    // Which sets a kind has, and which carry a mask, is the format's (sets_of); anything else is refused.
    const auto sets = sets_of(m.info.kind);
    const auto known = std::find_if(sets.begin(), sets.end(), [&](const auto& p) { return p.first == set; });
    if (known == sets.end()) {
      std::string names;
      for (const auto& p : sets) names += (names.empty() ? "" : ", ") + (p.first.empty() ? "/" + split : p.first + "/");
      throw BadDataFile(path + ": a " + kind_name(m.info.kind) + " dataset, whose sequence sets are " + names +
                        (set.empty() ? "; a text or chat dataset was expected" : "; it has no set '" + set + "'"));
    }
    m.group = h5::open_group(m.file.get(), group_path, path);
    m.tokens = h5::open_dataset(m.group.get(), "tokens", m.where);
    h5::expect_type<int32_t>(m.tokens.get(), m.where + "/tokens");
    if (known->second) {
      if (!h5::has_link(m.group.get(), "loss_mask")) {
        throw BadDataFile(m.where + ": missing dataset 'loss_mask' (a " + kind_name(m.info.kind) +
                          " dataset without it would train on every token, user turns included)");
      }
      m.mask = h5::open_dataset(m.group.get(), "loss_mask", m.where);
      h5::expect_type<uint8_t>(m.mask.get(), m.where + "/loss_mask");
    } else if (h5::has_link(m.group.get(), "loss_mask")) {
      throw BadDataFile(m.where + ": unexpected dataset 'loss_mask' in a " + kind_name(m.info.kind) + " dataset");
    }
    h5::Handle offsets = h5::open_dataset(m.group.get(), "offsets", m.where);
    h5::expect_type<int64_t>(offsets.get(), m.where + "/offsets");
    const int64_t n_tokens = h5::dataset_length(m.tokens.get(), m.where + "/tokens");
    // Every sequence prepare writes has at least one token (<bos>, or a completion's <end_of_turn>). Checked
    // before the read: a sparse file can declare a length whose allocation alone would fail.
    const int64_t n_offsets = h5::dataset_length(offsets.get(), m.where + "/offsets");
    if (n_offsets > n_tokens + 1) {
      throw BadDataFile(m.where + "/offsets: " + std::to_string(n_offsets) + " entries for " + std::to_string(n_tokens) +
                        " tokens (at most one more than the tokens; damaged file)");
    }
    m.offsets = h5::read_all<int64_t>(offsets.get(), m.where + "/offsets");
    if (m.offsets.empty() || m.offsets.front() != 0 || m.offsets.back() != n_tokens) {
      throw BadDataFile(m.where + "/offsets: does not span tokens [0, " + std::to_string(n_tokens) +
                        ") (damaged file)");
    }
    for (size_t i = 1; i < m.offsets.size(); ++i) {
      if (m.offsets[i] < m.offsets[i - 1]) {
        throw BadDataFile(m.where + "/offsets[" + std::to_string(i) + "]: decreasing offset (damaged file)");
      }
    }
    // The split's counts were written from the same sequences: a disagreement means a damaged or edited file.
    const SplitCounts& counts = split == "train" ? m.info.train : m.info.validation;
    const int64_t sequences = static_cast<int64_t>(m.offsets.size()) - 1;
    if (sequences != counts.sequences || (sets.size() == 1 && n_tokens != counts.tokens)) {
      throw BadDataFile(m.where + ": holds " + std::to_string(sequences) + " sequences and " +
                        std::to_string(n_tokens) + " tokens but the split's attributes say " +
                        std::to_string(counts.sequences) + " and " + std::to_string(counts.tokens) + " (damaged file)");
    }
    if (m.mask.valid()) {
      if (h5::dataset_length(m.mask.get(), m.where + "/loss_mask") != n_tokens) {
        throw BadDataFile(m.where + "/loss_mask: length differs from tokens (damaged file)");
      }
      if (n_tokens <= kMaskScanAtOpen) {
        std::vector<uint8_t> chunk;
        for (int64_t at = 0; at < n_tokens; at += int64_t{1} << 20) {  // 1 MiB at a time
          chunk.resize(static_cast<size_t>(std::min<int64_t>(int64_t{1} << 20, n_tokens - at)));
          h5::read_range<uint8_t>(m.mask.get(), at, static_cast<int64_t>(chunk.size()), chunk.data(),
                                  m.where + "/loss_mask");
          check_mask_values(chunk.data(), static_cast<int64_t>(chunk.size()), at, m.where);
        }
      }
    }
  } catch (const DataError&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(e.what());
  }
}

SequenceReader::~SequenceReader() = default;
SequenceReader::SequenceReader(SequenceReader&&) noexcept = default;

const DatasetInfo& SequenceReader::info() const { return impl_->info; }
int64_t SequenceReader::size() const { return static_cast<int64_t>(impl_->offsets.size()) - 1; }
int64_t SequenceReader::length(int64_t i) const { return impl_->offsets[i + 1] - impl_->offsets[i]; }
int64_t SequenceReader::total_tokens() const { return impl_->offsets.back(); }
bool SequenceReader::has_mask() const { return impl_->mask.valid(); }

void SequenceReader::read(int64_t i, int64_t begin, int64_t end, int32_t* tokens, uint8_t* mask) const {
  const Impl& m = *impl_;
  const int64_t start = m.offsets[i] + begin, count = end - begin;
  if (begin < 0 || end < begin || start + count > m.offsets[i + 1]) {
    throw std::out_of_range(m.where + ": read past the end of sequence " + std::to_string(i));
  }
  try {
    h5::read_range<int32_t>(m.tokens.get(), start, count, tokens, m.where + "/tokens");
    if (mask && m.mask.valid()) h5::read_range<uint8_t>(m.mask.get(), start, count, mask, m.where + "/loss_mask");
  } catch (const std::exception& e) {
    throw DataError(e.what());
  }
  if (mask && m.mask.valid()) check_mask_values(mask, count, start, m.where);  // a byte compare per token
  const int64_t vocab = m.info.tokenizer.vocab_size;
  for (int64_t k = 0; k < count; ++k) {
    if (tokens[k] < 0 || tokens[k] >= vocab) {
      throw BadDataFile(m.where + "/tokens[" + std::to_string(start + k) + "]: token id " + std::to_string(tokens[k]) +
                      " is outside the vocabulary (vocab_size " + std::to_string(vocab) + ")");
    }
  }
}

std::vector<int32_t> SequenceReader::tokens(int64_t i) const {
  std::vector<int32_t> out(length(i));
  read(i, 0, length(i), out.data());
  return out;
}

std::vector<PreferencePair> read_preference(const std::string& path, const std::string& split) {
  SequenceReader prompt(path, split, "prompt"), chosen(path, split, "chosen"), rejected(path, split, "rejected");
  if (prompt.info().kind != DatasetKind::kPreference) {
    throw DataError(path + ": a " + kind_name(prompt.info().kind) + " dataset, not a preference set");
  }
  std::vector<int32_t> kinds;
  std::vector<double> margins;
  const std::string where = path + ":/" + split + "/kind";
  try {
    h5::Handle file = open_file(path);
    h5::Handle dataset = h5::open_dataset(file.get(), split + "/kind", path);
    h5::expect_type<int32_t>(dataset.get(), where);
    if (h5::dataset_length(dataset.get(), where) != prompt.size()) {  // checked before allocating
      throw BadDataFile(path + ":/" + split + ": prompt, chosen, rejected and kind counts differ (damaged file)");
    }
    kinds = h5::read_all<int32_t>(dataset.get(), where);
    // `margin` is optional (files from before it existed have none): float64, one per pair, NaN for none.
    if (h5::has_link(file.get(), split + "/margin")) {
      const std::string mwhere = path + ":/" + split + "/margin";
      h5::Handle m = h5::open_dataset(file.get(), split + "/margin", path);
      h5::expect_type<double>(m.get(), mwhere);
      if (h5::dataset_length(m.get(), mwhere) != prompt.size()) {
        throw BadDataFile(path + ":/" + split + ": prompt and margin counts differ (damaged file)");
      }
      margins = h5::read_all<double>(m.get(), mwhere);
      for (size_t i = 0; i < margins.size(); ++i) {
        if (std::isinf(margins[i])) {
          throw BadDataFile(mwhere + "[" + std::to_string(i) + "]: infinite margin (damaged file)");
        }
      }
    }
  } catch (const DataError&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(e.what());
  }
  if (chosen.size() != prompt.size() || rejected.size() != prompt.size() ||
      static_cast<int64_t>(kinds.size()) != prompt.size()) {
    throw BadDataFile(path + ":/" + split + ": prompt, chosen, rejected and kind counts differ (damaged file)");
  }
  const auto& names = prompt.info().pair_kinds;
  std::vector<PreferencePair> out(prompt.size());
  for (int64_t i = 0; i < prompt.size(); ++i) {
    // -1 is "no kind"; any other index must name one of pair_kinds, or pairs would lose their label silently.
    if (kinds[i] < -1 || kinds[i] >= static_cast<int32_t>(names.size())) {
      throw BadDataFile(where + "[" + std::to_string(i) + "]: " + std::to_string(kinds[i]) + " names no kind (-1 or 0 to " +
                        std::to_string(static_cast<int64_t>(names.size()) - 1) + " for the file's pair_kinds)");
    }
    out[i].prompt = prompt.tokens(i), out[i].chosen = chosen.tokens(i), out[i].rejected = rejected.tokens(i);
    if (kinds[i] >= 0) out[i].kind = names[kinds[i]];
    if (!margins.empty() && !std::isnan(margins[i])) out[i].margin = margins[i];
  }
  return out;
}

std::vector<std::vector<int32_t>> read_prompts(const std::string& path, const std::string& split) {
  SequenceReader prompt(path, split, "prompt");
  std::vector<std::vector<int32_t>> out(prompt.size());
  for (int64_t i = 0; i < prompt.size(); ++i) out[i] = prompt.tokens(i);
  return out;
}

}  // namespace rg::data

namespace rg::data {

namespace {

// /SPLIT/answer of a prompt set with `rows` prompts: text (uint8, UTF-8), offsets (int64, rows + 1) and present
// (uint8, rows, 0 or 1; a prompt without an answer has an empty span), and the group's `answers` count.
std::vector<std::optional<std::string>> read_answers(hid_t file, const std::string& path, const std::string& split,
                                                     int64_t rows, int64_t* answered) {
  const std::string where = path + ":/" + split + "/answer";
  h5::Handle group = h5::open_group(file, split + "/answer", path);
  h5::Handle text = h5::open_dataset(group.get(), "text", where), offsets = h5::open_dataset(group.get(), "offsets", where),
             present = h5::open_dataset(group.get(), "present", where);
  h5::expect_type<uint8_t>(text.get(), where + "/text");
  h5::expect_type<int64_t>(offsets.get(), where + "/offsets");
  h5::expect_type<uint8_t>(present.get(), where + "/present");
  // Lengths are checked before anything is read (a damaged file could declare any size).
  if (h5::dataset_length(offsets.get(), where + "/offsets") != rows + 1 ||
      h5::dataset_length(present.get(), where + "/present") != rows) {
    throw BadDataFile(where + ": offsets and present do not have one entry per prompt (" + std::to_string(rows) +
                      " prompts; damaged file)");
  }
  const std::vector<int64_t> off = h5::read_all<int64_t>(offsets.get(), where + "/offsets");
  const std::vector<uint8_t> has = h5::read_all<uint8_t>(present.get(), where + "/present");
  const int64_t n_bytes = h5::dataset_length(text.get(), where + "/text");
  if (off.front() != 0 || off.back() != n_bytes) {
    throw BadDataFile(where + "/offsets: does not span text [0, " + std::to_string(n_bytes) + ") (damaged file)");
  }
  const std::vector<uint8_t> bytes = h5::read_all<uint8_t>(text.get(), where + "/text");
  std::vector<std::optional<std::string>> out(static_cast<size_t>(rows));
  *answered = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (off[i + 1] < off[i]) throw BadDataFile(where + "/offsets[" + std::to_string(i + 1) + "]: decreasing offset (damaged file)");
    if (has[i] > 1) throw BadDataFile(where + "/present[" + std::to_string(i) + "]: value " + std::to_string(has[i]) + ", expected 0 or 1");
    if (!has[i]) {
      if (off[i + 1] != off[i]) throw BadDataFile(at + ": text for a prompt marked without an answer (damaged file)");
      continue;
    }
    std::string answer(bytes.begin() + off[i], bytes.begin() + off[i + 1]);
    if (invalid_utf8_at(answer) != std::string::npos) throw BadDataFile(at + ": answer is not UTF-8 (damaged file)");
    out[i] = std::move(answer);
    ++*answered;
  }
  if (h5::read_int_attr(group.get(), "answers", where) != *answered) {
    throw BadDataFile(where + ": attribute 'answers' disagrees with the " + std::to_string(*answered) +
                      " answers present (damaged file)");
  }
  return out;
}

}  // namespace

PromptSet read_prompt_set(const std::string& path, const std::string& split) {
  PromptSet set;
  set.prompts = read_prompts(path, split);  // validates the file, its kind and the prompt set
  const int64_t rows = static_cast<int64_t>(set.prompts.size());
  try {
    h5::Handle file = open_file(path);
    std::lock_guard<std::recursive_mutex> g(h5::lock());
    if (h5::has_link(file.get(), split + "/answer")) {
      set.answers = read_answers(file.get(), path, split, rows, &set.answered);
    } else {
      set.answers.resize(static_cast<size_t>(rows));  // written before answers existed: none
    }
  } catch (const DataError&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(e.what());
  }
  return set;
}

}  // namespace rg::data
