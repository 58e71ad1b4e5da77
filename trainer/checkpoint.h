// Checkpoint directories: atomic collective writes (<root>/step-000123.tmp/ -> fsync -> rename to
// step-000123/ -> COMPLETE marker), keeping the last K, finding the newest complete one for
// `--resume auto`, and the small state files a checkpoint holds besides the optimizer shards
// (trainer_state.json, per-rank RNG state, weights). Which parts a training run writes and reads back is
// listed once, in run_checkpoint.h (RunCheckpoint::save / restore); this file is the mechanics.
//
//   CheckpointWriter writer(root, /*keep_last=*/3, comm);
//   writer.save(step, [&](const std::string& dir) {   // runs on every rank, into the .tmp directory
//     ...write this rank's files into dir...
//   });
//
// A directory is a checkpoint only once its COMPLETE marker exists; a crash at any point leaves the
// previous checkpoints untouched and at worst a .tmp directory or an unmarked one, both ignored and
// cleaned up by the next save. All ranks must see the same filesystem at `root`.
//
// Resuming trusts nothing in the directory: read_resume_state() checks the marker's file list and sizes,
// trainer_state.json, the optimizer layout's header and the weights' header against each other, the model
// and train.steps before anything is loaded (ZeroOptimizer::load_state then checks its layout and shards).
#pragma once

#include "trainer/comm/communicator.h"

#include <torch/types.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace rg::trainer {

inline constexpr const char* kCheckpointMarker = "COMPLETE";
inline constexpr const char* kTrainerStateFile = "trainer_state.json";
inline constexpr const char* kWeightsFile = "weights.safetensors";
inline constexpr const char* kOptimLayoutFile = "optim-layout.json";
inline constexpr int kMaxWorldSize = 1 << 20;  // bound for world sizes read from files

std::string optim_shard_file_name(int rank, int world_size);  // "optim-rank0-of-2.pt"
std::string rng_file_name(int rank);                          // "rng-rank0.pt"

// A checkpoint that cannot be resumed from: unreadable, malformed, truncated, inconsistent with itself,
// with the model or with the run's settings. The message is one line naming the file and the field; the
// training commands exit with 2 on it.
class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The first line of an exception's text, at most max_chars: LibTorch errors append a backtrace, and a
// JSON syntax error quotes the token it stopped at, which may be a whole file.
std::string one_line_error(const std::exception& e, size_t max_chars = 240);

// A value read from a checkpoint's JSON file, with where it came from. Every accessor checks the type
// (and range) and throws CheckpointError "FILE: FIELD: expected ..., got ..." describing the value with
// io::json_brief (never dump(): it recurses once per nesting level). Integers must be JSON integers:
// 1e15 or 3.0 are refused, as are booleans.
class CheckpointJson {
 public:
  // Parses a whole file; a missing file or a syntax error names the path.
  static CheckpointJson read(const std::string& path);
  CheckpointJson(std::shared_ptr<const nlohmann::json> root, const nlohmann::json* value, std::string path,
                 std::string field);

  CheckpointJson at(const std::string& key) const;  // this must be an object holding key
  CheckpointJson at(size_t index) const;            // this must be an array longer than index
  bool has(const std::string& key) const;           // this must be an object
  size_t array_size() const;                        // this must be an array
  size_t object_size() const;                       // this must be an object
  std::vector<std::string> keys() const;            // this must be an object
  int64_t integer(int64_t lo, int64_t hi) const;
  const std::string& string() const;
  bool boolean() const;
  void require_object() const;
  const nlohmann::json& value() const { return *value_; }
  const std::string& path() const { return path_; }
  const std::string& field() const { return field_; }
  [[noreturn]] void fail(const std::string& problem) const;  // "FILE: FIELD: problem"

 private:
  std::shared_ptr<const nlohmann::json> root_;  // keeps the parsed document alive
  const nlohmann::json* value_;
  std::string path_, field_;
};

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
// none: a fresh start); anything else is a checkpoint path, which must be complete (CheckpointError
// otherwise).
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

// Where training stands, restored on resume. JSON (trainer_state.json, written by rank 0). Every field is
// read back by RunCheckpoint::restore (run_checkpoint.h); nothing else is written.
struct TrainerState {
  int64_t step = 0;            // updates done
  int64_t tokens = 0;          // tokens consumed, all ranks
  int64_t skipped_steps = 0;   // non-finite steps skipped
  int world_size = 1;          // ranks when saved (for messages on resharded resumes)
  nlohmann::json schedule;     // LrSchedule::to_json()
  nlohmann::json data_cursor;  // the loader's position: {"cursor": rows (or pairs) consumed}
};
void write_trainer_state(const std::string& dir, const TrainerState& state);
// Checks types and ranges: step, tokens >= 0 integers, skipped_steps in [0, step], world_size in
// [1, kMaxWorldSize], schedule and data_cursor objects. Throws CheckpointError naming the file and field.
TrainerState read_trainer_state(const std::string& dir);

// The COMPLETE marker: the step, the world size of the save and every file with its size in bytes.
struct CheckpointManifest {
  int64_t step = 0;
  int world_size = 1;
  std::map<std::string, uint64_t> files;  // path relative to the checkpoint directory -> bytes
};
// Reads the marker and checks that every file it lists exists with exactly the recorded size (a
// truncated or replaced file is found before anything is read from it), that the files a resume needs
// are listed (weights, trainer state, optimizer layout, one optimizer shard and one RNG file per rank of
// the save), and that its step matches the directory's name. A marker without a file list is refused:
// there is nothing to check the files against. Throws CheckpointError naming the marker or the file.
CheckpointManifest verify_checkpoint_files(const std::string& dir);

// Everything resume reads besides the optimizer shards, checked before anything is loaded: the marker
// and file sizes (verify_checkpoint_files), trainer_state.json against the marker (step, world size),
// against itself (the data cursor "cursor" counts rows: step <= cursor <= tokens) and against the run
// (step <= max_steps), optim-layout.json's world size and AdamW step (= step - skipped_steps), and the
// weights' names, shapes and dtypes against `named_weights`. Throws CheckpointError.
TrainerState read_resume_state(const std::string& dir, int64_t max_steps,
                               const std::vector<std::pair<std::string, torch::Tensor>>& named_weights);

// The default CPU generator's state as rng-rank<r>.pt. load returns false when the checkpoint has no
// file for this rank (it was written at a smaller world size); the caller then reseeds deterministically.
// An unreadable file or one that is not a generator state throws CheckpointError naming it.
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
