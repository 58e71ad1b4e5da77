// The NCCL communicator on CUDA tensors (built only with RG_WITH_NCCL; label gpu). Run as
// `mpirun -np G rg_nccl_test` with G GPUs on the host; skips itself without CUDA. Each rank contributes
// values that depend on its rank and checks the closed-form result.
#include "trainer/comm/communicator.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace rg::comm {
namespace {

Communicator& comm() {
  static std::unique_ptr<Communicator> c = make_communicator("nccl");
  return *c;
}

torch::Device device() { return torch::Device(torch::kCUDA, comm().local_rank()); }

TEST(Nccl, Collectives) {
  const int r = comm().rank(), n = comm().world_size();
  torch::Tensor t = torch::arange(10, torch::TensorOptions(torch::kFloat).device(device())) * (r + 1);  // (10)
  comm().all_reduce_sum(t);
  EXPECT_TRUE(torch::equal(t.cpu(), torch::arange(10, torch::kFloat) * (n * (n + 1) / 2)));

  const int per = 5;
  const torch::Tensor input = (torch::arange(per * n, torch::kFloat) + 100 * r).to(device());  // (n * per)
  torch::Tensor out = torch::empty({per}, input.options());
  comm().reduce_scatter_sum(input, out);
  const torch::Tensor expected = torch::arange(r * per, (r + 1) * per, torch::kFloat) * n + 100.0 * n * (n - 1) / 2;
  EXPECT_TRUE(torch::allclose(out.cpu(), expected));

  const torch::Tensor mine = torch::full({4}, static_cast<float>(r)).to(torch::kBFloat16).to(device());
  torch::Tensor all = torch::empty({4 * n}, mine.options());
  comm().all_gather(mine, all);
  for (int q = 0; q < n; ++q) EXPECT_TRUE(all.slice(0, 4 * q, 4 * (q + 1)).cpu().eq(q).all().item<bool>());

  torch::Tensor b = torch::full({3}, static_cast<double>(r), torch::TensorOptions(torch::kDouble).device(device()));
  comm().broadcast(b, n - 1);
  EXPECT_TRUE(b.cpu().eq(n - 1).all().item<bool>());
  EXPECT_DOUBLE_EQ(comm().all_reduce_scalar(r + 1.0), n * (n + 1) / 2.0);
  comm().barrier();
}

TEST(Nccl, RejectsCpuTensors) {
  torch::Tensor t = torch::ones({2});
  EXPECT_THROW(comm().all_reduce_sum(t), std::invalid_argument);
}

}  // namespace
}  // namespace rg::comm

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!torch::cuda::is_available()) {
    std::printf("no CUDA device: skipped\n");
    return 0;
  }
  return RUN_ALL_TESTS();
}
