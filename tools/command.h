// The `rgemma` subcommand table. Each subcommand is one small tools/cmd_*.cpp that registers itself:
//
//   int run_info(int argc, char** argv);   // argv[0] is "rgemma info"
//   RG_COMMAND("info", "print a model's parameter count from its config", run_info);
//
// A subcommand returns the process exit code; rg::config::ConfigError thrown from it exits with 2 and
// any other exception with 1, each after one line on stderr.
#pragma once

#include <string>
#include <vector>

namespace rg::tools {

struct Command {
  std::string name;
  std::string summary;
  int (*run)(int argc, char** argv);
};

std::vector<Command>& command_table();
bool register_command(Command command);

// Sets LibTorch's intra-op threads to `threads`, or when 0 to (cores / ranks on this host) so that
// co-located MPI ranks do not oversubscribe the machine. Returns the count set.
int configure_threads(int threads = 0);

}  // namespace rg::tools

#define RG_COMMAND(name, summary, fn) \
  static const bool rg_command_registered_##fn = ::rg::tools::register_command({name, summary, fn})
