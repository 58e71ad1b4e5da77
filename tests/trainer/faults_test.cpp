// Fault helpers under real ranks: a NaN on one rank makes every rank skip, K in a row stop the job with a
// clear message, and a signal to one rank reaches the loop on all of them.
#include "trainer/faults.h"

#include "tests/trainer/test_support.h"

#include <cmath>
#include <csignal>
#include <limits>

namespace rg::trainer {
namespace {

using rg::test::comm;

TEST(NonFiniteGuard, OneRanksNaNSkipsEverywhere) {
  NonFiniteGuard guard(3);
  const int last = comm().world_size() - 1;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(guard.should_skip(comm(), 1, 2.5, 1.0));
  EXPECT_TRUE(guard.should_skip(comm(), 2, comm().rank() == last ? nan : 2.5, 1.0));  // loss NaN on one rank
  EXPECT_TRUE(guard.should_skip(comm(), 3, 2.5, std::numeric_limits<double>::infinity()));  // Inf grad norm
  EXPECT_EQ(guard.consecutive(), 2);
  EXPECT_FALSE(guard.should_skip(comm(), 4, 2.4, 1.0));  // a finite step resets the run, not the total
  EXPECT_EQ(guard.consecutive(), 0);
  EXPECT_EQ(guard.skipped_total(), 2);
}

TEST(NonFiniteGuard, StopsAfterKInARowOnEveryRank) {
  NonFiniteGuard guard(2, /*skipped_total=*/5);  // resumed with 5 earlier skips
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const bool bad_here = comm().rank() == 0;
  EXPECT_TRUE(guard.should_skip(comm(), 10, bad_here ? nan : 1.0, 1.0));
  try {
    guard.should_skip(comm(), 11, bad_here ? nan : 1.0, 1.0);
    ADD_FAILURE() << "expected NonFiniteError";
  } catch (const NonFiniteError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("at step 11 on 1 rank(s): 2 steps in a row"), std::string::npos) << msg;
    EXPECT_NE(msg.find("7 skipped in total"), std::string::npos) << msg;
  }
  EXPECT_THROW(NonFiniteGuard(0), std::invalid_argument);
}

TEST(StopSignal, SignalOnOneRankStopsAll) {
  install_stop_signal_handlers();
  clear_stop_request();
  EXPECT_FALSE(stop_requested_any(comm()));
  if (comm().rank() == 0) std::raise(SIGTERM);  // the process survives: the handler only sets the flag
  EXPECT_EQ(stop_requested(), comm().rank() == 0);
  if (comm().rank() == 0) EXPECT_EQ(stop_signal(), SIGTERM);
  EXPECT_TRUE(stop_requested_any(comm()));
  clear_stop_request();
  if (comm().rank() == comm().world_size() - 1) std::raise(SIGINT);
  EXPECT_TRUE(stop_requested_any(comm()));
  clear_stop_request();
}

TEST(FaultInjection, ParsesTheTestHook) {
  const FaultInjection off = FaultInjection::parse("");
  EXPECT_EQ(off.nan_loss_from, 0);
  EXPECT_EQ(off.nan_weights_at, 0);
  EXPECT_FALSE(off.nan_loss(1));
  const FaultInjection f = FaultInjection::parse("nan-loss-from=4,nan-weights-at=7");
  EXPECT_EQ(f.nan_loss_from, 4);
  EXPECT_EQ(f.nan_weights_at, 7);
  EXPECT_FALSE(f.nan_loss(3));
  EXPECT_TRUE(f.nan_loss(4));
  EXPECT_TRUE(f.nan_loss(100));  // from step 4 on, not only at it
  for (const char* bad : {"nan-loss-from", "nan-loss-from=", "nan-loss-from=0", "nan-loss-from=3x", "nan-lost-from=3"}) {
    try {
      FaultInjection::parse(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("RG_FAULT_INJECT: '") + bad + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(RunOrAbort, ReturnsNormallyWithoutError) {
  int calls = 0;
  run_or_abort(comm(), [&] {
    ++calls;
    comm().barrier();
  });
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace rg::trainer
