// Which communicator a job gets (train.comm = auto|single|mpi|nccl): the choice as a pure function of the
// request, the tensors' device and what was built and launched (testable on any machine), and the factory
// that applies it. MPI moves CPU tensors only and NCCL CUDA tensors only, so the device decides.
#pragma once

#include "trainer/comm/communicator.h"

#include <memory>
#include <stdexcept>
#include <string>

namespace rg::comm {

// A request that cannot work in this build or for these tensors: a configuration error (exit 2).
class BackendError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

enum class TensorDevice { kUnknown, kCpu, kCuda };  // where the job's collectives move tensors

struct BackendContext {
  TensorDevice tensors = TensorDevice::kUnknown;  // kUnknown: no device check (tests, benchmarks)
  bool launched_by_mpi = false;                   // under mpirun / srun
  bool mpi_built = false;                         // RG_WITH_MPI
  bool nccl_built = false;                        // RG_WITH_NCCL
};

// This process and this build, with the given tensors.
BackendContext current_backend_context(TensorDevice tensors);

// "single", "mpi" or "nccl" for a request of "auto", "single", "mpi" or "nccl". auto: on CUDA under mpirun
// NCCL (MPI only starts the job); on CUDA as one process the single-process communicator (nothing to
// move); otherwise MPI under mpirun, else single. Throws BackendError, one line, for an unknown name, a
// backend not built, MPI asked to move CUDA tensors, NCCL asked to move CPU tensors, and CUDA under
// mpirun without NCCL.
std::string choose_backend(const std::string& requested, const BackendContext& context);

// make_communicator() with the device checks: the training commands pass where their tensors live.
std::unique_ptr<Communicator> make_communicator(const std::string& requested, TensorDevice tensors);

}  // namespace rg::comm
