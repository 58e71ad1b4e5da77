// Shared by the trainer tests that run both as one process and under mpirun: the job's communicator,
// a scratch directory every rank agrees on, and a main() that reports from rank 0 and fails the job
// when any rank failed.
#pragma once

#include "trainer/comm/communicator.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

namespace rg::test {

inline comm::Communicator& comm() {
  static std::unique_ptr<comm::Communicator> c = comm::make_communicator("auto");
  return *c;
}

// Rank 0 creates a fresh directory under the system temp dir and broadcasts its name. Collective.
inline std::string shared_temp_dir(const std::string& prefix) {
  torch::Tensor name = torch::zeros({512}, torch::kByte);  // (512) NUL-padded path
  if (comm().rank() == 0) {
    std::string templ = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed for " + templ);
    std::memcpy(name.data_ptr(), templ.data(), std::min<size_t>(templ.size(), 511));
  }
  comm().broadcast(name, 0);
  return std::string(reinterpret_cast<const char*>(name.data_ptr()));
}

// On ranks other than 0 only failures are printed, tagged with the rank.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed()) {
      std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
    }
  }

 private:
  int rank_;
};

inline int run_all_tests(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  torch::set_num_threads(1);  // one thread per rank: ranks share 2 cores
  if (comm().rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(comm().rank()));
  }
  const int failed = RUN_ALL_TESTS();
  const double any_failed = comm().all_reduce_scalar(failed ? 1.0 : 0.0, /*max=*/true);
  return any_failed > 0 ? 1 : 0;
}

}  // namespace rg::test
