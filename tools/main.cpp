// rgemma: one executable, many subcommands (`rgemma --help` lists them). Unknown subcommands and
// configuration errors print one line and exit with code 2; runtime failures exit with 1.
#include "configs/options.h"
#include "data/data_error.h"
#include "tools/command.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <dlfcn.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <new>
#include <thread>

namespace rg::tools {

std::vector<Command>& command_table() {
  static std::vector<Command> table;
  return table;
}

bool register_command(Command command) {
  command_table().push_back(std::move(command));
  return true;
}

int configure_threads(int threads) {
  if (threads <= 0) {
    if (const char* env = std::getenv("RG_THREADS")) threads = std::atoi(env);
  }
  if (threads <= 0) {
    const int cores = std::max(1u, std::thread::hardware_concurrency());
    int local = 1;
    for (const char* var : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"}) {
      if (const char* v = std::getenv(var)) {
        local = std::max(1, std::atoi(v));
        break;
      }
    }
    threads = std::max(1, cores / local);
  }
  at::set_num_threads(threads);
  // OpenBLAS keeps its own pool (one thread per core by default) that at::set_num_threads does not touch:
  // two ranks on two cores would run four matmul threads. Looked up at run time, as LibTorch may use
  // another BLAS.
  using SetThreads = void (*)(int);
  if (auto set_blas = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) set_blas(threads);
  return threads;
}

}  // namespace rg::tools

namespace {

void print_usage(std::ostream& out) {
  auto table = rg::tools::command_table();
  std::sort(table.begin(), table.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  out << "usage: rgemma <command> [options]\n\n"
         "Pretrain, instruction-tune and preference-tune RecurrentGemma (Griffin) models (the commands below).\n\ncommands:\n";
  for (const auto& c : table) {
    std::string name = "  " + c.name;
    name.resize(std::max<size_t>(name.size() + 2, 14), ' ');
    out << name << c.summary << "\n";
  }
  out << "\n`rgemma <command> --help` describes a command's options. Settings come from INI files\n"
         "(--config FILE, repeatable) and --section.key=value overrides.\n";
}

// Errors print on one line: a message that spans several (a child's output, a library's list) is joined.
std::string one_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  std::string out;
  for (char c : text) {
    if (c == '\n') out += out.empty() || out.back() == ' ' ? "| " : " | ";
    else out += c;
  }
  return out;
}

}  // namespace

// glibc returns every freed block above 128 KiB to the kernel, so each activation tensor of a training
// step is a fresh mmap whose pages fault in again (several ms per op on a VM). Keep freed memory for reuse.
void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);   // glibc's maximum: blocks below 32 MiB come from the heap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);    // and the heap is not trimmed back below 1 GiB of free space
}

// LibTorch's OpenMP threads spin after each parallel region while OpenBLAS's own threads run the next
// matmul: on a machine with as many threads as cores they take turns spinning (a training step measured
// 1.5x slower). Passive waiting must be chosen before libgomp starts, i.e. before main: so re-execute once
// with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy. Same PID, so mpirun is unaffected.
void ensure_passive_openmp_waiting(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the default policy
}

int main(int argc, char** argv) {
  ensure_passive_openmp_waiting(argv);
  keep_freed_memory();
  if (argc < 2) {
    print_usage(std::cerr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(std::cout);
    return 0;
  }
  const auto& table = rg::tools::command_table();
  const auto it = std::find_if(table.begin(), table.end(), [&](const auto& c) { return c.name == name; });
  if (it == table.end()) {
    std::cerr << "rgemma: unknown command '" << name << "' (see rgemma --help)\n";
    return 2;
  }
  rg::tools::configure_threads();
  const std::string full = "rgemma " + name;
  std::vector<char*> args(argv + 1, argv + argc);
  args[0] = const_cast<char*>(full.c_str());
  try {
    return it->run(static_cast<int>(args.size()), args.data());
  } catch (const rg::config::ConfigError& e) {
    std::cerr << full << ": " << one_line(e.what()) << "\n";
    return 2;
  } catch (const rg::data::DataError& e) {  // a bad data file: 2 when unusable as given (BadDataFile), else 1
    std::cerr << full << ": " << (e.exit_code() == 2 ? "" : "error: ") << e.what() << "\n";
    return e.exit_code();
  } catch (const c10::Error& e) {
    // what() carries a 20-30 line C++ backtrace; the message alone is what a user can act on.
    std::cerr << full << ": error: " << one_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    // Allocations we can size are checked and named where they happen (tools/model_source.h); this is
    // one that was not.
    std::cerr << full << ": error: out of memory (an allocation failed; try a smaller model, batch or sequence)\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << full << ": error: " << one_line(e.what()) << "\n";
    return 1;
  }
}
