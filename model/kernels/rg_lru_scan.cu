// CUDA kernels of the RG-LRU scan h_t = a_t h_{t-1} + x_t: one thread per (batch, channel) looping over
// time, forward and backward, and the launchers that rg_lru_scan_cuda.cpp calls. No ATen here (raw
// pointers, cudaStream_t, a dtype code), so this file compiles with nvcc alone and with any LibTorch ABI.
//
// Every a, x, y, dy, da, dx is (B, T, L) contiguous, element (b, t, l) at b*T*L + t*L + l; h0, h_last,
// dh_last, dh0 are (B, L) in the accumulator type (float, or double for double inputs). Consecutive
// threads take consecutive channels, so each time step is one coalesced load per warp.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

namespace rg::kernels::cuda_scan {

// Mirrors the declaration in rg_lru_scan_cuda.cpp (C++ linkage: a mismatch there fails to link).
enum class Dtype : int { kFloat32 = 0, kFloat64 = 1, kBFloat16 = 2, kFloat16 = 3 };

namespace {

// Threads per block. Small blocks spread B*L threads over more SMs: with one thread per channel and
// sequential time, B*L is all the parallelism there is (B=1, L=2560 is 40 blocks of 64).
constexpr int kThreads = 64;
// Time steps whose loads are issued before the dependent chain of multiply-adds consumes them: the loads
// do not depend on h, so batching them hides memory latency that a one-step loop would serialise.
constexpr int kUnroll = 8;

// Loads into and stores from the accumulator. bfloat16 and half round to nearest even, as c10 does, so
// stored values match the CPU paths bit for bit when the accumulators agree.
__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }

template <class scalar_t>
struct FromAcc;
template <>
struct FromAcc<float> {
  __device__ __forceinline__ static float cast(float v) { return v; }
};
template <>
struct FromAcc<double> {
  __device__ __forceinline__ static double cast(double v) { return v; }
};
template <>
struct FromAcc<__nv_bfloat16> {
  __device__ __forceinline__ static __nv_bfloat16 cast(float v) { return __float2bfloat16_rn(v); }
};
template <>
struct FromAcc<__half> {
  __device__ __forceinline__ static __half cast(float v) { return __float2half_rn(v); }
};

// Separately rounded multiply and add, never contracted into an FMA: the reference loop does a*h then +x
// as two tensor ops, and matching its rounding keeps the CUDA results equal to it, not merely close. The
// kernel is memory-bound, so the extra instruction costs nothing.
__device__ __forceinline__ float mul(float p, float q) { return __fmul_rn(p, q); }
__device__ __forceinline__ double mul(double p, double q) { return __dmul_rn(p, q); }
__device__ __forceinline__ float add(float p, float q) { return __fadd_rn(p, q); }
__device__ __forceinline__ double add(double p, double q) { return __dadd_rn(p, q); }

template <class scalar_t, class acc_t>
__global__ void __launch_bounds__(kThreads)
    scan_forward_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ x,
                        const acc_t* __restrict__ h0, scalar_t* __restrict__ y, acc_t* __restrict__ h_last,
                        int64_t B, int64_t T, int64_t L) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // b * L + l
  if (idx >= B * L) return;
  const int64_t b = idx / L, l = idx % L;
  const int64_t base = b * T * L + l;  // (b, 0, l)
  acc_t h = h0 ? h0[idx] : acc_t(0);
  int64_t t = 0;
  for (; t + kUnroll <= T; t += kUnroll) {
    acc_t av[kUnroll], xv[kUnroll];
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      av[i] = to_acc(a[base + (t + i) * L]);
      xv[i] = to_acc(x[base + (t + i) * L]);
    }
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      h = add(mul(av[i], h), xv[i]);
      y[base + (t + i) * L] = FromAcc<scalar_t>::cast(h);
    }
  }
  for (; t < T; ++t) {
    h = add(mul(to_acc(a[base + t * L]), h), to_acc(x[base + t * L]));
    y[base + t * L] = FromAcc<scalar_t>::cast(h);
  }
  h_last[idx] = h;
}

// Pass 1 recomputes h forwards and parks h_{t-1} in hs (B, T, L); pass 2 runs g backwards:
//   g_t = dy_t + a_{t+1} g_{t+1} (g_{T-1} = dy_{T-1} + dh_last), dx_t = g_t, da_t = g_t h_{t-1}, dh0 = a_0 g_0.
// For float and double, hs is da itself (same type, same layout): slot t is read before it is overwritten
// by the same thread, so no workspace is needed. For bfloat16 and half, hs is a float workspace, so that
// da uses the unrounded h as the CPU paths do. Hence no __restrict__ on da and hs.
template <class scalar_t, class acc_t>
__global__ void __launch_bounds__(kThreads)
    scan_backward_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ x,
                         const acc_t* __restrict__ h0, const scalar_t* __restrict__ dy,
                         const acc_t* __restrict__ dh_last, scalar_t* da, scalar_t* __restrict__ dx,
                         acc_t* __restrict__ dh0, acc_t* hs, int64_t B, int64_t T, int64_t L) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // b * L + l
  if (idx >= B * L) return;
  const int64_t b = idx / L, l = idx % L;
  const int64_t base = b * T * L + l;  // (b, 0, l)

  acc_t h = h0 ? h0[idx] : acc_t(0);
  int64_t t = 0;
  for (; t + kUnroll <= T; t += kUnroll) {
    acc_t av[kUnroll], xv[kUnroll];
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      av[i] = to_acc(a[base + (t + i) * L]);
      xv[i] = to_acc(x[base + (t + i) * L]);
    }
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      hs[base + (t + i) * L] = h;  // h_{t+i-1}
      h = add(mul(av[i], h), xv[i]);
    }
  }
  for (; t < T; ++t) {
    hs[base + t * L] = h;
    h = add(mul(to_acc(a[base + t * L]), h), to_acc(x[base + t * L]));
  }

  acc_t g = dh_last ? dh_last[idx] : acc_t(0);
  // Walk down from T in blocks of kUnroll (steps hi-1 .. hi-kUnroll), then the remainder down to 0.
  int64_t hi = T;
  for (; hi >= kUnroll; hi -= kUnroll) {
    acc_t av[kUnroll], hv[kUnroll], dv[kUnroll];
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      const int64_t o = base + (hi - 1 - i) * L;
      av[i] = to_acc(a[o]);
      hv[i] = hs[o];
      dv[i] = dy ? to_acc(dy[o]) : acc_t(0);
    }
#pragma unroll
    for (int i = 0; i < kUnroll; ++i) {
      const int64_t o = base + (hi - 1 - i) * L;
      if (dy) g = add(g, dv[i]);
      dx[o] = FromAcc<scalar_t>::cast(g);
      da[o] = FromAcc<scalar_t>::cast(mul(g, hv[i]));
      g = mul(g, av[i]);
    }
  }
  for (int64_t s = hi - 1; s >= 0; --s) {
    const int64_t o = base + s * L;
    const acc_t hv = hs[o];
    if (dy) g = add(g, to_acc(dy[o]));
    dx[o] = FromAcc<scalar_t>::cast(g);
    da[o] = FromAcc<scalar_t>::cast(mul(g, hv));
    g = mul(g, to_acc(a[o]));
  }
  dh0[idx] = g;
}

// One thread per (b, l); an empty problem launches nothing (a zero-block grid is a launch error).
bool grid_for(int64_t B, int64_t L, unsigned* blocks) {
  const int64_t n = B * L;
  const int64_t nb = (n + kThreads - 1) / kThreads;
  if (nb > INT_MAX) return false;
  *blocks = static_cast<unsigned>(nb);
  return true;
}

template <class scalar_t, class acc_t>
cudaError_t forward_typed(const void* a, const void* x, const void* h0, void* y, void* h_last, int64_t B, int64_t T,
                          int64_t L, cudaStream_t stream) {
  unsigned blocks = 0;
  if (!grid_for(B, L, &blocks)) return cudaErrorInvalidConfiguration;
  if (blocks == 0) return cudaSuccess;
  scan_forward_kernel<scalar_t, acc_t><<<blocks, kThreads, 0, stream>>>(
      static_cast<const scalar_t*>(a), static_cast<const scalar_t*>(x), static_cast<const acc_t*>(h0),
      static_cast<scalar_t*>(y), static_cast<acc_t*>(h_last), B, T, L);
  return cudaGetLastError();
}

template <class scalar_t, class acc_t>
cudaError_t backward_typed(const void* a, const void* x, const void* h0, const void* dy, const void* dh_last,
                           void* da, void* dx, void* dh0, void* h_work, int64_t B, int64_t T, int64_t L,
                           cudaStream_t stream) {
  unsigned blocks = 0;
  if (!grid_for(B, L, &blocks)) return cudaErrorInvalidConfiguration;
  if (blocks == 0) return cudaSuccess;
  acc_t* hs = static_cast<acc_t*>(h_work);
  if constexpr (sizeof(scalar_t) == sizeof(acc_t)) {
    hs = static_cast<acc_t*>(da);  // float / double: da doubles as the h buffer
  } else {
    if (hs == nullptr && T > 0) return cudaErrorInvalidValue;
  }
  scan_backward_kernel<scalar_t, acc_t><<<blocks, kThreads, 0, stream>>>(
      static_cast<const scalar_t*>(a), static_cast<const scalar_t*>(x), static_cast<const acc_t*>(h0),
      static_cast<const scalar_t*>(dy), static_cast<const acc_t*>(dh_last), static_cast<scalar_t*>(da),
      static_cast<scalar_t*>(dx), static_cast<acc_t*>(dh0), hs, B, T, L);
  return cudaGetLastError();
}

}  // namespace

bool backward_needs_workspace(Dtype dtype) { return dtype == Dtype::kBFloat16 || dtype == Dtype::kFloat16; }

cudaError_t launch_forward(Dtype dtype, const void* a, const void* x, const void* h0, void* y, void* h_last,
                           int64_t B, int64_t T, int64_t L, cudaStream_t stream) {
  switch (dtype) {
    case Dtype::kFloat32: return forward_typed<float, float>(a, x, h0, y, h_last, B, T, L, stream);
    case Dtype::kFloat64: return forward_typed<double, double>(a, x, h0, y, h_last, B, T, L, stream);
    case Dtype::kBFloat16: return forward_typed<__nv_bfloat16, float>(a, x, h0, y, h_last, B, T, L, stream);
    case Dtype::kFloat16: return forward_typed<__half, float>(a, x, h0, y, h_last, B, T, L, stream);
  }
  return cudaErrorInvalidValue;
}

cudaError_t launch_backward(Dtype dtype, const void* a, const void* x, const void* h0, const void* dy,
                            const void* dh_last, void* da, void* dx, void* dh0, void* h_work, int64_t B, int64_t T,
                            int64_t L, cudaStream_t stream) {
  switch (dtype) {
    case Dtype::kFloat32:
      return backward_typed<float, float>(a, x, h0, dy, dh_last, da, dx, dh0, h_work, B, T, L, stream);
    case Dtype::kFloat64:
      return backward_typed<double, double>(a, x, h0, dy, dh_last, da, dx, dh0, h_work, B, T, L, stream);
    case Dtype::kBFloat16:
      return backward_typed<__nv_bfloat16, float>(a, x, h0, dy, dh_last, da, dx, dh0, h_work, B, T, L, stream);
    case Dtype::kFloat16:
      return backward_typed<__half, float>(a, x, h0, dy, dh_last, da, dx, dh0, h_work, B, T, L, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace rg::kernels::cuda_scan
