// Communicator collectives, run as one process and under `mpirun -np 2` / `-np 4`. Each rank contributes
// values that depend on its rank, and the result is compared with the closed-form sum over ranks. Also the
// backend choice for train.comm (a pure function, tested as a table).
#include "trainer/comm/backend.h"
#include "trainer/comm/communicator.h"

#include "tests/trainer/test_support.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <stdexcept>
#include <string>

namespace rg::comm {
namespace {

using rg::test::comm;

TEST(Communicator, AllReduceSum) {
  const int r = comm().rank(), n = comm().world_size();
  torch::Tensor t = torch::arange(10, torch::kFloat) * (r + 1);  // (10)
  comm().all_reduce_sum(t);
  const torch::Tensor expected = torch::arange(10, torch::kFloat) * (n * (n + 1) / 2);
  EXPECT_TRUE(torch::equal(t, expected));
  torch::Tensor d = torch::full({3}, 0.5 + r, torch::kDouble);
  comm().all_reduce_sum(d);
  EXPECT_DOUBLE_EQ(d[0].item<double>(), 0.5 * n + n * (n - 1) / 2.0);
}

TEST(Communicator, ReduceScatterSumGivesEachRankItsSlice) {
  const int r = comm().rank(), n = comm().world_size(), per = 5;
  const torch::Tensor input = torch::arange(per * n, torch::kFloat) + 100 * r;  // (n * per)
  torch::Tensor out = torch::empty({per});
  comm().reduce_scatter_sum(input, out);
  // sum over ranks q of (i + 100 q) for i in this rank's slice
  const torch::Tensor expected = torch::arange(r * per, (r + 1) * per, torch::kFloat) * n + 100.0 * n * (n - 1) / 2;
  // Integers below 2^24 add exactly in float32 in any order: equal in fact; allclose's defaults are slack.
  EXPECT_TRUE(torch::allclose(out, expected)) << out << expected;
}

TEST(Communicator, AllGatherPlacesRankSlicesInOrder) {
  const int r = comm().rank(), n = comm().world_size();
  const torch::Tensor mine = torch::full({4}, static_cast<int64_t>(r), torch::kLong);
  torch::Tensor all = torch::empty({4 * n}, torch::kLong);
  comm().all_gather(mine, all);
  for (int q = 0; q < n; ++q) EXPECT_TRUE(all.slice(0, 4 * q, 4 * (q + 1)).eq(q).all().item<bool>());
}

TEST(Communicator, BroadcastFromLastRank) {
  const int r = comm().rank(), n = comm().world_size();
  torch::Tensor t = torch::full({2, 3}, static_cast<float>(r)).to(torch::kBFloat16);
  comm().broadcast(t, n - 1);
  EXPECT_TRUE(t.to(torch::kFloat).eq(n - 1).all().item<bool>());
}

TEST(Communicator, ScalarsAndIdentity) {
  const int r = comm().rank(), n = comm().world_size();
  EXPECT_DOUBLE_EQ(comm().all_reduce_scalar(r + 1.0), n * (n + 1) / 2.0);
  EXPECT_DOUBLE_EQ(comm().all_reduce_scalar(r, /*max=*/true), n - 1.0);
  EXPECT_LT(comm().local_rank(), comm().local_size());
  EXPECT_EQ(comm().backend(), launched_by_mpi() ? "mpi" : "single");
  comm().barrier();
}

// The argument checks live in the Communicator base, so every backend refuses the same calls — the
// single process too, where the collectives are copies that would otherwise broadcast a 1-element input
// over a larger output or accept a wrong dtype. Every rank makes the same bad call and throws before any
// message is sent, so nothing hangs.
TEST(Communicator, EveryBackendRefusesMismatchedArguments) {
  const int n = comm().world_size();
  auto refused = [](const std::function<void()>& call, const std::string& words) {
    try {
      call();
      ADD_FAILURE() << "accepted; expected an error mentioning '" << words << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  torch::Tensor out1 = torch::zeros({1}), out3 = torch::zeros({3});
  refused([&] { comm().reduce_scatter_sum(torch::ones({1}), out3); }, "reduce_scatter_sum: input has 1 elements");
  refused([&] { comm().reduce_scatter_sum(torch::ones({3 * n + 1}), out3); }, "expected world_size");
  refused([&] { comm().all_gather(torch::ones({3}), out1); }, "all_gather: output has 1 elements");
  torch::Tensor out_double = torch::zeros({3 * n}, torch::kDouble);
  refused([&] { comm().all_gather(torch::ones({3}), out_double); }, "share dtype and device");
  refused([&] { comm().reduce_scatter_sum(torch::ones({3 * n}, torch::kDouble), out3); }, "share dtype and device");
  torch::Tensor strided = torch::ones({4, 3}).t();
  refused([&] { comm().all_reduce_sum(strided); }, "all_reduce_sum: tensor must be contiguous");
  refused([&] { comm().all_gather(torch::ones({3, 2}).t(), out_double); }, "all_gather: input must be contiguous");
  torch::Tensor undefined;
  refused([&] { comm().all_reduce_sum(undefined); }, "undefined tensor");
  torch::Tensor t = torch::ones({2});
  refused([&] { comm().broadcast(t, n); }, "broadcast: root");
  refused([&] { comm().broadcast(t, -1); }, "is not a rank");
  // The right call still works after the refusals (no rank was left inside a collective).
  torch::Tensor gathered = torch::zeros({3 * n});
  comm().all_gather(torch::full({3}, 1.0 + comm().rank()), gathered);
  EXPECT_EQ(gathered.sum().item<double>(), 3.0 * n * (n + 1) / 2);
}

// train.comm: the choice as a table over every request, device, launch and build. Pure, so the same on
// every rank and on machines without MPI, CUDA or NCCL.
TEST(ChooseBackend, Table) {
  using D = TensorDevice;
  struct Case {
    const char* requested;
    D tensors;
    bool launched, mpi, nccl;
    const char* want;  // backend, or "error: <substring of the message>"
  };
  const Case cases[] = {
      // auto: one process needs nothing to move whatever the device.
      {"auto", D::kCpu, false, true, true, "single"},
      {"auto", D::kCuda, false, true, true, "single"},
      // auto under mpirun: CPU -> MPI, CUDA -> NCCL (the 2B GPU presets), CUDA without NCCL -> refused.
      {"auto", D::kCpu, true, true, true, "mpi"},
      {"auto", D::kCpu, true, true, false, "mpi"},
      {"auto", D::kCuda, true, true, true, "nccl"},
      {"auto", D::kCuda, true, true, false, "error: built without it (RG_WITH_NCCL=OFF)"},
      {"auto", D::kCpu, true, false, false, "error: RG_WITH_MPI=OFF"},
      {"auto", D::kUnknown, true, true, true, "mpi"},  // tests and benchmarks: as before
      // Explicit requests.
      {"mpi", D::kCpu, true, true, true, "mpi"},
      {"mpi", D::kCuda, true, true, true, "error: moves CPU tensors only, but this run trains on CUDA"},
      {"mpi", D::kCpu, true, false, false, "error: RG_WITH_MPI=OFF"},
      {"nccl", D::kCuda, true, true, true, "nccl"},
      {"nccl", D::kCuda, true, true, false, "error: RG_WITH_NCCL=OFF"},
      {"nccl", D::kCpu, true, true, true, "error: moves CUDA tensors only, but this run trains on the CPU"},
      {"nccl", D::kUnknown, true, true, true, "nccl"},
      {"single", D::kCuda, true, true, true, "single"},
      {"gloo", D::kCpu, true, true, true, "error: unknown communicator 'gloo'"},
  };
  for (const Case& c : cases) {
    BackendContext ctx;
    ctx.tensors = c.tensors, ctx.launched_by_mpi = c.launched, ctx.mpi_built = c.mpi, ctx.nccl_built = c.nccl;
    const std::string want = c.want, label = std::string(c.requested) + " tensors=" +
                                             std::to_string(static_cast<int>(c.tensors)) + " launched=" +
                                             std::to_string(c.launched) + " mpi=" + std::to_string(c.mpi) +
                                             " nccl=" + std::to_string(c.nccl);
    try {
      const std::string got = choose_backend(c.requested, ctx);
      EXPECT_EQ(got, want) << label;
    } catch (const BackendError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(want.rfind("error: ", 0), 0u) << label << ": unexpected error: " << msg;
      EXPECT_NE(msg.find(want.substr(7)), std::string::npos) << label << ": " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    }
  }
}

// The factory applies the choice before starting any backend.
TEST(ChooseBackend, FactoryRefusesBeforeStartingAnything) {
  // NCCL moving CPU tensors is refused by the choice, in every build (not built, or the wrong device).
  EXPECT_THROW(make_communicator("nccl", TensorDevice::kCpu), BackendError);
  EXPECT_THROW(make_communicator("bogus", TensorDevice::kCpu), BackendError);
  EXPECT_THROW(make_communicator("mpi", TensorDevice::kCuda), BackendError);
}

}  // namespace
}  // namespace rg::comm
