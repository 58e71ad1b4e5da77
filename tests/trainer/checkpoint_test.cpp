// Checkpoint directories under real ranks: atomic publish with a marker, keep-last-K, incomplete
// directories ignored by find_latest_complete / --resume, a failing rank leaving earlier checkpoints intact,
// the state files, and a full save -> resume through CheckpointWriter that continues bit-exactly.
#include "trainer/checkpoint.h"
#include "trainer/schedule.h"
#include "trainer/zero_optimizer.h"

#include "tests/trainer/test_support.h"

#include <filesystem>
#include <fstream>

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

// The pieces together, as the training loop will use them: train, checkpoint every 4 steps through the
// writer, "crash", resume with --resume auto into a fresh process state, and the losses repeat bit for bit.
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

TEST(Checkpoint, ResumeAutoContinuesBitExactly) {
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
    CheckpointWriter writer(root, 2, comm());
    for (int64_t s = 0; s < 12; ++s) {
      uninterrupted.push_back(train_step(model, opt, sched, s));
      if ((s + 1) % 4 == 0 && s + 1 < 10) {  // checkpoints at steps 4 and 8; the run "dies" after step 10
        torch::manual_seed(77 + comm().rank() + s);  // as if the loop reseeded; the checkpoint must capture it
        writer.save(s + 1, [&](const std::string& dir) {
          opt.save_state(dir);
          save_rng_state(dir, comm().rank());
          if (comm().rank() == 0) {
            save_weights(dir, named(model));
            TrainerState st;
            st.step = s + 1;
            st.schedule = sched.to_json();
            st.data_cursor = {{"step", s + 1}};
            st.world_size = comm().world_size();
            write_trainer_state(dir, st);
          }
        });
      }
    }
  }
  // A fresh start: other weights, other RNG state.
  torch::manual_seed(999);
  torch::nn::Sequential model = make_model(4);
  ZeroOptimizer opt(zero_params_from(model->named_parameters()), comm());
  const auto dir = resolve_resume("auto", root);
  ASSERT_TRUE(dir.has_value());
  const TrainerState st = read_trainer_state(*dir);
  EXPECT_EQ(st.step, 8);
  load_weights(*dir, named(model));
  opt.load_state(*dir);
  EXPECT_TRUE(load_rng_state(*dir, comm().rank()));
  const LrSchedule resumed_sched = LrSchedule::from_json(st.schedule);
  for (int64_t s = st.data_cursor["step"].get<int64_t>(); s < 12; ++s) {
    EXPECT_EQ(train_step(model, opt, resumed_sched, s), uninterrupted[s]) << "step " << s;
  }
  comm().barrier();
  if (comm().rank() == 0) fs::remove_all(root);
}

}  // namespace
}  // namespace rg::trainer

int main(int argc, char** argv) { return rg::test::run_all_tests(argc, argv); }
