// Backend selection for make_communicator().
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

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"}) {
    if (std::getenv(var)) return true;
  }
  return false;
}

std::unique_ptr<Communicator> make_communicator(const std::string& backend) {
  const std::string b = backend == "auto" ? (launched_by_mpi() ? "mpi" : "single") : backend;
  if (b == "single") return make_single_process();
  if (b == "mpi") {
#ifdef RG_HAVE_MPI
    return make_mpi();
#else
    throw std::runtime_error("communicator 'mpi' requested but rgemma was built with RG_WITH_MPI=OFF");
#endif
  }
  if (b == "nccl") {
#ifdef RG_HAVE_NCCL
    return make_nccl();
#else
    throw std::runtime_error("communicator 'nccl' requested but rgemma was built with RG_WITH_NCCL=OFF");
#endif
  }
  throw std::invalid_argument("unknown communicator backend '" + backend + "' (auto, single, mpi, nccl)");
}

}  // namespace rg::comm
