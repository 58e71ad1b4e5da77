// Checkpoint directories (atomic collective save, listing, pruning) and the small state files.
#include "trainer/checkpoint.h"

#include "model/io/safetensors.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace rg::trainer {
namespace {

bool is_complete(const fs::path& dir) { return fs::is_regular_file(dir / kCheckpointMarker); }

// Every rank reports whether its part of a phase failed; all ranks then throw together, so no rank is left
// waiting in the next collective.
void agree(comm::Communicator& comm, const std::string& error, const std::string& phase, int64_t step) {
  const double failed = comm.all_reduce_scalar(error.empty() ? 0.0 : 1.0);
  if (failed > 0) {
    throw std::runtime_error("checkpoint step " + std::to_string(step) + ": " + phase + " failed on " +
                             std::to_string(static_cast<int>(failed)) + " rank(s)" +
                             (error.empty() ? std::string() : " (rank " + std::to_string(comm.rank()) + ": " + error + ")") +
                             "; earlier checkpoints are unchanged");
  }
}

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

std::string checkpoint_dir_name(int64_t step) {
  if (step < 0) throw std::invalid_argument("checkpoint step must be >= 0, got " + std::to_string(step));
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%06lld", static_cast<long long>(step));
  return buf;
}

int64_t parse_checkpoint_step(const std::string& name) {
  const std::string prefix = "step-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0 || name.size() > prefix.size() + 18) {
    return -1;
  }
  for (size_t i = prefix.size(); i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
  }
  return std::stoll(name.substr(prefix.size()));
}

std::vector<CheckpointEntry> list_complete_checkpoints(const std::string& root) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    const int64_t step = parse_checkpoint_step(e.path().filename().string());
    if (step >= 0 && e.is_directory() && is_complete(e.path())) out.push_back({step, e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step < b.step; });
  return out;
}

std::optional<std::string> find_latest_complete(const std::string& root) {
  const auto all = list_complete_checkpoints(root);
  if (all.empty()) return std::nullopt;
  return all.back().path;
}

std::optional<std::string> resolve_resume(const std::string& resume, const std::string& root) {
  if (resume.empty() || resume == "none") return std::nullopt;
  if (resume == "auto") return find_latest_complete(root);
  if (!fs::is_directory(resume)) throw std::runtime_error("--resume " + resume + ": no such checkpoint directory");
  if (!is_complete(resume)) {
    throw std::runtime_error("--resume " + resume + ": checkpoint is incomplete (no " + kCheckpointMarker +
                             " marker; the run that wrote it stopped mid-save)");
  }
  return resume;
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path + " to fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw std::runtime_error("fsync " + path + " failed: " + std::strerror(err));
}

CheckpointWriter::CheckpointWriter(std::string root, int keep_last, comm::Communicator& comm)
    : root_(std::move(root)), keep_last_(keep_last), comm_(comm) {
  if (keep_last_ < 1) throw std::invalid_argument("checkpoint keep_last must be >= 1, got " + std::to_string(keep_last_));
}

std::string CheckpointWriter::save(int64_t step, const std::function<void(const std::string& dir)>& write_files) {
  const fs::path final_dir = fs::path(root_) / checkpoint_dir_name(step);
  const fs::path tmp_dir = final_dir.string() + ".tmp";
  const bool leader = comm_.rank() == 0;
  std::string error;

  // 1. A fresh temporary directory (a stale one from a crashed save is discarded).
  if (leader) {
    try {
      fs::create_directories(root_);
      fs::remove_all(tmp_dir);
      fs::create_directory(tmp_dir);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  agree(comm_, error, "creating " + tmp_dir.string(), step);

  // 2. Every rank writes its files; 3. every file reaches the disk (the work spread over ranks).
  auto abandon = [&] {
    std::error_code ignored;  // best effort: the next save discards a leftover .tmp anyway
    if (leader) fs::remove_all(tmp_dir, ignored);
  };
  try {
    write_files(tmp_dir.string());
  } catch (const std::exception& e) {
    error = e.what();
  }
  try {
    agree(comm_, error, "writing", step);
    try {
      const auto files = files_under(tmp_dir);
      for (size_t i = comm_.rank(); i < files.size(); i += comm_.world_size()) fsync_path(files[i].string());
    } catch (const std::exception& e) {
      error = e.what();
    }
    agree(comm_, error, "fsync", step);
  } catch (...) {
    abandon();
    throw;
  }

  // 4. Publish: rename into place, then the marker. Only the marker makes it a checkpoint.
  if (leader) {
    try {
      fsync_path(tmp_dir.string());
      const fs::path old_dir = final_dir.string() + ".old";
      if (fs::exists(final_dir)) {  // the same step saved again (e.g. after a resume): replace it
        fs::remove_all(old_dir);
        fs::rename(final_dir, old_dir);
      }
      fs::rename(tmp_dir, final_dir);
      fsync_path(root_);
      nlohmann::json marker = {{"step", step}, {"world_size", comm_.world_size()}, {"files", nlohmann::json::object()}};
      for (const auto& f : files_under(final_dir)) {
        marker["files"][fs::relative(f, final_dir).string()] = fs::file_size(f);
      }
      const fs::path marker_path = final_dir / kCheckpointMarker;
      {
        std::ofstream out(marker_path);
        out << marker.dump(1) << "\n";
        if (!out) throw std::runtime_error("cannot write " + marker_path.string());
      }
      fsync_path(marker_path.string());
      fsync_path(final_dir.string());
      fs::remove_all(old_dir);
      prune(step);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  agree(comm_, error, "publishing " + final_dir.string(), step);
  return final_dir.string();
}

// Leader only, after a successful save: drops complete checkpoints beyond keep_last and the debris of
// crashed saves (.tmp, .old, unmarked step directories older than the newest).
void CheckpointWriter::prune(int64_t newest_step) {
  for (const auto& e : fs::directory_iterator(root_)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    const bool debris = (name.size() > 4 && (name.rfind(".tmp") == name.size() - 4 || name.rfind(".old") == name.size() - 4) &&
                         parse_checkpoint_step(name.substr(0, name.size() - 4)) >= 0);
    const int64_t step = parse_checkpoint_step(name);
    if (debris || (step >= 0 && step < newest_step && !is_complete(e.path()))) fs::remove_all(e.path());
  }
  auto complete = list_complete_checkpoints(root_);
  for (size_t i = 0; i + keep_last_ < complete.size(); ++i) {
    // The marker goes first, so a crash mid-delete leaves an unmarked (ignored) directory.
    fs::remove(fs::path(complete[i].path) / kCheckpointMarker);
    fs::remove_all(complete[i].path);
  }
}

void write_trainer_state(const std::string& dir, const TrainerState& s) {
  const nlohmann::json j = {{"step", s.step},
                            {"tokens", s.tokens},
                            {"skipped_steps", s.skipped_steps},
                            {"world_size", s.world_size},
                            {"schedule", s.schedule},
                            {"data_cursor", s.data_cursor},
                            {"extra", s.extra}};
  const std::string path = dir + "/" + kTrainerStateFile;
  std::ofstream out(path);
  out << j.dump(1) << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

TrainerState read_trainer_state(const std::string& dir) {
  const std::string path = dir + "/" + kTrainerStateFile;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    TrainerState s;
    s.step = j.at("step").get<int64_t>();
    s.tokens = j.at("tokens").get<int64_t>();
    s.skipped_steps = j.at("skipped_steps").get<int64_t>();
    s.world_size = j.at("world_size").get<int>();
    s.schedule = j.at("schedule");
    s.data_cursor = j.at("data_cursor");
    s.extra = j.value("extra", nlohmann::json());
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

void save_rng_state(const std::string& dir, int rank) {
  auto gen = at::detail::getDefaultCPUGenerator();
  torch::Tensor state;  // (n) uint8
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  torch::save(state, dir + "/rng-rank" + std::to_string(rank) + ".pt");
}

bool load_rng_state(const std::string& dir, int rank) {
  const std::string path = dir + "/rng-rank" + std::to_string(rank) + ".pt";
  if (!fs::exists(path)) return false;
  torch::Tensor state;
  torch::load(state, path);
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
  return true;
}

void save_weights(const std::string& dir, const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  io::TensorMap tensors;
  for (const auto& [name, t] : named) {
    if (!tensors.emplace(name, t.detach()).second) throw std::invalid_argument("save_weights: duplicate name '" + name + "'");
  }
  io::write_safetensors(dir + "/" + kWeightsFile, tensors, {{"format", "pt"}});
}

void load_weights(const std::string& dir, const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  const std::string path = dir + "/" + kWeightsFile;
  const io::SafetensorsFile file(path);
  // Check everything before copying anything, so a mismatch never leaves the model half-loaded.
  for (const auto& [name, t] : named) {
    if (!file.contains(name)) throw std::runtime_error(path + ": no tensor '" + name + "'");
    const auto& shape = file.info(name).shape;
    if (t.sizes().vec() != shape) {
      throw std::runtime_error(path + ": '" + name + "' has shape " + c10::str(c10::IntArrayRef(shape)) +
                               ", the model has " + c10::str(t.sizes()));
    }
  }
  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : named) {
    torch::Tensor target = t;
    target.copy_(file.view(name));
  }
}

}  // namespace rg::trainer
