// prepare: input walking (files, directories, JSONL lines, blank-line blocks), example validation with
// file:line errors, the validation split, over-long handling, progress and the summary.
#include "data/prepare.h"

#include "data/chat_format.h"
#include "data/text.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <iomanip>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>

namespace rg::data {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Input paths -> the files to read. Every one must be a regular file: a FIFO or device would block or
// never end, and silently skipping one inside a directory would drop data. Sub-directories are walked;
// symlinked ones are refused rather than followed (a link cycle would never end).
std::vector<std::string> expand(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (!fs::is_directory(in, ec)) {
      if (!fs::exists(in, ec)) throw BadDataFile(in + ": no such file or directory");
      require_regular_file(in, "an input file or directory");
      files.push_back(in);
      continue;
    }
    std::vector<std::string> found;
    for (fs::recursive_directory_iterator it(in, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_directory(ec)) {
        // Not followed (a link cycle would never end), and skipping it would silently drop its files.
        if (it->is_symlink(ec)) {
          throw BadDataFile(it->path().string() + ": a symbolic link to a folder inside " + in +
                            " (not followed); pass its target as an input of its own");
        }
        continue;
      }
      require_regular_file(it->path().string(), "a regular input file inside " + in);
      found.push_back(it->path().string());
    }
    if (ec) throw BadDataFile(in + ": cannot list the directory: " + ec.message());
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  }
  if (files.empty()) throw DataError("no input files given (empty corpus)");
  return files;
}

// The output is replaced by a rename, which would put a regular file in place of a device or FIFO (as root,
// /dev/null) and fails only after all the work for a directory: refuse both before starting.
void check_output(const std::string& out) {
  std::error_code ec;
  const fs::file_status s = fs::status(out, ec);
  if (fs::exists(s) && !fs::is_regular_file(s)) require_regular_file(out, "an output file (it is replaced)");
}

// `text` with each byte of an ill-formed UTF-8 sequence written as \xHH: the parser's message quotes the
// bytes it choked on, and a message must stay one line of text.
std::string printable(const std::string& text) {
  std::string out;
  for (size_t at = 0; at < text.size();) {
    const size_t bad = invalid_utf8_at(std::string_view(text).substr(at));
    if (bad == std::string::npos) return out + text.substr(at);
    out += text.substr(at, bad);
    char hex[8];
    std::snprintf(hex, sizeof hex, "\\x%02X", static_cast<unsigned char>(text[at + bad]));
    out += hex;
    at += bad + 1;
  }
  return out;
}

// JSONL lines holding only JSON whitespace are skipped as blank.
bool blank_json(const std::string& line) { return line.find_first_not_of(" \t\r\n") == std::string::npos; }

// A one-line location of the first ill-formed UTF-8 byte of `text` (which starts at line `first_line`), or "".
std::string utf8_problem(const std::string& file, const std::string& text, int64_t first_line) {
  const size_t at = invalid_utf8_at(text);
  if (at == std::string::npos) return "";
  const size_t newline = at == 0 ? std::string::npos : text.rfind('\n', at - 1);
  const int64_t line = first_line + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
  const size_t column = at - (newline == std::string::npos ? 0 : newline + 1) + 1;
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(text[at]));
  return file + ":" + std::to_string(line) + ": not UTF-8 (byte " + hex + " at column " + std::to_string(column) +
         "); convert the file to UTF-8 first (e.g. iconv -f latin1 -t utf-8)";
}

bool held_out(int64_t k, double f) {  // spreads round(n f) validation examples evenly over the input
  return std::floor((k + 1) * f) > std::floor(k * f);
}

// Shared state of one prepare run: tokenizer, writer, split counter and progress.
class Run {
 public:
  Run(DatasetKind kind, const std::vector<std::string>& inputs, const PrepareOptions& o, const std::string& by)
      : options_(o), files_((check_output(o.output), expand(inputs))), tokenizer_(Tokenizer::load(o.tokenizer)) {
    if (o.validation_fraction < 0 || o.validation_fraction >= 1) {
      throw DataError("validation fraction " + std::to_string(o.validation_fraction) + " is outside [0, 1)");
    }
    if (o.overlong != "drop" && o.overlong != "truncate") {
      throw DataError("overlong must be 'drop' or 'truncate', not '" + o.overlong + "'");
    }
    for (const auto& f : files_) progress_.bytes_total += static_cast<int64_t>(fs::file_size(f));
    summary_.kind = kind, summary_.output = o.output;
    writer_ = std::make_unique<DatasetWriter>(o.output, kind, identify(tokenizer_), o.validation_fraction, by);
  }

  const Tokenizer& tokenizer() const { return tokenizer_; }
  const std::vector<std::string>& files() const { return files_; }
  PrepareSummary& summary() { return summary_; }
  DatasetWriter& writer() { return *writer_; }

  // The split of the next example, which the caller then writes and ends with end_example().
  bool next_is_validation() const { return held_out(examples_, options_.validation_fraction); }
  void end_example(int64_t tokens, int32_t pair_kind = -1, double margin = std::numeric_limits<double>::quiet_NaN()) {
    writer_->end_example(next_is_validation(), pair_kind, margin);
    ++examples_;
    progress_.examples = examples_, progress_.tokens += tokens;
  }
  void read_bytes(int64_t n) {
    progress_.bytes_done += n;
    if (options_.progress) options_.progress(progress_);
  }

  // Reads every non-blank line of `file` as a JSON object, calling f(json).
  template <class F>
  void json_lines(const std::string& file, F f) {
    std::ifstream in(file);
    if (!in) throw DataError(file + ": cannot open");
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      read_bytes(static_cast<int64_t>(line.size()) + 1);
      if (blank_json(line)) continue;
      const std::string where = file + ":" + std::to_string(n);
      Json j;
      try {
        j = Json::parse(line);  // iterative: any nesting depth parses without deep recursion
      } catch (const Json::exception& e) {  // parse_error, and out_of_range for a number beyond float64 (1e999)
        // The message quotes the last token read, which may be a whole megabyte string: keep one short line.
        std::string what = e.what();
        const auto cut = what.find("] ");
        if (cut != std::string::npos) what = what.substr(cut + 2);
        if (what.size() > 200) what = what.substr(0, 200) + "...";
        throw DataError(where + ": malformed JSON: " + printable(what));
      }
      if (!j.is_object()) throw DataError(where + ": expected a JSON object per line, got " + json_brief(j));
      try {
        f(j);
      } catch (const FormatError& e) {
        throw DataError(where + ": " + e.what());
      }
    }
  }
  template <class F>
  void for_each_json_line(F f) {
    for (const auto& file : files_) json_lines(file, f);
  }

  PrepareSummary finish(const char* what) {
    summary_.train = writer_->counts(false), summary_.validation = writer_->counts(true);
    if (summary_.train.sequences + summary_.validation.sequences == 0) {
      std::string list;
      for (size_t i = 0; i < files_.size() && i < 3; ++i) list += (i ? ", " : "") + files_[i];
      if (files_.size() > 3) list += ", ...";
      throw DataError(std::string("no ") + what + " found in " + list + " (empty corpus)");
    }
    if (summary_.train.sequences == 0) {
      throw DataError(std::string("every ") + what + " went to the validation split; lower the validation fraction");
    }
    writer_->commit(summary_.pair_kinds);
    progress_.done = true;
    if (options_.progress) options_.progress(progress_);
    return summary_;
  }

  // Applies max_tokens: false when the example must be dropped; truncates in place otherwise.
  bool fit(std::vector<int32_t>* tokens, std::vector<uint8_t>* mask) {
    if (options_.max_tokens <= 0 || static_cast<int64_t>(tokens->size()) <= options_.max_tokens) return true;
    if (options_.overlong == "drop") return ++summary_.dropped, false;
    tokens->resize(options_.max_tokens);
    if (mask) {
      mask->resize(options_.max_tokens);
      // Nothing left to learn from: a truncated chat with no model token is dropped instead.
      if (std::find(mask->begin(), mask->end(), 1) == mask->end()) return ++summary_.dropped, false;
    }
    ++summary_.truncated;
    return true;
  }

  const PrepareOptions& options() const { return options_; }

 private:
  PrepareOptions options_;
  std::vector<std::string> files_;
  Tokenizer tokenizer_;
  std::unique_ptr<DatasetWriter> writer_;
  PrepareSummary summary_;
  PrepareProgress progress_;
  int64_t examples_ = 0;
};

// A chat-style field: a string (one user or model turn) or a list of messages.
std::vector<Turn> turns_of(const Json& j, const char* field, Ending ending) {
  const auto it = j.find(field);
  if (it == j.end()) throw FormatError(std::string("missing field \"") + field + "\"");
  if (it->is_string()) {
    const std::string text = trim(it->get<std::string>());
    if (text.empty()) throw FormatError(std::string(field) + ": empty content");
    return {{ending != Ending::kUser, text}};
  }
  if (!it->is_array()) {
    throw FormatError(std::string(field) + ": expected a string or a list of messages, got " + json_brief(*it));
  }
  try {
    return normalize(parse_messages(*it, field), ending);
  } catch (const FormatError& e) {
    throw FormatError(std::string(field) + ": " + e.what());
  }
}

// A completion (TRL: a string, or a list holding one assistant message).
std::string completion_of(const Json& j, const char* field) {
  const auto it = j.find(field);
  if (it == j.end()) throw FormatError(std::string("missing field \"") + field + "\"");
  std::string text;
  if (it->is_string()) {
    text = it->get<std::string>();
  } else if (!it->is_array()) {
    throw FormatError(std::string(field) + ": expected a string or a list holding one assistant message, got " +
                      json_brief(*it));
  } else {
    const std::vector<Message> m = parse_messages(*it, field);
    if (m.size() != 1 || (m[0].role != "assistant" && m[0].role != "model")) {
      throw FormatError(std::string(field) + ": expected one assistant message");
    }
    text = m[0].content;
  }
  text = trim(text);
  if (text.empty()) throw FormatError(std::string(field) + ": empty content");
  return text;
}

}  // namespace

PrepareSummary prepare_text(const std::vector<std::string>& inputs, const PrepareOptions& options) {
  if (options.document != "file" && options.document != "block") {
    throw DataError("document must be 'file' or 'block', not '" + options.document + "'");
  }
  Run run(DatasetKind::kText, inputs, options, "rgemma prepare text");
  const int32_t bos = run.tokenizer().bos_id();
  if (bos < 0) throw DataError(options.tokenizer + ": the tokenizer has no <bos> piece");
  // Every document, whatever its source (file, block, JSONL field), is trimmed the one way (data/text.h).
  auto add = [&](const std::string& raw) {
    const std::string text = trim(raw);
    if (text.empty()) return void(++run.summary().empty);
    std::vector<int32_t> tokens = {bos};
    const auto ids = run.tokenizer().encode(text);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
    run.writer().add(run.next_is_validation(), "", tokens);
    run.end_example(static_cast<int64_t>(tokens.size()));
  };
  for (const auto& file : run.files()) {
    if (file.size() > 6 && file.compare(file.size() - 6, 6, ".jsonl") == 0) {
      run.json_lines(file, [&](const Json& j) {
        const auto it = j.find(options.text_field);
        if (it == j.end()) throw FormatError("missing string field \"" + options.text_field + "\"");
        if (!it->is_string()) throw FormatError(options.text_field + ": expected a string, got " + json_brief(*it));
        add(it->get<std::string>());
      });
      continue;
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) throw DataError(file + ": cannot open");
    if (options.document == "file") {
      std::ostringstream s;
      s << in.rdbuf();
      const std::string text = s.str();
      run.read_bytes(static_cast<int64_t>(text.size()));
      if (const std::string bad = utf8_problem(file, text, 1); !bad.empty()) throw DataError(bad);
      add(text);
      continue;
    }
    std::string line, block;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      run.read_bytes(static_cast<int64_t>(line.size()) + 1);
      if (const std::string bad = utf8_problem(file, line, n); !bad.empty()) throw DataError(bad);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (trim(line).empty()) {
        add(block), block.clear();
      } else {
        block += (block.empty() ? "" : "\n") + line;
      }
    }
    add(block);
  }
  return run.finish("documents");
}

PrepareSummary prepare_chat(const std::vector<std::string>& inputs, const PrepareOptions& options) {
  Run run(DatasetKind::kChat, inputs, options, "rgemma prepare chat");
  const ChatFormatter format(run.tokenizer());
  run.for_each_json_line([&](const Json& j) {
    const auto it = j.find("messages");
    if (it == j.end()) throw FormatError("missing field \"messages\"");
    Encoded e = format.conversation(normalize(parse_messages(*it, "messages"), Ending::kModel));
    if (!run.fit(&e.tokens, &e.mask)) return;
    run.writer().add(run.next_is_validation(), "", e.tokens, &e.mask);
    run.end_example(static_cast<int64_t>(e.tokens.size()));
  });
  return run.finish("conversations");
}

PrepareSummary prepare_preference(const std::vector<std::string>& inputs, const PrepareOptions& options) {
  Run run(DatasetKind::kPreference, inputs, options, "rgemma prepare preference");
  const ChatFormatter format(run.tokenizer());
  std::map<std::string, int32_t> kinds;
  run.for_each_json_line([&](const Json& j) {
    const std::vector<int32_t> prompt = format.prompt(turns_of(j, "prompt", Ending::kUser));
    std::vector<int32_t> chosen = format.completion(completion_of(j, "chosen"));
    std::vector<int32_t> rejected = format.completion(completion_of(j, "rejected"));
    if (chosen == rejected) throw FormatError("chosen and rejected are identical");
    int32_t kind = -1;
    if (j.contains("kind")) {
      if (!j["kind"].is_string()) throw FormatError("kind: expected a string, got " + json_brief(j["kind"]));
      const std::string k = j["kind"].get<std::string>();
      // Labels are stored one per line (pair_kinds): a line break inside one would shift every later label.
      if (k.find_first_of("\n\r") != std::string::npos) throw FormatError("kind: a label may not contain a line break");
      if (!kinds.count(k)) {
        kinds[k] = static_cast<int32_t>(run.summary().pair_kinds.size());
        run.summary().pair_kinds.push_back(k);
      }
      kind = kinds[k];
    }
    // Optional per-pair margin for the reward loss (TRL's `margin` column); null counts as absent. JSON has no
    // NaN/inf literal and 1e999 is a malformed line already; the check stays in case the parser ever gives inf.
    double margin = std::numeric_limits<double>::quiet_NaN();
    if (j.contains("margin") && !j["margin"].is_null()) {
      if (!j["margin"].is_number()) throw FormatError("margin: expected a number, got " + json_brief(j["margin"]));
      margin = j["margin"].get<double>();
      if (!std::isfinite(margin)) throw FormatError("margin: expected a finite number, got one beyond the float64 range");
    }
    const int64_t limit = run.options().max_tokens, longest = static_cast<int64_t>(std::max(chosen.size(), rejected.size()));
    if (limit > 0 && static_cast<int64_t>(prompt.size()) + longest > limit) {
      // Truncation cuts the completions, never the prompt; a prompt that fills the limit is dropped.
      if (run.options().overlong == "drop" || static_cast<int64_t>(prompt.size()) >= limit) {
        return void(++run.summary().dropped);
      }
      const size_t room = static_cast<size_t>(limit - static_cast<int64_t>(prompt.size()));
      chosen.resize(std::min(chosen.size(), room)), rejected.resize(std::min(rejected.size(), room));
      ++run.summary().truncated;
    }
    const bool v = run.next_is_validation();
    run.writer().add(v, "prompt", prompt), run.writer().add(v, "chosen", chosen), run.writer().add(v, "rejected", rejected);
    run.end_example(static_cast<int64_t>(prompt.size() + chosen.size() + rejected.size()), kind, margin);
  });
  return run.finish("preference pairs");
}

PrepareSummary prepare_prompts(const std::vector<std::string>& inputs, const PrepareOptions& options) {
  Run run(DatasetKind::kPrompts, inputs, options, "rgemma prepare prompts");
  const ChatFormatter format(run.tokenizer());
  run.for_each_json_line([&](const Json& j) {
    const std::vector<int32_t> prompt = format.prompt(turns_of(j, "prompt", Ending::kUser));
    if (run.options().max_tokens > 0 && static_cast<int64_t>(prompt.size()) > run.options().max_tokens) {
      return void(++run.summary().dropped);  // a cut prompt would ask a different question
    }
    run.writer().add(run.next_is_validation(), "prompt", prompt);
    run.end_example(static_cast<int64_t>(prompt.size()));
  });
  return run.finish("prompts");
}

std::function<void(const PrepareProgress&)> console_progress(std::ostream& out, const std::string& label) {
  const bool tty = isatty(STDERR_FILENO) && &out == &std::cerr;
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  auto tenth = std::make_shared<int>(-1);
  const auto start = std::chrono::steady_clock::now();
  return [&out, label, tty, last, tenth, start](const PrepareProgress& p) {
    const double frac = p.done || p.bytes_total <= 0 ? 1.0 : std::min(1.0, double(p.bytes_done) / double(p.bytes_total));
    const auto now = std::chrono::steady_clock::now();
    if (tty) {
      if (!p.done && now - *last < std::chrono::milliseconds(200)) return;
    } else {
      const int t = p.done ? 10 : std::min(9, static_cast<int>(frac * 10));  // 100% only once finished
      if (t == *tenth) return;
      *tenth = t;
    }
    *last = now;
    const double secs = std::chrono::duration<double>(now - start).count();
    const int width = 30, fill = static_cast<int>(frac * width);
    std::ostringstream line;
    line << label << " [" << std::string(fill, '#') << std::string(width - fill, '.') << "] "
         << static_cast<int>(frac * 100) << "%  " << std::fixed << std::setprecision(1) << p.bytes_done / 1048576.0
         << "/" << p.bytes_total / 1048576.0 << " MiB  " << p.examples << " examples  " << p.tokens << " tokens  "
         << secs << " s";
    out << (tty ? "\r" : "") << line.str() << (tty && !p.done ? "" : "\n") << std::flush;
  };
}

std::string describe(const PrepareSummary& s) {
  const char* unit = s.kind == DatasetKind::kText         ? "documents"
                     : s.kind == DatasetKind::kChat       ? "conversations"
                     : s.kind == DatasetKind::kPreference ? "pairs"
                                                          : "prompts";
  std::ostringstream o;
  o << s.output << " (" << kind_name(s.kind) << "): train " << s.train.sequences << " " << unit << ", "
    << s.train.tokens << " tokens; validation " << s.validation.sequences << " " << unit << ", "
    << s.validation.tokens << " tokens";
  if (s.empty) o << "; " << s.empty << " empty documents skipped";
  if (s.truncated) o << "; " << s.truncated << " truncated";
  if (s.dropped) o << "; " << s.dropped << " dropped (over max_tokens)";
  if (!s.pair_kinds.empty()) {
    o << "; kinds:";
    for (const auto& k : s.pair_kinds) o << " " << k;
  }
  return o.str();
}

}  // namespace rg::data
