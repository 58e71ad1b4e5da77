// Loader: sample -> row mapping (packed windows of the shuffled document stream, or one padded document
// per row), and the read-ahead thread. Everything is a pure function of (file, seed, sample index), so
// ranks agree without talking and a resume is exact.
#include "data/loader.h"

#include "data/sources.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
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

// A uniform double in [0, 1) from (seed, stage, global sample): which source a mixture's sample comes from.
double mixture_draw(uint64_t seed, uint64_t stage, uint64_t sample) {
  uint64_t state = seed * 0x9e3779b97f4a7c15ull ^ (stage + 1) * 0xd1b54a32d192ed03ull ^ sample * 0xa0761d6478bd642full;
  splitmix64(&state);
  return static_cast<double>(splitmix64(&state) >> 11) * 0x1.0p-53;
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

// One dataset of the spec (all of it, or one source of a mixture): its shards, epoch layout and sample count.
struct LoaderSource {
  SourceSpec spec;
  ShardedReader reader;
  int64_t docs = 0, per_epoch = 0;
  mutable std::mutex layout_mu;
  mutable std::shared_ptr<const Layout> layout;

  LoaderSource(SourceSpec s, const std::string& split) : spec(std::move(s)), reader(spec.shards, split) {}
};

struct Loader::Impl {
  LoaderOptions opts;
  std::vector<std::unique_ptr<LoaderSource>> sources;
  std::vector<double> cumulative;  // mixtures: normalised cumulative weights, last = 1
  int32_t pad = 0;

  // Mixtures: which source each global sample takes and the how-many-th of that source it is. Within a stage
  // (from global sample `stage.start`, with each source at `stage.base`), sample g goes to the source its draw
  // falls in, and is that source's sample base + (draws for it in [start, g)). A Counts caches the counts at one
  // position so that moving forward costs one draw per sample; going back replays from the stage start. The
  // read-ahead maps batches through `mapped`, usage() reads `consumed` (at the cursor).
  struct Stage {
    uint64_t start = 0, index = 0;
    std::vector<uint64_t> base;
  } stage;
  nlohmann::json history = nlohmann::json::array();  // earlier stages: {index, start, end, sources: {name: n}}
  struct Counts {
    std::mutex mu;
    uint64_t at = 0;
    std::vector<uint64_t> counts;  // empty: not computed for this stage
  };
  mutable Counts mapped, consumed;

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
  bool paused = false, busy = false;  // restore() changes the stage while the worker is paused and not busy
  std::thread worker;

  explicit Impl(LoaderOptions o) : opts(std::move(o)) {}
  uint64_t step() const { return static_cast<uint64_t>(opts.micro_batch) * opts.world_size; }
  uint64_t first_of_rank(uint64_t c) const { return c + static_cast<uint64_t>(opts.rank) * opts.micro_batch; }
  bool mixture() const { return !cumulative.empty(); }

  // Stops the read-ahead (waiting out a batch in the making) so the stage can change; resume_at() restarts it.
  void pause() {
    std::unique_lock<std::mutex> lock(mu);
    paused = true, ++generation;
    queue.clear();
    cv.wait(lock, [&] { return !busy; });
  }
  void resume_at(uint64_t c) {
    for (Counts* c : {&mapped, &consumed}) {
      std::lock_guard<std::mutex> lock(c->mu);
      c->counts.clear();
    }
    std::lock_guard<std::mutex> lock(mu);
    paused = false, failed = false;
    cursor = produce = c;
    queue.clear();
    ++generation;
    cv.notify_all();
  }

  size_t source_of(uint64_t g) const {
    const double u = mixture_draw(opts.seed, stage.index, g);
    const size_t k = static_cast<size_t>(std::upper_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin());
    return std::min(k, cumulative.size() - 1);
  }

  // Per-source sample counts at global sample g (g >= stage.start), through cache `c`.
  std::vector<uint64_t> counts_at(uint64_t g, Counts& c) const {
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.counts.empty() || g < c.at) c.at = stage.start, c.counts = stage.base;
    for (; c.at < g; ++c.at) ++c.counts[source_of(c.at)];
    return c.counts;
  }

  // (source, sample of that source) of global samples [first, first + count).
  std::vector<std::pair<size_t, uint64_t>> assign(uint64_t first, int64_t count) const {
    std::vector<std::pair<size_t, uint64_t>> out(static_cast<size_t>(count));
    if (!mixture()) {
      for (int64_t r = 0; r < count; ++r) out[r] = {0, first + r};
      return out;
    }
    std::vector<uint64_t> at = counts_at(first, mapped);
    for (int64_t r = 0; r < count; ++r) {
      const size_t k = source_of(first + r);
      out[r] = {k, at[k]++};
    }
    return out;
  }

  std::shared_ptr<const Layout> layout_of(const LoaderSource& src, uint64_t epoch) const {
    std::lock_guard<std::mutex> g(src.layout_mu);
    if (src.layout && src.layout->epoch == epoch) return src.layout;
    auto l = std::make_shared<Layout>();
    l->epoch = epoch;
    if (opts.shuffle) {
      l->order = epoch_permutation(src.docs, opts.seed, epoch);
    } else {
      l->order.resize(src.docs);
      std::iota(l->order.begin(), l->order.end(), 0);
    }
    l->start.resize(src.docs + 1, 0);
    for (int64_t q = 0; q < src.docs; ++q) l->start[q + 1] = l->start[q] + src.reader.length(l->order[q]);
    src.layout = l;
    return l;
  }

  // Fills row `row` of `b` with sample `s` of source `src`.
  void fill(const LoaderSource& src, uint64_t s, int64_t row, Batch* b) const {
    const ShardedReader& reader = src.reader;
    const int64_t docs = src.docs, per_epoch = src.per_epoch;
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
    const auto layout = layout_of(src, s / per_epoch);
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
    const auto rows = assign(first, count);
    for (int64_t r = 0; r < count; ++r) fill(*sources[rows[r].first], rows[r].second, r, &b);
    return b;
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return stop || (!paused && !failed && queue.size() < static_cast<size_t>(opts.prefetch)); });
      if (stop) return;
      const uint64_t c = produce, gen = generation;
      busy = true;
      lock.unlock();
      Item item;
      try {
        item.batch = make(first_of_rank(c), opts.micro_batch);
      } catch (...) {
        item.error = std::current_exception();
      }
      lock.lock();
      busy = false;
      cv.notify_all();
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
  std::vector<SourceSpec> specs = parse_sources(m.opts.path);
  double total_weight = 0;
  for (auto& spec : specs) {
    total_weight += spec.weight;
    m.sources.push_back(std::make_unique<LoaderSource>(std::move(spec), m.opts.split));
    LoaderSource& src = *m.sources.back();
    const DatasetInfo& info = src.reader.info();
    const std::string where = src.spec.name.empty() ? m.opts.path : "source '" + src.spec.name + "' (" + info.path + ")";
    if (info.kind != DatasetKind::kText && info.kind != DatasetKind::kChat) {
      throw BadDataFile(where + ": a " + kind_name(info.kind) +
                        " dataset; the loader reads text or chat datasets (see read_preference/read_prompts)");
    }
    if (m.sources.size() > 1) check_same_dataset(m.sources.front()->reader.info(), info);
    src.docs = src.reader.size();
    const int64_t total = src.reader.total_tokens();
    src.per_epoch = m.opts.pack ? total / m.opts.seq_len : src.docs;
    if (src.per_epoch == 0) {
      throw BadDataFile(where + ": split '" + m.opts.split + "' has " + std::to_string(src.docs) + " documents and " +
                        std::to_string(total) + " tokens, not one row of seq_len " + std::to_string(m.opts.seq_len));
    }
  }
  const DatasetInfo& info = m.sources.front()->reader.info();
  m.pad = info.tokenizer.special.pad >= 0 ? info.tokenizer.special.pad : 0;
  if (!m.sources.front()->spec.name.empty()) {  // a mixture (even of one source): draws decide the source
    double sum = 0;
    for (const auto& src : m.sources) m.cumulative.push_back((sum += src->spec.weight) / total_weight);
    m.cumulative.back() = 1.0;
    m.stage.base.assign(m.sources.size(), 0);
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

int64_t Loader::vocab_size() const { return info().tokenizer.vocab_size; }
std::string Loader::tokenizer_id() const { return info().tokenizer.id; }
const DatasetInfo& Loader::info() const { return impl_->sources.front()->reader.info(); }
int64_t Loader::samples_per_epoch() const {
  int64_t total = 0;
  for (const auto& src : impl_->sources) total += src->per_epoch;
  return total;
}
uint64_t Loader::stage() const { return impl_->stage.index; }

std::vector<SourceUsage> Loader::usage() const {
  const Impl& m = *impl_;
  const uint64_t c = cursor();
  const std::vector<uint64_t> counts = m.mixture() ? m.counts_at(c, m.consumed) : std::vector<uint64_t>{c};
  std::vector<SourceUsage> out;
  for (size_t k = 0; k < m.sources.size(); ++k) {
    const uint64_t in_stage = m.mixture() ? counts[k] - m.stage.base[k] : counts[k];
    out.push_back({m.sources[k]->spec.name, m.sources[k]->spec.weight, counts[k],
                   static_cast<int64_t>(counts[k]) * m.opts.seq_len, in_stage,
                   static_cast<int64_t>(in_stage) * m.opts.seq_len});
  }
  return out;
}

nlohmann::json Loader::state() const {
  const Impl& m = *impl_;
  nlohmann::json j = {{"cursor", cursor()}};
  if (!m.mixture()) return j;
  nlohmann::json sources = nlohmann::json::object(), weights = nlohmann::json::object(), base = nlohmann::json::object();
  for (const auto& u : usage()) sources[u.name] = u.samples;
  for (size_t k = 0; k < m.sources.size(); ++k) {
    weights[m.sources[k]->spec.name] = m.sources[k]->spec.weight;
    base[m.sources[k]->spec.name] = m.stage.base[k];
  }
  j["sources"] = sources, j["weights"] = weights;
  j["stage"] = {{"start", m.stage.start}, {"index", m.stage.index}, {"base", base}};
  j["history"] = m.history;
  return j;
}

namespace {

// A non-negative integer field of a saved loader state, or BadDataFile naming it.
uint64_t loader_state_count(const nlohmann::json& j, const std::string& key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 0) {
    throw BadDataFile("data_cursor" + where + "." + key + ": missing or not a non-negative integer");
  }
  return it->get<uint64_t>();
}

}  // namespace

std::string Loader::restore(const nlohmann::json& state) {
  Impl& m = *impl_;
  if (!state.is_object()) throw BadDataFile("data_cursor: not an object");
  const uint64_t cursor = loader_state_count(state, "cursor", "");
  const bool saved_mixture = state.contains("sources");
  if (!saved_mixture && !m.mixture()) return seek(cursor), "";
  m.pause();
  // Names and weights now and then: the same mixture resumes exactly, another one starts a stage.
  std::map<std::string, uint64_t> served;
  std::map<std::string, double> weights;
  uint64_t saved_stage = 0;
  if (saved_mixture) {
    if (!state["sources"].is_object() || !state.contains("weights") || !state["weights"].is_object() ||
        !state.contains("stage") || !state["stage"].is_object()) {
      throw BadDataFile("data_cursor: 'sources', 'weights' and 'stage' must be objects");
    }
    for (const auto& [name, v] : state["sources"].items()) served[name] = loader_state_count(state["sources"], name, ".sources");
    for (const auto& [name, v] : state["weights"].items()) {
      if (!v.is_number() || !(v.get<double>() > 0)) throw BadDataFile("data_cursor.weights." + name + ": not a positive number");
      weights[name] = v.get<double>();
    }
    saved_stage = loader_state_count(state["stage"], "index", ".stage");
  } else {
    served[""] = cursor, weights[""] = 1;  // a checkpoint of one dataset: its only source served every sample
  }
  if (!m.mixture()) {  // one dataset after a mixture: a stage of one source
    m.cumulative = {1.0};
    m.stage.base.assign(1, 0);
  }
  bool same = weights.size() == m.sources.size();
  for (const auto& src : m.sources) {
    const auto w = weights.find(src->spec.name);
    same = same && w != weights.end() && w->second == src->spec.weight;
  }
  if (same && saved_mixture) {
    if (state.contains("history") && state["history"].is_array()) m.history = state["history"];
    m.stage.start = loader_state_count(state["stage"], "start", ".stage"), m.stage.index = saved_stage;
    if (m.stage.start > cursor) throw BadDataFile("data_cursor.stage.start: after the cursor");
    const nlohmann::json& base = state["stage"].contains("base") ? state["stage"]["base"] : nlohmann::json::object();
    for (size_t k = 0; k < m.sources.size(); ++k) m.stage.base[k] = loader_state_count(base, m.sources[k]->spec.name, ".stage.base");
    m.resume_at(cursor);
    for (const auto& u : usage()) {  // the replay must land where the run was
      if (u.samples != served[u.name]) {
        throw BadDataFile("data_cursor.sources." + u.name + ": " + std::to_string(served[u.name]) +
                          " samples saved, but the mixture gives " + std::to_string(u.samples) + " at cursor " +
                          std::to_string(cursor) + " (another data.seed?)");
      }
    }
    return "";
  }
  // The stage that ends here joins the history, with what each of its sources had served by its end and
  // within it (a saved state of one dataset: its only source, "data", from 0).
  if (saved_mixture && state.contains("history") && state["history"].is_array()) m.history = state["history"];
  nlohmann::json ended = nlohmann::json::object(), within = nlohmann::json::object();
  const nlohmann::json no_base = nlohmann::json::object();
  const nlohmann::json& saved_base = saved_mixture && state["stage"].contains("base") ? state["stage"]["base"] : no_base;
  for (const auto& [name, n] : served) {
    const std::string key = name.empty() ? "data" : name;
    const auto b = saved_base.find(name);
    const uint64_t base = b != saved_base.end() && b->is_number_unsigned() ? b->get<uint64_t>() : 0;
    ended[key] = n, within[key] = n >= base ? n - base : 0;
  }
  m.history.push_back({{"index", saved_stage},
                       {"start", saved_mixture ? loader_state_count(state["stage"], "start", ".stage") : 0},
                       {"end", cursor},
                       {"sources", ended},
                       {"stage_samples", within}});
  m.stage.start = cursor, m.stage.index = saved_stage + 1;
  std::string carried;
  for (size_t k = 0; k < m.sources.size(); ++k) {
    const std::string& name = m.sources[k]->spec.name;
    auto it = served.find(name);
    uint64_t from = it == served.end() ? 0 : it->second;
    if (it == served.end()) {  // a source of an earlier stage comes back where it stopped
      for (auto h = m.history.rbegin(); h != m.history.rend(); ++h) {
        if (h->is_object() && h->contains("sources") && (*h)["sources"].is_object() && (*h)["sources"].contains(name) &&
            (*h)["sources"][name].is_number_unsigned()) {
          from = (*h)["sources"][name].get<uint64_t>();
          break;
        }
      }
    }
    m.stage.base[k] = from;
    carried += (k ? ", " : "") + (name.empty() ? std::string("data") : name) + " from sample " + std::to_string(from);
  }
  m.resume_at(cursor);
  return "data.train changed: stage " + std::to_string(m.stage.index) + " from global sample " + std::to_string(cursor) +
         " (" + carried + ")";
}

Batch Loader::samples(uint64_t first, int64_t count) const { return impl_->make(first, count); }

}  // namespace rg::data
