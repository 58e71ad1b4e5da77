// prepare: input walking (files, directories, JSONL lines, blank-line blocks), example validation with
// file:line errors, the validation split, over-long handling, progress and the summary.
#include "data/prepare.h"

#include "data/chat_format.h"
#include "data/text.h"
#include "data/text_stream.h"

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
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>

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
// `first_column`: bytes of text's first line that came before it (text read in pieces).
std::string utf8_problem(const std::string& file, std::string_view text, int64_t first_line, size_t first_column = 0) {
  const size_t at = invalid_utf8_at(text);
  if (at == std::string::npos) return "";
  const size_t newline = at == 0 ? std::string::npos : text.rfind('\n', at - 1);
  const int64_t line = first_line + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
  const size_t column = at - (newline == std::string::npos ? 0 : newline + 1) + 1 + (newline == std::string::npos ? first_column : 0);
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
  // Input bytes read so far. Reported at once, unless the caller reports written work itself (report()).
  void read_bytes(int64_t n) {
    bytes_read_ += n;
    if (!deferred_progress_) report(bytes_read_);
  }
  int64_t bytes_read() const { return bytes_read_; }
  void count_tokens(int64_t n) { progress_.tokens += n; }
  void defer_progress() { deferred_progress_ = true; }
  void report(int64_t bytes_done) {
    progress_.bytes_done = bytes_done;
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
    report(bytes_read_);
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
  int64_t examples_ = 0, bytes_read_ = 0;
  bool deferred_progress_ = false;
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

// A prompt's optional reference answer (verifiable rewards): a string, trimmed as prompts are; null or absent
// is none. JSON numbers are refused rather than rendered ("42" vs 42.0 would be a silent choice).
std::optional<std::string> answer_of(const Json& j) {
  const auto it = j.find("answer");
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw FormatError("answer: expected a string, got " + json_brief(*it));
  std::string text = trim(it->get<std::string>());
  if (text.empty()) throw FormatError("answer: empty content (leave the field out or null for none)");
  return text;
}

// 0 = every core the machine reports.
int prepare_threads(int requested) {
  if (requested > 0) return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// Reads `file` in 1 MiB blocks and hands `piece` its text in pieces of whole, validated UTF-8 characters
// (a character cut by a block's end waits for the next block), counting bytes and lines for the error.
template <class F>
void read_utf8_pieces(const std::string& file, Run& run, F piece) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DataError(file + ": cannot open");
  constexpr size_t kRead = size_t{1} << 20;
  std::string block;
  int64_t line = 1;
  size_t column = 0;  // bytes of the current line before the block
  for (;;) {
    const size_t carried = block.size();
    block.resize(carried + kRead);
    in.read(block.data() + carried, static_cast<std::streamsize>(kRead));
    const size_t got = static_cast<size_t>(in.gcount());
    block.resize(carried + got);
    if (got == 0 && carried == 0) return;
    run.read_bytes(static_cast<int64_t>(got));
    // Whole characters only: the last (up to 4) bytes may start a sequence the next block completes.
    size_t whole = block.size();
    if (got > 0) {
      size_t lead = block.size();
      while (lead > 0 && block.size() - lead < 4 && (static_cast<unsigned char>(block[lead - 1]) & 0xC0) == 0x80) --lead;
      if (lead > 0) {
        const unsigned char b = static_cast<unsigned char>(block[lead - 1]);
        const size_t need = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
        if (block.size() - (lead - 1) < need) whole = lead - 1;
      }
    }
    const std::string_view text(block.data(), whole);
    if (const std::string bad = utf8_problem(file, text, line, column); !bad.empty()) throw DataError(bad);
    const size_t last_newline = text.rfind('\n');
    line += std::count(text.begin(), text.end(), '\n');
    column = last_newline == std::string_view::npos ? column + text.size() : text.size() - last_newline - 1;
    if (!text.empty()) piece(text);
    block.erase(0, whole);
    if (got == 0) {  // the file ended inside a character: utf8_problem above names it
      if (!block.empty()) throw DataError(utf8_problem(file, block, line, column));
      return;
    }
  }
}

// --document block: documents are runs of non-blank lines (a blank line holds only whitespace), the lines
// joined by "\n" without a trailing "\r". Lines of any length stream through: a long line's text goes to the
// document as it comes (whitespace-only stretches wait, as they may end up a blank line).
void read_blocks(const std::string& file, Run& run, DocumentSegmenter& document, const std::function<void()>& end) {
  std::string line;        // the current line's text not yet given to the document
  bool line_started = false;  // part of the current line already went to the document (it is not blank)
  bool in_block = false;      // the current document has a line
  auto flush_line_start = [&] {
    if (!line_started) {
      if (in_block) document.append("\n");
      in_block = true, line_started = true;
    }
  };
  auto end_line = [&] {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line_started && trim(line).empty()) {  // blank: ends the block
      if (in_block) end(), in_block = false;
    } else {
      flush_line_start();
      document.append(line);
    }
    line.clear(), line_started = false;
  };
  read_utf8_pieces(file, run, [&](std::string_view text) {
    for (size_t at = 0; at < text.size();) {
      const size_t newline = text.find('\n', at);
      if (newline == std::string_view::npos) {
        line.append(text.substr(at));
        break;
      }
      line.append(text.substr(at, newline - at));
      end_line();
      at = newline + 1;
    }
    // A long unfinished line with text in it: hand over all but a possible final "\r" (whole characters).
    if (line.size() >= (size_t{1} << 16) && !trim(line).empty()) {
      const size_t keep = line.back() == '\r' ? 1 : 0;
      flush_line_start();
      document.append(std::string_view(line).substr(0, line.size() - keep));
      line.erase(0, line.size() - keep);
    }
  });
  if (!line.empty() || line_started) end_line();
  if (in_block) end();
}

}  // namespace

PrepareSummary prepare_text(const std::vector<std::string>& inputs, const PrepareOptions& options) {
  if (options.document != "file" && options.document != "block") {
    throw DataError("document must be 'file' or 'block', not '" + options.document + "'");
  }
  if (options.threads < 0) throw DataError("threads must be 0 (every core) or more, not " + std::to_string(options.threads));
  Run run(DatasetKind::kText, inputs, options, "rgemma prepare text");
  const int32_t bos = run.tokenizer().bos_id();
  if (bos < 0) throw DataError(options.tokenizer + ": the tokenizer has no <bos> piece");
  run.defer_progress();  // progress counts what is written, which trails the reading by the items in flight

  // The writing side, on this thread, in input order: the split is decided at each document's first segment.
  bool validation = false;
  auto write = [&](TextWork& w) {
    if (w.error) std::rethrow_exception(w.error);
    for (const TextSegment& seg : w.segments) {
      if (seg.first) {
        validation = run.next_is_validation();
        run.writer().append(validation, "", &bos, 1);
      }
      run.writer().append(validation, "", seg.tokens.data(), seg.tokens.size());
      run.count_tokens(static_cast<int64_t>(seg.tokens.size()) + (seg.first ? 1 : 0));
      if (seg.last) run.writer().end_sequence(validation, ""), run.end_example(0);
    }
    run.report(w.input_bytes);
  };
  const int threads = prepare_threads(options.threads);
  TextEncoderPool pool(run.tokenizer(), threads, 4 * static_cast<size_t>(threads), write);

  // The reading side: documents -> segments -> work items of about kItemBytes of text.
  constexpr size_t kItemBytes = size_t{1} << 18;
  TextWork work;
  auto submit = [&] {
    work.input_bytes = run.bytes_read();
    pool.submit(std::move(work));
    work = TextWork();
  };
  DocumentSegmenter document(options.segment_bytes > 0 ? options.segment_bytes : kSegmentBytes,
                             [&](TextSegment&& seg) {
                               work.text_bytes += seg.text.size();
                               work.segments.push_back(std::move(seg));
                               if (work.text_bytes >= kItemBytes) submit();
                             });
  auto end_document = [&] {
    if (!document.end()) ++run.summary().empty;
  };
  for (const auto& file : run.files()) {
    if (file.size() > 6 && file.compare(file.size() - 6, 6, ".jsonl") == 0) {
      run.json_lines(file, [&](const Json& j) {
        const auto it = j.find(options.text_field);
        if (it == j.end()) throw FormatError("missing string field \"" + options.text_field + "\"");
        if (!it->is_string()) throw FormatError(options.text_field + ": expected a string, got " + json_brief(*it));
        document.append(it->get_ref<const std::string&>());
        end_document();
      });
    } else if (options.document == "file") {
      read_utf8_pieces(file, run, [&](std::string_view piece) { document.append(piece); });
      end_document();
    } else {
      read_blocks(file, run, document, end_document);
    }
  }
  if (!work.segments.empty()) submit();
  pool.finish();
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
    const std::optional<std::string> answer = answer_of(j);
    const bool v = run.next_is_validation();
    run.writer().add(v, "prompt", prompt);
    run.writer().add_answer(v, answer);
    run.summary().answers += answer ? 1 : 0;
    run.end_example(static_cast<int64_t>(prompt.size()));
  });
  return run.finish("prompts");
}

int64_t peak_resident_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // "VmHWM:   1234 kB"
  }
  return -1;
}

std::function<void(const PrepareProgress&)> console_progress(std::ostream& out, const std::string& label) {
  const bool tty = isatty(STDERR_FILENO) && &out == &std::cerr;
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  const auto start = std::chrono::steady_clock::now();
  return [&out, label, tty, last, start](const PrepareProgress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (!p.done && (!tty || now - *last < std::chrono::milliseconds(200))) return;
    *last = now;
    const double frac = p.done || p.bytes_total <= 0 ? 1.0 : std::min(1.0, double(p.bytes_done) / double(p.bytes_total));
    const double secs = std::chrono::duration<double>(now - start).count();
    std::ostringstream line;
    line << label;
    if (tty) {
      const int width = 30, fill = static_cast<int>(frac * width);
      line << " [" << std::string(fill, '#') << std::string(width - fill, '.') << "] " << static_cast<int>(frac * 100) << "%";
    } else {
      line << ":";  // not a terminal: this one line, once finished
    }
    line << "  " << std::fixed << std::setprecision(1) << p.bytes_done / 1048576.0 << "/" << p.bytes_total / 1048576.0
         << " MiB  " << p.examples << " examples  " << p.tokens << " tokens  " << std::setprecision(0)
         << (secs > 0 ? p.tokens / secs : 0.0) << " tokens/s  " << std::setprecision(1) << secs << " s";
    if (p.done) line << "  peak memory " << std::setprecision(0) << peak_resident_bytes() / 1048576.0 << " MiB";
    out << (tty ? "\r\033[K" : "") << line.str() << (tty && !p.done ? "" : "\n") << std::flush;
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
  if (s.answers) o << "; " << s.answers << " with an answer";
  if (!s.pair_kinds.empty()) {
    o << "; kinds:";
    for (const auto& k : s.pair_kinds) o << " " << k;
  }
  return o.str();
}

}  // namespace rg::data
