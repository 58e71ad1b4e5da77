// LR schedules against closed-form values, and the metrics file / console line / MFU arithmetic.
#include "trainer/metrics.h"
#include "trainer/schedule.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace rg::trainer {
namespace {

TEST(LrSchedule, WarmupIsLinearAndNeverZero) {
  LrSchedule s;
  s.peak_lr = 1e-3;
  s.warmup_steps = 4;
  s.total_steps = 20;
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.25e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(1), 0.5e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(3), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 1e-3);  // decay starts at its top
}

TEST(LrSchedule, CosineHalfwayAndEnd) {
  LrSchedule s;
  s.peak_lr = 2.0;
  s.warmup_steps = 10;
  s.total_steps = 110;
  s.min_lr_ratio = 0.1;
  // float64 closed forms of a few operations on O(1) values: ~1e-16 each; 1e-12 leaves room for cos.
  // progress 0.5: cos(pi/2) = 0, so the shape is 0.5: lr = 2 * (0.1 + 0.9 * 0.5)
  EXPECT_NEAR(s.lr_at(60), 2.0 * 0.55, 1e-12);
  // progress 0.25: 0.5 * (1 + cos(pi/4))
  EXPECT_NEAR(s.lr_at(35), 2.0 * (0.1 + 0.9 * 0.5 * (1 + std::sqrt(0.5))), 1e-12);
  EXPECT_NEAR(s.lr_at(110), 0.2, 1e-12);
  EXPECT_NEAR(s.lr_at(5000), 0.2, 1e-12);  // flat after the end
}

TEST(LrSchedule, LinearAndConstant) {
  LrSchedule s;
  s.peak_lr = 1.0;
  s.warmup_steps = 0;
  s.total_steps = 100;
  s.decay = LrDecay::kLinear;
  s.min_lr_ratio = 0.0;
  EXPECT_DOUBLE_EQ(s.lr_at(0), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(25), 0.75);
  EXPECT_DOUBLE_EQ(s.lr_at(100), 0.0);
  s.decay = LrDecay::kConstant;
  EXPECT_DOUBLE_EQ(s.lr_at(77), 1.0);
}

TEST(LrSchedule, JsonRoundTripAndValidation) {
  LrSchedule s;
  s.peak_lr = 5e-4;
  s.warmup_steps = 7;
  s.total_steps = 70;
  s.decay = LrDecay::kLinear;
  s.min_lr_ratio = 0.05;
  // The decay is written by name, as checkpoints written before it was an enum hold it.
  EXPECT_EQ(s.to_json().at("decay"), "linear");
  const LrSchedule t = LrSchedule::from_json(s.to_json());
  for (int64_t step : {0, 6, 7, 30, 70, 90}) EXPECT_EQ(t.lr_at(step), s.lr_at(step));
  // A trainer_state.json schedule as earlier versions wrote it (text, not from to_json) still loads.
  const LrSchedule old = LrSchedule::from_json(nlohmann::json::parse(
      R"({"decay":"constant","min_lr_ratio":0.1,"peak_lr":0.001,"total_steps":20,"warmup_steps":2})"));
  EXPECT_EQ(old.decay, LrDecay::kConstant);
  EXPECT_EQ(old.lr_at(15), 0.001);
  nlohmann::json bad = s.to_json();
  bad["decay"] = "step";
  try {
    LrSchedule::from_json(bad);
    ADD_FAILURE() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown decay 'step'"), std::string::npos) << e.what();
  }
  s.decay = LrDecay::kCosine;
  s.warmup_steps = 100;
  try {
    s.validate();
    ADD_FAILURE() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("warmup_steps (100) exceeds total_steps (70)"), std::string::npos) << e.what();
  }
}

std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(Metrics, JsonlHasRequiredFieldsAndResumeDropsLaterLines) {
  const auto dir = std::filesystem::temp_directory_path() / ("rg-metrics-" + std::to_string(::getpid()));
  const std::string path = (dir / "metrics.jsonl").string();
  {
    MetricsWriter w(path);
    for (int s = 1; s <= 5; ++s) {
      StepMetrics m;
      m.step = s;
      m.loss = 10.0 / s;
      m.lr = 1e-3;
      m.grad_norm = 0.5;
      m.tokens = 1000 * s;
      m.tokens_per_s = 123.0;
      m.mfu = 0.25;
      w.write(m);
    }
    w.write_eval(5, 5000, std::log(4.0));
  }
  auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 6u);
  for (const char* key : {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "mfu"}) {
    EXPECT_TRUE(lines[2].contains(key)) << key;
  }
  EXPECT_DOUBLE_EQ(lines[2]["loss"].get<double>(), 10.0 / 3);
  EXPECT_DOUBLE_EQ(lines[5]["val_loss"].get<double>(), std::log(4.0));
  EXPECT_NEAR(lines[5]["val_ppl"].get<double>(), 4.0, 1e-12);  // exp(log 4) in float64, printed in full
  {
    // Resuming from the checkpoint at step 3: steps 4, 5 and the eval at 5 are replayed by the new run.
    std::ofstream torn(path, std::ios::app);
    torn << "{\"step\": 6, \"lo";  // a line cut short by a kill
  }
  {
    MetricsWriter w(path, /*resume_step=*/3);
    StepMetrics m;
    m.step = 4;
    w.write(m);
  }
  lines = read_lines(path);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[2]["step"], 3);
  EXPECT_EQ(lines[3]["step"], 4);
  std::filesystem::remove_all(dir);
}

TEST(Metrics, ConsoleLineAndEta) {
  StepMetrics m;
  m.step = 120;
  m.loss = 3.45123;
  m.lr = 3e-4;
  m.grad_norm = 0.8741;
  m.tokens_per_s = 12345;
  m.mfu = 0.412;
  // 20 steps since the start at step 100 took 40 s: 2 s/step, 880 steps left = 1760 s = 29m20s.
  EXPECT_EQ(format_step_line(m, 1000, 40.0, 100),
            "step  120/1000 | loss 3.4512 | lr 3.00e-04 | gnorm 0.874 | 12.3k tok/s | mfu 41.2% | eta 29m20s");
  EXPECT_EQ(format_duration(45), "45s");
  EXPECT_EQ(format_duration(3 * 3600 + 7 * 60 + 10), "3h07m");
  EXPECT_EQ(format_duration(2 * 86400 + 4 * 3600), "2d04h");
  EXPECT_EQ(format_count(950), "950");
  EXPECT_EQ(format_count(4.56e6), "4.56M");
  EXPECT_EQ(format_progress_bar(5, 10, 10), "eval [#####.....] 5/10");
}

TEST(Metrics, Mfu) {
  // 1e9 weights, 2 attention layers of width 2048 over 2048 positions:
  // 6e9 + 12 * 2 * 2048 * 2048 flops per token.
  const double fpt = training_flops_per_token(1e9, 2, 2048, 2048);
  EXPECT_DOUBLE_EQ(fpt, 6e9 + 12.0 * 2 * 2048 * 2048);
  // 1e4 tokens in 1 s on a 1e15 peak.
  EXPECT_DOUBLE_EQ(mfu(fpt, 1e4, 1.0, 1e15), fpt * 1e4 / 1e15);
  EXPECT_EQ(mfu(fpt, 1e4, 0.0, 1e15), 0.0);
  EXPECT_EQ(mfu(fpt, 1e4, 1.0, 0.0), 0.0);
}

}  // namespace
}  // namespace rg::trainer
