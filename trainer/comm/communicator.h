// Communicator: the collective operations data-parallel training needs, behind one interface with
// three backends: single process (world size 1), MPI (CPU tensors) and NCCL (CUDA tensors).
// Only trainer/comm/*.cpp include mpi.h or nccl.h. Every call is blocking and collective: all ranks call
// the same operations in the same order with tensors of the same shape and dtype.
//
// The tensor collectives check their arguments here, in the base, before any backend runs (so the
// single-process backend, where every collective is the identity, refuses exactly what MPI and NCCL
// refuse): tensors defined and contiguous, input and output of one dtype and device, the sizes below,
// the broadcast root a rank. std::invalid_argument names the call and the argument. What a backend can
// move (MPI: CPU tensors; NCCL: CUDA tensors on its device; the dtypes each supports) it checks itself.
#pragma once

#include <torch/types.h>

#include <memory>
#include <string>

namespace rg::comm {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string backend() const = 0;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes on this host
  virtual int local_size() const = 0;

  // In-place sum over ranks.
  void all_reduce_sum(torch::Tensor& tensor);
  // input: numel = world_size * n; output (n): sum over ranks of input's slice [rank*n, (rank+1)*n).
  void reduce_scatter_sum(const torch::Tensor& input, torch::Tensor& output);
  // input (n) from every rank -> output (world_size * n), rank r's input at [r*n, (r+1)*n).
  void all_gather(const torch::Tensor& input, torch::Tensor& output);
  // root in [0, world_size).
  void broadcast(torch::Tensor& tensor, int root);
  virtual void barrier() = 0;
  // Sum / max of a scalar over ranks (metrics, NaN agreement, sample counts).
  virtual double all_reduce_scalar(double value, bool max = false) = 0;
  // Ends every process of the job with `code` (used when one rank hits an unrecoverable error, so that
  // the others do not wait forever in a collective).
  [[noreturn]] virtual void abort(int code) = 0;

 protected:
  // The backends' collectives, called only with arguments the public calls above have checked.
  virtual void do_all_reduce_sum(torch::Tensor& tensor) = 0;
  virtual void do_reduce_scatter_sum(const torch::Tensor& input, torch::Tensor& output) = 0;
  virtual void do_all_gather(const torch::Tensor& input, torch::Tensor& output) = 0;
  virtual void do_broadcast(torch::Tensor& tensor, int root) = 0;
};

// "auto": MPI when launched by mpirun (or a PMI launcher), else single process. "single", "mpi", "nccl".
// Throws std::runtime_error when the backend was not built or cannot start.
std::unique_ptr<Communicator> make_communicator(const std::string& backend = "auto");

// True when this process was started by mpirun/srun with more than one rank in view.
bool launched_by_mpi();

}  // namespace rg::comm
