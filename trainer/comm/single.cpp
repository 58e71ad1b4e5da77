// The single-process communicator: every collective is the identity (or a copy), so trainers written for
// N ranks run unchanged as one process.
#include "trainer/comm/communicator.h"

#include <cstdlib>
#include <stdexcept>

namespace rg::comm {

class SingleProcess final : public Communicator {
 public:
  std::string backend() const override { return "single"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  void barrier() override {}
  double all_reduce_scalar(double value, bool) override { return value; }
  [[noreturn]] void abort(int code) override { std::_Exit(code); }

 protected:
  // The arguments are checked in Communicator (input and output of one size at world size 1).
  void do_all_reduce_sum(torch::Tensor&) override {}
  void do_reduce_scatter_sum(const torch::Tensor& input, torch::Tensor& output) override {
    output.view(-1).copy_(input.view(-1));
  }
  void do_all_gather(const torch::Tensor& input, torch::Tensor& output) override {
    output.view(-1).copy_(input.view(-1));
  }
  void do_broadcast(torch::Tensor&, int) override {}
};

std::unique_ptr<Communicator> make_single_process() { return std::make_unique<SingleProcess>(); }

}  // namespace rg::comm
