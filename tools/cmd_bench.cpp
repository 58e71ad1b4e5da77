// `rgemma bench scan|step|sample|train`: speed and memory figures, one JSON object per line (name, batch, seq,
// threads, tokens_per_s, ...). Benchmarks print figures; targets are judged by people, not asserted.
//   scan    the RG-LRU scan alone: reference loop vs fast kernel, forward and forward+backward
//   step    a training step (forward + cross-entropy + backward) of a [model] config, and the scan's share;
//           --profile adds the trainer's own step (chunked loss, clipping, AdamW) under LibTorch's profiler:
//           self time per op class (matmul, attention, rg_lru, loss, optimizer, autograd, elementwise_other)
//   sample  sampling tokens/s and state bytes vs generated length, --vs a second model (Figure 1a)
//   prefill prompt-processing tokens/s vs prompt length, --vs a second model (Figure 1b)
//   train   the data-parallel training step (ZeRO AdamW over MPI) per rank at 1, 2, ... ranks: weak scaling
//   rollout RL rollouts, prompt state shared vs prefilled per copy, and their memory (tools/bench_rollout.cpp)
#include "configs/sections.h"
#include "model/kernels/rg_lru_fused.h"
#include "model/io/safetensors.h"
#include "model/kernels/rg_lru_scan.h"
#include "model/sampler.h"
#include "tools/bench_rollout.h"
#include "tools/command.h"
#include "tools/model_source.h"
#include "trainer/comm/communicator.h"
#include "trainer/trainer.h"

#include <ATen/Parallel.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Median wall time of `repeats` runs of fn after one warm-up run.
template <class F>
double time_median(int64_t repeats, F&& fn) {
  fn();
  std::vector<double> t;
  for (int64_t i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    fn();
    t.push_back(seconds_since(start));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void emit(const nlohmann::json& j) { std::cout << j.dump() << std::endl; }

// Sizes and counts must be >= 1 (time_median of zero runs would read an empty vector).
void require_positive(const rg::config::Options& o, std::initializer_list<std::pair<const char*, int64_t>> values) {
  for (const auto& [key, v] : values) {
    if (v < 1) o.fail(key, "expected an integer >= 1, got " + std::to_string(v));
  }
}
void require_threads(const rg::config::Options& o, int64_t threads) {
  if (threads < 0 || threads > 4096) o.fail("threads", "expected 0 (automatic) to 4096, got " + std::to_string(threads));
}

double scan_seconds(rg::kernels::ScanImpl impl, int64_t B, int64_t T, int64_t L, bool backward, int64_t repeats) {
  torch::manual_seed(0);
  const torch::Tensor a = (torch::rand({B, T, L}) * 0.5 + 0.5).requires_grad_(backward);
  const torch::Tensor x = torch::randn({B, T, L}).requires_grad_(backward);
  return time_median(repeats, [&] {
    auto [y, h] = rg::kernels::rg_lru_scan(a, x, {}, impl);
    if (backward) y.sum().backward();
  });
}

int bench_scan(int argc, char** argv) {
  rg::config::Options o(argv[0], "Tokens/s of the RG-LRU scan: reference loop vs fast CPU kernel.");
  int64_t batch = 4, seq = 2048, width = 256, threads = 0, repeats = 3;
  o.add("batch", &batch, "batch B").add("seq", &seq, "sequence length T").add("width", &width, "LRU width L")
      .add("threads", &threads, "intra-op threads (0 = cores / local ranks)").add("repeats", &repeats, "timed runs");
  if (!o.parse(argc, argv)) return 0;
  require_positive(o, {{"batch", batch}, {"seq", seq}, {"width", width}, {"repeats", repeats}});
  require_threads(o, threads);
  const int used = rg::tools::configure_threads(static_cast<int>(threads));
  double seconds[2][2];
  for (int b = 0; b < 2; ++b) {
    for (auto impl : {rg::kernels::ScanImpl::kReference, rg::kernels::ScanImpl::kFast}) {
      const double s = scan_seconds(impl, batch, seq, width, b, repeats);
      seconds[impl == rg::kernels::ScanImpl::kFast][b] = s;
      emit({{"name", std::string("scan_") + (b ? "forward_backward_" : "forward_") + rg::kernels::scan_impl_name(impl)},
            {"batch", batch}, {"seq", seq}, {"width", width}, {"threads", used}, {"ms", s * 1e3},
            {"tokens_per_s", batch * seq / s}});
    }
  }
  emit({{"name", "scan_speedup"}, {"batch", batch}, {"seq", seq}, {"width", width}, {"threads", used},
        {"forward", seconds[0][0] / seconds[1][0]}, {"forward_backward", seconds[0][1] / seconds[1][1]}});
  return 0;
}

// ---- bench step --profile -----------------------------------------------------------------------------

// The class of a profiled range: by its own name first (a matmul inside the loss counts as matmul), then by
// the innermost enclosing rg:: scope (RECORD_USER_SCOPE in the model, the chunked loss and the optimizer).
std::string op_class(const std::string& name, const std::string& scope) {
  static const std::set<std::string> matmul = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
                                               "aten::matmul", "aten::linear", "aten::addmv", "aten::mv",
                                               "aten::dot", "aten::einsum"};
  static const std::set<std::string> attention = {"aten::softmax", "aten::_softmax", "aten::_softmax_backward_data",
                                                  "aten::masked_fill", "aten::masked_fill_"};
  if (matmul.count(name)) return "matmul";
  if (attention.count(name)) return "attention";
  for (const char* loss : {"log_softmax", "nll_loss", "cross_entropy", "logsumexp"}) {
    if (name.find(loss) != std::string::npos) return "loss";
  }
  if (name.find("Backward") != std::string::npos || name.rfind("CppNode", 0) == 0) return "autograd";
  if (scope.rfind("rg::rg_lru", 0) == 0) return "rg_lru";
  if (scope == "rg::attention") return "attention";
  if (scope == "rg::loss_chunk") return "loss";
  if (scope == "rg::optimizer") return "optimizer";
  return "elementwise_other";
}

struct OpProfile {
  std::map<std::string, double> class_us, op_us;  // self time (its elapsed minus its children's)
  double total_us = 0;
};

// Push/pop pairs per thread, matched by handle on a stack; each range's self time goes to its class.
OpProfile self_time_by_class(const torch::autograd::profiler::thread_event_lists& threads) {
  using torch::autograd::profiler::EventKind;
  struct Open {
    const torch::autograd::profiler::LegacyEvent* push;
    std::string scope;  // innermost rg:: range, this one included
    double children_us = 0;
  };
  OpProfile p;
  for (const auto& events : threads) {
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == EventKind::PushRange) {
        const std::string name = e.name();
        stack.push_back({&e, name.rfind("rg::", 0) == 0 ? name : stack.empty() ? "" : stack.back().scope});
      } else if (e.kind() == EventKind::PopRange) {
        auto open = std::find_if(stack.rbegin(), stack.rend(), [&](const Open& o) { return o.push->handle() == e.handle(); });
        if (open == stack.rend()) continue;  // opened before the profiler started
        const Open o = *open;
        stack.erase(std::prev(open.base()), stack.end());
        const double elapsed = o.push->cpuElapsedUs(e), self = elapsed - o.children_us;
        if (stack.empty()) p.total_us += elapsed;
        else stack.back().children_us += elapsed;
        p.class_us[op_class(o.push->name(), o.scope)] += self;
        p.op_us[o.push->name()] += self;
      }
    }
  }
  return p;
}

// The trainer's own step (hidden, chunked loss, backward, clipping, AdamW through a single-process ZeRO
// optimizer): the median wall time of `repeats` plain steps, then `repeats` steps under the legacy profiler.
void profile_train_step(rg::Griffin& model, const nlohmann::json& config, int64_t batch, int64_t seq,
                        int64_t repeats) {
  auto comm = rg::comm::make_communicator("single");
  rg::trainer::ZeroOptimizer optimizer(rg::trainer::zero_params_from(model->named_parameters()), *comm, {});
  rg::trainer::NonFiniteGuard guard;
  torch::manual_seed(2);
  const int64_t V = model->config().vocab_size;
  const rg::trainer::MicroBatch b{torch::randint(V, {batch, seq}, torch::kLong),
                                  torch::randint(V, {batch, seq}, torch::kLong),
                                  torch::arange(seq, torch::kLong).repeat({batch, 1}), torch::ones({batch, seq}),
                                  static_cast<double>(batch * seq)};
  int64_t step = 0;
  const auto train = [&] { rg::trainer::train_step(model, optimizer, *comm, {b}, 1.0, 1e-4, guard, ++step); };
  const double plain = time_median(repeats, train);
  namespace prof = torch::autograd::profiler;
  prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU));
  const auto start = Clock::now();
  for (int64_t i = 0; i < repeats; ++i) train();
  const double profiled = seconds_since(start) / repeats;
  const OpProfile p = self_time_by_class(prof::disableProfilerLegacy());
  nlohmann::json j = config;
  j["name"] = "train_step_profile";
  j["profiled_steps"] = repeats;
  j["ms_per_step"] = plain * 1e3;
  j["tokens_per_s"] = batch * seq / plain;
  j["profiled_ms_per_step"] = profiled * 1e3;
  j["recorded_ms_per_step"] = p.total_us / 1e3 / repeats;  // the top-level ranges' time: what the shares divide
  for (const char* c : {"matmul", "attention", "rg_lru", "loss", "optimizer", "autograd", "elementwise_other"}) {
    const double us = p.class_us.count(c) ? p.class_us.at(c) : 0.0;
    j[std::string(c) + "_ms"] = us / 1e3 / repeats;
    j[std::string(c) + "_share"] = p.total_us > 0 ? us / p.total_us : 0.0;
  }
  std::vector<std::pair<double, std::string>> ops;
  for (const auto& [name, us] : p.op_us) ops.emplace_back(us, name);
  std::sort(ops.rbegin(), ops.rend());
  nlohmann::json top = nlohmann::json::array();
  for (size_t i = 0; i < std::min<size_t>(10, ops.size()); ++i) top.push_back({ops[i].second, ops[i].first / 1e3 / repeats});
  j["top_ops"] = top;
  emit(j);
}

int bench_step(int argc, char** argv) {
  rg::config::Options o(argv[0], "Tokens/s of a training step (forward + cross-entropy + backward) of a [model] config.");
  rg::tools::ModelSource source;
  int64_t batch = 4, seq = 512, threads = 0, repeats = 3;
  std::string scan = "auto";
  bool profile = false;
  o.add("batch", &batch, "batch B").add("seq", &seq, "sequence length T")
      .add("threads", &threads, "intra-op threads (0 = cores / local ranks)").add("repeats", &repeats, "timed steps")
      .add("scan", &scan, "scan implementation: auto | reference | fast")
      .add("profile", &profile, "then profile the trainer's step: self time per op class (train_step_profile)");
  rg::tools::add_model_source_options(o, &source);
  if (!o.parse(argc, argv)) return 0;
  require_positive(o, {{"batch", batch}, {"seq", seq}, {"repeats", repeats}});
  require_threads(o, threads);
  const int used = rg::tools::configure_threads(static_cast<int>(threads));
  rg::Griffin model = rg::tools::make_model(source, o);
  const auto impl = rg::kernels::parse_scan_impl(scan);
  model->set_scan_impl(impl);
  const rg::ModelConfig& c = model->config();
  torch::manual_seed(1);
  const torch::Tensor tokens = torch::randint(c.vocab_size, {batch, seq + 1}, torch::kLong);
  const torch::Tensor inputs = tokens.narrow(1, 0, seq), targets = tokens.narrow(1, 1, seq);
  const torch::Tensor pos = torch::arange(seq, torch::kLong).repeat({batch, 1});
  const double step = time_median(repeats, [&] {
    model->zero_grad();
    const torch::Tensor logits = model(inputs, pos);  // (B, T, V)
    torch::nn::functional::cross_entropy(logits.reshape({-1, c.vocab_size}).to(torch::kFloat), targets.reshape(-1))
        .backward();
  });
  // The scan's share: what each recurrent block runs after its gate linears (the fused RG-LRU, or the
  // reference scan alone), forward + backward, timed on its own.
  const int64_t recurrent = c.num_blocks_of(rg::BlockType::kRecurrent);
  double scan_s = 0;
  if (recurrent && impl == rg::kernels::ScanImpl::kReference) {
    scan_s = recurrent * scan_seconds(impl, batch, seq, c.lru_width, /*backward=*/true, repeats);
  } else if (recurrent) {
    torch::manual_seed(0);
    const int64_t L = c.lru_width;
    const torch::Tensor x = torch::randn({batch, seq, L}).requires_grad_(), zx = torch::randn({batch, seq, L}).requires_grad_();
    const torch::Tensor za = torch::randn({batch, seq, L}).requires_grad_(), p = torch::randn({L}).requires_grad_();
    const torch::Tensor reset = torch::zeros({batch, seq}, torch::kBool);
    scan_s = recurrent * time_median(repeats, [&] {
      auto [y, h] = rg::kernels::rg_lru_fused(x, zx, za, p, reset, {});
      y.sum().backward();
    });
  }
  emit({{"name", "train_step"}, {"batch", batch}, {"seq", seq}, {"threads", used}, {"width", c.width},
        {"depth", c.depth}, {"vocab", c.vocab_size}, {"window", c.attention_window}, {"dtype", source.dtype},
        {"scan", impl == rg::kernels::ScanImpl::kReference ? "reference (op-by-op RG-LRU)" : "fused RG-LRU"}, {"parameters", model->num_parameters()},
        {"ms_per_step", step * 1e3}, {"tokens_per_s", batch * seq / step}, {"scan_ms", scan_s * 1e3},
        {"scan_share", scan_s / step}});
  if (profile) {
    profile_train_step(model, {{"batch", batch}, {"seq", seq}, {"threads", used}, {"dtype", source.dtype}}, batch,
                       seq, repeats);
  }
  return 0;
}

double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

// The comparison model of --vs FILE: its [model] section, in the main model's dtype and init seed.
rg::Griffin vs_model(const std::string& path, const rg::tools::ModelSource& main_source) {
  rg::config::Options vo("rgemma bench --vs", "the comparison model");
  rg::tools::ModelSource vs{"", main_source.dtype, main_source.init_seed, rg::ModelConfig{}};
  rg::config::add_model_options(vo, &vs.config);
  rg::tools::require_input_file(path, "vs");
  const char* args[] = {"rgemma bench --vs", "--config", path.c_str()};
  vo.parse(3, args);
  return rg::tools::make_model(vs, vo);
}

// Random prompts (B, P) of ids in [3, V): no BOS/EOS/pad, so nothing depends on special ids.
std::vector<std::vector<int64_t>> bench_prompts(int64_t batch, int64_t length, int64_t vocab) {
  torch::manual_seed(2);
  const torch::Tensor ids = torch::randint(3, std::max<int64_t>(4, vocab), {batch, length}, torch::kLong);
  std::vector<std::vector<int64_t>> out(batch);
  for (int64_t b = 0; b < batch; ++b) out[b].assign(ids[b].data_ptr<int64_t>(), ids[b].data_ptr<int64_t>() + length);
  return out;
}

std::string model_label(const rg::ModelConfig& c, const std::string& file) {
  if (!file.empty()) return std::filesystem::path(file).stem().string();
  return c.num_blocks_of(rg::BlockType::kRecurrent) ? "recurrentgemma" : "transformer";
}

// One generation of the longest length per model; each checkpoint n reports three rates: from the first
// generated token (tokens_per_s: what sampling n tokens costs), since the previous checkpoint
// (recent_tokens_per_s), and over the last kRateWindow steps before n (at_tokens_per_s: the speed with n
// tokens in the cache, the point of a throughput-vs-length curve).
constexpr int64_t kRateWindow = 128;
void sample_one_model(rg::Griffin& model, const std::string& label, const std::vector<int64_t>& counts,
                      int64_t batch, int64_t prompt_length, int used) {
  model->eval();
  const rg::ModelConfig& c = model->config();
  rg::SamplerOptions s;
  s.seed = 1;  // sampled, not greedy, so a random-weight model does not settle into a loop
  s.max_new_tokens = counts.back();
  const auto prompts = bench_prompts(batch, prompt_length, c.vocab_size);
  const auto p0 = Clock::now();
  rg::PromptState prompt = rg::prefill(model, prompts, s);
  const double prefill_s = seconds_since(p0);
  size_t next = 0;
  auto start = Clock::now(), last = start;
  int64_t last_count = 0;
  std::vector<Clock::time_point> step_end(kRateWindow + 1);  // step_end[n % (kRateWindow + 1)]: after n tokens
  s.on_step = [&](int64_t n, const rg::SamplingState& state) {
    const auto now = Clock::now();
    step_end[n % (kRateWindow + 1)] = now;
    if (next >= counts.size() || n != counts[next]) return;
    const double total = std::chrono::duration<double>(now - start).count();
    const double recent = std::chrono::duration<double>(now - last).count();
    const int64_t w = std::min(kRateWindow, n);
    const double window = std::chrono::duration<double>(now - step_end[(n - w) % (kRateWindow + 1)]).count();
    emit({{"name", "sample"}, {"model", label}, {"batch", batch}, {"prompt", prompt_length}, {"seq", n},
          {"threads", used}, {"width", c.width}, {"depth", c.depth}, {"vocab", c.vocab_size},
          {"window", c.attention_window}, {"dtype", rg::io::torch_dtype_name(model->dtype())},
          {"parameters", model->num_parameters()}, {"state_bytes", state.used_bytes()},
          {"state_bytes_allocated", state.bytes()}, {"peak_rss_mb", peak_rss_mb()},
          {"tokens_per_s", batch * n / total}, {"recent_tokens_per_s", batch * (n - last_count) / recent},
          {"at_tokens_per_s", batch * w / window},
          {"prefill_s", prefill_s}});
    last = now, last_count = n, ++next;
  };
  start = last = step_end[0] = Clock::now();
  rg::generate(model, std::move(prompt), s);
}

int bench_sample(int argc, char** argv) {
  rg::config::Options o(argv[0], "Sampling tokens/s and sampling-state bytes against the number of generated tokens\n"
                                 "(one generation to the longest length, reported at each length), for the model\n"
                                 "and, with --vs, a comparison model (the paper's Figure 1a).");
  rg::tools::ModelSource source;
  std::vector<std::string> lengths = {"512", "2048", "8192", "16384"};
  int64_t threads = 0, batch = 1, prompt_length = 64;
  std::string vs;
  o.add("lengths", &lengths, "generated-token counts, ascending").add("batch", &batch, "prompts sampled together")
      .add("prompt-length", &prompt_length, "prompt tokens per row (random ids)")
      .add("vs", &vs, "a [model] config file to compare with (e.g. configs/model/gemma-100m.ini)")
      .add("threads", &threads, "intra-op threads (0 = cores / local ranks)");
  rg::tools::add_model_source_options(o, &source);
  if (!o.parse(argc, argv)) return 0;
  if (!vs.empty()) rg::tools::require_input_file(vs, "vs");  // before the first model's run
  require_positive(o, {{"batch", batch}, {"prompt-length", prompt_length}});
  require_threads(o, threads);
  std::vector<int64_t> counts;
  for (const auto& text : lengths) {
    for (int64_t n : rg::tools::parse_int_list(text, "lengths", 1)) counts.push_back(n);
  }
  if (!std::is_sorted(counts.begin(), counts.end())) o.fail("lengths", "expected ascending counts");
  const int used = rg::tools::configure_threads(static_cast<int>(threads));
  rg::Griffin model = rg::tools::make_model(source, o);
  const std::string main_file = o.config_files().empty() ? "" : o.config_files().back();
  sample_one_model(model, model_label(model->config(), main_file), counts, batch, prompt_length, used);
  if (!vs.empty()) {
    rg::Griffin other = vs_model(vs, source);
    sample_one_model(other, model_label(other->config(), vs), counts, batch, prompt_length, used);
  }
  return 0;
}

// Prompt processing: one prefill (the parallel pass, logits at the last position only) per prompt length.
void prefill_one_model(rg::Griffin& model, const std::string& label, const std::vector<int64_t>& lengths,
                       int64_t batch, int64_t repeats, int used) {
  model->eval();
  const rg::ModelConfig& c = model->config();
  rg::SamplerOptions s;
  for (int64_t P : lengths) {
    const auto prompts = bench_prompts(batch, P, c.vocab_size);
    int64_t state_bytes = 0;
    const double sec = time_median(repeats, [&] { state_bytes = rg::prefill(model, prompts, s).state.used_bytes(); });
    emit({{"name", "prefill"}, {"model", label}, {"batch", batch}, {"seq", P}, {"threads", used},
          {"width", c.width}, {"depth", c.depth}, {"vocab", c.vocab_size}, {"window", c.attention_window},
          {"dtype", rg::io::torch_dtype_name(model->dtype())}, {"parameters", model->num_parameters()},
          {"state_bytes", state_bytes}, {"ms", sec * 1e3}, {"tokens_per_s", batch * P / sec}});
  }
}

int bench_prefill(int argc, char** argv) {
  rg::config::Options o(argv[0], "Prompt-processing tokens/s and the state it leaves against the prompt length, for\n"
                                 "the model and, with --vs, a comparison model (the paper's Figure 1b).");
  rg::tools::ModelSource source;
  std::vector<std::string> lengths = {"512", "2048", "8192", "16384"};
  int64_t threads = 0, batch = 1, repeats = 1;
  std::string vs;
  o.add("lengths", &lengths, "prompt lengths").add("batch", &batch, "prompts processed together")
      .add("repeats", &repeats, "timed runs per length (median; one untimed run first)")
      .add("vs", &vs, "a [model] config file to compare with (e.g. configs/model/gemma-100m.ini)")
      .add("threads", &threads, "intra-op threads (0 = cores / local ranks)");
  rg::tools::add_model_source_options(o, &source);
  if (!o.parse(argc, argv)) return 0;
  if (!vs.empty()) rg::tools::require_input_file(vs, "vs");  // before the first model's run
  require_positive(o, {{"batch", batch}, {"repeats", repeats}});
  require_threads(o, threads);
  std::vector<int64_t> counts;
  for (const auto& text : lengths) {
    for (int64_t n : rg::tools::parse_int_list(text, "lengths", 1)) counts.push_back(n);
  }
  const int used = rg::tools::configure_threads(static_cast<int>(threads));
  rg::Griffin model = rg::tools::make_model(source, o);
  const std::string main_file = o.config_files().empty() ? "" : o.config_files().back();
  prefill_one_model(model, model_label(model->config(), main_file), counts, batch, repeats, used);
  if (!vs.empty()) {
    rg::Griffin other = vs_model(vs, source);
    prefill_one_model(other, model_label(other->config(), vs), counts, batch, repeats, used);
  }
  return 0;
}

// One process per rank (launched by the parent below through mpirun): the trainer's own train_step on
// random tokens, fixed rows per rank, so perfect weak scaling keeps tokens/s per rank constant.
int bench_train_worker(rg::tools::ModelSource& source, const rg::config::Options& o, int64_t batch, int64_t seq,
                       int64_t repeats, int64_t zero_stage) {
  auto comm = rg::comm::make_communicator("auto");
  const int used = rg::tools::configure_threads(0);
  rg::Griffin model = rg::tools::make_model(source, o);
  rg::trainer::ZeroConfig zc;
  zc.stage = static_cast<int>(zero_stage);
  rg::trainer::ZeroOptimizer optimizer(rg::trainer::zero_params_from(model->named_parameters()), *comm, zc);
  rg::trainer::NonFiniteGuard guard;
  torch::manual_seed(100 + comm->rank());
  const int64_t V = model->config().vocab_size;
  rg::trainer::MicroBatch b{torch::randint(V, {batch, seq}, torch::kLong), torch::randint(V, {batch, seq}, torch::kLong),
                            torch::arange(seq, torch::kLong).repeat({batch, 1}), torch::ones({batch, seq}),
                            static_cast<double>(batch * seq)};
  int64_t step = 0;
  const double s = time_median(repeats, [&] {
    rg::trainer::train_step(model, optimizer, *comm, {b}, 1.0, 1e-4, guard, step++);
    comm->barrier();
  });
  if (comm->rank() == 0) {
    const double total = comm->world_size() * batch * seq / s;
    emit({{"name", "train_step_data_parallel"}, {"ranks", comm->world_size()}, {"batch", batch}, {"seq", seq},
          {"threads", used}, {"zero_stage", zero_stage}, {"parameters", model->num_parameters()},
          {"ms_per_step", s * 1e3}, {"tokens_per_s", total}, {"tokens_per_s_per_rank", total / comm->world_size()}});
  }
  return 0;
}

int bench_train(int argc, char** argv) {
  rg::config::Options o(argv[0], "Data-parallel training step at each rank count of --ranks (fixed rows per rank):\n"
                                 "tokens/s per rank and weak-scaling efficiency. Spawns mpirun for each count.");
  rg::tools::ModelSource source;
  int64_t batch = 4, seq = 256, repeats = 3, zero_stage = 1, threads = 1;
  std::string ranks = "1,2";
  bool worker = false;
  o.add("batch", &batch, "rows per rank").add("seq", &seq, "sequence length T").add("repeats", &repeats, "timed steps")
      .add("zero-stage", &zero_stage, "ZeRO stage 1 or 2")
      .add("threads", &threads, "intra-op threads per rank")
      .add("ranks", &ranks, "rank counts to run, e.g. 1,2")
      .add("worker", &worker, "internal: this process is one rank of a run the parent launched");
  rg::tools::add_model_source_options(o, &source);
  if (!o.parse(argc, argv)) return 0;
  require_positive(o, {{"batch", batch}, {"seq", seq}, {"repeats", repeats}, {"threads", threads}});
  if (zero_stage != 1 && zero_stage != 2) o.fail("zero-stage", "expected 1 or 2, got " + std::to_string(zero_stage));
  const std::vector<int64_t> rank_counts = rg::tools::parse_int_list(ranks, "ranks", 1, 4096);
  if (worker) return bench_train_worker(source, o, batch, seq, repeats, zero_stage);

  // Parent: re-run this very command under mpirun once per rank count, as a worker.
  std::string self(4096, '\0');
  const ssize_t n = readlink("/proc/self/exe", self.data(), self.size() - 1);
  if (n <= 0) throw std::runtime_error("bench train: cannot find the rgemma executable");
  self.resize(static_cast<size_t>(n));
  std::string args;
  for (int i = 1; i < argc; ++i) args += " '" + std::string(argv[i]) + "'";
  const char* mpiexec = std::getenv("RG_MPIEXEC");
  const std::string launcher = std::string(mpiexec ? mpiexec : "mpirun") + " --oversubscribe --bind-to none" +
                               (geteuid() == 0 ? " --allow-run-as-root" : "");
  double per_rank_1 = 0;
  for (int64_t np : rank_counts) {
    const std::string cmd = "RG_THREADS=" + std::to_string(threads) + " " + launcher + " -np " + std::to_string(np) +
                            " '" + self + "' bench train" + args + " --worker";
    FILE* pipe = popen(cmd.c_str(), "r");
    if (!pipe) throw std::runtime_error("bench train: cannot run " + cmd);
    std::string out;
    char buf[4096];
    while (size_t got = fread(buf, 1, sizeof buf, pipe)) out.append(buf, got);
    if (pclose(pipe) != 0) {
      std::cerr << out;  // the ranks' own messages, then our one-line error
      throw std::runtime_error("bench train: " + cmd + " failed (its output is above)");
    }
    const size_t brace = out.rfind('{');
    if (brace == std::string::npos) throw std::runtime_error("bench train: " + cmd + " printed no JSON result");
    const auto line = nlohmann::json::parse(out.substr(brace));
    emit(line);
    const double per_rank = line.at("tokens_per_s_per_rank").get<double>();
    if (np == 1) per_rank_1 = per_rank;
    if (np > 1 && per_rank_1 > 0) {
      emit({{"name", "weak_scaling"}, {"ranks", np}, {"batch", batch}, {"seq", seq}, {"threads", threads},
            {"efficiency", per_rank / per_rank_1}, {"tokens_per_s", line.at("tokens_per_s")}});
    }
  }
  return 0;
}

int run_bench(int argc, char** argv) {
  const std::string usage = "usage: rgemma bench scan|step|sample|prefill|train|rollout [options]  (rgemma bench <what> --help)";
  if (argc < 2) throw rg::config::ConfigError(usage);
  const std::string what = argv[1];
  if (what == "--help" || what == "-h") {
    std::cout << usage << "\n";
    return 0;
  }
  const std::string name = std::string(argv[0]) + " " + what;
  std::vector<char*> args(argv + 1, argv + argc);
  args[0] = const_cast<char*>(name.c_str());
  if (what == "scan") return bench_scan(static_cast<int>(args.size()), args.data());
  if (what == "step") return bench_step(static_cast<int>(args.size()), args.data());
  if (what == "sample") return bench_sample(static_cast<int>(args.size()), args.data());
  if (what == "prefill") return bench_prefill(static_cast<int>(args.size()), args.data());
  if (what == "train") return bench_train(static_cast<int>(args.size()), args.data());
  if (what == "rollout") return rg::tools::bench_rollout(static_cast<int>(args.size()), args.data());
  throw rg::config::ConfigError("unknown benchmark '" + what + "'; " + usage);
}

}  // namespace

RG_COMMAND("bench", "speed and memory benchmarks (scan, step, sample, prefill, train, rollout), JSON lines", run_bench);
