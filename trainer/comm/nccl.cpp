// NCCL communicator for CUDA tensors (built only with RG_WITH_NCCL, which needs RG_WITH_MPI): MPI starts
// the job, gives ranks and local ranks, and carries the ncclUniqueId from rank 0 to everyone; each process
// drives the GPU numbered by its local rank. Collectives are enqueued on the current LibTorch CUDA stream
// of that GPU, so they are ordered with the kernels around them as if they were blocking; scalars and the
// barrier go over MPI (after a stream synchronisation, for the barrier).
//
// A rank that dies leaves the others inside an NCCL kernel, which never returns by itself: mpirun ends the
// job when a process exits non-zero, and abort() tears the NCCL communicator down before MPI_Abort.
#include "trainer/comm/communicator.h"

#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace rg::comm {

std::unique_ptr<Communicator> make_mpi();

namespace {

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) {
    throw std::runtime_error(std::string("NCCL ") + what + " failed: " + ncclGetErrorString(r));
  }
}

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA ") + what + " failed: " + cudaGetErrorString(e));
}

ncclDataType_t nccl_type(const torch::Tensor& t) {
  switch (t.scalar_type()) {
    case torch::kFloat: return ncclFloat32;
    case torch::kDouble: return ncclFloat64;
    case torch::kHalf: return ncclFloat16;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
    case torch::kBFloat16: return ncclBfloat16;  // bf16 weights move as bf16 (2 bytes, no casts)
#endif
    case torch::kInt: return ncclInt32;
    case torch::kLong: return ncclInt64;
    case torch::kByte: return ncclUint8;
    default: break;
  }
  throw std::invalid_argument(std::string("NCCL communicator: unsupported dtype ") +
                              std::string(c10::toString(t.scalar_type())));
}

class Nccl final : public Communicator {
 public:
  Nccl() : mpi_(make_mpi()) {
    const int devices = static_cast<int>(c10::cuda::device_count());
    if (mpi_->local_rank() >= devices) {
      throw std::runtime_error("NCCL communicator: local rank " + std::to_string(mpi_->local_rank()) + " but only " +
                               std::to_string(devices) + " CUDA device(s) on this host; start at most " +
                               std::to_string(devices) + " ranks per host");
    }
    device_ = static_cast<c10::DeviceIndex>(mpi_->local_rank());
    c10::cuda::set_device(device_);
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (mpi_->rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    torch::Tensor bytes = torch::from_blob(&id, {static_cast<int64_t>(sizeof id)}, torch::kByte);  // CPU view
    mpi_->broadcast(bytes, 0);
    check_nccl(ncclCommInitRank(&comm_, mpi_->world_size(), id, mpi_->rank()), "ncclCommInitRank");
  }
  ~Nccl() override {
    if (comm_) ncclCommDestroy(comm_);
  }

  std::string backend() const override { return "nccl"; }
  int rank() const override { return mpi_->rank(); }
  int world_size() const override { return mpi_->world_size(); }
  int local_rank() const override { return mpi_->local_rank(); }
  int local_size() const override { return mpi_->local_size(); }

  void barrier() override {
    check_cuda(cudaStreamSynchronize(stream()), "stream synchronize");
    mpi_->barrier();
  }
  double all_reduce_scalar(double value, bool max) override { return mpi_->all_reduce_scalar(value, max); }
  [[noreturn]] void abort(int code) override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    mpi_->abort(code);
  }

 protected:
  // Sizes, dtypes, contiguity and the root are checked in Communicator; here only what NCCL can move.
  void do_all_reduce_sum(torch::Tensor& t) override {
    check(t, "all_reduce_sum tensor");
    check_nccl(ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t), ncclSum, comm_, stream()),
               "all_reduce");
  }
  void do_reduce_scatter_sum(const torch::Tensor& input, torch::Tensor& output) override {
    check(input, "reduce_scatter_sum input");
    check_nccl(ncclReduceScatter(input.data_ptr(), output.data_ptr(), output.numel(), nccl_type(input), ncclSum,
                                 comm_, stream()),
               "reduce_scatter");
  }
  void do_all_gather(const torch::Tensor& input, torch::Tensor& output) override {
    check(input, "all_gather input");
    check_nccl(ncclAllGather(input.data_ptr(), output.data_ptr(), input.numel(), nccl_type(input), comm_, stream()),
               "all_gather");
  }
  void do_broadcast(torch::Tensor& t, int root) override {
    check(t, "broadcast tensor");
    check_nccl(ncclBroadcast(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t), root, comm_, stream()),
               "broadcast");
  }

 private:
  cudaStream_t stream() const { return c10::cuda::getCurrentCUDAStream(device_).stream(); }
  void check(const torch::Tensor& t, const char* what) const {
    if (!t.is_cuda() || t.get_device() != device_ || !t.is_contiguous()) {
      throw std::invalid_argument(std::string("NCCL communicator: ") + what +
                                  " must be a contiguous CUDA tensor on device " + std::to_string(device_));
    }
  }

  std::unique_ptr<Communicator> mpi_;
  ncclComm_t comm_ = nullptr;
  c10::DeviceIndex device_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl() { return std::make_unique<Nccl>(); }

}  // namespace rg::comm
