// Tokenizer: dlopen's librg_sentencepiece.so once per process with RTLD_DEEPBIND so its bundled protobuf
// resolves against itself and never against LibTorch's copy.
#include "data/tokenizer.h"

#include "data/data_error.h"
#include "data/sentencepiece_shim.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>

#include <cstdlib>
#include <algorithm>
#include <mutex>
#include <thread>
#include <stdexcept>

namespace rg {
namespace {

struct ShimApi {
  decltype(&rg_sp_load) load;
  decltype(&rg_sp_free) free;
  decltype(&rg_sp_vocab_size) vocab_size;
  decltype(&rg_sp_special_id) special_id;
  decltype(&rg_sp_piece_to_id) piece_to_id;
  decltype(&rg_sp_id_to_piece) id_to_piece;
  decltype(&rg_sp_is_special) is_special;
  decltype(&rg_sp_encode) encode;
  decltype(&rg_sp_decode) decode;
};

template <class F>
void bind(void* lib, const char* name, F* out, const std::string& path) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  if (!*out) throw std::runtime_error(path + ": missing symbol " + name);
}

const ShimApi& shim() {
  static ShimApi api;
  static std::once_flag once;
  static std::string error;
  std::call_once(once, [] {
    const std::string path = sentencepiece_shim_path();
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!lib) {
      error = "cannot load the sentencepiece shim " + path + ": " + dlerror() +
              " (build target rg_sentencepiece, or set RG_SENTENCEPIECE_SHIM)";
      return;
    }
    try {
      bind(lib, "rg_sp_load", &api.load, path);
      bind(lib, "rg_sp_free", &api.free, path);
      bind(lib, "rg_sp_vocab_size", &api.vocab_size, path);
      bind(lib, "rg_sp_special_id", &api.special_id, path);
      bind(lib, "rg_sp_piece_to_id", &api.piece_to_id, path);
      bind(lib, "rg_sp_id_to_piece", &api.id_to_piece, path);
      bind(lib, "rg_sp_is_special", &api.is_special, path);
      bind(lib, "rg_sp_encode", &api.encode, path);
      bind(lib, "rg_sp_decode", &api.decode, path);
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  if (!error.empty()) throw std::runtime_error(error);
  return api;
}

}  // namespace

struct Tokenizer::Handle {
  RgSentencePiece* sp = nullptr;
  ~Handle() {
    if (sp) shim().free(sp);
  }
};

std::string sentencepiece_shim_path() {
  if (const char* env = std::getenv("RG_SENTENCEPIECE_SHIM")) return env;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&sentencepiece_shim_path), &info) && info.dli_fname) {
    std::string self = info.dli_fname;
    const auto slash = self.rfind('/');
    if (slash != std::string::npos) return self.substr(0, slash + 1) + "librg_sentencepiece.so";
  }
  return "librg_sentencepiece.so";
}

Tokenizer Tokenizer::load(const std::string& model_path) {
  // sentencepiece reads the whole file: a FIFO would block it and /dev/zero never end.
  data::require_regular_file(model_path, "a sentencepiece model");
  const ShimApi& api = shim();
  char err[512] = {0};
  Tokenizer t;
  t.handle_ = std::make_shared<Handle>();
  t.handle_->sp = api.load(model_path.c_str(), err, sizeof err);
  if (!t.handle_->sp) throw data::BadDataFile(model_path + ": not a sentencepiece model: " + err);
  t.path_ = model_path;
  t.vocab_size_ = api.vocab_size(t.handle_->sp);
  t.bos_id_ = api.special_id(t.handle_->sp, "bos");
  t.eos_id_ = api.special_id(t.handle_->sp, "eos");
  t.pad_id_ = api.special_id(t.handle_->sp, "pad");
  t.unk_id_ = api.special_id(t.handle_->sp, "unk");
  return t;
}

void Tokenizer::train_raw(const std::vector<std::string>& flags, const std::string& log_path) {
  const char* env = std::getenv("RG_SPM_TRAIN");
  const std::string program = env ? env : "spm_train";
  std::vector<std::string> args = {program};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error("cannot start " + program + ": " + std::strerror(rc) +
                             " (install Debian's `sentencepiece` package or set RG_SPM_TRAIN)");
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream log(log_path);
    std::deque<std::string> tail;
    for (std::string line; std::getline(log, line);) {
      tail.push_back(line);
      if (tail.size() > 5) tail.pop_front();
    }
    std::string last;
    for (const auto& l : tail) last += "\n  " + l;
    throw std::runtime_error("sentencepiece training failed (" + program + ", log " + log_path + "):" + last);
  }
}

std::vector<std::string> gemma_training_flags(const std::string& inputs, const std::string& model_prefix,
                                              int64_t vocab_size, const std::string& model_type,
                                              int64_t input_sentence_size) {
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  return {"--input=" + inputs, "--model_prefix=" + model_prefix, "--vocab_size=" + std::to_string(vocab_size),
          "--model_type=" + model_type, "--byte_fallback=true", "--pad_id=0", "--eos_id=1", "--bos_id=2",
          "--unk_id=3", "--pad_piece=<pad>", "--eos_piece=<eos>", "--bos_piece=<bos>", "--unk_piece=<unk>",
          "--user_defined_symbols=<start_of_turn>,<end_of_turn>", "--split_digits=true",
          "--add_dummy_prefix=false", "--remove_extra_whitespaces=false", "--normalization_rule_name=identity",
          "--allow_whitespace_only_pieces=true", "--character_coverage=0.9995",
          "--input_sentence_size=" + std::to_string(input_sentence_size), "--shuffle_input_sentence=true",
          "--num_threads=" + std::to_string(threads)};
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  char err[512] = {0};
  std::vector<int32_t> ids(text.size() + 16);
  int n = shim().encode(handle_->sp, text.data(), text.size(), ids.data(), ids.size(), err, sizeof err);
  if (n < 0) throw std::runtime_error(path_ + ": encode failed: " + err);
  if (static_cast<size_t>(n) > ids.size()) {  // byte fallback can exceed one id per byte only rarely
    ids.resize(n);
    n = shim().encode(handle_->sp, text.data(), text.size(), ids.data(), ids.size(), err, sizeof err);
  }
  ids.resize(n);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  char err[512] = {0};
  std::string out(ids.size() * 8 + 16, '\0');
  int n = shim().decode(handle_->sp, ids.data(), ids.size(), out.data(), out.size(), err, sizeof err);
  if (n < 0) throw std::runtime_error(path_ + ": decode failed: " + err);
  if (static_cast<size_t>(n) > out.size()) {
    out.resize(n);
    n = shim().decode(handle_->sp, ids.data(), ids.size(), out.data(), out.size(), err, sizeof err);
  }
  out.resize(n);
  return out;
}

int32_t Tokenizer::piece_to_id(const std::string& piece) const {
  return shim().piece_to_id(handle_->sp, piece.c_str());
}

std::string Tokenizer::id_to_piece(int32_t id) const {
  char buf[256];
  const int n = shim().id_to_piece(handle_->sp, id, buf, sizeof buf);
  if (n < 0) throw std::out_of_range(path_ + ": token id " + std::to_string(id) + " outside the vocabulary");
  if (static_cast<size_t>(n) < sizeof buf) return std::string(buf, n);
  std::string big(n + 1, '\0');
  shim().id_to_piece(handle_->sp, id, big.data(), big.size());
  big.resize(n);
  return big;
}

bool Tokenizer::is_special(int32_t id) const { return shim().is_special(handle_->sp, id) == 1; }

}  // namespace rg
