// MPI communicator for CPU tensors. MPI is initialised on first use and finalised at process exit.
// Errors are fatal (MPI_ERRORS_ARE_FATAL): with mpirun, a rank that dies or aborts ends the whole job
// instead of leaving the others blocked in a collective.
#include "trainer/comm/communicator.h"

#include <mpi.h>

#include <cstdlib>
#include <stdexcept>

namespace rg::comm {
namespace {

MPI_Datatype mpi_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat: return MPI_FLOAT;
    case torch::kDouble: return MPI_DOUBLE;
    case torch::kInt: return MPI_INT32_T;
    case torch::kLong: return MPI_INT64_T;
    case torch::kByte: return MPI_UINT8_T;
    case torch::kBFloat16:
    case torch::kHalf: break;
    default: break;
  }
  throw std::invalid_argument(std::string("MPI communicator: unsupported dtype ") +
                              std::string(c10::toString(t.scalar_type())) +
                              " (CPU collectives reduce float32/float64/int32/int64)");
}

void check_cpu_contiguous(const torch::Tensor& t, const char* what) {
  if (!t.device().is_cpu()) {
    // Not CUDA-aware on purpose: CUDA training goes through NCCL (choose_backend refuses mpi + CUDA up front).
    throw std::invalid_argument(std::string("MPI communicator: ") + what + " is on " + t.device().str() +
                                "; MPI moves CPU tensors only (CUDA training needs train.comm = nccl)");
  }
  if (!t.is_contiguous()) {
    throw std::invalid_argument(std::string("MPI communicator: ") + what + " must be a contiguous CPU tensor");
  }
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

class Mpi final : public Communicator {
 public:
  Mpi() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      std::atexit([] {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
      });
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
  }
  std::string backend() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  double all_reduce_scalar(double value, bool max) override {
    double out = 0;
    MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, max ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD);
    return out;
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 protected:
  // Sizes, dtypes, contiguity and the root are checked in Communicator; here only what MPI can move.
  void do_all_reduce_sum(torch::Tensor& t) override {
    check_cpu_contiguous(t, "all_reduce_sum tensor");
    MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), mpi_type(t), MPI_SUM,
                  MPI_COMM_WORLD);
  }
  void do_reduce_scatter_sum(const torch::Tensor& input, torch::Tensor& output) override {
    check_cpu_contiguous(input, "reduce_scatter_sum input");
    MPI_Reduce_scatter_block(input.data_ptr(), output.data_ptr(), static_cast<int>(output.numel()),
                             mpi_type(input), MPI_SUM, MPI_COMM_WORLD);
  }
  void do_all_gather(const torch::Tensor& input, torch::Tensor& output) override {
    check_cpu_contiguous(input, "all_gather input");
    MPI_Allgather(input.data_ptr(), static_cast<int>(input.numel()), mpi_type(input), output.data_ptr(),
                  static_cast<int>(input.numel()), mpi_type(output), MPI_COMM_WORLD);
  }
  void do_broadcast(torch::Tensor& t, int root) override {
    check_cpu_contiguous(t, "broadcast tensor");
    MPI_Bcast(t.data_ptr(), static_cast<int>(t.numel() * t.element_size()), MPI_BYTE, root, MPI_COMM_WORLD);
  }

 private:
  int rank_ = 0, world_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi() { return std::make_unique<Mpi>(); }

}  // namespace rg::comm
