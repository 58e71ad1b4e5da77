// RunCheckpoint: the list of a run's stateful parts, written by save() and read back by restore() in the
// same order. See run_checkpoint.h for the table of parts.
#include "trainer/run_checkpoint.h"

#include "model/io/safetensors.h"
#include "trainer/faults.h"

#include <torch/torch.h>

#include <sstream>

namespace rg::trainer {

RunCheckpoint::RunCheckpoint(const std::string& root, int keep_last, torch::nn::Module& module,
                             ZeroOptimizer& optimizer, const LrSchedule& schedule, comm::Communicator& comm,
                             int64_t seed)
    : writer_(root, keep_last, comm),
      module_(module),
      optimizer_(optimizer),
      schedule_(schedule),
      comm_(comm),
      seed_(seed) {}

std::vector<std::pair<std::string, torch::Tensor>> RunCheckpoint::named_weights() const {
  std::vector<std::pair<std::string, torch::Tensor>> named;
  for (const auto& p : module_.named_parameters()) named.emplace_back(p.key(), p.value());
  return named;
}

std::string RunCheckpoint::save(TrainerState state, uint64_t cursor) {
  const std::string bad = nonfinite_parameter(module_, comm_);
  if (!bad.empty()) {
    throw NonFiniteError("the weights after step " + std::to_string(state.step) + " are not finite (NaN/Inf in " +
                         bad + "): checkpoint " + checkpoint_dir_name(state.step) + " not written and training "
                         "stopped; " + last_checkpoint_note());
  }
  state.world_size = comm_.world_size();
  state.schedule = schedule_.to_json();
  // The loader may add its own position fields (a mixture's per-source counts); the cursor is always this one.
  if (!state.data_cursor.is_object()) state.data_cursor = nlohmann::json::object();
  state.data_cursor["cursor"] = cursor;
  const int rank = comm_.rank();
  return writer_.save(state.step, [&](const std::string& dir) {
    optimizer_.save_state(dir);                           // optimizer
    if (rank == 0) save_weights(dir, named_weights());    // model weights
    save_rng_state(dir, rank);                            // RNG
    if (rank == 0) write_trainer_state(dir, state);       // counters, data position, schedule
  });
}

std::optional<Resumed> RunCheckpoint::restore(const std::string& resume, int64_t max_steps) {
  const std::optional<std::string> dir = resolve_resume(resume, writer_.root());
  if (!dir) return std::nullopt;
  const auto named = named_weights();
  Resumed r;
  r.dir = *dir;
  // Every file against the marker, each other, the model and train.steps, before anything is loaded.
  r.state = read_resume_state(*dir, max_steps, named);
  const std::string state_path = *dir + "/" + kTrainerStateFile;
  LrSchedule saved;
  try {
    saved = LrSchedule::from_json(r.state.schedule);
  } catch (const std::exception& e) {
    throw CheckpointError(state_path + ": schedule: " + one_line_error(e));
  }
  optimizer_.load_state(*dir);  // optimizer; also writes the master weights into the model
  // Model weights: rank 0 compares the saved values with what the optimizer restored; all ranks agree.
  const std::string mismatch = comm_.rank() == 0 ? weights_mismatch(*dir, named) : std::string();
  if (comm_.all_reduce_scalar(mismatch.empty() ? 0.0 : 1.0, /*max=*/true) > 0) {
    throw CheckpointError(*dir + "/" + kWeightsFile + ": " +
                          (mismatch.empty() ? std::string("differs from the optimizer's master weights (see rank 0)")
                                            : mismatch + " from the optimizer's master weights in the same checkpoint") +
                          "; the checkpoint is inconsistent, resume from another one");
  }
  if (!load_rng_state(*dir, comm_.rank())) torch::manual_seed(static_cast<uint64_t>(seed_) + 7919 * comm_.rank());
  r.cursor = static_cast<uint64_t>(r.state.data_cursor.at("cursor").get<int64_t>());  // checked >= 0
  r.schedule_changes = schedule_changes(saved, schedule_);
  return r;
}

std::string RunCheckpoint::last_checkpoint_note() const {
  const auto latest = find_latest_complete(writer_.root());
  return latest ? "the last checkpoint, " + *latest + ", is kept (resume from it with a lower optim.lr)"
                : "there is no earlier checkpoint to resume from (see checkpoint.every)";
}

std::string nonfinite_parameter(torch::nn::Module& module, comm::Communicator& comm) {
  torch::NoGradGuard no_grad;
  std::string name;
  for (const auto& p : module.named_parameters()) {
    if (!torch::isfinite(p.value()).all().item<bool>()) {
      name = p.key();
      break;
    }
  }
  const bool anywhere = comm.all_reduce_scalar(name.empty() ? 0.0 : 1.0, /*max=*/true) > 0;
  return anywhere && name.empty() ? std::string("a parameter on another rank") : name;
}

std::string weights_mismatch(const std::string& dir, const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  const io::SafetensorsFile file(dir + "/" + kWeightsFile);
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : named) {
    const torch::Tensor saved = file.view(name);
    const auto narrow = c10::elementSize(saved.scalar_type()) <= c10::elementSize(t.scalar_type()) ? saved.scalar_type()
                                                                                                   : t.scalar_type();
    const torch::Tensor a = saved.to(narrow), b = t.detach().to(torch::kCPU, narrow);
    if (!torch::equal(a, b)) {
      std::ostringstream s;
      s << "'" << name << "' differs (max |diff| "
        << (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>() << ")";
      return s.str();
    }
  }
  return "";
}

std::string schedule_changes(const LrSchedule& saved, const LrSchedule& now) {
  std::ostringstream s;
  auto field = [&s](const char* name, const auto& was, const auto& is) {
    if (was == is) return;
    s << (s.tellp() > 0 ? ", " : "") << name << " " << was << " -> " << is;
  };
  field("peak_lr", saved.peak_lr, now.peak_lr);
  field("warmup_steps", saved.warmup_steps, now.warmup_steps);
  field("total_steps", saved.total_steps, now.total_steps);
  field("decay", name_of(lr_decay_names(), saved.decay), name_of(lr_decay_names(), now.decay));
  field("min_lr_ratio", saved.min_lr_ratio, now.min_lr_ratio);
  return s.str();
}

}  // namespace rg::trainer
