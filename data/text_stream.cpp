// Document segmentation and the ordered tokenizer pool of text_stream.h.
#include "data/text_stream.h"

#include "data/text.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace rg::data {
namespace {

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Whether the character ending at byte `at` (> 0, a character boundary) of `text` is not whitespace.
bool non_space_before(std::string_view text, size_t at) {
  size_t start = at - 1;
  while (start > 0 && at - start < 4 && is_continuation_byte(text[start])) --start;
  return !rtrim_view(text.substr(start, at - start)).empty();
}

// The last c in [lo, hi] with text[c] == `mark` and a non-space character before it, or npos.
size_t last_mark_cut(std::string_view text, char mark, size_t lo, size_t hi) {
  for (size_t c = text.rfind(mark, hi); c != std::string_view::npos && c >= lo; c = text.rfind(mark, c - 1)) {
    if (non_space_before(text, c)) return c;
  }
  return std::string_view::npos;
}

}  // namespace

size_t segment_cut(std::string_view text, size_t limit) {
  limit = std::min(limit, text.size());
  while (limit > 0 && limit < text.size() && is_continuation_byte(text[limit])) --limit;  // a character boundary
  const size_t lo = std::max<size_t>(1, limit / 2);
  for (char mark : {'\n', ' '}) {
    if (const size_t c = last_mark_cut(text, mark, lo, limit); c != std::string_view::npos) return c;
  }
  // The end of the last non-space character up to the limit, else of the first one after it.
  if (const size_t c = rtrim_view(text.substr(0, limit)).size(); c > 0) return c;
  const std::string_view rest = ltrim_view(text.substr(limit));
  if (rest.empty()) return std::string_view::npos;
  size_t c = text.size() - rest.size() + 1;
  while (c < text.size() && is_continuation_byte(text[c])) ++c;
  return c;
}

DocumentSegmenter::DocumentSegmenter(size_t segment_bytes, Emit emit)
    : segment_bytes_(segment_bytes), emit_(std::move(emit)) {}

void DocumentSegmenter::append(std::string_view text) {
  if (!started_) {
    text = ltrim_view(text);  // whole characters in, so a leading space is never split between calls
    if (text.empty()) return;
    started_ = true;
  }
  buffer_.append(text);
  while (buffer_.size() > segment_bytes_) {
    const size_t c = segment_cut(buffer_, segment_bytes_);
    if (c == std::string::npos || c == 0) break;  // only whitespace past the start: wait for what follows
    TextSegment s;
    s.text = buffer_.substr(0, c);
    s.first = !emitted_;
    emitted_ = true;
    buffer_.erase(0, c);
    emit_(std::move(s));
  }
}

bool DocumentSegmenter::end() {
  const bool any = started_;
  if (started_) {
    // What is left either starts the document (non-space first) or follows a cut: empty after the trim
    // only when the document ended in whitespace, and then it still closes the document.
    TextSegment s;
    s.text = std::string(rtrim_view(buffer_));
    s.first = !emitted_, s.last = true;
    emit_(std::move(s));
  }
  buffer_.clear(), started_ = false, emitted_ = false;
  return any;
}

void encode_work(const Tokenizer& tokenizer, TextWork& work) {
  try {
    for (auto& s : work.segments) s.tokens = tokenizer.encode(s.text), s.text = std::string();
  } catch (...) {
    work.error = std::current_exception();
  }
}

struct TextEncoderPool::Impl {
  struct Job {
    TextWork work;
    bool done = false;
  };
  const Tokenizer& tokenizer;
  size_t max_items;
  Done done;
  std::mutex mutex;
  std::condition_variable queued, finished;
  std::deque<std::shared_ptr<Job>> in_order;  // submitted, not yet handed back
  std::deque<std::shared_ptr<Job>> waiting;   // not yet taken by a thread
  bool stop = false;
  std::vector<std::thread> threads;

  Impl(const Tokenizer& t, size_t m, Done d) : tokenizer(t), max_items(std::max<size_t>(1, m)), done(std::move(d)) {}

  void work_loop() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      queued.wait(lock, [&] { return stop || !waiting.empty(); });
      if (stop) return;
      std::shared_ptr<Job> job = waiting.front();
      waiting.pop_front();
      lock.unlock();
      encode_work(tokenizer, job->work);
      lock.lock();
      job->done = true;
      finished.notify_all();
    }
  }

  // Waits for the oldest item and hands it to `done` (outside the lock: done writes the output).
  void hand_back_oldest(std::unique_lock<std::mutex>& lock) {
    finished.wait(lock, [&] { return in_order.front()->done; });
    std::shared_ptr<Job> job = in_order.front();
    in_order.pop_front();
    lock.unlock();
    done(job->work);
    lock.lock();
  }
};

TextEncoderPool::TextEncoderPool(const Tokenizer& tokenizer, int threads, size_t max_items, Done done)
    : impl_(std::make_unique<Impl>(tokenizer, max_items, std::move(done))) {
  if (threads > 1) {
    for (int t = 0; t < threads; ++t) impl_->threads.emplace_back([this] { impl_->work_loop(); });
  }
}

TextEncoderPool::~TextEncoderPool() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
  }
  impl_->queued.notify_all();
  for (auto& t : impl_->threads) t.join();
}

void TextEncoderPool::submit(TextWork&& work) {
  Impl& m = *impl_;
  if (m.threads.empty()) {  // the single-threaded path: the same encode, in line
    encode_work(m.tokenizer, work);
    m.done(work);
    return;
  }
  std::unique_lock<std::mutex> lock(m.mutex);
  while (m.in_order.size() >= m.max_items) m.hand_back_oldest(lock);
  auto job = std::make_shared<Impl::Job>();
  job->work = std::move(work);
  m.in_order.push_back(job), m.waiting.push_back(job);
  m.queued.notify_one();
}

void TextEncoderPool::finish() {
  std::unique_lock<std::mutex> lock(impl_->mutex);
  while (!impl_->in_order.empty()) impl_->hand_back_oldest(lock);
}

}  // namespace rg::data
