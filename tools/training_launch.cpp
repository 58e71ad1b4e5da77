// The training commands' shared launcher: see training_launch.h.
#include "tools/training_launch.h"

#include "data/data_error.h"
#include "trainer/comm/backend.h"
#include "trainer/trainer.h"

#include <torch/cuda.h>

#include <iostream>
#include <sstream>

namespace rg::tools {

std::unique_ptr<comm::Communicator> make_training_communicator(const config::Options& options,
                                                               const trainer::TrainConfig& config) {
  const bool cuda = config.train.device != trainer::TrainDevice::kCpu && torch::cuda::is_available();
  try {
    return comm::make_communicator(config.train.comm, cuda ? comm::TensorDevice::kCuda : comm::TensorDevice::kCpu);
  } catch (const comm::BackendError& e) {
    options.fail("train.comm", e.what());
  }
}

std::string announce_effective_config(const config::Options& options, const comm::Communicator& comm) {
  std::ostringstream effective;
  options.print_effective(effective);
  if (comm.rank() == 0) std::cout << effective.str();
  return effective.str();
}

int run_training_command(const char* command, comm::Communicator& comm, const std::function<int()>& loop) {
  auto fail = [&](const std::string& message, int exit_code) {
    std::cerr << command << ": rank " << comm.rank() << ": " << message << std::endl;
    comm.abort(exit_code);
  };
  try {
    return loop();
  } catch (const trainer::TrainSetupError& e) {
    if (comm.world_size() == 1) throw config::ConfigError(e.what());
    fail(e.what(), 2);
  } catch (const data::DataError& e) {  // an unusable dataset file exits 2 (BadDataFile), as with one rank
    if (comm.world_size() == 1) throw;
    fail(e.what(), e.exit_code());
  } catch (const std::exception& e) {
    if (comm.world_size() == 1) throw;
    fail(std::string("error: ") + e.what(), 1);
  }
  return 1;  // comm.abort does not return
}

}  // namespace rg::tools
