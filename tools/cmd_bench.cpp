// `rgemma bench scan|step|sample`: speed and memory figures, one JSON object per line (name, batch, seq,
// threads, tokens_per_s, ...). Benchmarks print figures; targets are judged by people, not asserted.
//   scan    the RG-LRU scan alone: reference loop vs fast kernel, forward and forward+backward
//   step    a training step (forward + cross-entropy + backward) of a [model] config, and the scan's share
//   sample  generation length vs sampling-state bytes and peak resident memory
#include "configs/sections.h"
#include "model/kernels/rg_lru_scan.h"
#include "model/sampler.h"
#include "tools/command.h"
#include "tools/model_source.h"

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iostream>

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

int bench_step(int argc, char** argv) {
  rg::config::Options o(argv[0], "Tokens/s of a training step (forward + cross-entropy + backward) of a [model] config.");
  rg::tools::ModelSource source;
  int64_t batch = 4, seq = 512, threads = 0, repeats = 3;
  std::string scan = "auto";
  o.add("batch", &batch, "batch B").add("seq", &seq, "sequence length T")
      .add("threads", &threads, "intra-op threads (0 = cores / local ranks)").add("repeats", &repeats, "timed steps")
      .add("scan", &scan, "scan implementation: auto | reference | fast");
  rg::tools::add_model_source_options(o, &source);
  if (!o.parse(argc, argv)) return 0;
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
  // The scan's share: the same scans (forward + backward) the step runs, timed alone.
  const int64_t recurrent = c.num_blocks_of(rg::BlockType::kRecurrent);
  const double scan_s =
      recurrent ? recurrent * scan_seconds(impl, batch, seq, c.lru_width, /*backward=*/true, repeats) : 0.0;
  emit({{"name", "train_step"}, {"batch", batch}, {"seq", seq}, {"threads", used}, {"width", c.width},
        {"depth", c.depth}, {"vocab", c.vocab_size}, {"window", c.attention_window}, {"dtype", source.dtype},
        {"scan", rg::kernels::scan_impl_name(impl)}, {"parameters", model->num_parameters()},
        {"ms_per_step", step * 1e3}, {"tokens_per_s", batch * seq / step}, {"scan_ms", scan_s * 1e3},
        {"scan_share", scan_s / step}});
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

int bench_sample(int argc, char** argv) {
  rg::config::Options o(argv[0], "Sampling-state bytes and peak memory against the number of generated tokens.");
  rg::tools::ModelSource source;
  std::vector<std::string> lengths = {"256", "1024", "4096", "16384"};
  int64_t threads = 0, batch = 1;
  o.add("lengths", &lengths, "generated-token counts, ascending").add("batch", &batch, "prompts sampled together")
      .add("threads", &threads, "intra-op threads (0 = cores / local ranks)");
  rg::tools::add_model_source_options(o, &source);
  if (!o.parse(argc, argv)) return 0;
  const int used = rg::tools::configure_threads(static_cast<int>(threads));
  rg::Griffin model = rg::tools::make_model(source, o);
  model->eval();
  rg::SamplerOptions s;
  s.seed = 1;  // sampled, not greedy, so a random-weight model does not settle into a loop
  const std::vector<std::vector<int64_t>> prompts(batch, std::vector<int64_t>{2, 5, 7, 11});
  for (const auto& text : lengths) {
    s.max_new_tokens = std::stoll(text);
    const auto start = Clock::now();
    const rg::Generation g = rg::generate(model, prompts, s);
    const double sec = seconds_since(start);
    emit({{"name", "sample"}, {"batch", batch}, {"seq", s.max_new_tokens}, {"threads", used},
          {"width", model->config().width}, {"window", model->config().attention_window},
          {"state_bytes", g.state_bytes}, {"peak_rss_mb", peak_rss_mb()},
          {"tokens_per_s", batch * s.max_new_tokens / sec}});
  }
  return 0;
}

int run_bench(int argc, char** argv) {
  const std::string usage = "usage: rgemma bench scan|step|sample [options]  (rgemma bench <what> --help)";
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
  throw rg::config::ConfigError("unknown benchmark '" + what + "'; " + usage);
}

}  // namespace

RG_COMMAND("bench", "speed and memory benchmarks (scan, step, sample), JSON lines", run_bench);
