// How the CPU decode and sampling kernels spread work over the cores. Two rules, both measured on the
// 2-core AMD EPYC of CI:
//   - Fork only for enough work. rgemma waits passively in OpenMP (tools/main.cpp: OpenBLAS's threads and
//     OpenMP's would otherwise take turns spinning), so each parallel region wakes a sleeping thread, tens
//     of microseconds on a VM, while 2^20 multiply-adds take ~100 us on one core. A fork per kernel gave
//     730-950 tokens/s at 2 threads against 1,570 at one thread (reference config, batch 4); with this
//     floor the small kernels of a width-256 model run on the calling thread and a 256k head still splits.
//   - Hand the work out from a shared counter, not in fixed shares: a thread that wakes late, or is
//     preempted on a shared machine, then takes fewer pieces instead of leaving the others idle at the
//     join (with fixed halves one thread ran a 256k-vocabulary head alone for a third of its time).
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace rg::kernels {

// Multiply-adds (or comparable steps) a parallel region must hold before it forks.
constexpr int64_t kForkWork = int64_t{1} << 20;

// The at::parallel_for grain for items of `work_per_item` multiply-adds each: no fork below kForkWork.
inline int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kForkWork / std::max<int64_t>(work_per_item, 1));
}

// Items [0, n) in pieces of `piece` items, handed out from a shared counter to the tasks of one parallel
// region (at::parallel_for's grain `grain`: one task, on the calling thread, when n <= grain). task(take)
// runs once per task; take(i0, i1) sets the next piece [i0, i1) and returns false when none is left.
template <class Task>
void parallel_take(int64_t n, int64_t piece, int64_t grain, const Task& task) {
  std::atomic<int64_t> next{0};
  const auto take = [&](int64_t& i0, int64_t& i1) {
    i0 = next.fetch_add(piece, std::memory_order_relaxed);
    i1 = std::min(n, i0 + piece);
    return i0 < n;
  };
  at::parallel_for(0, n, grain, [&](int64_t, int64_t) { task(take); });
}

}  // namespace rg::kernels
