// Spec parsing (entries, weights, names), shard expansion (files, folders, globs) and the concatenating
// reader of sources.h.
#include "data/sources.h"

#include <glob.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

namespace rg::data {
namespace {

namespace fs = std::filesystem;

std::string strip_spaces(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

// The files one entry's path names: a file, the .h5 files of a folder (sorted), or a glob's matches (sorted).
std::vector<std::string> expand_shards(const std::string& path, const std::string& entry) {
  std::vector<std::string> out;
  if (has_glob_chars(path)) {
    glob_t g{};
    const int rc = ::glob(path.c_str(), 0, nullptr, &g);
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    globfree(&g);
    if (out.empty()) throw BadDataFile("data.train entry '" + entry + "': " + path + " matches no file");
    for (const auto& f : out) require_regular_file(f, "an rgemma HDF5 dataset (matched by " + path + ")");
    return out;  // glob(3) sorts
  }
  std::error_code ec;
  const bool h5_name = path.size() > 3 && path.compare(path.size() - 3, 3, ".h5") == 0;
  if (fs::is_directory(path, ec) && !h5_name) {  // a folder named *.h5 is refused as a file that is not one
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".h5") {
        require_regular_file(it->path().string(), "an rgemma HDF5 dataset (a shard in " + path + ")");
        out.push_back(it->path().string());
      }
    }
    if (ec) throw BadDataFile(path + ": cannot list the folder: " + ec.message());
    if (out.empty()) throw BadDataFile("data.train entry '" + entry + "': the folder " + path + " holds no .h5 shard");
    std::sort(out.begin(), out.end());
    return out;
  }
  if (!fs::exists(path, ec)) throw BadDataFile("data.train entry '" + entry + "': " + path + ": no such file or folder");
  require_regular_file(path, "an rgemma HDF5 dataset");
  return {path};
}

// "web/" -> "web", "/d/books.h5" -> "books", "/d/code/*.h5" -> "code".
std::string derived_name(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  fs::path p(path);
  if (has_glob_chars(p.filename().string())) p = p.parent_path();
  std::string name = p.filename().string();
  if (name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0) name.resize(name.size() - 3);
  return name;
}

bool valid_source_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

struct Entry {
  std::string text, name, path;
  bool weighted = false;
  double weight = 1;
};

Entry parse_entry(const std::string& text) {
  Entry e;
  e.text = text, e.path = text;
  const size_t eq = text.find('='), slash = text.find('/');
  if (eq != std::string::npos && (slash == std::string::npos || eq < slash)) {
    e.name = strip_spaces(text.substr(0, eq)), e.path = strip_spaces(text.substr(eq + 1));
    if (!valid_source_name(e.name)) {
      throw BadDataFile("data.train entry '" + text + "': source name '" + e.name +
                        "' (letters, digits, '_', '-' and '.' only)");
    }
  }
  const size_t colon = e.path.rfind(':');
  if (colon != std::string::npos && e.path.find('/', colon) == std::string::npos) {
    const std::string w = strip_spaces(e.path.substr(colon + 1));
    e.path = strip_spaces(e.path.substr(0, colon));
    char* end = nullptr;
    e.weight = w.empty() ? NAN : std::strtod(w.c_str(), &end);
    if (w.empty() || end != w.c_str() + w.size() || !std::isfinite(e.weight) || e.weight <= 0) {
      throw BadDataFile("data.train entry '" + text + "': weight '" + w + "' is not a positive number");
    }
    e.weighted = true;
  }
  if (e.path.empty()) throw BadDataFile("data.train entry '" + text + "': no path");
  return e;
}

}  // namespace

std::vector<SourceSpec> parse_sources(const std::string& spec) {
  std::vector<Entry> entries;
  size_t at = 0;
  for (;;) {
    const size_t comma = spec.find(',', at);
    const std::string text = strip_spaces(spec.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
    if (text.empty()) throw BadDataFile("data.train '" + spec + "': an empty entry (two commas, or one at an end)");
    entries.push_back(parse_entry(text));
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  const bool weighted = entries.front().weighted;
  for (const auto& e : entries) {
    if (e.weighted != weighted) {
      throw BadDataFile("data.train entry '" + (weighted ? e.text : entries.front().text) +
                        "' has no weight while others have: give every source of a mixture a weight");
    }
    if (!weighted && !e.name.empty()) {
      throw BadDataFile("data.train entry '" + e.text + "': a source name without a weight (names label mixture sources)");
    }
  }
  std::vector<SourceSpec> out;
  std::set<std::string> seen_files;
  std::map<std::string, std::string> names;  // name -> entry
  for (const auto& e : entries) {
    std::vector<std::string> shards = expand_shards(e.path, e.text);
    for (const auto& f : shards) {
      const std::string key = fs::weakly_canonical(f).string();
      if (!seen_files.insert(key).second) {
        throw BadDataFile("data.train entry '" + e.text + "': " + f + " is named twice (it would be read twice)");
      }
    }
    if (!weighted) {
      if (out.empty()) out.emplace_back();
      out.front().shards.insert(out.front().shards.end(), shards.begin(), shards.end());
      continue;
    }
    SourceSpec s;
    s.name = e.name.empty() ? derived_name(e.path) : e.name;
    if (!valid_source_name(s.name)) {
      throw BadDataFile("data.train entry '" + e.text + "': cannot name the source from its path ('" + s.name +
                        "'); write NAME=" + e.path + ":" + std::to_string(e.weight));
    }
    if (names.count(s.name)) {
      throw BadDataFile("data.train entries '" + names[s.name] + "' and '" + e.text + "' are both named '" + s.name +
                        "'; name one with NAME=PATH:WEIGHT");
    }
    names[s.name] = e.text;
    s.shards = std::move(shards), s.weight = e.weight;
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<StageSpec> parse_stages(const std::string& stages) {
  std::vector<StageSpec> out;
  size_t at = 0;
  while (at <= stages.size()) {
    size_t end = stages.find(';', at);
    if (end == std::string::npos) end = stages.size();
    const std::string entry = strip_spaces(stages.substr(at, end - at));
    at = end + 1;
    if (entry.empty()) continue;  // "" (no stages) or a trailing ';'
    const size_t colon = entry.find(':');
    if (colon == std::string::npos) throw BadDataFile("'" + entry + "': expected STEP: SPEC");
    const std::string step = strip_spaces(entry.substr(0, colon)), spec = strip_spaces(entry.substr(colon + 1));
    StageSpec s;
    size_t used = 0;
    try {
      s.step = std::stoll(step, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (step.empty() || used != step.size() || s.step <= 0) {
      throw BadDataFile("'" + entry + "': step '" + step + "' is not a positive integer");
    }
    if (!out.empty() && s.step <= out.back().step) {
      throw BadDataFile("'" + entry + "': stage steps must increase (" + std::to_string(s.step) + " after " +
                        std::to_string(out.back().step) + ")");
    }
    if (spec.empty()) throw BadDataFile("'" + entry + "': no dataset after the step");
    s.spec = spec;
    out.push_back(std::move(s));
  }
  return out;
}

std::string source_path(const SourceSpec& source) {
  std::string out;
  for (const auto& f : source.shards) out += (out.empty() ? "" : ",") + f;
  return out;
}

// ---------------------------------------------------------------------------------------------- reader

void check_same_dataset(const DatasetInfo& first, const DatasetInfo& other) {
  auto differ = [&](const std::string& what, const std::string& a, const std::string& b) {
    throw BadDataFile(other.path + ": " + what + " " + b + " differs from " + a + " of " + first.path +
                      " (shards of one run must share them)");
  };
  if (other.kind != first.kind) differ("kind", kind_name(first.kind), kind_name(other.kind));
  if (other.tokenizer.id != first.tokenizer.id) differ("tokenizer", first.tokenizer.id, other.tokenizer.id);
  if (other.tokenizer.vocab_size != first.tokenizer.vocab_size) {
    differ("vocab_size", std::to_string(first.tokenizer.vocab_size), std::to_string(other.tokenizer.vocab_size));
  }
  const SpecialIds &a = first.tokenizer.special, &b = other.tokenizer.special;
  if (a.pad != b.pad || a.eos != b.eos || a.bos != b.bos || a.unk != b.unk || a.start_of_turn != b.start_of_turn ||
      a.end_of_turn != b.end_of_turn) {
    differ("special ids", "those", "(pad/eos/bos/unk/turn ids)");
  }
}

namespace {

void check_not_empty(const DatasetInfo& info) {
  if (info.train.sequences == 0) {
    throw BadDataFile(info.path + ": an empty shard (no training sequences); remove it from data.train");
  }
}

}  // namespace

struct ShardedReader::Impl {
  std::vector<SequenceReader> shards;
  std::vector<int64_t> first;  // (shards + 1,) global index of each shard's first sequence
  DatasetInfo info;

  // The shard holding global sequence i.
  size_t shard_of(int64_t i) const {
    return static_cast<size_t>(std::upper_bound(first.begin(), first.end(), i) - first.begin() - 1);
  }
};

ShardedReader::ShardedReader(const std::vector<std::string>& shards, const std::string& split)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (shards.empty()) throw BadDataFile("data.train: no shard given");
  m.first.push_back(0);
  for (const auto& path : shards) {
    SequenceReader r(path, split);
    if (m.shards.empty()) {
      m.info = r.info();
      m.info.train = m.info.validation = {};
    } else {
      check_same_dataset(m.shards.front().info(), r.info());
    }
    if (shards.size() > 1) check_not_empty(r.info());  // one file: the loader says its split is too short
    m.info.train.sequences += r.info().train.sequences, m.info.train.tokens += r.info().train.tokens;
    m.info.validation.sequences += r.info().validation.sequences;
    m.info.validation.tokens += r.info().validation.tokens;
    m.first.push_back(m.first.back() + r.size());
    m.shards.push_back(std::move(r));
  }
}

ShardedReader::~ShardedReader() = default;
ShardedReader::ShardedReader(ShardedReader&&) noexcept = default;

const DatasetInfo& ShardedReader::info() const { return impl_->info; }
int64_t ShardedReader::size() const { return impl_->first.back(); }
int64_t ShardedReader::length(int64_t i) const {
  const size_t s = impl_->shard_of(i);
  return impl_->shards[s].length(i - impl_->first[s]);
}
int64_t ShardedReader::total_tokens() const {
  int64_t total = 0;
  for (const auto& s : impl_->shards) total += s.total_tokens();
  return total;
}
bool ShardedReader::has_mask() const { return impl_->shards.front().has_mask(); }
void ShardedReader::read(int64_t i, int64_t begin, int64_t end, int32_t* tokens, uint8_t* mask) const {
  const size_t s = impl_->shard_of(i);
  impl_->shards[s].read(i - impl_->first[s], begin, end, tokens, mask);
}

DatasetInfo read_sources_info(const std::string& spec) {
  DatasetInfo out;
  bool any = false;
  const std::vector<SourceSpec> sources = parse_sources(spec);
  const bool several = sources.size() > 1 || sources.front().shards.size() > 1;
  for (const auto& source : sources) {
    for (const auto& shard : source.shards) {
      const DatasetInfo info = read_dataset_info(shard);
      if (several) check_not_empty(info);  // one file: the trainer says its split is too short
      if (!any) {
        out = info, any = true;
        out.train = out.validation = {};
      } else {
        check_same_dataset(out, info);
      }
      out.train.sequences += info.train.sequences, out.train.tokens += info.train.tokens;
      out.validation.sequences += info.validation.sequences, out.validation.tokens += info.validation.tokens;
    }
  }
  out.path = spec;
  return out;
}

}  // namespace rg::data
