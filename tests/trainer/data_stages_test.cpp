// Staged mixtures through the whole trainer (run_training on real HDF5 files written here): the per-source
// token counts of metrics.jsonl against the sources of the rows the loader fed, counted from the rows' token ids
// (each source's documents use their own id range, so a row names its source); the switch of data.stages at
// its step (after it only stage-2 sources); a resume from the checkpoints before, at and after the switch
// against the uninterrupted run (what a SIGKILL after that checkpoint leaves); bad data.stages refused.
#include "data/dataset.h"
#include "data/loader.h"
#include "model/config.h"
#include "tests/trainer/test_support.h"
#include "trainer/checkpoint.h"
#include "trainer/trainer.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace rg::trainer::data_stages_test {  // named: rg_trainer_test is a unity build

namespace fs = std::filesystem;

// Source s's documents use ids [kFirst[s], kFirst[s + 1]); ids below 3 are pad, bos, eos.
constexpr int32_t kFirst[] = {3, 90, 170, 256};
const char* const kNames[] = {"a", "b", "c"};
constexpr int64_t kSeqLen = 16, kMicro = 2, kAccum = 2, kSteps = 8, kSwitch = 4;

struct Fixture {
  fs::path dir;
  std::string train, stages;
};

// Three text datasets, one per source, written with DatasetWriter under an identity of vocabulary 256.
const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture f;
    f.dir = test::shared_temp_dir("rg-data-stages");
    data::TokenizerIdentity id;
    id.id = "fnv1a64:0123456789abcdef", id.path = "test", id.vocab_size = 256;
    id.special.pad = 0, id.special.bos = 1, id.special.eos = 2;
    for (int s = 0; s < 3; ++s) {
      std::mt19937 rng(40 + s);
      const std::string path = (f.dir / (std::string(kNames[s]) + ".h5")).string();
      data::DatasetWriter w(path, data::DatasetKind::kText, id, 0.1, "data_stages_test");
      for (int d = 0; d < 70; ++d) {
        std::vector<int32_t> doc = {1};
        const int len = 4 + static_cast<int>(rng() % 40);
        for (int i = 0; i < len; ++i) doc.push_back(kFirst[s] + static_cast<int32_t>(rng() % (kFirst[s + 1] - kFirst[s])));
        const bool validation = d >= 60;
        w.add(validation, "", doc);
        w.end_example(validation);
      }
      w.commit();
    }
    const std::string a = (f.dir / "a.h5").string(), b = (f.dir / "b.h5").string(), c = (f.dir / "c.h5").string();
    f.train = "a=" + a + ":0.5, b=" + b + ":0.5";
    f.stages = std::to_string(kSwitch) + ": c=" + c + ":0.7, b=" + b + ":0.3";
    return f;
  }();
  return f;
}

TrainConfig config(const std::string& out, const std::string& resume = "none") {
  TrainConfig c;
  c.data.train = fixture().train, c.data.stages = fixture().stages;
  c.data.seq_len = kSeqLen, c.data.micro_batch = kMicro, c.data.seed = 3;
  c.train.out = out, c.train.steps = kSteps, c.train.grad_accum = kAccum, c.train.eval_every = 0;
  c.train.eval_batches = 1, c.train.log_every = 100, c.train.device = TrainDevice::kCpu;
  c.train.dtype = TrainDtype::kFloat32;
  c.optim.warmup_steps = 2;
  c.checkpoint.every = 1, c.checkpoint.keep_last = 100, c.checkpoint.resume = resume;
  return c;
}

int train(const TrainConfig& c) { return run_training(Task::kPretrain, c, ModelConfig{}, test::comm(), ""); }

// metrics.jsonl's training lines by step, and its data_switch lines.
struct Metrics {
  std::map<int64_t, nlohmann::json> steps;
  std::vector<nlohmann::json> switches;
};
Metrics read_metrics(const fs::path& out) {
  Metrics m;
  std::ifstream in(out / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) m.steps[j["step"].get<int64_t>()] = j;
    if (j.contains("data_switch")) m.switches.push_back(j);
  }
  return m;
}

// The source of a row, from its token ids; -1 for a row of special ids only.
int source_of_row(const data::Batch& b, int64_t r) {
  int source = -1;
  for (int64_t p = 0; p < b.seq; ++p) {
    const int32_t t = b.tokens[r * b.seq + p];
    for (int s = 0; s < 3 && t >= kFirst[0]; ++s) {
      if (t >= kFirst[s] && t < kFirst[s + 1]) {
        EXPECT_TRUE(source == -1 || source == s) << "a row mixes sources " << source << " and " << s;
        source = s;
      }
    }
  }
  return source;
}

TEST(DataStages, MetricsCountTheSourcesOfTheRowsFedAndTheSwitchHappensAtItsStep) {
  const fs::path out = fixture().dir / "straight";
  ASSERT_EQ(train(config(out.string())), 0);
  const Metrics m = read_metrics(out);
  ASSERT_EQ(m.steps.size(), static_cast<size_t>(kSteps));
  ASSERT_EQ(m.switches.size(), 1u);
  EXPECT_EQ(m.switches[0]["step"], kSwitch + 1);  // the first update on the new mixture

  // The rows the trainer read, by a loader of the same options: data.train for kSwitch updates, then the stage's.
  data::LoaderOptions lo;
  lo.path = fixture().train, lo.seq_len = kSeqLen, lo.micro_batch = kMicro, lo.seed = 3, lo.prefetch = 0;
  auto loader = std::make_unique<data::Loader>(lo);
  std::map<std::string, int64_t> total, in_stage;
  for (int64_t step = 1; step <= kSteps; ++step) {
    if (step == kSwitch + 1) {
      data::LoaderOptions so = lo;
      so.path = fixture().stages.substr(fixture().stages.find(':') + 1);
      auto next = std::make_unique<data::Loader>(so);
      next->restore(loader->state());
      loader = std::move(next);
      in_stage.clear();
    }
    for (int64_t i = 0; i < kAccum; ++i) {
      const data::Batch b = loader->next();
      for (int64_t r = 0; r < b.rows; ++r) {
        const int s = source_of_row(b, r);
        ASSERT_GE(s, 0) << "step " << step << " row " << r;
        if (step > kSwitch) EXPECT_NE(s, 0) << "step " << step << ": a row of 'a', which stage 2 does not name";
        total[kNames[s]] += kSeqLen, in_stage[kNames[s]] += kSeqLen;
      }
    }
    const nlohmann::json& line = m.steps.at(step);
    EXPECT_EQ(line["data_stage"], step > kSwitch ? 1 : 0) << "step " << step;
    for (const char* name : kNames) {
      const std::string key = std::string("data_tokens/") + name, stage_key = std::string("data_stage_tokens/") + name;
      const bool listed = step > kSwitch ? name != std::string("a") : name != std::string("c");
      ASSERT_EQ(line.contains(key), listed) << "step " << step << " " << key << " in " << line.dump();
      if (!listed) continue;
      EXPECT_EQ(line[key], total[name]) << "step " << step << " " << key;
      EXPECT_EQ(line[stage_key], in_stage[name]) << "step " << step << " " << stage_key;
    }
  }
  // Both stages drew from each of their sources (else the checks above could not tell them apart).
  EXPECT_GT(total["a"], 0);
  EXPECT_GT(total["c"], 0);
  EXPECT_GT(m.steps.at(kSteps)["data_stage_tokens/b"].get<int64_t>(), 0);

  // The checkpoint after the switch records the stage and what the first one served.
  const TrainerState s = read_trainer_state((out / "checkpoints" / "step-000005").string());
  const nlohmann::json& cursor = s.data_cursor;
  EXPECT_EQ(cursor["stage"]["index"], 1);
  EXPECT_EQ(cursor["stage"]["start"], kSwitch * kMicro * kAccum);
  ASSERT_EQ(cursor["history"].size(), 1u);
  const nlohmann::json& first = cursor["history"][0];
  EXPECT_EQ(first["end"], kSwitch * kMicro * kAccum);
  const nlohmann::json& at_switch = m.steps.at(kSwitch);
  for (const char* name : {"a", "b"}) {
    EXPECT_EQ(first["stage_samples"][name].get<int64_t>() * kSeqLen, at_switch[std::string("data_tokens/") + name]);
  }
}

// Every metrics.jsonl line, timing fields removed: they differ between any two runs; everything else (loss,
// grad_norm, lr, data_*, val_loss) is the same computation on the same rows in the same order, so equal to
// the last bit.
std::vector<nlohmann::json> metrics_lines(const fs::path& out) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(out / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    j.erase("tokens_per_s"), j.erase("mfu");
    lines.push_back(j);
  }
  return lines;
}

TEST(DataStages, AResumeBeforeAtOrAfterTheSwitchGivesTheMetricsOfTheUninterruptedRun) {
  const fs::path straight = fixture().dir / "straight-for-resume";
  ASSERT_EQ(train(config(straight.string())), 0);
  const std::vector<nlohmann::json> want = metrics_lines(straight);
  for (int64_t k : {kSwitch - 1, kSwitch, kSwitch + 1}) {
    // What a SIGKILL after the checkpoint of step k leaves: that checkpoint and the older ones, and metrics
    // lines past it (here all of them, the switch line included); resume=auto continues from step k.
    const fs::path out = fixture().dir / ("killed-" + std::to_string(k));
    fs::copy(straight, out, fs::copy_options::recursive);
    fs::remove_all(out / "final");
    for (int64_t later = k + 1; later <= kSteps; ++later) {
      char name[32];
      std::snprintf(name, sizeof name, "step-%06lld", static_cast<long long>(later));
      ASSERT_TRUE(fs::remove_all(out / "checkpoints" / name) > 0) << name;
    }
    ASSERT_EQ(train(config(out.string(), "auto")), 0);
    const std::vector<nlohmann::json> got = metrics_lines(out);
    ASSERT_EQ(got.size(), want.size()) << "resumed at " << k;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], want[i]) << "resumed at " << k << ", line " << i;
    const auto end = [&](const fs::path& run) {
      return read_trainer_state((run / "checkpoints" / "step-000008").string()).data_cursor;
    };
    EXPECT_EQ(end(out), end(straight)) << "resumed at " << k;
  }
}

TEST(DataStages, BadStagesAreRefusedNamingTheKey) {
  const fs::path out = fixture().dir / "bad";
  const std::string b = (fixture().dir / "b.h5").string();
  for (const std::string& stages : {"4: b=" + b + ":1; 4: b=" + b + ":0.5, a=" + b + ":0.5",
                                    "4: b=" + b + ":1; 2: a=" + b + ":1", "3: " + (fixture().dir / "none.h5").string() + ":1",
                                    "0: b=" + b + ":1", "x: b=" + b + ":1"}) {
    TrainConfig c = config(out.string());
    c.data.stages = stages;
    try {
      train(c);
      ADD_FAILURE() << "accepted data.stages = " << stages;
    } catch (const TrainSetupError& e) {  // exit 2
      EXPECT_EQ(std::string(e.what()).rfind("data.stages: ", 0), 0u) << e.what();
    }
  }
}

}  // namespace rg::trainer::data_stages_test
