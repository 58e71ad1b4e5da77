// Checkpoint directories (atomic collective save, listing, pruning) and the small state files.
#include "trainer/checkpoint.h"

#include "model/io/json_brief.h"
#include "model/io/safetensors.h"

#include <torch/serialize.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <vector>

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

// Deeper than this is not something rgemma wrote. Checked without recursion before a value is copied:
// nlohmann::json's copy recurses once per level, like dump().
constexpr size_t kMaxJsonDepth = 64;

bool deeper_than(const nlohmann::json& root, size_t max_depth) {
  std::vector<std::pair<const nlohmann::json*, size_t>> todo{{&root, 1}};
  while (!todo.empty()) {
    const auto [v, depth] = todo.back();
    todo.pop_back();
    if (!v->is_structured()) continue;
    if (depth > max_depth) return true;
    for (const auto& child : *v) todo.push_back({&child, depth + 1});
  }
  return false;
}

// A key from a file, fit for a one-line message: control characters shown as '?', cut to max_chars.
std::string printable(const std::string& text, size_t max_chars = 80) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < max_chars; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out += c < 0x20 || c == 0x7f ? '?' : text[i];
  }
  if (text.size() > max_chars) out += "...";
  return out;
}

// The directory's own name, also for "DIR/" (filename() of a trailing slash is empty).
std::string dir_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
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

// The first line of an exception's text, cut to a length a one-line message can carry (LibTorch errors
// append a backtrace; a JSON syntax error quotes the token it stopped at, which may be a whole file).
std::string one_line_error(const std::exception& e, size_t max_chars) {
  const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10_error ? c10_error->what_without_backtrace() : e.what();
  const size_t eol = text.find_first_of("\r\n");
  if (eol != std::string::npos) text.resize(eol);
  if (text.size() > max_chars) text = text.substr(0, max_chars) + "...";
  return text;
}

std::string optim_shard_file_name(int rank, int world_size) {
  return "optim-rank" + std::to_string(rank) + "-of-" + std::to_string(world_size) + ".pt";
}

std::string rng_file_name(int rank) { return "rng-rank" + std::to_string(rank) + ".pt"; }

// ---- checked JSON ------------------------------------------------------------------------------------------

CheckpointJson::CheckpointJson(std::shared_ptr<const nlohmann::json> root, const nlohmann::json* value,
                               std::string path, std::string field)
    : root_(std::move(root)), value_(value), path_(std::move(path)), field_(std::move(field)) {}

CheckpointJson CheckpointJson::read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path + ": cannot read (" + std::strerror(errno) + ")");
  auto doc = std::make_shared<nlohmann::json>();
  try {
    *doc = nlohmann::json::parse(in);  // the parser keeps its own stack: deep nesting does not recurse
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": not valid JSON: " + one_line_error(e));
  }
  const nlohmann::json* value = doc.get();
  return CheckpointJson(std::move(doc), value, path, "");
}

void CheckpointJson::fail(const std::string& problem) const {
  throw CheckpointError(path_ + ": " + (field_.empty() ? std::string("top level") : field_) + ": " + problem);
}

void CheckpointJson::require_object() const {
  if (!value_->is_object()) fail("expected an object, got " + io::json_brief(*value_));
}

bool CheckpointJson::has(const std::string& key) const {
  require_object();
  return value_->contains(key);
}

CheckpointJson CheckpointJson::at(const std::string& key) const {
  require_object();
  // a.b for plain keys, a["../x y"] for the others (file names in the marker), so the path stays readable.
  const bool plain = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
  const std::string name =
      plain ? (field_.empty() ? key : field_ + "." + key) : field_ + "[\"" + printable(key) + "\"]";
  const auto it = value_->find(key);
  if (it == value_->end()) CheckpointJson(root_, value_, path_, name).fail("missing");
  return CheckpointJson(root_, &*it, path_, name);
}

CheckpointJson CheckpointJson::at(size_t index) const {
  const size_t n = array_size();
  const std::string name = field_ + "[" + std::to_string(index) + "]";
  if (index >= n) {
    CheckpointJson(root_, value_, path_, name).fail("missing (the array has " + std::to_string(n) + " values)");
  }
  return CheckpointJson(root_, &(*value_)[index], path_, name);
}

size_t CheckpointJson::array_size() const {
  if (!value_->is_array()) fail("expected an array, got " + io::json_brief(*value_));
  return value_->size();
}

size_t CheckpointJson::object_size() const {
  require_object();
  return value_->size();
}

std::vector<std::string> CheckpointJson::keys() const {
  require_object();
  std::vector<std::string> out;
  for (auto it = value_->begin(); it != value_->end(); ++it) out.push_back(it.key());
  return out;
}

int64_t CheckpointJson::integer(int64_t lo, int64_t hi) const {
  auto range = [&] {
    const bool open_top = hi == std::numeric_limits<int64_t>::max();
    return open_top ? "an integer >= " + std::to_string(lo)
                    : "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  };
  if (!value_->is_number_integer()) fail("expected " + range() + ", got " + io::json_brief(*value_));
  if (value_->is_number_unsigned() && value_->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    fail("expected " + range() + ", got " + io::json_brief(*value_));
  }
  const int64_t v = value_->get<int64_t>();
  if (v < lo || v > hi) fail("expected " + range() + ", got " + std::to_string(v));
  return v;
}

const std::string& CheckpointJson::string() const {
  if (!value_->is_string()) fail("expected a string, got " + io::json_brief(*value_));
  return value_->get_ref<const std::string&>();
}

bool CheckpointJson::boolean() const {
  if (!value_->is_boolean()) fail("expected true or false, got " + io::json_brief(*value_));
  return value_->get<bool>();
}

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
  if (!fs::is_directory(resume)) throw CheckpointError("checkpoint.resume: " + resume + ": no such checkpoint directory");
  if (!is_complete(resume)) {
    throw CheckpointError("checkpoint.resume: " + resume + ": checkpoint is incomplete (no " + kCheckpointMarker +
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
                            {"data_cursor", s.data_cursor}};
  const std::string path = dir + "/" + kTrainerStateFile;
  std::ofstream out(path);
  out << j.dump(1) << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

TrainerState read_trainer_state(const std::string& dir) {
  const std::string path = dir + "/" + kTrainerStateFile;
  const CheckpointJson j = CheckpointJson::read(path);
  j.require_object();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  TrainerState s;
  s.step = j.at("step").integer(0, kMax);
  s.tokens = j.at("tokens").integer(0, kMax);
  s.skipped_steps = j.at("skipped_steps").integer(0, s.step);
  s.world_size = static_cast<int>(j.at("world_size").integer(1, kMaxWorldSize));
  // Copied out of the document only once known to be shallow (a copy recurses per nesting level).
  auto shallow = [](const CheckpointJson& v) -> const nlohmann::json& {
    if (deeper_than(v.value(), kMaxJsonDepth)) v.fail("nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return v.value();
  };
  const CheckpointJson schedule = j.at("schedule"), cursor = j.at("data_cursor");
  schedule.require_object();
  cursor.require_object();
  s.schedule = shallow(schedule);
  s.data_cursor = shallow(cursor);
  return s;
}

CheckpointManifest verify_checkpoint_files(const std::string& dir) {
  const std::string marker_path = (fs::path(dir) / kCheckpointMarker).string();
  const CheckpointJson m = CheckpointJson::read(marker_path);
  m.require_object();
  if (!m.has("files")) {
    m.fail("no file list (an older or foreign marker): the checkpoint's files cannot be checked; resume from a "
           "checkpoint saved by this rgemma, or start afresh with --checkpoint.resume=none");
  }
  CheckpointManifest manifest;
  manifest.step = m.at("step").integer(0, std::numeric_limits<int64_t>::max());
  const int64_t named_step = parse_checkpoint_step(dir_name(dir));
  if (named_step >= 0 && named_step != manifest.step) {
    m.at("step").fail(std::to_string(manifest.step) + ", but the directory is named for step " +
                      std::to_string(named_step));
  }
  manifest.world_size = static_cast<int>(m.at("world_size").integer(1, kMaxWorldSize));
  const CheckpointJson files = m.at("files");
  for (const std::string& name : files.keys()) {
    const CheckpointJson size = files.at(name);
    const fs::path rel(name);
    bool escapes = name.empty() || rel.is_absolute() || name.size() > 255 || printable(name, 255) != name;
    for (const auto& part : rel) escapes = escapes || part == "..";
    if (escapes) size.fail("not a path inside the checkpoint directory");
    const uint64_t want = static_cast<uint64_t>(size.integer(0, std::numeric_limits<int64_t>::max()));
    const fs::path file = fs::path(dir) / rel;
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) {
      throw CheckpointError(file.string() + ": missing, but listed in " + marker_path + " (deleted after the save)");
    }
    const uint64_t have = fs::file_size(file, ec);
    if (ec) throw CheckpointError(file.string() + ": cannot read its size: " + ec.message());
    if (have != want) {
      throw CheckpointError(file.string() + ": " + std::to_string(have) + " bytes, but " + marker_path + " records " +
                            std::to_string(want) + " (truncated or replaced after the save)");
    }
    manifest.files[name] = want;
  }
  std::vector<std::string> needed = {kWeightsFile, kTrainerStateFile, kOptimLayoutFile};
  for (int r = 0; r < manifest.world_size; ++r) {
    needed.push_back(optim_shard_file_name(r, manifest.world_size));
    needed.push_back(rng_file_name(r));
  }
  for (const std::string& name : needed) {
    if (!manifest.files.count(name)) {
      files.fail("does not list " + name + ", which every checkpoint saved by " + std::to_string(manifest.world_size) +
                 " rank(s) has");
    }
  }
  return manifest;
}

namespace {

// The weights' header against the model: the same names, shapes, and a floating-point dtype.
void check_weights_header(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  std::unique_ptr<io::SafetensorsFile> file;
  try {
    file = std::make_unique<io::SafetensorsFile>(path);
  } catch (const std::exception& e) {
    const std::string what = one_line_error(e);
    throw CheckpointError(what.find(path) != std::string::npos ? what : path + ": " + what);
  }
  for (const auto& [name, t] : named) {
    if (!file->contains(name)) throw CheckpointError(path + ": no tensor '" + name + "' (the model has it)");
    const io::TensorInfo& info = file->info(name);
    if (info.shape != t.sizes().vec()) {
      throw CheckpointError(path + ": '" + name + "' has shape " + c10::str(c10::IntArrayRef(info.shape)) +
                            ", the model has " + c10::str(t.sizes()));
    }
    if (!c10::isFloatingType(info.dtype)) {
      throw CheckpointError(path + ": '" + name + "' is " + std::string(c10::toString(info.dtype)) +
                            ", expected a floating-point dtype");
    }
  }
  if (file->tensors().size() != named.size()) {
    throw CheckpointError(path + ": " + std::to_string(file->tensors().size()) + " tensors, the model has " +
                          std::to_string(named.size()));
  }
}

}  // namespace

TrainerState read_resume_state(const std::string& dir, int64_t max_steps,
                               const std::vector<std::pair<std::string, torch::Tensor>>& named_weights) {
  const CheckpointManifest manifest = verify_checkpoint_files(dir);
  const std::string marker_path = dir + "/" + kCheckpointMarker, state_path = dir + "/" + kTrainerStateFile;
  TrainerState s = read_trainer_state(dir);
  auto fail = [&](const std::string& field, const std::string& problem) {
    throw CheckpointError(state_path + ": " + field + ": " + problem);
  };
  if (s.step != manifest.step) {
    fail("step", std::to_string(s.step) + ", but " + marker_path + " says " + std::to_string(manifest.step));
  }
  if (s.world_size != manifest.world_size) {
    fail("world_size",
         std::to_string(s.world_size) + ", but " + marker_path + " says " + std::to_string(manifest.world_size));
  }
  if (s.step > max_steps) {
    fail("step", "the checkpoint is at step " + std::to_string(s.step) + ", beyond train.steps (" +
                     std::to_string(max_steps) + "); raise --train.steps to continue it, or start afresh with "
                     "--checkpoint.resume=none");
  }
  // Every step reads at least one row and every row holds at least one token.
  const CheckpointJson cursor_json(nullptr, &s.data_cursor, state_path, "data_cursor");
  const int64_t cursor = cursor_json.at("cursor").integer(0, std::numeric_limits<int64_t>::max());
  if (cursor < s.step) {
    fail("data_cursor.cursor", std::to_string(cursor) + " rows read in " + std::to_string(s.step) + " steps");
  }
  if (cursor > s.tokens) fail("tokens", std::to_string(s.tokens) + " tokens in " + std::to_string(cursor) + " rows");
  if (s.step == 0 && s.tokens != 0) fail("tokens", std::to_string(s.tokens) + " tokens after 0 steps");

  const CheckpointJson layout = CheckpointJson::read(dir + "/" + kOptimLayoutFile);
  const int64_t layout_world = layout.at("world_size").integer(1, kMaxWorldSize);
  if (layout_world != manifest.world_size) {
    layout.at("world_size").fail(std::to_string(layout_world) + ", but " + marker_path + " says " +
                                 std::to_string(manifest.world_size));
  }
  // The optimizer counts the updates it made: the steps not skipped for a non-finite loss.
  const int64_t updates = layout.at("step").integer(0, std::numeric_limits<int64_t>::max());
  if (updates != s.step - s.skipped_steps) {
    layout.at("step").fail(std::to_string(updates) + " optimizer updates, but " + state_path + " has step " +
                           std::to_string(s.step) + " with " + std::to_string(s.skipped_steps) + " skipped");
  }
  check_weights_header(dir + "/" + kWeightsFile, named_weights);
  return s;
}

void save_rng_state(const std::string& dir, int rank) {
  auto gen = at::detail::getDefaultCPUGenerator();
  torch::Tensor state;  // (n) uint8
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  torch::save(state, dir + "/" + rng_file_name(rank));
}

bool load_rng_state(const std::string& dir, int rank) {
  const std::string path = dir + "/" + rng_file_name(rank);
  if (!fs::exists(path)) return false;
  torch::Tensor state;  // (n) uint8
  try {
    torch::load(state, path);
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": not a saved generator state (" + one_line_error(e) + ")");
  }
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  const int64_t want = gen.get_state().numel();
  if (!state.defined() || state.scalar_type() != torch::kByte || state.dim() != 1 || state.numel() != want) {
    throw CheckpointError(path + ": expected the CPU generator's state, " + std::to_string(want) + " bytes (uint8)" +
                          (state.defined() ? ", got " + std::string(c10::toString(state.scalar_type())) + " " +
                                                 c10::str(state.sizes())
                                           : std::string()));
  }
  try {
    gen.set_state(state);
  } catch (const std::exception& e) {
    throw CheckpointError(path + ": not a valid generator state (" + one_line_error(e) + ")");
  }
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
