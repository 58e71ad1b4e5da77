// NonFiniteGuard, run_or_abort, the stop-signal flag and the RG_FAULT_INJECT test hook.
#include "trainer/faults.h"

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace rg::trainer {

NonFiniteGuard::NonFiniteGuard(int max_consecutive, int64_t skipped_total)
    : max_consecutive_(max_consecutive), skipped_total_(skipped_total) {
  if (max_consecutive < 1) {
    throw std::invalid_argument("max consecutive non-finite steps must be >= 1, got " + std::to_string(max_consecutive));
  }
}

bool NonFiniteGuard::should_skip(comm::Communicator& comm, int64_t step, double local_loss, double grad_norm) {
  const bool bad_here = !std::isfinite(local_loss) || !std::isfinite(grad_norm);
  const double ranks_bad = comm.all_reduce_scalar(bad_here ? 1.0 : 0.0);  // how many ranks saw one
  if (ranks_bad == 0) {
    consecutive_ = 0;
    return false;
  }
  ++consecutive_;
  ++skipped_total_;
  if (consecutive_ >= max_consecutive_) {
    throw NonFiniteError("non-finite loss or gradient norm at step " + std::to_string(step) + " on " +
                         std::to_string(static_cast<int>(ranks_bad)) + " rank(s): " + std::to_string(consecutive_) +
                         " steps in a row were skipped (limit " + std::to_string(max_consecutive_) + ", " +
                         std::to_string(skipped_total_) +
                         " skipped in total). Training stopped; lower the learning rate, check the data, or "
                         "resume from an earlier checkpoint.");
  }
  return true;
}

FaultInjection FaultInjection::parse(const std::string& spec) {
  FaultInjection f;
  std::stringstream items(spec);
  for (std::string item; std::getline(items, item, ',');) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    int64_t* target = key == "nan-loss-from" ? &f.nan_loss_from : key == "nan-weights-at" ? &f.nan_weights_at : nullptr;
    char* end = nullptr;
    const long long value = eq == std::string::npos ? 0 : std::strtoll(item.c_str() + eq + 1, &end, 10);
    if (!target || eq == std::string::npos || *end != '\0' || end == item.c_str() + eq + 1 || value < 1) {
      throw std::invalid_argument("RG_FAULT_INJECT: '" + item +
                                  "' is not nan-loss-from=STEP or nan-weights-at=STEP (STEP >= 1)");
    }
    *target = value;
  }
  return f;
}

FaultInjection FaultInjection::from_env() {
  const char* spec = std::getenv("RG_FAULT_INJECT");
  return spec ? parse(spec) : FaultInjection{};
}

void run_or_abort(comm::Communicator& comm, const std::function<void()>& fn, int exit_code) {
  try {
    fn();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rgemma: rank %d: %s\n", comm.rank(), e.what());
    std::fflush(stderr);
    comm.abort(exit_code);
  } catch (...) {
    std::fprintf(stderr, "rgemma: rank %d: unknown exception\n", comm.rank());
    std::fflush(stderr);
    comm.abort(exit_code);
  }
}

namespace {

// Only lock-free atomics may be touched from a signal handler.
std::atomic<int> g_stop_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "signal flag must be lock-free");

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.load() == sig) {  // the second one: the default action (terminate) right away
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop_signal.store(sig);
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking reads and collectives continue; the loop polls between steps
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

bool stop_requested() { return g_stop_signal.load() != 0; }
int stop_signal() { return g_stop_signal.load(); }
void clear_stop_request() { g_stop_signal.store(0); }

bool stop_requested_any(comm::Communicator& comm) {
  return comm.all_reduce_scalar(stop_requested() ? 1.0 : 0.0, /*max=*/true) > 0;
}

}  // namespace rg::trainer
