// Checkpoint directories under real ranks: atomic publish with a marker, keep-last-K, incomplete
// directories ignored by find_latest_complete / --resume, a failing rank leaving earlier checkpoints intact,
// the state files, and the save/restore pair (RunCheckpoint): a resume that continues bit-exactly, a
// weights file checked against the restored master weights, non-finite weights refused. Then the
// resume checks: a real checkpoint with one thing corrupted per case is refused with a one-line
// CheckpointError naming the file and field (truncated or missing files, wrong types, floats for
// integers, out-of-range and inconsistent fields, nested JSON, another model's weights).
#include "trainer/checkpoint.h"
#include "trainer/faults.h"
#include "trainer/run_checkpoint.h"
#include "trainer/schedule.h"
#include "trainer/zero_optimizer.h"

#include "model/io/safetensors.h"
#include "tests/trainer/test_support.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>

namespace fs = std::filesystem;

namespace rg::trainer {
namespace {

using rg::test::comm;

void write_rank_file(const std::string& dir) {
  std::ofstream(dir + "/rank" + std::to_string(comm().rank()) + ".txt") << "rank " << comm().rank() << "\n";
}

TEST(Checkpoint, NamesParse) {
  EXPECT_EQ(checkpoint_dir_name(123), "step-000123");
  EXPECT_EQ(checkpoint_dir_name(12345678), "step-12345678");
  EXPECT_EQ(parse_checkpoint_step("step-000123"), 123);
  EXPECT_EQ(parse_checkpoint_step("step-000123.tmp"), -1);
  EXPECT_EQ(parse_checkpoint_step("step-"), -1);
  EXPECT_EQ(parse_checkpoint_step("latest"), -1);
}

TEST(Checkpoint, SavesAtomicallyAndKeepsLastK) {
  const std::string root = rg::test::shared_temp_dir("rg-ckpt");
  CheckpointWriter writer(root, /*keep_last=*/2, comm());
  for (int64_t step : {10, 20, 30}) {
    const std::string dir = writer.save(step, write_rank_file);
    EXPECT_EQ(dir, root + "/" + checkpoint_dir_name(step));
    for (int r = 0; r < comm().world_size(); ++r) EXPECT_TRUE(fs::exists(dir + "/rank" + std::to_string(r) + ".txt"));
    EXPECT_TRUE(fs::exists(dir + "/" + kCheckpointMarker));
    EXPECT_FALSE(fs::exists(dir + ".tmp"));
  }
  const auto all = list_complete_checkpoints(root);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].step, 20);
  EXPECT_EQ(all[1].step, 30);
  EXPECT_FALSE(fs::exists(root + "/step-000010"));
  EXPECT_EQ(find_latest_complete(root).value(), root + "/step-000030");
  // The marker lists the files with their sizes.
  std::ifstream marker(root + "/step-000030/" + kCheckpointMarker);
  const auto m = nlohmann::json::parse(marker);
  EXPECT_EQ(m["step"], 30);
  EXPECT_EQ(m["files"]["rank0.txt"], 7);
  comm().barrier();
  if (comm().rank() == 0) fs::remove_all(root);
}

TEST(Checkpoint, IncompleteDirectoriesAreIgnored) {
  const std::string root = rg::test::shared_temp_dir("rg-ckpt");
  CheckpointWriter writer(root, 3, comm());
  writer.save(5, write_rank_file);
  if (comm().rank() == 0) {
    // A crash mid-write (the .tmp) and one between rename and marker (newer steps, unmarked).
    fs::create_directories(root + "/step-000009.tmp");
    std::ofstream(root + "/step-000009.tmp/rank0.txt") << "partial";
    fs::create_directories(root + "/step-000008");
    std::ofstream(root + "/step-000008/rank0.txt") << "partial";
  }
  comm().barrier();
  EXPECT_EQ(find_latest_complete(root).value(), root + "/step-000005");
  EXPECT_EQ(resolve_resume("auto", root).value(), root + "/step-000005");
  EXPECT_FALSE(resolve_resume("none", root).has_value());
  EXPECT_FALSE(resolve_resume("auto", root + "/nothing-here").has_value());  // fresh start
  try {
    resolve_resume(root + "/step-000008", root);
    ADD_FAILURE() << "an unmarked checkpoint must be refused";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("incomplete"), std::string::npos) << e.what();
  }
  comm().barrier();
  // The next save cleans the debris up; the complete one stays.
  writer.save(12, write_rank_file);
  EXPECT_FALSE(fs::exists(root + "/step-000009.tmp"));
  EXPECT_FALSE(fs::exists(root + "/step-000008"));
  EXPECT_TRUE(fs::exists(root + "/step-000005/" + kCheckpointMarker));
  comm().barrier();
  if (comm().rank() == 0) fs::remove_all(root);
}

TEST(Checkpoint, FailureOnOneRankKeepsEarlierCheckpoints) {
  const std::string root = rg::test::shared_temp_dir("rg-ckpt");
  CheckpointWriter writer(root, 1, comm());
  writer.save(1, write_rank_file);
  const int last = comm().world_size() - 1;
  try {
    writer.save(2, [&](const std::string& dir) {
      write_rank_file(dir);
      if (comm().rank() == last) throw std::runtime_error("disk full (injected)");
    });
    ADD_FAILURE() << "every rank must see the failure";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("writing failed on 1 rank(s)"), std::string::npos) << e.what();
    if (comm().rank() == last) EXPECT_NE(std::string(e.what()).find("disk full"), std::string::npos) << e.what();
  }
  comm().barrier();
  EXPECT_EQ(find_latest_complete(root).value(), root + "/step-000001");  // keep_last 1 did not prune it
  EXPECT_FALSE(fs::exists(root + "/step-000002"));
  EXPECT_FALSE(fs::exists(root + "/step-000002.tmp"));
  comm().barrier();
  if (comm().rank() == 0) fs::remove_all(root);
}

TEST(Checkpoint, StateFilesRoundTrip) {
  const std::string dir = rg::test::shared_temp_dir("rg-ckpt");
  TrainerState s;
  s.step = 42;
  s.tokens = 123456789012;
  s.skipped_steps = 3;
  s.world_size = comm().world_size();
  s.schedule = LrSchedule{}.to_json();
  s.data_cursor = {{"epoch", 1}, {"sample", 977}};
  if (comm().rank() == 0) write_trainer_state(dir, s);
  // RNG: the numbers drawn after a restore repeat the ones drawn after the save.
  torch::manual_seed(1234 + comm().rank());
  torch::randn({3});
  save_rng_state(dir, comm().rank());
  const torch::Tensor first = torch::randn({5});
  torch::randn({100});
  EXPECT_TRUE(load_rng_state(dir, comm().rank()));
  EXPECT_TRUE(torch::equal(torch::randn({5}), first));
  EXPECT_FALSE(load_rng_state(dir, comm().world_size()));  // no such rank in the checkpoint
  comm().barrier();
  const TrainerState t = read_trainer_state(dir);
  EXPECT_EQ(t.step, 42);
  EXPECT_EQ(t.tokens, 123456789012);
  EXPECT_EQ(t.skipped_steps, 3);
  EXPECT_EQ(t.data_cursor["sample"], 977);
  EXPECT_EQ(LrSchedule::from_json(t.schedule).lr_at(10), LrSchedule{}.lr_at(10));
  comm().barrier();
  if (comm().rank() == 0) fs::remove_all(dir);
}

TEST(Checkpoint, WeightsRoundTripAndShapeCheck) {
  const std::string dir = rg::test::shared_temp_dir("rg-ckpt");
  torch::manual_seed(5);  // the same `a` on every rank: rank 0 saves it, all ranks compare with it
  torch::nn::Linear a(4, 3), b(4, 3), c(5, 3);
  if (comm().rank() == 0) save_weights(dir, {{"layer.weight", a->weight}, {"layer.bias", a->bias}});
  comm().barrier();
  load_weights(dir, {{"layer.weight", b->weight}, {"layer.bias", b->bias}});
  EXPECT_TRUE(torch::equal(a->weight, b->weight));
  EXPECT_TRUE(torch::equal(a->bias, b->bias));
  const torch::Tensor before = c->bias.detach().clone();
  EXPECT_THROW(load_weights(dir, {{"layer.bias", c->bias}, {"layer.weight", c->weight}}), std::runtime_error);
  EXPECT_TRUE(torch::equal(c->bias, before)) << "nothing may be copied when any tensor mismatches";
  comm().barrier();
  if (comm().rank() == 0) fs::remove_all(dir);
}

// A small model and its step, for the save/restore tests below.
torch::nn::Sequential make_model(uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(6, 12), torch::nn::Functional(torch::relu), torch::nn::Linear(12, 2));
}

std::vector<std::pair<std::string, torch::Tensor>> named(torch::nn::Sequential& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m->named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

// The batch depends on the step (the data cursor) and on dropout-like noise from the global RNG, so the
// resume must restore both.
double train_step(torch::nn::Sequential& model, ZeroOptimizer& opt, const LrSchedule& sched, int64_t step) {
  auto gen = at::detail::createCPUGenerator(500 + step);
  const int r = comm().rank(), n = comm().world_size(), rows = 8 / n;
  const torch::Tensor x = torch::randn({8, 6}, gen).narrow(0, r * rows, rows) + 0.01 * torch::randn({rows, 6});
  const torch::Tensor y = torch::randn({8, 2}, gen).narrow(0, r * rows, rows);
  opt.zero_grad();
  torch::Tensor loss = torch::mse_loss(model->forward(x), y);
  loss.backward();
  opt.reduce_gradients();
  opt.clip_grad_norm(1.0);
  opt.step(sched.lr_at(step));
  return comm().all_reduce_scalar(loss.item<double>());
}

// The save/restore pair the training loops use (RunCheckpoint): train, checkpoint every 4 steps, "crash"
// after step 10, restore with --resume auto into a fresh model, optimizer and RNG state, and the losses
// repeat bit for bit.
TEST(RunCheckpoint, ResumeAutoContinuesBitExactly) {
  const std::string root = rg::test::shared_temp_dir("rg-ckpt");
  LrSchedule sched;
  sched.peak_lr = 1e-2;
  sched.warmup_steps = 3;
  sched.total_steps = 12;
  std::vector<double> uninterrupted;
  {
    torch::manual_seed(77 + comm().rank());
    torch::nn::Sequential model = make_model(3);
    ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm());
    RunCheckpoint ckpt(root, 2, *model, opt, sched, comm(), /*seed=*/0);
    for (int64_t s = 0; s < 12; ++s) {
      uninterrupted.push_back(train_step(model, opt, sched, s));
      if ((s + 1) % 4 == 0 && s + 1 < 10) {  // checkpoints at steps 4 and 8; the run "dies" after step 10
        torch::manual_seed(77 + comm().rank() + s);  // as if the loop reseeded; the checkpoint must capture it
        TrainerState st;
        st.step = s + 1, st.tokens = 48 * (s + 1);  // 8 rows of 6 per step
        ckpt.save(st, /*cursor=*/8 * static_cast<uint64_t>(s + 1));
      }
    }
  }
  // A fresh start: other weights, other RNG state.
  torch::manual_seed(999);
  torch::nn::Sequential model = make_model(4);
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm());
  RunCheckpoint ckpt(root, 2, *model, opt, sched, comm(), /*seed=*/0);
  const std::optional<Resumed> r = ckpt.restore("auto", 12);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->dir, root + "/step-000008");
  EXPECT_EQ(r->state.step, 8);
  EXPECT_EQ(r->state.tokens, 48 * 8);
  EXPECT_EQ(r->cursor, 64u);
  EXPECT_EQ(r->schedule_changes, "");
  for (int64_t s = r->state.step; s < 12; ++s) {
    EXPECT_EQ(train_step(model, opt, sched, s), uninterrupted[s]) << "step " << s;
  }
  EXPECT_FALSE(ckpt.restore("none", 12).has_value());
  comm().barrier();
  if (comm().rank() == 0) fs::remove_all(root);
}

// What a checkpoint writes, resume reads back: weights.safetensors must hold the values the optimizer's
// master weights restore, and a changed schedule (a lower lr, more steps) is reported.
TEST(RunCheckpoint, RestoreChecksTheWeightsFileAndReportsScheduleChanges) {
  const std::string root = rg::test::shared_temp_dir("rg-ckpt");
  LrSchedule sched;
  sched.total_steps = 10;
  torch::nn::Sequential model = make_model(3);
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm());
  for (int64_t s = 0; s < 2; ++s) train_step(model, opt, sched, s);
  RunCheckpoint ckpt(root, 1, *model, opt, sched, comm(), /*seed=*/0);
  TrainerState st;
  st.step = 2, st.tokens = 96;
  const std::string dir = ckpt.save(st, 16);
  EXPECT_EQ(weights_mismatch(dir, named(model)), "");

  LrSchedule lower = sched;
  lower.peak_lr = 1e-4, lower.total_steps = 20;
  torch::nn::Sequential fresh = make_model(4);
  ZeroOptimizer fresh_opt(zero_params_from(fresh->named_parameters()), comm());
  RunCheckpoint resumed(root, 1, *fresh, fresh_opt, lower, comm(), /*seed=*/0);
  const auto r = resumed.restore(dir, 20);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->schedule_changes, "peak_lr 0.0003 -> 0.0001, total_steps 10 -> 20");
  for (const auto& [name, t] : named(model)) EXPECT_TRUE(torch::equal(t, fresh->named_parameters()[name])) << name;

  // One weight changed in the file (same size, so the marker's sizes still match): refused, naming it.
  comm().barrier();
  if (comm().rank() == 0) {
    auto tensors = io::SafetensorsFile(dir + "/" + kWeightsFile).load_all();
    tensors.at("2.bias").view(-1)[0].add_(1.0);
    io::write_safetensors(dir + "/" + kWeightsFile, tensors, {{"format", "pt"}});
  }
  comm().barrier();
  torch::nn::Sequential again = make_model(5);
  ZeroOptimizer again_opt(zero_params_from(again->named_parameters()), comm());
  RunCheckpoint third(root, 1, *again, again_opt, sched, comm(), /*seed=*/0);
  try {
    third.restore(dir, 10);
    ADD_FAILURE() << "a weights file that disagrees with the optimizer's master weights was accepted";
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(kWeightsFile), std::string::npos) << msg;
    if (comm().rank() == 0) EXPECT_NE(msg.find("'2.bias' differs (max |diff| 1)"), std::string::npos) << msg;
  }
  comm().barrier();
  if (comm().rank() == 0) fs::remove_all(root);
}

// A checkpoint of non-finite weights would only rotate a good one out: save refuses it, on every rank.
TEST(RunCheckpoint, SaveRefusesNonFiniteWeights) {
  const std::string root = rg::test::shared_temp_dir("rg-ckpt");
  LrSchedule sched;
  torch::nn::Sequential model = make_model(3);
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm());
  RunCheckpoint ckpt(root, 1, *model, opt, sched, comm(), /*seed=*/0);
  if (comm().rank() == comm().world_size() - 1) {
    torch::NoGradGuard no_grad;
    model->parameters().back().view(-1)[0].fill_(std::numeric_limits<double>::infinity());
  }
  TrainerState st;
  st.step = 1, st.tokens = 8;
  EXPECT_THROW(ckpt.save(st, 1), NonFiniteError);
  EXPECT_FALSE(find_latest_complete(root).has_value());
  comm().barrier();
  if (comm().rank() == 0) fs::remove_all(root);
}

// ---- resume validation: a real checkpoint, then one thing corrupted per case -------------------------------

// A directory of this rank's own (the cases below run on every rank without touching each other's files).
std::string private_temp_dir() {
  std::string templ = (fs::temp_directory_path() / "rg-ckpt-bad-XXXXXX").string();
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed for " + templ);
  return templ;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// Rewrites the marker's sizes to match the files, as if the corruption had happened before the save: the
// content checks must then find it on their own.
void remark(const std::string& dir) {
  nlohmann::json m = read_json(dir + "/" + kCheckpointMarker);
  for (auto& [name, size] : m["files"].items()) size = fs::file_size(dir + "/" + name);
  write_text(dir + "/" + kCheckpointMarker, m.dump(1));
}

// An array nested `depth` deep: enough to overflow the stack of anything that recurses per level
// (dump(), a copy) with the default 8 MiB, at a few hundred bytes per frame.
std::string nested_array(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// A complete checkpoint at step 8 of a 6-12-2 model (2 data rows per step, 4 tokens per row), written by
// every rank as the training loop writes it. Shared by the cases below; each copies it first.
class ResumeChecks : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(rg::test::shared_temp_dir("rg-ckpt-good"));
    torch::nn::Sequential model = make_model(3);
    ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm());
    LrSchedule sched;
    for (int64_t s = 0; s < 8; ++s) train_step(model, opt, sched, s);
    CheckpointWriter writer(*root_, 1, comm());
    *root_ = writer.save(8, [&](const std::string& dir) {
      opt.save_state(dir);
      save_rng_state(dir, comm().rank());
      if (comm().rank() == 0) {
        save_weights(dir, named(model));
        TrainerState st;
        st.step = 8, st.tokens = 64, st.world_size = comm().world_size();
        st.schedule = sched.to_json();
        st.data_cursor = {{"cursor", 16}};
        write_trainer_state(dir, st);
      }
    });
  }
  static void TearDownTestSuite() {
    comm().barrier();
    if (comm().rank() == 0) fs::remove_all(fs::path(*root_).parent_path());
    delete root_;
  }
  void SetUp() override {
    scratch_ = private_temp_dir();
    dir_ = scratch_ + "/step-000008";
    fs::copy(*root_, dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(scratch_); }

  // read_resume_state must throw CheckpointError whose one-line message contains every `parts`.
  void expect_refused(const std::vector<std::string>& parts, int64_t max_steps = 100) {
    torch::nn::Sequential model = make_model(4);
    try {
      read_resume_state(dir_, max_steps, named(model));
      ADD_FAILURE() << "accepted; expected an error mentioning " << parts.front();
    } catch (const CheckpointError& e) {
      const std::string msg = e.what();
      for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
      EXPECT_LT(msg.size(), 600u) << msg;
    }
  }
  std::string file(const std::string& name) const { return dir_ + "/" + name; }

  static std::string* root_;
  std::string scratch_, dir_;
};
std::string* ResumeChecks::root_ = nullptr;

TEST_F(ResumeChecks, TheGoodOneIsAccepted) {
  torch::nn::Sequential model = make_model(4);
  const TrainerState st = read_resume_state(dir_, 8, named(model));
  EXPECT_EQ(st.step, 8);
  const CheckpointManifest m = verify_checkpoint_files(dir_);
  EXPECT_EQ(m.world_size, comm().world_size());
  EXPECT_EQ(m.files.at(kWeightsFile), fs::file_size(file(kWeightsFile)));
}

TEST_F(ResumeChecks, TruncatedOrMissingFilesAreFoundFromTheMarker) {
  fs::resize_file(file(kWeightsFile), fs::file_size(file(kWeightsFile)) - 1);
  expect_refused({file(kWeightsFile), "bytes, but", "truncated"});
  fs::copy(*root_ + "/" + kWeightsFile, file(kWeightsFile), fs::copy_options::overwrite_existing);
  const std::string shard = optim_shard_file_name(0, comm().world_size());
  fs::resize_file(file(shard), 10);
  expect_refused({file(shard), "truncated"});
  fs::copy(*root_ + "/" + shard, file(shard), fs::copy_options::overwrite_existing);
  fs::remove(file(rng_file_name(0)));
  expect_refused({file(rng_file_name(0)), "missing"});
}

TEST_F(ResumeChecks, MarkerMustListEveryFileItNeeds) {
  nlohmann::json m = read_json(file(kCheckpointMarker));
  m["files"].erase(kOptimLayoutFile);
  write_text(file(kCheckpointMarker), m.dump());
  expect_refused({file(kCheckpointMarker), "files", "does not list optim-layout.json"});
  m.erase("files");  // a bare marker: nothing to check the files against
  write_text(file(kCheckpointMarker), m.dump());
  expect_refused({file(kCheckpointMarker), "no file list"});
  write_text(file(kCheckpointMarker), R"({"step": 8, "world_size": 1, "files": {"../outside": 3}})");
  expect_refused({"not a path inside"});
  write_text(file(kCheckpointMarker), R"({"step": 9, "world_size": 1, "files": {}})");
  expect_refused({file(kCheckpointMarker), "step", "named for step 8"});
  write_text(file(kCheckpointMarker), "");
  expect_refused({file(kCheckpointMarker), "not valid JSON"});
}

TEST_F(ResumeChecks, TrainerStateFieldsAreTypedAndInRange) {
  const std::string path = file(kTrainerStateFile);
  const nlohmann::json good = read_json(path);
  struct Case {
    const char* field;
    nlohmann::json value;
    const char* expect;
  };
  const Case cases[] = {
      {"step", 1e15, "expected an integer"},      // a float that would "resume" past the end and train nothing
      {"step", 8.0, "expected an integer"},
      {"step", -1, "expected an integer >= 0"},
      {"step", "8", "expected an integer"},
      {"step", true, "expected an integer"},
      {"tokens", -5, "expected an integer >= 0"},
      {"skipped_steps", 9, "expected an integer in [0, 8]"},
      {"world_size", 0, "expected an integer in [1, "},
      {"world_size", 4294967297LL, "expected an integer in [1, "},
      {"schedule", 3, "expected an object"},
      {"data_cursor", nlohmann::json::array(), "expected an object"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = good;
    j[c.field] = c.value;
    write_text(path, j.dump());
    remark(dir_);
    SCOPED_TRACE(std::string(c.field) + " = " + j[c.field].dump());
    expect_refused({path, c.field, c.expect});
  }
  nlohmann::json j = good;
  j.erase("tokens");
  write_text(path, j.dump());
  remark(dir_);
  expect_refused({path, "tokens", "missing"});
  write_text(path, "{\"step\": 8,");
  remark(dir_);
  expect_refused({path, "not valid JSON"});
}

TEST_F(ResumeChecks, TrainerStateAgreesWithTheMarkerTheCursorAndTheRun) {
  const std::string path = file(kTrainerStateFile);
  const nlohmann::json good = read_json(path);
  auto with = [&](const char* field, const nlohmann::json& value) {
    nlohmann::json j = good;
    if (std::string(field) == "cursor") {
      j["data_cursor"]["cursor"] = value;
    } else {
      j[field] = value;
    }
    write_text(path, j.dump());
    remark(dir_);
  };
  expect_refused({path, "step", "beyond train.steps (5)", "--checkpoint.resume=none"}, /*max_steps=*/5);
  with("step", 7);  // the directory and the marker say 8
  expect_refused({path, "step", "says 8"});
  with("world_size", comm().world_size() + 1);
  expect_refused({path, "world_size"});
  with("cursor", 3);  // 3 rows cannot feed 8 steps
  expect_refused({path, "data_cursor.cursor", "3 rows read in 8 steps"});
  with("cursor", -3);
  expect_refused({path, "data_cursor.cursor", "expected an integer >= 0"});
  with("cursor", 1.5);
  expect_refused({path, "data_cursor.cursor", "expected an integer"});
  with("tokens", 10);  // fewer tokens than rows
  expect_refused({path, "tokens", "10 tokens in 16 rows"});
  with("skipped_steps", 2);  // the optimizer made 8 updates: none was skipped
  expect_refused({file(kOptimLayoutFile), "step", "8 optimizer updates"});
  // Spliced in as text: a nested json value would recurse in the test itself (copy, dump).
  with("schedule", "@DEEP@");
  std::string text;
  {
    std::ifstream in(path);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  text.replace(text.find("\"@DEEP@\""), 8, "{\"deep\": " + nested_array(200000) + "}");
  write_text(path, text);
  remark(dir_);
  expect_refused({path, "schedule", "nested deeper than"});
}

TEST_F(ResumeChecks, LayoutHeaderAndWeightsAgreeWithTheModel) {
  nlohmann::json layout = read_json(file(kOptimLayoutFile));
  layout["world_size"] = comm().world_size() + 2;
  write_text(file(kOptimLayoutFile), layout.dump());
  remark(dir_);
  expect_refused({file(kOptimLayoutFile), "world_size"});
  write_text(file(kOptimLayoutFile), nested_array(200000));
  remark(dir_);
  expect_refused({file(kOptimLayoutFile), "expected an object", "an array"});
  fs::copy(*root_ + "/" + kOptimLayoutFile, file(kOptimLayoutFile), fs::copy_options::overwrite_existing);
  remark(dir_);
  // Weights of another model: a shape differs.
  torch::nn::Sequential other(torch::nn::Linear(6, 12), torch::nn::Functional(torch::relu), torch::nn::Linear(12, 3));
  try {
    read_resume_state(dir_, 100, named(other));
    ADD_FAILURE() << "a weights file of another shape was accepted";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(file(kWeightsFile)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  write_text(file(kWeightsFile), "garbage of any length");
  remark(dir_);
  expect_refused({file(kWeightsFile)});
}

TEST_F(ResumeChecks, RngFileMustBeAGeneratorState) {
  torch::save(torch::zeros({7}, torch::kFloat), file(rng_file_name(0)));
  try {
    load_rng_state(dir_, 0);
    ADD_FAILURE() << "a float tensor was taken for a generator state";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(file(rng_file_name(0))), std::string::npos) << e.what();
  }
  write_text(file(rng_file_name(0)), "not a torch file");
  try {
    load_rng_state(dir_, 0);
    ADD_FAILURE() << "garbage was loaded";
  } catch (const CheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file(rng_file_name(0))), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line, no LibTorch backtrace: " << msg;
  }
}

TEST(CheckpointJson, NeverRecursesOnDeepValues) {
  const std::string dir = private_temp_dir();
  write_text(dir + "/deep.json", "{\"a\": " + nested_array(200000) + ", \"n\": 18446744073709551615}");
  const CheckpointJson j = CheckpointJson::read(dir + "/deep.json");
  try {
    j.at("a").integer(0, 10);
    ADD_FAILURE() << "an array taken for an integer";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/deep.json: a: expected an integer in [0, 10], got an array"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(j.at("n").integer(0, std::numeric_limits<int64_t>::max()), CheckpointError);  // > int64
  EXPECT_THROW(j.at("a").at(0).at(0).string(), CheckpointError);
  fs::remove_all(dir);
}

TEST(Checkpoint, ResumeOfAMissingOrUnmarkedDirectoryIsACheckpointError) {
  EXPECT_THROW(resolve_resume("/nonexistent/step-000001", "/nonexistent"), CheckpointError);
}

}  // namespace
}  // namespace rg::trainer
