// text_stream: the documents of `prepare text` in bounded memory and on every core. A document of any length
// is cut into segments of at most `segment_bytes` (segment_cut: after a non-space character, before a line
// break where there is one), segments are grouped into work items, a pool of threads tokenizes the items, and
// the items come back in input order, so the output is the same whatever the thread count
// (docs/data-formats.md, "Long documents and threads").
#pragma once

#include "data/tokenizer.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rg::data {

// Long documents are tokenized in pieces of at most this many bytes.
constexpr size_t kSegmentBytes = size_t{1} << 16;

struct TextSegment {
  std::string text;
  bool first = false, last = false;  // the document's first / last segment (both for a short document)
  std::vector<int32_t> tokens;       // filled by the pool
};

struct TextWork {
  std::vector<TextSegment> segments;
  size_t text_bytes = 0;     // the segments' text, summed
  int64_t input_bytes = 0;   // input bytes read when the item was closed (progress)
  std::exception_ptr error;  // an encode failure, raised when the item is handed back
};

// Where a document held in `text` (longer than `limit`, starting with a non-space character) is cut: the last
// c in [limit/2, limit] with text[c] == '\n' and a non-space character before it; else the same with ' '; else
// the last character boundary in [1, limit] after a non-space character; else the first one beyond `limit`;
// std::string::npos when there is none (only whitespace after the start). A cut never follows whitespace, so
// trimming the document's end never reaches back into a segment already tokenized.
size_t segment_cut(std::string_view text, size_t limit);

// One document at a time: append() its text in pieces of whole UTF-8 characters, then end(). Leading and
// trailing whitespace is trimmed as rg::data::trim does; segments go to `emit` in order.
class DocumentSegmenter {
 public:
  using Emit = std::function<void(TextSegment&&)>;
  DocumentSegmenter(size_t segment_bytes, Emit emit);
  void append(std::string_view text);
  bool end();  // false when the document held only whitespace (then nothing was emitted)

 private:
  size_t segment_bytes_;
  Emit emit_;
  std::string buffer_;
  bool started_ = false, emitted_ = false;
};

// Tokenizes work items on `threads` threads (1: inline on the caller's thread) with at most `max_items` in
// flight, handing each back to `done` in submission order on the caller's thread.
class TextEncoderPool {
 public:
  using Done = std::function<void(TextWork&)>;
  TextEncoderPool(const Tokenizer& tokenizer, int threads, size_t max_items, Done done);
  ~TextEncoderPool();  // drops what is still queued and joins the threads
  TextEncoderPool(const TextEncoderPool&) = delete;
  TextEncoderPool& operator=(const TextEncoderPool&) = delete;

  void submit(TextWork&& work);  // blocks (handing finished items back) while max_items are in flight
  void finish();                 // hands back every item still in flight

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Encodes every segment of `work` (what each pool thread runs).
void encode_work(const Tokenizer& tokenizer, TextWork& work);

}  // namespace rg::data
