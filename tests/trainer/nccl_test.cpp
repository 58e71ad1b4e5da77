// The NCCL communicator on CUDA tensors (built only with RG_WITH_NCCL; label gpu). Run as
// `mpirun -np G rg_nccl_test` with G GPUs on the host; exits 77 (skipped) with fewer GPUs than ranks on
// the host. Each rank contributes values that depend on its rank and checks the closed-form result.
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
  // Integers below 2^24 add exactly in float32 in any order: equal in fact; allclose's defaults are slack.
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

// bf16 tensors move as bf16 (the ZeRO all-gather of bf16 weights on CUDA passes them as they are).
TEST(Nccl, BFloat16Collectives) {
  const int r = comm().rank(), n = comm().world_size();
  const auto bf16 = torch::TensorOptions(torch::kBFloat16).device(device());
  // Small integers are exact in bf16 (8 bits of mantissa), so the sums compare exactly.
  torch::Tensor t = torch::full({8}, static_cast<float>(r + 1), bf16);
  comm().all_reduce_sum(t);
  EXPECT_TRUE(t.to(torch::kFloat).cpu().eq(n * (n + 1) / 2.0).all().item<bool>());
  torch::Tensor input = torch::full({3 * n}, static_cast<float>(r), bf16), out = torch::empty({3}, bf16);
  comm().reduce_scatter_sum(input, out);
  EXPECT_TRUE(out.to(torch::kFloat).cpu().eq(n * (n - 1) / 2.0).all().item<bool>());
}

TEST(Nccl, RejectsCpuTensors) {
  torch::Tensor t = torch::ones({2});
  EXPECT_THROW(comm().all_reduce_sum(t), std::invalid_argument);
}

}  // namespace
}  // namespace rg::comm

// CTest's SKIP_RETURN_CODE: a host with fewer GPUs than ranks reports the test as skipped, visibly,
// rather than passed.
constexpr int kSkipped = 77;

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // MPI first (no GPU needed) to learn how many ranks share this host; the NCCL communicator reuses it.
  const auto mpi = rg::comm::make_communicator("mpi");
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  if (gpus < mpi->local_size()) {
    if (mpi->rank() == 0) {
      std::printf("skipped: %d rank(s) on this host need as many CUDA devices, found %d\n", mpi->local_size(), gpus);
    }
    return kSkipped;
  }
  const int failed = RUN_ALL_TESTS();
  return rg::comm::comm().all_reduce_scalar(failed ? 1.0 : 0.0, /*max=*/true) > 0 ? 1 : 0;
}
