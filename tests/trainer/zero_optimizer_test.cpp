// ZeroOptimizer against an independent reference: every rank also trains a copy of the model as one
// process with torch::optim::AdamW and torch::nn::utils::clip_grad_norm_ on the full global batch, and the
// sharded run (each rank taking 1/N of that batch) must follow it. Run as one process and under
// mpirun -np 2 / -np 4. With RG_RESHARD_DIR set, the Reshard* tests write (np 2) or read (np 1, 4) a
// checkpoint across world sizes; CTest orders them with a fixture.
#include "trainer/zero_optimizer.h"

#include "trainer/checkpoint.h"

#include "tests/trainer/test_support.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

namespace rg::trainer {
namespace {

using rg::test::comm;

constexpr int kSteps = 20;
constexpr int kBatch = 8;  // global rows per step; divisible by 1, 2 and 4 ranks
constexpr double kLr = 3e-2, kWeightDecay = 0.1, kMaxNorm = 0.5;

// 8 -> 16 -> LayerNorm -> tanh -> 3: 227 parameters, so the flat buffer is padded at 2 and 4 ranks, and
// the LayerNorm and biases exercise the no-decay path.
torch::nn::Sequential make_model() {
  torch::manual_seed(7);
  return torch::nn::Sequential(torch::nn::Linear(8, 16), torch::nn::LayerNorm(torch::nn::LayerNormOptions({16})),
                               torch::nn::Functional(torch::tanh), torch::nn::Linear(16, 3));
}

struct Batch {
  torch::Tensor x, y;  // (B, 8), (B, 3)
};

Batch global_batch(int step) {
  auto gen = at::detail::createCPUGenerator(1000 + step);
  return {torch::randn({kBatch, 8}, gen), torch::randn({kBatch, 3}, gen)};
}

torch::Tensor loss_of(torch::nn::Sequential& model, const torch::Tensor& x, const torch::Tensor& y) {
  return torch::mse_loss(model->forward(x), y);
}

// The unsharded run: plain LibTorch, no rgemma code.
struct Reference {
  std::vector<double> losses, norms;
  std::vector<torch::Tensor> final_params;
};

Reference run_reference(int steps) {
  torch::nn::Sequential model = make_model();
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : model->named_parameters()) (p.value().dim() >= 2 ? decay : no_decay).push_back(p.value());
  auto opt_with = [](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(kLr).betas({0.9, 0.95}).eps(1e-8).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, opt_with(kWeightDecay));
  groups.emplace_back(no_decay, opt_with(0.0));
  torch::optim::AdamW opt(groups, torch::optim::AdamWOptions(kLr));
  Reference ref;
  for (int s = 0; s < steps; ++s) {
    const Batch b = global_batch(s);
    opt.zero_grad();
    torch::Tensor loss = loss_of(model, b.x, b.y);
    loss.backward();
    ref.norms.push_back(torch::nn::utils::clip_grad_norm_(model->parameters(), kMaxNorm));
    opt.step();
    ref.losses.push_back(loss.item<double>());
  }
  for (const auto& p : model->parameters()) ref.final_params.push_back(p.detach().clone());
  return ref;
}

ZeroConfig test_config(int stage) {
  ZeroConfig c;
  c.stage = stage;
  c.beta1 = 0.9;
  c.beta2 = 0.95;
  c.eps = 1e-8;
  c.weight_decay = kWeightDecay;
  c.bucket_numel = 10;  // many buckets and a partial last one, even on this tiny model
  return c;
}

// One data-parallel step: this rank's rows of the global batch. Returns the global mean loss.
double sharded_step(torch::nn::Sequential& model, ZeroOptimizer& opt, int step, double* norm) {
  const int r = comm().rank(), n = comm().world_size(), rows = kBatch / n;
  const Batch b = global_batch(step);
  opt.zero_grad();
  torch::Tensor loss = loss_of(model, b.x.narrow(0, r * rows, rows), b.y.narrow(0, r * rows, rows));
  loss.backward();
  opt.reduce_gradients();  // mean of the per-rank means = the global mean (equal rows per rank)
  *norm = opt.clip_grad_norm(kMaxNorm);
  opt.step(kLr);
  return comm().all_reduce_scalar(loss.item<double>()) / n;
}

// Relative tolerance for fp32 trajectories: the sharded gradient sums N partial batch gradients in a
// different order than the full-batch backward (a few ulp, ~1e-7), and 20 Adam steps on a well-conditioned
// problem keep the loss within 1e-6 of the reference.
void expect_rel_near(double got, double want, double rel, const std::string& what) {
  EXPECT_LE(std::abs(got - want), rel * std::abs(want)) << what << ": got " << got << " want " << want;
}

class ZeroStages : public ::testing::TestWithParam<int> {};

TEST_P(ZeroStages, FollowsSingleProcessAdamW) {
  const Reference ref = run_reference(kSteps);
  torch::nn::Sequential model = make_model();
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(GetParam()));
  int clipped = 0;
  for (int s = 0; s < kSteps; ++s) {
    double norm = 0;
    const double loss = sharded_step(model, opt, s, &norm);
    expect_rel_near(loss, ref.losses[s], 1e-6, "loss at step " + std::to_string(s));
    expect_rel_near(norm, ref.norms[s], 1e-6, "grad norm at step " + std::to_string(s));
    clipped += norm > kMaxNorm;
  }
  EXPECT_GT(clipped, 0) << "max norm too large: clipping never engaged, the test would not cover it";
  const auto params = model->parameters();
  // Parameters after 20 AdamW steps: Adam's normalised update m / (sqrt(v) + eps) passes the ~1e-7 relative
  // gradient differences (above) on at up to lr per step, so 10x the losses' 1e-6 relative (1e-6 absolute
  // for entries near zero); a wrong shard offset or a missing clip moves a parameter by ~lr = 3e-2.
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(params[i], ref.final_params[i], 1e-5, 1e-6)) << "parameter " << i;
  }
  EXPECT_EQ(opt.step_count(), kSteps);
}

INSTANTIATE_TEST_SUITE_P(Stage, ZeroStages, ::testing::Values(1, 2));

// Gradient accumulation: each rank splits its rows into two micro-batches and backpropagates both before
// one reduce; scaling by 1 / (ranks * micro-batches) gives the same mean gradient as the full batch.
TEST_P(ZeroStages, GradientAccumulationFollowsFullBatch) {
  const Reference ref = run_reference(kSteps);
  torch::nn::Sequential model = make_model();
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(GetParam()));
  const int r = comm().rank(), n = comm().world_size(), rows = kBatch / n, micro = rows / 2;
  for (int s = 0; s < kSteps; ++s) {
    const Batch b = global_batch(s);
    opt.zero_grad();
    double loss_sum = 0;
    for (int m = 0; m < 2; ++m) {
      const int64_t first = r * rows + m * micro;
      torch::Tensor loss = loss_of(model, b.x.narrow(0, first, micro), b.y.narrow(0, first, micro));
      loss.backward();
      loss_sum += loss.item<double>();
    }
    opt.reduce_gradients(1.0 / (2 * n));
    const double norm = opt.clip_grad_norm(kMaxNorm);
    opt.step(kLr);
    expect_rel_near(comm().all_reduce_scalar(loss_sum) / (2 * n), ref.losses[s], 1e-6, "loss at step " + std::to_string(s));
    expect_rel_near(norm, ref.norms[s], 1e-6, "grad norm at step " + std::to_string(s));
  }
}

TEST(ZeroOptimizer, ClippedNormEqualsUnshardedNorm) {
  // Gradients set by hand (no data split), so the norm is known in closed form.
  torch::nn::Sequential model = make_model();
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(2));
  double sum_sq = 0;
  int64_t offset = 0;
  for (auto& p : model->parameters()) {
    // Every rank holds the same values g; the reduced mean is g again.
    torch::Tensor g = torch::arange(offset, offset + p.numel(), torch::kFloat).reshape(p.sizes()) * 1e-3;
    offset += p.numel();
    sum_sq += g.to(torch::kDouble).square().sum().item<double>();
    p.mutable_grad() = g;
  }
  opt.reduce_gradients();
  const double norm = opt.clip_grad_norm(1.0);
  expect_rel_near(norm, std::sqrt(sum_sq), 1e-6, "global norm");
  // After clipping, the global norm of the slices is max_norm (up to the 1e-6 guard in the coefficient).
  const double clipped = std::sqrt(comm().all_reduce_scalar(opt.grad_slice().square().sum(torch::kDouble).item<double>()));
  expect_rel_near(clipped, 1.0, 1e-5, "clipped norm");
}

TEST(ZeroOptimizer, OptimizerMemoryIsOneNth) {
  torch::nn::Sequential model = make_model();
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(2));
  const int n = comm().world_size();
  EXPECT_EQ(opt.total_numel(), 227);
  EXPECT_EQ(opt.shard_numel(), (227 + n - 1) / n);
  EXPECT_EQ(opt.unsharded_optimizer_bytes(), 3 * 4 * 227);
  EXPECT_EQ(opt.optimizer_bytes(), 3 * 4 * ((227 + n - 1) / n));
  EXPECT_EQ(opt.gradient_bytes(), 4 * ((227 + n - 1) / n));  // stage 2: only the slice
  const std::string summary = opt.summary();
  EXPECT_NE(summary.find("ZeRO-2 over " + std::to_string(n) + " rank(s): 227 params in 6 tensors"), std::string::npos)
      << summary;
  EXPECT_NE(summary.find("(unsharded 2.72 kB)"), std::string::npos) << summary;
  const auto layout = opt.layout_json();
  EXPECT_EQ(layout["padding"].get<int64_t>(), opt.padded_numel() - 227);
  EXPECT_EQ(layout["params"][2]["name"], "1.weight");
  EXPECT_EQ(layout["params"][2]["weight_decay"], false);  // LayerNorm scale
  EXPECT_EQ(layout["params"][4]["offset"].get<int64_t>(), 8 * 16 + 16 + 16 + 16);
}

TEST(ZeroOptimizer, BFloat16ParamsKeepFp32Master) {
  torch::nn::Sequential model = make_model();
  const torch::Tensor w0 = model->parameters()[0].detach().clone();  // (16, 8) fp32
  ZeroConfig config = test_config(1);
  config.param_dtype = torch::kBFloat16;
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), config);
  const auto params = model->parameters();
  EXPECT_EQ(params[0].scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(params[0], w0.to(torch::kBFloat16)));
  // The master slice holds the fp32 values, not their bf16 rounding.
  const int64_t lo = opt.shard_offset(), len = std::min<int64_t>(opt.shard_numel(), 128 - lo);
  if (len > 0) EXPECT_TRUE(torch::equal(opt.master_slice().narrow(0, 0, len), w0.reshape(-1).narrow(0, lo, len)));
  double first = 0, last = 0, norm = 0;
  for (int s = 0; s < 5; ++s) {
    const int r = comm().rank(), rows = kBatch / comm().world_size();
    const Batch b = global_batch(0);  // one batch, so the loss must fall
    opt.zero_grad();
    // mse_loss has no bf16 CPU kernel in LibTorch 1.13; the same mean written out.
    const torch::Tensor out = model->forward(b.x.narrow(0, r * rows, rows).to(torch::kBFloat16));  // (rows, 3)
    torch::Tensor loss = (out.to(torch::kFloat) - b.y.narrow(0, r * rows, rows)).square().mean();
    loss.backward();
    opt.reduce_gradients();
    norm = opt.clip_grad_norm(kMaxNorm);
    opt.step(kLr);
    (s == 0 ? first : last) = comm().all_reduce_scalar(loss.item<double>());
  }
  EXPECT_TRUE(std::isfinite(norm));
  EXPECT_LT(last, first);
  // Parameters are exactly the bf16 cast of the gathered fp32 master.
  torch::Tensor all = torch::empty({opt.padded_numel()});
  torch::Tensor master = opt.master_slice().contiguous();
  comm().all_gather(master, all);
  EXPECT_TRUE(torch::equal(params[0].reshape(-1), all.narrow(0, 0, 128).to(torch::kBFloat16)));
}

TEST(ZeroOptimizer, SaveLoadAtSameWorldSizeIsBitExact) {
  const std::string dir = rg::test::shared_temp_dir("rg-zero");
  std::vector<double> uninterrupted;
  {
    torch::nn::Sequential model = make_model();
    ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(1));
    double norm;
    for (int s = 0; s < 12; ++s) uninterrupted.push_back(sharded_step(model, opt, s, &norm));
  }
  torch::nn::Sequential model = make_model();
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(1));
  double norm;
  for (int s = 0; s < 6; ++s) sharded_step(model, opt, s, &norm);
  opt.save_state(dir);
  comm().barrier();
  // A fresh model with different weights, resumed from the files (stage 2 reads stage-1 state).
  torch::manual_seed(99);
  torch::nn::Sequential resumed = torch::nn::Sequential(
      torch::nn::Linear(8, 16), torch::nn::LayerNorm(torch::nn::LayerNormOptions({16})),
      torch::nn::Functional(torch::tanh), torch::nn::Linear(16, 3));
  ZeroOptimizer opt2(zero_params_from(resumed->named_parameters()), comm(), test_config(2));
  opt2.load_state(dir);
  EXPECT_EQ(opt2.step_count(), 6);
  for (int s = 6; s < 12; ++s) EXPECT_EQ(sharded_step(resumed, opt2, s, &norm), uninterrupted[s]) << "step " << s;
  comm().barrier();
  if (comm().rank() == 0) std::filesystem::remove_all(dir);
}

TEST(ZeroOptimizer, LoadRejectsADifferentLayout) {
  const std::string dir = rg::test::shared_temp_dir("rg-zero");
  torch::nn::Sequential model = make_model();
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(1));
  opt.save_state(dir);
  comm().barrier();
  torch::nn::Sequential other(torch::nn::Linear(8, 16), torch::nn::Linear(16, 3));
  ZeroOptimizer opt2(zero_params_from(other->named_parameters()), comm(), test_config(1));
  try {
    opt2.load_state(dir);
    ADD_FAILURE() << "expected a layout error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("layout differs"), std::string::npos) << e.what();
  }
  comm().barrier();
  if (comm().rank() == 0) std::filesystem::remove_all(dir);
}

// A saved state with one field of optim-layout.json or of every shard corrupted: load_state refuses it
// with a one-line CheckpointError naming the file and the field, and never divides by a zero shard size,
// zeroes the weights for a zero world size, or dumps a deeply nested value. Each rank corrupts a private
// copy the same way, so every rank throws before the final collective.
std::string private_copy(const std::string& from) {
  std::string templ = (std::filesystem::temp_directory_path() / "rg-zero-bad-XXXXXX").string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
  std::filesystem::copy(from, templ + "/ckpt", std::filesystem::copy_options::recursive);
  return templ + "/ckpt";
}

nlohmann::json read_layout(const std::string& dir) {
  std::ifstream in(dir + "/optim-layout.json");
  return nlohmann::json::parse(in);
}

void expect_load_refused(const std::string& dir, const std::vector<std::string>& parts) {
  torch::nn::Sequential model = make_model();
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(1));
  try {
    opt.load_state(dir);
    ADD_FAILURE() << "accepted; expected an error mentioning " << parts.back();
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    EXPECT_LT(msg.size(), 600u) << msg;
  }
}

// A ZeRO-1 state saved after 3 steps into a fresh folder every rank agrees on: what the malformed-state
// tests corrupt. Collective.
std::string save_state_after_three_steps() {
  const std::string saved = rg::test::shared_temp_dir("rg-zero");
  {
    torch::nn::Sequential model = make_model();
    ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(1));
    double norm;
    for (int s = 0; s < 3; ++s) sharded_step(model, opt, s, &norm);
    opt.save_state(saved);
  }
  comm().barrier();
  return saved;
}

TEST(ZeroOptimizer, LoadRefusesMalformedLayoutFields) {
  const std::string saved = save_state_after_three_steps();
  const nlohmann::json good = read_layout(saved);
  const int n = comm().world_size();
  struct Case {
    std::string pointer;  // JSON pointer into the layout
    nlohmann::json value;
    std::string expect;
  };
  // Stands in for an array nested 200,000 deep, spliced into the text: building it as a json value would
  // recurse in the test itself (copy, dump), with the default 8 MiB stack at a few hundred bytes a level.
  const std::string deep_mark = "\"@DEEP@\"", deep = std::string(200000, '[') + std::string(200000, ']');
  const std::vector<Case> cases = {
      {"/shard_numel", 0, "shard_numel: expected an integer >= 1, got 0"},  // was a division by zero
      {"/world_size", 0, "world_size: expected an integer in [1, "},       // was every weight zeroed
      {"/world_size", n + 1, "shard_numel: "},  // 227 elements over n + 1 ranks give another shard size
      {"/shard_numel", good["shard_numel"].get<int64_t>() + 1, "shard_numel: "},
      {"/padded_numel", 5, "padded_numel: 5, expected shard_numel x world_size"},
      {"/padding", -1, "padding: expected an integer >= 0"},
      {"/total_numel", "227", "total_numel: expected an integer"},
      {"/total_numel", 226, "total_numel: layout differs from the model: 226"},
      {"/step", 3.0, "step: expected an integer"},
      {"/step", 1e15, "step: expected an integer"},
      {"/format", 1, "format: expected a string"},
      {"/master_dtype", "BFloat16", "master_dtype: expected \"Float\""},
      {"/zero_stage", 3, "zero_stage: expected an integer in [1, 2]"},
      {"/shard_files", nlohmann::json::array(), "shard_files: 0 files"},
      {"/shard_files/0", "../../etc/passwd", "shard_files[0]: \"../../etc/passwd\", expected"},
      {"/params/0/shape/0", 17, "params[0].shape[0]: layout differs from the model: 17"},
      {"/params/0/shape", "@DEEP@", "params[0].shape: layout differs from the model: 1 dimensions"},
      {"/params/1/name", 7, "params[1].name: expected a string, got 7"},
      {"/params/2/offset", -4, "params[2].offset: expected an integer >= 0"},
      {"/params/2/weight_decay", "no", "params[2].weight_decay: expected true or false"},
      {"/params", "@DEEP@", "params: layout differs from the model: 1 parameters"},
      {"/params/0", nlohmann::json::array(), "params[0]: expected an object, got an array of 0 values"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.pointer);
    const std::string dir = private_copy(saved);
    nlohmann::json layout = good;
    layout[nlohmann::json::json_pointer(c.pointer)] = c.value;
    std::string text = layout.dump();
    if (const size_t at = text.find(deep_mark); at != std::string::npos) text.replace(at, deep_mark.size(), deep);
    std::ofstream(dir + "/optim-layout.json", std::ios::trunc) << text;
    expect_load_refused(dir, {dir + "/optim-layout.json: " + c.expect});
    std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
  }
  // Missing keys, a missing file, and not JSON at all: named by path.
  for (const char* key : {"shard_numel", "world_size", "params"}) {
    const std::string dir = private_copy(saved);
    nlohmann::json layout = good;
    layout.erase(key);
    std::ofstream(dir + "/optim-layout.json", std::ios::trunc) << layout.dump();
    expect_load_refused(dir, {dir + "/optim-layout.json: " + key + ": missing"});
    std::ofstream(dir + "/optim-layout.json", std::ios::trunc) << "{\"format\": ";
    expect_load_refused(dir, {dir + "/optim-layout.json: not valid JSON"});
    std::filesystem::remove(dir + "/optim-layout.json");
    expect_load_refused(dir, {dir + "/optim-layout.json: cannot read"});
    std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
  }
  comm().barrier();
  if (comm().rank() == 0) std::filesystem::remove_all(saved);
}

TEST(ZeroOptimizer, LoadRefusesMalformedShards) {
  const std::string saved = save_state_after_three_steps();
  const int n = comm().world_size();
  auto shard = [&](const std::string& dir, int q) { return dir + "/optim-rank" + std::to_string(q) + "-of-" + std::to_string(n) + ".pt"; };
  // Rewrites every shard with `edit` applied to its tensors (every rank reads at least its own shard).
  auto rewrite = [&](const std::string& dir, const std::function<void(std::map<std::string, torch::Tensor>&)>& edit) {
    for (int q = 0; q < n; ++q) {
      torch::serialize::InputArchive in;
      in.load_from(shard(dir, q));
      std::map<std::string, torch::Tensor> t;
      for (const char* k : {"master", "exp_avg", "exp_avg_sq", "step", "shard_offset"}) in.read(k, t[k]);
      edit(t);
      torch::serialize::OutputArchive out;
      for (const auto& [k, v] : t) out.write(k, v);
      out.save_to(shard(dir, q));
    }
  };
  struct Case {
    std::function<void(std::map<std::string, torch::Tensor>&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](auto& t) { t["master"][0] = std::nan(""); }, "master: holds NaN or infinite values"},
      {[](auto& t) { t["exp_avg_sq"][0] = -1.0f; }, "exp_avg_sq: holds negative values"},
      {[](auto& t) { t["exp_avg"] = t["exp_avg"].narrow(0, 0, 3).clone(); }, "exp_avg: Float [3], expected Float ["},
      {[](auto& t) { t["master"] = t["master"].to(torch::kDouble); }, "master: Double"},
      {[](auto& t) { t["step"] = torch::tensor({7}, torch::kLong); }, "step: 7, but"},
      {[](auto& t) { t["shard_offset"] = torch::tensor({1.5}); }, "shard_offset: Float"},
      {[](auto& t) { t.erase("exp_avg"); }, "not a readable optimizer shard"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expect);
    const std::string dir = private_copy(saved);
    rewrite(dir, c.edit);
    expect_load_refused(dir, {dir + "/optim-rank", c.expect});
    std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
  }
  const std::string dir = private_copy(saved);
  for (int q = 0; q < n; ++q) std::ofstream(shard(dir, q), std::ios::trunc) << "not an archive";
  expect_load_refused(dir, {dir + "/optim-rank", "not a readable optimizer shard"});
  std::filesystem::remove_all(std::filesystem::path(dir).parent_path());
  comm().barrier();
  if (comm().rank() == 0) std::filesystem::remove_all(saved);
}

// Resharding: np 2 writes after 10 steps (ReshardWrite); np 1 and np 4 load it and must continue on the
// single-process reference for steps 10..19, consuming the same global batches (no data repeated or
// skipped: the step number picks the batch and each rank takes its 1/N of it).
const char* reshard_dir() { return std::getenv("RG_RESHARD_DIR"); }

TEST(ZeroOptimizer, ReshardWrite) {
  if (!reshard_dir() || std::getenv("RG_RESHARD_READ")) GTEST_SKIP() << "set RG_RESHARD_DIR to write";
  const Reference ref = run_reference(10);
  torch::nn::Sequential model = make_model();
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(2));
  double norm;
  for (int s = 0; s < 10; ++s) expect_rel_near(sharded_step(model, opt, s, &norm), ref.losses[s], 1e-6, "loss");
  if (comm().rank() == 0) {
    std::filesystem::remove_all(reshard_dir());
    std::filesystem::create_directories(reshard_dir());
  }
  comm().barrier();
  opt.save_state(reshard_dir());
  comm().barrier();
}

TEST(ZeroOptimizer, ReshardRead) {
  if (!reshard_dir() || !std::getenv("RG_RESHARD_READ")) GTEST_SKIP() << "set RG_RESHARD_DIR and RG_RESHARD_READ";
  const Reference ref = run_reference(kSteps);
  torch::nn::Sequential model = make_model();
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm(), test_config(1));
  opt.load_state(reshard_dir());
  EXPECT_EQ(opt.step_count(), 10);
  double norm;
  for (int s = 10; s < kSteps; ++s) {
    expect_rel_near(sharded_step(model, opt, s, &norm), ref.losses[s], 1e-6, "loss at step " + std::to_string(s));
    expect_rel_near(norm, ref.norms[s], 1e-6, "norm at step " + std::to_string(s));
  }
  const auto params = model->parameters();
  // Parameters after 20 AdamW steps: Adam's normalised update m / (sqrt(v) + eps) passes the ~1e-7 relative
  // gradient differences (above) on at up to lr per step, so 10x the losses' 1e-6 relative (1e-6 absolute
  // for entries near zero); a wrong shard offset or a missing clip moves a parameter by ~lr = 3e-2.
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(params[i], ref.final_params[i], 1e-5, 1e-6)) << "parameter " << i;
  }
}

}  // namespace
}  // namespace rg::trainer
