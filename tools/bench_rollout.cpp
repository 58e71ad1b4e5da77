// `rgemma bench rollout`: RL rollouts (rlhf/rollout.h sample_rollouts) timed and measured.
//   speed   for --batch prompts of --prompt-length random tokens and --group G samples each, rollouts with the
//           prompt state shared (prefill once, PromptState::repeat(G)) and unshared (G x the prompt rows
//           prefilled): prompt seconds (prefill [+ repeat], timed alone through model/sampler.h), decode
//           seconds (the rollout's total minus that), tokens/s of each, and the unshared/shared ratios.
//   memory  at each --new-tokens count: the sampling state's bytes and how far the process's peak resident
//           memory (VmHWM) rose above its level before the rollout, with stop tokens disabled.
// Helpers carry a rollout_bench_ prefix: the rgemma target is one translation unit in unity builds.
#include "tools/bench_rollout.h"

#include "configs/options.h"
#include "model/sampler.h"
#include "rlhf/rollout.h"
#include "tools/command.h"
#include "tools/model_source.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace {

using RolloutBenchClock = std::chrono::steady_clock;

double rollout_bench_seconds(RolloutBenchClock::time_point start) {
  return std::chrono::duration<double>(RolloutBenchClock::now() - start).count();
}

void rollout_bench_emit(const nlohmann::json& j) { std::cout << j.dump() << std::endl; }

// A "Vm...:  N kB" line of /proc/self/status in MiB (0 where the file or the line is missing).
double rollout_bench_status_mb(const std::string& key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;
  }
  return 0;
}

// Resets VmHWM to the current resident size (Linux >= 4.0: "5" > /proc/self/clear_refs), so that each
// length's peak is its own. Returns false where that is refused; peaks are then running maxima.
bool rollout_bench_reset_peak() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

// Random prompts of ids in [3, V): no BOS/EOS/pad, so no special id ends or pads anything.
std::vector<std::vector<int32_t>> rollout_bench_prompts(int64_t batch, int64_t length, int64_t vocab) {
  torch::manual_seed(2);
  const torch::Tensor ids = torch::randint(3, std::max<int64_t>(4, vocab), {batch, length}, torch::kInt);
  std::vector<std::vector<int32_t>> out(batch);
  for (int64_t b = 0; b < batch; ++b) out[b].assign(ids[b].data_ptr<int32_t>(), ids[b].data_ptr<int32_t>() + length);
  return out;
}

rg::rlhf::RolloutOptions rollout_bench_options(int64_t prompts, int64_t group, int64_t new_tokens, bool share) {
  rg::rlhf::RolloutOptions o;
  o.group = group, o.max_new_tokens = new_tokens, o.temperature = 1.0, o.share_prompt_state = share;
  // No stop ids: every row runs to new_tokens, so both modes decode the same number of tokens.
  for (int64_t p = 0; p < prompts; ++p) o.seeds.push_back(rg::rlhf::rollout_seed(1, 0, static_cast<uint64_t>(p)));
  return o;
}

// The prompt part of a rollout as sample_rollouts runs it: prefill of each prompt once then repeat(G), or of
// G copies of each prompt.
double rollout_bench_prompt_seconds(rg::Griffin& model, const std::vector<std::vector<int32_t>>& prompts,
                                    int64_t group, bool share) {
  std::vector<std::vector<int64_t>> rows;
  for (const auto& p : prompts) {
    for (int64_t g = 0; g < (share ? 1 : group); ++g) rows.emplace_back(p.begin(), p.end());
  }
  rg::SamplerOptions so;
  const auto start = RolloutBenchClock::now();
  rg::PromptState state = rg::prefill(model, rows, so);
  if (share && group > 1) state = state.repeat(group);
  return rollout_bench_seconds(start);
}

struct RolloutBenchTiming {
  double prompt_s = 0, total_s = 0;
  int64_t new_tokens = 0, state_bytes = 0;
};

// Median over `repeats` (after one untimed warm-up) of the prompt part and of the whole rollout.
RolloutBenchTiming rollout_bench_time(rg::Griffin& model, const std::vector<std::vector<int32_t>>& prompts,
                                      int64_t group, int64_t new_tokens, bool share, int64_t repeats) {
  const auto options = rollout_bench_options(static_cast<int64_t>(prompts.size()), group, new_tokens, share);
  std::vector<double> prompt_s, total_s;
  RolloutBenchTiming t;
  for (int64_t i = 0; i <= repeats; ++i) {
    const double p = rollout_bench_prompt_seconds(model, prompts, group, share);
    const auto start = RolloutBenchClock::now();
    const rg::rlhf::Rollouts r = rg::rlhf::sample_rollouts(model, prompts, options);
    const double total = rollout_bench_seconds(start);
    t.new_tokens = r.new_tokens, t.state_bytes = r.state_bytes;
    if (i == 0) continue;  // warm-up
    prompt_s.push_back(p), total_s.push_back(total);
  }
  std::sort(prompt_s.begin(), prompt_s.end());
  std::sort(total_s.begin(), total_s.end());
  t.prompt_s = prompt_s[prompt_s.size() / 2], t.total_s = total_s[total_s.size() / 2];
  return t;
}

void rollout_bench_speed(rg::Griffin& model, const std::vector<std::vector<int32_t>>& prompts, int64_t group,
                         int64_t new_tokens, int64_t repeats, int used) {
  const int64_t N = static_cast<int64_t>(prompts.size()), P = static_cast<int64_t>(prompts[0].size());
  const int64_t rows = N * group;
  RolloutBenchTiming mode[2];
  for (bool share : {true, false}) {
    const RolloutBenchTiming t = rollout_bench_time(model, prompts, group, new_tokens, share, repeats);
    mode[share ? 0 : 1] = t;
    const double decode_s = std::max(t.total_s - t.prompt_s, 1e-9);
    rollout_bench_emit({{"name", share ? "rollout_shared_prompt" : "rollout_prompt_per_copy"}, {"prompts", N},
                        {"group", group}, {"prompt", P}, {"new_tokens", new_tokens}, {"threads", used},
                        {"prompt_rows_prefilled", share ? N : rows}, {"prompt_ms", t.prompt_s * 1e3},
                        {"decode_ms", decode_s * 1e3}, {"total_ms", t.total_s * 1e3},
                        {"prompt_tokens_per_s", rows * P / t.prompt_s},  // prompt tokens the G samples see
                        {"decode_tokens_per_s", t.new_tokens / decode_s},
                        {"rollout_tokens_per_s", t.new_tokens / t.total_s}, {"generated", t.new_tokens},
                        {"state_bytes", t.state_bytes}});
  }
  rollout_bench_emit({{"name", "rollout_prompt_copy_ratio"}, {"prompts", N}, {"group", group}, {"prompt", P},
                      {"new_tokens", new_tokens}, {"threads", used},
                      {"prompt_time_shared_over_per_copy", mode[0].prompt_s / mode[1].prompt_s},
                      {"ideal", 1.0 / static_cast<double>(group)},
                      {"total_time_per_copy_over_shared", mode[1].total_s / mode[0].total_s},
                      {"rollout_tokens_per_s_shared_over_per_copy",
                       (mode[0].new_tokens / mode[0].total_s) / (mode[1].new_tokens / mode[1].total_s)}});
}

void rollout_bench_memory(rg::Griffin& model, const std::vector<std::vector<int32_t>>& prompts, int64_t group,
                          const std::vector<int64_t>& counts, int used) {
  const int64_t N = static_cast<int64_t>(prompts.size());
  // One short rollout first so that one-time allocations (LibTorch's pools, the kernels) are not counted
  // against the first length.
  rg::rlhf::sample_rollouts(model, prompts, rollout_bench_options(N, group, 1, true));
  for (int64_t n : counts) {
    const bool reset = rollout_bench_reset_peak();
    const double before_mb = rollout_bench_status_mb(reset ? "VmRSS" : "VmHWM");
    const auto start = RolloutBenchClock::now();
    const rg::rlhf::Rollouts r = rg::rlhf::sample_rollouts(model, prompts, rollout_bench_options(N, group, n, true));
    const double seconds = rollout_bench_seconds(start);
    const double peak_mb = rollout_bench_status_mb("VmHWM");
    // The rollout's own output (ids and log-probabilities) is O(rows x n) by design; the state is not.
    int64_t output_bytes = 0;
    for (int64_t b = 0; b < r.rows(); ++b) {
      output_bytes += static_cast<int64_t>(r.completions[b].size() * sizeof(int32_t) + r.logprobs[b].size() * sizeof(double));
    }
    rollout_bench_emit({{"name", "rollout_memory"}, {"prompts", N}, {"group", group},
                        {"prompt", static_cast<int64_t>(prompts[0].size())}, {"new_tokens", n}, {"threads", used},
                        {"generated", r.new_tokens}, {"all_rows_to_length", r.new_tokens == r.rows() * n},
                        {"state_bytes", r.state_bytes}, {"output_bytes", output_bytes},
                        {"peak_rss_mb", peak_mb}, {"peak_rss_growth_mb", peak_mb - before_mb},
                        {"peak_reset_per_length", reset}, {"rollout_tokens_per_s", r.new_tokens / seconds}});
  }
}

}  // namespace

namespace rg::tools {

int bench_rollout(int argc, char** argv) {
  config::Options o(argv[0], "RL rollouts (rlhf/rollout.h): G samples per prompt with the prompt state shared\n"
                             "(prefill once + PromptState::repeat(G)) vs each copy prefilling the prompt itself;\n"
                             "then sampling-state bytes and peak resident memory growth against --new-tokens.");
  ModelSource source;
  int64_t group = 8, prompt_length = 256, batch = 1, speed_new_tokens = 128, repeats = 3, threads = 0;
  std::vector<std::string> new_tokens = {"128", "512", "1024", "2048", "4096"};
  o.add("group", &group, "samples per prompt G").range(1, 4096)
      .add("prompt-length", &prompt_length, "prompt tokens (random ids)").range(1, 1 << 20)
      .add("batch", &batch, "prompts per rollout").range(1, 4096)
      .add("speed-new-tokens", &speed_new_tokens, "new tokens per sample in the speed comparison").range(1, 1 << 20)
      .add("repeats", &repeats, "timed runs per speed mode (median; one untimed run first)").range(1, 1000)
      .add("new-tokens", &new_tokens, "new-token counts of the memory sweep (stop tokens off)")
      .add("threads", &threads, "intra-op threads (0 = cores / local ranks)").range(0, 4096);
  add_model_source_options(o, &source);
  if (!o.parse(argc, argv)) return 0;
  std::vector<int64_t> counts;
  for (const auto& text : new_tokens) {
    for (int64_t n : parse_int_list(text, "new-tokens", 1)) counts.push_back(n);
  }
  const int used = configure_threads(static_cast<int>(threads));
  Griffin model = make_model(source, o);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto prompts = rollout_bench_prompts(batch, prompt_length, model->config().vocab_size);
  rollout_bench_speed(model, prompts, group, speed_new_tokens, repeats, used);
  rollout_bench_memory(model, prompts, group, counts, used);
  return 0;
}

}  // namespace rg::tools
