// Checkpoint directories: atomic collective writes (<root>/step-000123.tmp/ -> fsync -> rename to
// step-000123/ -> COMPLETE marker), keeping the last K, finding the newest complete one for
// `--resume auto`, and the small state files a checkpoint holds besides the optimizer shards
// (trainer_state.json, per-rank RNG state, weights).
//
//   CheckpointWriter writer(root, /*keep_last=*/3, comm);
//   writer.save(step, [&](const std::string& dir) {   // runs on every rank, into the .tmp directory
//     optimizer.save_state(dir);                       // optim-rank<r>-of-<N>.pt (+ layout on rank 0)
//     save_rng_state(dir, comm.rank());
//     if (comm.rank() == 0) { save_weights(dir, named_weights); write_trainer_state(dir, state); }
//   });
//
// A directory is a checkpoint only once its COMPLETE marker exists; a crash at any point leaves the
// previous checkpoints untouched and at worst a .tmp directory or an unmarked one, both ignored and
// cleaned up by the next save. All ranks must see the same filesystem at `root`.
#pragma once

#include "trainer/comm/communicator.h"

#include <torch/types.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rg::trainer {

inline constexpr const char* kCheckpointMarker = "COMPLETE";
inline constexpr const char* kTrainerStateFile = "trainer_state.json";
inline constexpr const char* kWeightsFile = "weights.safetensors";

std::string checkpoint_dir_name(int64_t step);         // "step-000123"
int64_t parse_checkpoint_step(const std::string& name);  // 123 for "step-000123", -1 for anything else

struct CheckpointEntry {
  int64_t step = 0;
  std::string path;
};
// Complete checkpoints under root (marker present), oldest first. Empty when root does not exist.
std::vector<CheckpointEntry> list_complete_checkpoints(const std::string& root);
// The newest complete checkpoint's path; nullopt when there is none.
std::optional<std::string> find_latest_complete(const std::string& root);
// `--resume` values: "" or "none" -> nullopt; "auto" -> find_latest_complete(root) (nullopt when there is
// none: a fresh start); anything else is a checkpoint path, which must be complete (throws otherwise).
std::optional<std::string> resolve_resume(const std::string& resume, const std::string& root);

class CheckpointWriter {
 public:
  // keep_last >= 1: complete checkpoints beyond the newest keep_last are deleted after each save.
  CheckpointWriter(std::string root, int keep_last, comm::Communicator& comm);
  // Collective. Creates <root>/step-XXXXXX.tmp, runs write_files(tmp) on every rank, fsyncs every file,
  // renames to <root>/step-XXXXXX, writes and fsyncs the marker, prunes, and returns the final path.
  // If write_files throws on any rank, every rank throws std::runtime_error, the .tmp directory is
  // removed and the existing checkpoints are left as they were.
  std::string save(int64_t step, const std::function<void(const std::string& dir)>& write_files);
  const std::string& root() const { return root_; }

 private:
  void prune(int64_t newest_step);
  std::string root_;
  int keep_last_;
  comm::Communicator& comm_;
};

// Where training stands, restored on resume. JSON (trainer_state.json, written by rank 0).
struct TrainerState {
  int64_t step = 0;            // updates done
  int64_t tokens = 0;          // tokens consumed, all ranks
  int64_t skipped_steps = 0;   // non-finite steps skipped
  int world_size = 1;          // ranks when saved (for messages on resharded resumes)
  nlohmann::json schedule;     // LrSchedule::to_json()
  nlohmann::json data_cursor;  // the loader's position, opaque here
  nlohmann::json extra;        // anything else the loop needs back (seed, config echo)
};
void write_trainer_state(const std::string& dir, const TrainerState& state);
TrainerState read_trainer_state(const std::string& dir);  // throws naming the file and the field

// The default CPU generator's state as rng-rank<r>.pt. load returns false when the checkpoint has no
// file for this rank (it was written at a smaller world size); the caller then reseeds deterministically.
void save_rng_state(const std::string& dir, int rank);
bool load_rng_state(const std::string& dir, int rank);

// Model weights as safetensors (weights.safetensors, model/io's atomic writer), under the names given —
// the training loop passes the model's own names; the HF-layout export for other tools is model/io's.
void save_weights(const std::string& dir, const std::vector<std::pair<std::string, torch::Tensor>>& named);
// Copies the saved values into `named` (matching names and shapes; throws on a missing or mismatched one).
void load_weights(const std::string& dir, const std::vector<std::pair<std::string, torch::Tensor>>& named);

// fsync a file or directory by path; throws naming it on failure.
void fsync_path(const std::string& path);

}  // namespace rg::trainer
