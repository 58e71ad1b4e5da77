// One-token attention over a sampling cache (see decode_attention.h). Per task (row b, key head g, chunk of
// slots), with the key head's nq query heads:
//   scores  s[t][i] = q_i . k_t / sqrt(hd)        (slot t counted: position >= 0, within the window)
//   m_i = max_t s[t][i],  e[t][i] = exp(s[t][i] - m_i),  l_i = sum_t e[t][i],  o_i = sum_t e[t][i] v_t
// and the merge over chunks and the new key (score s_new, value v_new), per query head:
//   M = max(s_new, max_c m_c)
//   out = (e^(s_new - M) v_new + sum_c e^(m_c - M) o_c) / (e^(s_new - M) + sum_c e^(m_c - M) l_c)
// The scores keep the query heads in the lanes (q transposed once per task, each key element one broadcast
// multiply-add into all heads), so keys and values are read once, in slot order, with no transpose.
#include "model/kernels/decode_attention.h"

#include "model/kernels/parallel_work.h"
#include "model/kernels/vec_exp_tanh.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace rg::kernels {
namespace {

using vec::f32x8;
using vec::exp_nonpositive;

// Slots per task: 128 slots x 12 query heads x hd 64 is ~200k multiply-adds (scores and values); the
// chunk's values (32 KB at hd 64) stay in L1 while each head sums over them, and a batch of one row over
// an 8k cache makes 64 tasks for the cores.
constexpr int64_t kChunk = 128;
// Query heads per key head are padded to a multiple of the vector width in the score buffer.
constexpr int64_t kLanes = 8;

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("attend_one_token: " + what);
}

}  // namespace

bool attend_one_token_applies(const at::Tensor& q, const at::Tensor& keys) {
  return q.device().is_cpu() && keys.device().is_cpu() && q.scalar_type() == at::kFloat &&
         keys.scalar_type() == at::kFloat && keys.is_contiguous() && !at::GradMode::is_enabled();
}

at::Tensor attend_one_token(const at::Tensor& q, const at::Tensor& k_new, const at::Tensor& v_new,
                            const at::Tensor& keys, const at::Tensor& values, const at::Tensor& positions,
                            int64_t S, const at::Tensor& p, int64_t window) {
  require(attend_one_token_applies(q, keys), "expected CPU float32 tensors with grad mode off");
  require(q.dim() == 3 && k_new.dim() == 3 && keys.dim() == 4,
          "expected q (B, H, hd), k (B, G, hd), keys (B, C, G, hd)");
  const int64_t B = q.size(0), H = q.size(1), hd = q.size(2), C = keys.size(1), G = keys.size(2);
  require(G > 0 && H % G == 0,
          "query heads " + std::to_string(H) + " not a multiple of key heads " + std::to_string(G));
  require(k_new.sizes().equals({B, G, hd}) && v_new.sizes().equals({B, G, hd}) && keys.size(0) == B &&
              keys.size(3) == hd && values.sizes().equals(keys.sizes()) && positions.sizes().equals({B, C}) &&
              p.sizes().equals({B}),
          "shapes do not match");
  require(S >= 0 && S <= C, "slots in use " + std::to_string(S) + " outside [0, " + std::to_string(C) + "]");
  require(q.is_contiguous() && k_new.is_contiguous() && v_new.is_contiguous() && keys.is_contiguous() &&
              values.is_contiguous() && positions.is_contiguous() && positions.scalar_type() == at::kLong &&
              p.scalar_type() == at::kLong && p.is_contiguous() && k_new.scalar_type() == at::kFloat &&
              v_new.scalar_type() == at::kFloat && values.scalar_type() == at::kFloat,
          "expected contiguous float32 q, k, v, keys, values and int64 positions");

  const int64_t nq = H / G, lanes = (nq + kLanes - 1) / kLanes * kLanes;
  const int64_t chunks = std::max<int64_t>(1, (S + kChunk - 1) / kChunk), tasks = B * G * chunks;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const float* qd = q.data_ptr<float>();
  const float* kd = keys.data_ptr<float>();
  const float* vd = values.data_ptr<float>();
  const int64_t* pos = positions.data_ptr<int64_t>();
  const int64_t* pd = p.data_ptr<int64_t>();
  // Each task's partial softmax: maxima m and sums l (tasks, nq), weighted values o (tasks, nq, hd).
  std::vector<float> part_m(tasks * nq, kNegInf), part_l(tasks * nq, 0.f), part_o(tasks * nq * hd, 0.f);

  const int64_t work_per_task = 2 * nq * std::min(S, kChunk) * hd;
  // Chunks taken one at a time from a shared counter (parallel_work.h).
  parallel_take(tasks, 1, grain_for(work_per_task), [&](const auto& take) {
    std::vector<float> qt(hd * lanes);        // qt[j][i] = q_i[j] * scale, lanes past nq zero
    std::vector<float> sc(kChunk * lanes);    // scores, then exponentials: sc[t][i]
    std::vector<int64_t> slot(kChunk);        // the counted slots of the chunk
    for (int64_t task, task_end; take(task, task_end);) {
      const int64_t b = task / (G * chunks), g = task / chunks % G, c = task % chunks;
      const int64_t s0 = c * kChunk, s1 = std::min(S, s0 + kChunk);
      int64_t n = 0;
      for (int64_t s = s0; s < s1; ++s) {
        const int64_t at = pos[b * C + s];
        if (at >= 0 && (window == 0 || pd[b] - at <= window)) slot[n++] = s;
      }
      if (n == 0) continue;  // m = -inf, l = 0: the merge gives this chunk no weight
      const float* qg = qd + (b * H + g * nq) * hd;
      std::fill(qt.begin(), qt.end(), 0.f);
      for (int64_t i = 0; i < nq; ++i) {
        for (int64_t j = 0; j < hd; ++j) qt[j * lanes + i] = qg[i * hd + j] * scale;
      }
      // Scores, four slots at a time: each lane vector of qt is loaded once for four keys, and each key
      // element is one broadcast multiply-add into all query heads' lanes (a short tail repeats the last
      // key and drops the copies).
      for (int64_t t = 0; t < n; t += 4) {
        const float* k[4];
        for (int64_t r = 0; r < 4; ++r) k[r] = kd + ((b * C + slot[std::min(t + r, n - 1)]) * G + g) * hd;
        for (int64_t a = 0; a < lanes; a += kLanes) {
          // Eight accumulators (four keys x even / odd j): a multiply-add's latency is four cycles on
          // these cores, so four chains alone would run at half the multiply-add throughput.
          f32x8 acc[2][4] = {};
          const float* qa = &qt[a];
          int64_t j = 0;
          for (; j + 2 <= hd; j += 2) {
            for (int64_t h = 0; h < 2; ++h) {
              const f32x8 qv = vec::load<f32x8>(qa + (j + h) * lanes);
              for (int64_t r = 0; r < 4; ++r) acc[h][r] += k[r][j + h] * qv;
            }
          }
          if (j < hd) {  // odd head_dim
            const f32x8 qv = vec::load<f32x8>(qa + j * lanes);
            for (int64_t r = 0; r < 4; ++r) acc[0][r] += k[r][j] * qv;
          }
          for (int64_t r = 0; r < 4 && t + r < n; ++r) vec::store(&sc[(t + r) * lanes + a], acc[0][r] + acc[1][r]);
        }
      }
      // Partial softmax per head: maximum, exponentials in place, their sum.
      float* m = &part_m[task * nq];
      float* l = &part_l[task * nq];
      std::vector<f32x8> mv(lanes / kLanes, vec::splat<f32x8>(kNegInf)), lv(lanes / kLanes, f32x8{});
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t a = 0; a < lanes; a += kLanes) {
          const f32x8 s = vec::load<f32x8>(&sc[t * lanes + a]);
          mv[a / kLanes] = mv[a / kLanes] > s ? mv[a / kLanes] : s;
        }
      }
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t a = 0; a < lanes; a += kLanes) {
          const f32x8 e = exp_nonpositive(vec::load<f32x8>(&sc[t * lanes + a]) - mv[a / kLanes]);
          lv[a / kLanes] += e;
          vec::store(&sc[t * lanes + a], e);
        }
      }
      for (int64_t i = 0; i < nq; ++i) m[i] = mv[i / kLanes][i % kLanes], l[i] = lv[i / kLanes][i % kLanes];
      // Weighted values: per head, 32 output floats at a time held in registers over all the chunk's slots
      // (their value rows stay in L1 across heads: kChunk x hd floats), so no output is stored until the end.
      float* o = &part_o[task * nq * hd];
      for (int64_t i = 0; i < nq; ++i) {
        float* oi = o + i * hd;
        int64_t j = 0;
        for (; j + 4 * kLanes <= hd; j += 4 * kLanes) {
          // Eight accumulators (four vectors x even / odd slots), for the multiply-add latency as above.
          f32x8 acc[2][4] = {};
          const float* vj = vd + (b * C * G + g) * hd + j;  // + slot * G * hd
          int64_t t = 0;
          for (; t + 2 <= n; t += 2) {
            for (int64_t h = 0; h < 2; ++h) {
              const float w = sc[(t + h) * lanes + i];
              const float* v = vj + slot[t + h] * G * hd;
              for (int64_t r = 0; r < 4; ++r) acc[h][r] += w * vec::load<f32x8>(v + r * kLanes);
            }
          }
          if (t < n) {
            const float w = sc[t * lanes + i];
            const float* v = vj + slot[t] * G * hd;
            for (int64_t r = 0; r < 4; ++r) acc[0][r] += w * vec::load<f32x8>(v + r * kLanes);
          }
          for (int64_t r = 0; r < 4; ++r) vec::store(oi + j + r * kLanes, acc[0][r] + acc[1][r]);
        }
        for (; j < hd; ++j) {  // head_dim not a multiple of 32
          float acc = 0.f;
          for (int64_t t = 0; t < n; ++t) acc += sc[t * lanes + i] * vd[((b * C + slot[t]) * G + g) * hd + j];
          oi[j] = acc;
        }
      }
    }
  });

  // Merge the chunks and the new key, per (row, query head).
  at::Tensor out = at::empty({B, H, hd}, q.options());
  float* od = out.data_ptr<float>();
  const float* knd = k_new.data_ptr<float>();
  const float* vnd = v_new.data_ptr<float>();
  at::parallel_for(0, B * H, grain_for(chunks * hd), [&](int64_t r0, int64_t r1) {
    std::vector<double> acc(hd);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t b = r / H, h = r % H, g = h / nq, i = h % nq;
      const float* qh = qd + r * hd;
      const float* kn = knd + (b * G + g) * hd;
      const float* vn = vnd + (b * G + g) * hd;
      float s_new = 0.f;
      for (int64_t j = 0; j < hd; ++j) s_new += qh[j] * kn[j];
      s_new *= scale;
      float M = s_new;
      for (int64_t c = 0; c < chunks; ++c) M = std::max(M, part_m[((b * G + g) * chunks + c) * nq + i]);
      double L = std::exp(static_cast<double>(s_new - M));
      for (int64_t j = 0; j < hd; ++j) acc[j] = L * vn[j];
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t task = (b * G + g) * chunks + c;
        const float l = part_l[task * nq + i];
        if (l == 0.f) continue;
        const double f = std::exp(static_cast<double>(part_m[task * nq + i] - M));
        L += f * l;
        const float* o = &part_o[(task * nq + i) * hd];
        for (int64_t j = 0; j < hd; ++j) acc[j] += f * o[j];
      }
      for (int64_t j = 0; j < hd; ++j) od[r * hd + j] = static_cast<float>(acc[j] / L);
    }
  });
  return out;
}

}  // namespace rg::kernels
