// Fault handling shared by the training loops: non-finite steps agreed across ranks (skip, count, stop
// after K in a row), a rank that throws ends the whole job instead of leaving the others blocked in a
// collective, SIGTERM/SIGINT turned into a flag the loop polls (to checkpoint and exit cleanly), and the
// RG_FAULT_INJECT test hook that provokes the non-finite paths on purpose.
#pragma once

#include "trainer/comm/communicator.h"

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace rg::trainer {

// Thrown after max_consecutive non-finite steps in a row; the message names the step and the counts.
class NonFiniteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NonFiniteGuard {
 public:
  explicit NonFiniteGuard(int max_consecutive = 5, int64_t skipped_total = 0);
  // Collective. True when the step must be skipped because the loss or gradient norm is NaN/Inf on any
  // rank; every rank gets the same answer. Counts skips; after max_consecutive in a row throws
  // NonFiniteError (on every rank, so the job ends cleanly). A finite step resets the run.
  bool should_skip(comm::Communicator& comm, int64_t step, double local_loss, double grad_norm);
  int64_t skipped_total() const { return skipped_total_; }  // saved in the trainer state
  int consecutive() const { return consecutive_; }

 private:
  int max_consecutive_;
  int consecutive_ = 0;
  int64_t skipped_total_ = 0;
};

// Test hook for the loop's failure paths, read from the environment variable RG_FAULT_INJECT (unset in
// real runs), so command-line tests can reach them without a diverging model:
//   nan-loss-from=N    the loss of step N (1-based) and of every later step is NaN (the update is skipped;
//                      the weights stay those of step N-1)
//   nan-weights-at=N   a NaN is written into the model's weights after step N's update
// Several are separated by commas. Anything else throws std::invalid_argument naming the variable.
struct FaultInjection {
  int64_t nan_loss_from = 0;   // 0: off
  int64_t nan_weights_at = 0;  // 0: off
  bool nan_loss(int64_t step) const { return nan_loss_from > 0 && step >= nan_loss_from; }
  static FaultInjection parse(const std::string& spec);
  static FaultInjection from_env();  // parse(getenv("RG_FAULT_INJECT")), all off when unset
};

// Runs fn. If it throws, prints "rgemma: rank R: <what>" to stderr and calls comm.abort(exit_code): under
// mpirun that ends every rank, so a failure on one rank never leaves the others waiting in a collective.
// A NonFiniteError is thrown on every rank at once and ends the job the same way.
void run_or_abort(comm::Communicator& comm, const std::function<void()>& fn, int exit_code = 1);

// SIGTERM / SIGINT set a flag instead of killing the process (idempotent). A second signal of the same
// kind takes the default action (terminates), so a stuck job still ends on a second Ctrl-C.
void install_stop_signal_handlers();
bool stop_requested();       // this process received a signal
int stop_signal();           // the signal number received, 0 if none
// Collective: true on every rank when any rank received a signal (the launcher may signal only some).
bool stop_requested_any(comm::Communicator& comm);
void clear_stop_request();   // for tests

}  // namespace rg::trainer
