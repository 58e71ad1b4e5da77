// The collectives' argument checks, shared by every backend, and the backend selection for
// make_communicator(): choose_backend() decides, the factories build.
#include "trainer/comm/backend.h"
#include "trainer/comm/communicator.h"

#include <cstdlib>
#include <stdexcept>

namespace rg::comm {

std::unique_ptr<Communicator> make_single_process();
#ifdef RG_HAVE_MPI
std::unique_ptr<Communicator> make_mpi();
#endif
#ifdef RG_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl();
#endif

namespace {

void require_contiguous(const torch::Tensor& t, const char* call, const char* what) {
  if (!t.defined()) throw std::invalid_argument(std::string(call) + ": " + what + " is an undefined tensor");
  if (!t.is_contiguous()) throw std::invalid_argument(std::string(call) + ": " + what + " must be contiguous");
}

// input and output of a reduce-scatter or all-gather: contiguous, one dtype, one device, and `big` holding
// world_size times the elements of `small`.
void require_scatter_pair(const torch::Tensor& big, const char* big_name, const torch::Tensor& small,
                          const char* small_name, int world_size, const char* call) {
  require_contiguous(big, call, big_name);
  require_contiguous(small, call, small_name);
  if (big.scalar_type() != small.scalar_type() || big.device() != small.device()) {
    throw std::invalid_argument(std::string(call) + ": input and output must share dtype and device, got " +
                                std::string(c10::toString(big.scalar_type())) + " on " + big.device().str() +
                                " and " + std::string(c10::toString(small.scalar_type())) + " on " +
                                small.device().str());
  }
  if (big.numel() != small.numel() * world_size) {
    throw std::invalid_argument(std::string(call) + ": " + big_name + " has " + std::to_string(big.numel()) +
                                " elements, expected world_size (" + std::to_string(world_size) + ") x " +
                                small_name + "'s " + std::to_string(small.numel()));
  }
}

}  // namespace

void Communicator::all_reduce_sum(torch::Tensor& tensor) {
  require_contiguous(tensor, "all_reduce_sum", "tensor");
  do_all_reduce_sum(tensor);
}

void Communicator::reduce_scatter_sum(const torch::Tensor& input, torch::Tensor& output) {
  require_scatter_pair(input, "input", output, "output", world_size(), "reduce_scatter_sum");
  do_reduce_scatter_sum(input, output);
}

void Communicator::all_gather(const torch::Tensor& input, torch::Tensor& output) {
  require_scatter_pair(output, "output", input, "input", world_size(), "all_gather");
  do_all_gather(input, output);
}

void Communicator::broadcast(torch::Tensor& tensor, int root) {
  require_contiguous(tensor, "broadcast", "tensor");
  if (root < 0 || root >= world_size()) {
    throw std::invalid_argument("broadcast: root " + std::to_string(root) + " is not a rank (world size " +
                                std::to_string(world_size()) + ")");
  }
  do_broadcast(tensor, root);
}

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"}) {
    if (std::getenv(var)) return true;
  }
  return false;
}

BackendContext current_backend_context(TensorDevice tensors) {
  BackendContext c;
  c.tensors = tensors;
  c.launched_by_mpi = launched_by_mpi();
#ifdef RG_HAVE_MPI
  c.mpi_built = true;
#endif
#ifdef RG_HAVE_NCCL
  c.nccl_built = true;
#endif
  return c;
}

std::string choose_backend(const std::string& requested, const BackendContext& c) {
  const bool cuda = c.tensors == TensorDevice::kCuda, cpu = c.tensors == TensorDevice::kCpu;
  const std::string not_built = " was requested but rgemma was built without it";
  if (requested == "single") return "single";
  if (requested == "mpi") {
    if (!c.mpi_built) throw BackendError("communicator 'mpi'" + not_built + " (RG_WITH_MPI=OFF)");
    if (cuda) {
      throw BackendError("communicator 'mpi' moves CPU tensors only, but this run trains on CUDA; use 'nccl' "
                         "(or 'auto'), or train on the CPU");
    }
    return "mpi";
  }
  if (requested == "nccl") {
    if (!c.nccl_built) {
      throw BackendError("communicator 'nccl'" + not_built +
                         " (RG_WITH_NCCL=OFF: it needs a CUDA LibTorch and nccl.h/libnccl at configure time)");
    }
    if (cpu) {
      throw BackendError("communicator 'nccl' moves CUDA tensors only, but this run trains on the CPU; use 'mpi' or "
                         "'auto'");
    }
    return "nccl";
  }
  if (requested == "auto") {
    if (!c.launched_by_mpi) return "single";
    if (cuda) {
      if (c.nccl_built) return "nccl";
      throw BackendError("training on CUDA under mpirun needs the NCCL communicator, but rgemma was built without "
                         "it (RG_WITH_NCCL=OFF); rebuild with NCCL, or train on the CPU");
    }
    if (!c.mpi_built) throw BackendError("launched by mpirun, but rgemma was built without MPI (RG_WITH_MPI=OFF)");
    return "mpi";
  }
  throw BackendError("unknown communicator '" + requested + "' (expected auto, single, mpi or nccl)");
}

std::unique_ptr<Communicator> make_communicator(const std::string& requested, TensorDevice tensors) {
  const std::string b = choose_backend(requested, current_backend_context(tensors));
#ifdef RG_HAVE_NCCL
  if (b == "nccl") return make_nccl();
#endif
#ifdef RG_HAVE_MPI
  if (b == "mpi") return make_mpi();
#endif
  if (b == "single") return make_single_process();
  throw BackendError("communicator '" + b + "' is not available in this build");  // unreachable: choose checked
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend) {
  try {
    return make_communicator(backend, TensorDevice::kUnknown);
  } catch (const BackendError& e) {
    // Callers of this form (tests, benchmarks) expect runtime_error for "not built", invalid_argument
    // for an unknown name; BackendError is an invalid_argument, so rethrow the former as before.
    if (backend == "auto" || backend == "single" || backend == "mpi" || backend == "nccl") {
      throw std::runtime_error(e.what());
    }
    throw;
  }
}

}  // namespace rg::comm
