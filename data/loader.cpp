// Loader: sample -> row mapping (packed windows of the shuffled document stream, or one padded document
// per row), and the read-ahead thread. Everything is a pure function of (file, seed, sample index), so
// ranks agree without talking and a resume is exact.
#include "data/loader.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>

namespace rg::data {
namespace {

uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// One epoch's document order and the stream offset where each document starts.
struct Layout {
  uint64_t epoch = 0;
  std::vector<int64_t> order;  // (N,) document ids in stream order
  std::vector<int64_t> start;  // (N + 1,) stream offset of order[q]; start[N] = total tokens
};

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t n, uint64_t seed, uint64_t epoch) {
  std::vector<int64_t> p(n);
  std::iota(p.begin(), p.end(), 0);
  uint64_t state = seed * 0x632be59bd9b4e019ull ^ (epoch + 1) * 0x85157af5ull;
  for (int64_t i = n - 1; i > 0; --i) {
    // Multiply-shift maps 64 random bits onto [0, i] without modulo bias worth mentioning (2^-40 for n < 2^24).
    const auto j = static_cast<int64_t>((static_cast<unsigned __int128>(splitmix64(&state)) * (i + 1)) >> 64);
    std::swap(p[i], p[j]);
  }
  return p;
}

struct Loader::Impl {
  LoaderOptions opts;
  SequenceReader reader;
  int64_t docs = 0, per_epoch = 0;
  int32_t pad = 0;

  mutable std::mutex layout_mu;
  mutable std::shared_ptr<const Layout> layout;

  // Read-ahead state: the worker produces this rank's batches for cursors produce, produce + step, ...
  std::mutex mu;
  std::condition_variable cv;
  struct Item {
    Batch batch;
    std::exception_ptr error;
  };
  std::deque<Item> queue;
  uint64_t cursor = 0, produce = 0, generation = 0;
  bool stop = false, failed = false;
  std::thread worker;

  explicit Impl(LoaderOptions o) : opts(std::move(o)), reader(opts.path, opts.split) {}
  uint64_t step() const { return static_cast<uint64_t>(opts.micro_batch) * opts.world_size; }
  uint64_t first_of_rank(uint64_t c) const { return c + static_cast<uint64_t>(opts.rank) * opts.micro_batch; }

  std::shared_ptr<const Layout> layout_of(uint64_t epoch) const {
    std::lock_guard<std::mutex> g(layout_mu);
    if (layout && layout->epoch == epoch) return layout;
    auto l = std::make_shared<Layout>();
    l->epoch = epoch;
    if (opts.shuffle) {
      l->order = epoch_permutation(docs, opts.seed, epoch);
    } else {
      l->order.resize(docs);
      std::iota(l->order.begin(), l->order.end(), 0);
    }
    l->start.resize(docs + 1, 0);
    for (int64_t q = 0; q < docs; ++q) l->start[q + 1] = l->start[q] + reader.length(l->order[q]);
    layout = l;
    return l;
  }

  // Fills row `row` of `b` with global sample `s`.
  void fill(uint64_t s, int64_t row, Batch* b) const {
    const int64_t S = opts.seq_len;
    int32_t* tokens = b->tokens.data() + row * S;
    int32_t* targets = b->targets.data() + row * S;
    int32_t* pos = b->segment_pos.data() + row * S;
    float* mask = b->loss_mask.data() + row * S;
    // S + 1 stream tokens: the inputs plus the target of the last one.
    std::vector<int32_t> buf(S + 1);
    std::vector<uint8_t> m(S + 1, 1);
    std::vector<int64_t> local(S + 1), doc(S + 1);
    int64_t filled = 0;
    const auto layout = layout_of(s / per_epoch);
    const auto k = static_cast<int64_t>(s % per_epoch);
    if (opts.pack) {
      const int64_t begin = k * S, end = std::min(begin + S + 1, layout->start[docs]);
      int64_t q = std::upper_bound(layout->start.begin(), layout->start.end(), begin) - layout->start.begin() - 1;
      for (int64_t at = begin; at < end; ++q) {
        const int64_t d = layout->order[q];
        const int64_t from = at - layout->start[q], to = std::min(end, layout->start[q + 1]) - layout->start[q];
        if (to <= from) continue;  // an empty document
        reader.read(d, from, to, buf.data() + filled, reader.has_mask() ? m.data() + filled : nullptr);
        for (int64_t i = from; i < to; ++i, ++filled) local[filled] = i, doc[filled] = q;
        at += to - from;
      }
    } else {
      const int64_t d = layout->order[k];
      filled = std::min<int64_t>(reader.length(d), S + 1);
      reader.read(d, 0, filled, buf.data(), reader.has_mask() ? m.data() : nullptr);
      for (int64_t i = 0; i < filled; ++i) local[i] = i, doc[i] = 0;
    }
    for (int64_t p = 0; p < S; ++p) {
      const bool real = p < filled;
      tokens[p] = real ? buf[p] : pad;
      pos[p] = static_cast<int32_t>(real ? local[p] : p);  // padding keeps counting: causal, so unseen
      // The target is the next token of the same document; a document's last token has none.
      const bool has_target = real && p + 1 < filled && doc[p + 1] == doc[p];
      targets[p] = has_target ? buf[p + 1] : pad;
      mask[p] = has_target && m[p + 1] ? 1.0f : 0.0f;
    }
  }

  Batch make(uint64_t first, int64_t count) const {
    Batch b;
    b.rows = count, b.seq = opts.seq_len;
    const size_t n = static_cast<size_t>(count * opts.seq_len);
    b.tokens.resize(n), b.targets.resize(n), b.segment_pos.resize(n), b.loss_mask.resize(n);
    for (int64_t r = 0; r < count; ++r) fill(first + r, r, &b);
    return b;
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return stop || (!failed && queue.size() < static_cast<size_t>(opts.prefetch)); });
      if (stop) return;
      const uint64_t c = produce, gen = generation;
      lock.unlock();
      Item item;
      try {
        item.batch = make(first_of_rank(c), opts.micro_batch);
      } catch (...) {
        item.error = std::current_exception();
      }
      lock.lock();
      if (gen != generation) continue;  // a seek() happened meanwhile: this batch is stale
      failed = item.error != nullptr;
      queue.push_back(std::move(item));
      produce += step();
      cv.notify_all();
    }
  }
};

Loader::Loader(LoaderOptions options) {
  if (options.seq_len <= 0 || options.micro_batch <= 0) {
    throw std::invalid_argument("Loader: seq_len and micro_batch must be positive");
  }
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size) {
    throw std::invalid_argument("Loader: rank " + std::to_string(options.rank) + " outside world size " +
                                std::to_string(options.world_size));
  }
  impl_ = std::make_unique<Impl>(std::move(options));
  Impl& m = *impl_;
  const DatasetInfo& info = m.reader.info();
  if (info.kind != DatasetKind::kText && info.kind != DatasetKind::kChat) {
    throw BadDataFile(m.opts.path + ": a " + kind_name(info.kind) +
                      " dataset; the loader reads text or chat datasets (see read_preference/read_prompts)");
  }
  m.pad = info.tokenizer.special.pad >= 0 ? info.tokenizer.special.pad : 0;
  m.docs = m.reader.size();
  const int64_t total = m.reader.total_tokens();
  m.per_epoch = m.opts.pack ? total / m.opts.seq_len : m.docs;
  if (m.per_epoch == 0) {
    throw BadDataFile(m.opts.path + ": split '" + m.opts.split + "' has " + std::to_string(m.docs) + " documents and " +
                      std::to_string(total) + " tokens, not one row of seq_len " + std::to_string(m.opts.seq_len));
  }
  if (m.opts.prefetch > 0) m.worker = std::thread([this] { impl_->run(); });
}

Loader::~Loader() {
  if (impl_->worker.joinable()) {
    {
      std::lock_guard<std::mutex> g(impl_->mu);
      impl_->stop = true;
    }
    impl_->cv.notify_all();
    impl_->worker.join();
  }
}

Batch Loader::next() {
  Impl& m = *impl_;
  if (m.opts.prefetch <= 0) {
    Batch b = m.make(m.first_of_rank(m.cursor), m.opts.micro_batch);
    std::lock_guard<std::mutex> g(m.mu);
    m.cursor += m.step();
    return b;
  }
  std::unique_lock<std::mutex> lock(m.mu);
  m.cv.wait(lock, [&] { return !m.queue.empty(); });
  Impl::Item item = std::move(m.queue.front());
  if (item.error) std::rethrow_exception(item.error);  // left queued: the loader stays failed until seek()
  m.queue.pop_front();
  m.cursor += m.step();
  m.cv.notify_all();
  return std::move(item.batch);
}

uint64_t Loader::cursor() const {
  std::lock_guard<std::mutex> g(impl_->mu);
  return impl_->cursor;
}

void Loader::seek(uint64_t cursor) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> g(m.mu);
  m.cursor = m.produce = cursor;
  m.queue.clear();
  m.failed = false;
  ++m.generation;
  m.cv.notify_all();
}

int64_t Loader::vocab_size() const { return impl_->reader.info().tokenizer.vocab_size; }
std::string Loader::tokenizer_id() const { return impl_->reader.info().tokenizer.id; }
const DatasetInfo& Loader::info() const { return impl_->reader.info(); }
int64_t Loader::samples_per_epoch() const { return impl_->per_epoch; }

Batch Loader::samples(uint64_t first, int64_t count) const { return impl_->make(first, count); }

}  // namespace rg::data
