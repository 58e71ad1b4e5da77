// ZeroOptimizer: flat layout, bucketed reduce-scatter / all-gather, sharded AdamW and shard files.
// Legend: S elements per rank, N ranks, P = N * S padded flat numel.
#include "trainer/zero_optimizer.h"

#include "model/io/json_brief.h"
#include "trainer/checkpoint.h"

#include <ATen/record_function.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <fstream>
#include <limits>
#include <tuple>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

namespace rg::trainer {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Collectives of the CPU (MPI) backend move only float/int types; bf16/fp16 travel as their bytes,
// which is exact for a gather. NCCL (CUDA tensors) gathers bf16 as bf16.
torch::Tensor as_gatherable(const torch::Tensor& t) {
  const auto st = t.scalar_type();
  if (t.is_cuda() || st == torch::kFloat || st == torch::kDouble) return t;
  return t.view(torch::kByte);
}

}  // namespace

bool default_weight_decay(const std::string& name, const torch::Tensor& param) {
  if (param.dim() < 2) return false;
  if (name.find("norm") != std::string::npos) return false;
  return !(ends_with(name, "recurrent_param") || ends_with(name, "a_param") || ends_with(name, "bias"));
}

ZeroOptimizer::ZeroOptimizer(std::vector<ZeroParam> params, comm::Communicator& comm, ZeroConfig config)
    : comm_(comm), config_(config), rank_(comm.rank()), world_(comm.world_size()) {
  torch::NoGradGuard no_grad;
  if (config_.stage != 1 && config_.stage != 2) {
    throw std::invalid_argument("ZeroOptimizer: zero_stage must be 1 or 2, got " + std::to_string(config_.stage));
  }
  if (config_.bucket_numel <= 0) throw std::invalid_argument("ZeroOptimizer: bucket_numel must be positive");

  // Layout: trainable parameters in order, tied weights once.
  std::unordered_set<const void*> seen;
  std::optional<torch::ScalarType> given_dtype;
  std::optional<torch::Device> device;
  for (auto& p : params) {
    if (!p.param.defined() || !p.param.requires_grad() || p.param.numel() == 0) continue;
    if (!seen.insert(p.param.unsafeGetTensorImpl()).second) continue;
    if (!given_dtype) given_dtype = p.param.scalar_type();
    if (!device) device = p.param.device();
    if (p.param.scalar_type() != *given_dtype || p.param.device() != *device) {
      throw std::invalid_argument("ZeroOptimizer: all parameters must share one dtype and device; '" + p.name +
                                  "' is " + std::string(c10::toString(p.param.scalar_type())) + " on " +
                                  p.param.device().str() + ", the first was " +
                                  std::string(c10::toString(*given_dtype)) + " on " + device->str());
    }
    Entry e;
    e.name = p.name;
    e.param = p.param;
    e.offset = total_;
    e.numel = p.param.numel();
    e.weight_decay = p.weight_decay;
    total_ += e.numel;
    entries_.push_back(std::move(e));
  }
  if (entries_.empty()) throw std::invalid_argument("ZeroOptimizer: no trainable parameters");
  shard_ = (total_ + world_ - 1) / world_;

  // Every rank must build the same layout; a mismatch would silently mix different parameters.
  const double t = static_cast<double>(total_), n = static_cast<double>(entries_.size());
  if (comm_.all_reduce_scalar(t, true) != t || comm_.all_reduce_scalar(-t, true) != -t ||
      comm_.all_reduce_scalar(n, true) != n || comm_.all_reduce_scalar(-n, true) != -n) {
    throw std::runtime_error("ZeroOptimizer: ranks disagree on the parameter layout (this rank: " +
                             std::to_string(entries_.size()) + " tensors, " + std::to_string(total_) + " elements)");
  }

  const torch::ScalarType dtype = config_.param_dtype.value_or(*given_dtype);
  const auto opts = torch::TensorOptions().dtype(dtype).device(*device);
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(*device);
  flat_params_ = torch::zeros({world_ * shard_}, opts);  // (P)
  master_ = torch::zeros({shard_}, f32);                  // (S)
  exp_avg_ = torch::zeros({shard_}, f32);                 // (S)
  exp_avg_sq_ = torch::zeros({shard_}, f32);              // (S)
  grad_slice_ = torch::zeros({shard_}, f32);              // (S)
  if (config_.stage == 1) flat_grads_ = torch::zeros({world_ * shard_}, opts);  // (P)

  const int64_t lo = shard_offset(), hi = lo + shard_;
  for (Entry& e : entries_) {
    // e.param still holds its own storage here; it is re-pointed into the flat buffer at the end.
    const torch::Tensor src = e.param.detach().reshape(-1);  // (numel) given dtype
    flat_params_.narrow(0, e.offset, e.numel).copy_(src);
    // The master keeps the values as given (fp32 when the model was built in fp32), not their bf16 cast.
    const int64_t a = std::max(lo, e.offset), b = std::min(hi, e.offset + e.numel);
    if (a < b) {
      master_.narrow(0, a - lo, b - a).copy_(src.narrow(0, a - e.offset, b - a));
      if (e.weight_decay) {
        if (!decay_runs_.empty() && decay_runs_.back().end == a - lo) {
          decay_runs_.back().end = b - lo;
        } else {
          decay_runs_.push_back({a - lo, b - lo});
        }
      }
    }
    e.param.set_data(flat_params_.narrow(0, e.offset, e.numel).view(e.param.sizes()));
  }
  zero_grad();
}

void ZeroOptimizer::zero_grad() {
  torch::NoGradGuard no_grad;
  if (config_.stage == 1) {
    flat_grads_.zero_();
    reattach_flat_grads();
  } else {
    for (auto& e : entries_) e.param.mutable_grad() = torch::Tensor();
  }
}

// Stage 1 relies on autograd accumulating in place into .grad views of flat_grads_. Anything that replaced
// a .grad (set_to_none, a manual assignment) is copied back into the buffer and the view restored.
void ZeroOptimizer::reattach_flat_grads() {
  for (auto& e : entries_) {
    torch::Tensor view = flat_grads_.narrow(0, e.offset, e.numel);
    const torch::Tensor& g = e.param.grad();
    if (g.defined() && g.data_ptr() == view.data_ptr()) continue;
    if (g.defined()) {
      view.copy_(g.reshape(-1));
    } else {
      view.zero_();
    }
    e.param.mutable_grad() = view.view(e.param.sizes());
  }
}

void ZeroOptimizer::gather_grad_range(int64_t begin, torch::Tensor out) const {
  const int64_t end = begin + out.numel();
  out.zero_();
  // First entry that ends after `begin`.
  auto it = std::upper_bound(entries_.begin(), entries_.end(), begin,
                             [](int64_t v, const Entry& e) { return v < e.offset + e.numel; });
  for (; it != entries_.end() && it->offset < end; ++it) {
    const torch::Tensor& g = it->param.grad();
    if (!g.defined()) continue;
    const int64_t a = std::max(begin, it->offset), b = std::min(end, it->offset + it->numel);
    out.narrow(0, a - begin, b - a).copy_(g.reshape(-1).narrow(0, a - it->offset, b - a));
  }
}

void ZeroOptimizer::reduce_gradients(std::optional<double> grad_scale) {
  RECORD_USER_SCOPE("rg::optimizer");  // reduce, clip and step, for `rgemma bench step --profile`
  torch::NoGradGuard no_grad;
  if (config_.stage == 1) reattach_flat_grads();
  const int64_t bucket = std::min(config_.bucket_numel, shard_);
  const auto f32 = grad_slice_.options();
  for (int64_t b0 = 0; b0 < shard_; b0 += bucket) {
    const int64_t len = std::min(bucket, shard_ - b0);
    // Rank r's part of this bucket is flat [r*S + b0, r*S + b0 + len): the input is those N pieces in
    // rank order, so the reduce-scatter hands every rank the sum of its own piece.
    torch::Tensor input;  // (N, len) fp32
    if (config_.stage == 1) {
      input = flat_grads_.view({world_, shard_}).narrow(1, b0, len).to(torch::kFloat).contiguous();
    } else {
      input = torch::empty({world_, len}, f32);
      for (int r = 0; r < world_; ++r) gather_grad_range(r * shard_ + b0, input[r]);
    }
    torch::Tensor out = grad_slice_.narrow(0, b0, len);  // (len)
    comm_.reduce_scatter_sum(input, out);
  }
  grad_slice_.mul_(grad_scale.value_or(1.0 / world_));
  if (config_.stage == 2) {
    for (auto& e : entries_) e.param.mutable_grad() = torch::Tensor();
  }
}

double ZeroOptimizer::clip_grad_norm(double max_norm) {
  RECORD_USER_SCOPE("rg::optimizer");
  torch::NoGradGuard no_grad;
  const double local = grad_slice_.square().sum(torch::kDouble).item<double>();
  const double norm = std::sqrt(comm_.all_reduce_scalar(local));
  // Same coefficient as torch::nn::utils::clip_grad_norm_, so runs compare with the unsharded reference.
  if (max_norm > 0 && std::isfinite(norm)) {
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) grad_slice_.mul_(coef);
  }
  return norm;
}

void ZeroOptimizer::step(double lr) {
  RECORD_USER_SCOPE("rg::optimizer");
  torch::NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1.0 - std::pow(config_.beta1, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(config_.beta2, static_cast<double>(step_));
  // Decoupled weight decay first, as torch.optim.AdamW does.
  if (config_.weight_decay != 0) {
    for (const auto& run : decay_runs_) master_.narrow(0, run.begin, run.end - run.begin).mul_(1.0 - lr * config_.weight_decay);
  }
  exp_avg_.mul_(config_.beta1).add_(grad_slice_, 1.0 - config_.beta1);
  exp_avg_sq_.mul_(config_.beta2).addcmul_(grad_slice_, grad_slice_, 1.0 - config_.beta2);
  const torch::Tensor denom = (exp_avg_sq_.sqrt() / std::sqrt(bc2)).add_(config_.eps);  // (S)
  master_.addcdiv_(exp_avg_, denom, -lr / bc1);
  sync_params_from_master();
}

void ZeroOptimizer::sync_params_from_master() {
  torch::NoGradGuard no_grad;
  const int64_t bucket = std::min(config_.bucket_numel, shard_);
  const auto dtype = flat_params_.scalar_type();
  torch::Tensor rows = flat_params_.view({world_, shard_});  // (N, S)
  for (int64_t b0 = 0; b0 < shard_; b0 += bucket) {
    const int64_t len = std::min(bucket, shard_ - b0);
    const torch::Tensor mine = master_.narrow(0, b0, len).to(dtype).contiguous();  // (len)
    torch::Tensor all = torch::empty({world_, len}, flat_params_.options());         // (N, len)
    torch::Tensor all_bytes = as_gatherable(all);
    comm_.all_gather(as_gatherable(mine), all_bytes);
    rows.narrow(1, b0, len).copy_(all);
  }
}

std::string ZeroOptimizer::summary() const {
  auto count = [](double v, const char* unit) {
    const char* prefixes[] = {"", "k", "M", "G", "T"};
    int p = 0;
    while (v >= 1000 && p < 4) {
      v /= 1000;
      ++p;
    }
    char buf[48];
    std::snprintf(buf, sizeof buf, p == 0 ? "%.0f %s%s" : "%.3g %s%s", v, prefixes[p], unit);
    return std::string(buf);
  };
  std::ostringstream os;
  os << "ZeRO-" << config_.stage << " over " << world_ << " rank(s): " << count(total_, "") << "params in "
     << entries_.size() << " tensors, " << count(shard_, "") << "per rank (padding " << padded_numel() - total_
     << "); optimizer state " << count(optimizer_bytes(), "B") << " per rank (unsharded "
     << count(unsharded_optimizer_bytes(), "B") << "), gradients " << count(gradient_bytes(), "B") << " per rank";
  return os.str();
}

int64_t ZeroOptimizer::gradient_bytes() const {
  int64_t bytes = 4 * shard_;
  if (flat_grads_.defined()) bytes += flat_grads_.numel() * flat_grads_.element_size();
  return bytes;
}

nlohmann::json ZeroOptimizer::layout_json() const {
  nlohmann::json params = nlohmann::json::array();
  for (const auto& e : entries_) {
    params.push_back({{"name", e.name},
                      {"shape", e.param.sizes().vec()},
                      {"offset", e.offset},
                      {"numel", e.numel},
                      {"weight_decay", e.weight_decay}});
  }
  nlohmann::json files = nlohmann::json::array();
  for (int r = 0; r < world_; ++r) files.push_back(optim_shard_file_name(r, world_));
  return {{"format", "rgemma-zero-v1"},
          {"world_size", world_},
          {"total_numel", total_},
          {"shard_numel", shard_},
          {"padded_numel", shard_ * world_},
          {"padding", shard_ * world_ - total_},
          {"param_dtype", std::string(c10::toString(flat_params_.scalar_type()))},
          {"master_dtype", "Float"},
          {"step", step_},
          {"zero_stage", config_.stage},
          {"shard_files", files},
          {"params", params}};
}

void ZeroOptimizer::save_state(const std::string& dir) const {
  torch::serialize::OutputArchive archive;
  archive.write("master", master_.cpu());
  archive.write("exp_avg", exp_avg_.cpu());
  archive.write("exp_avg_sq", exp_avg_sq_.cpu());
  archive.write("step", torch::tensor({step_}, torch::kLong));
  archive.write("shard_offset", torch::tensor({shard_offset()}, torch::kLong));
  archive.save_to(dir + "/" + optim_shard_file_name(rank_, world_));
  if (rank_ == 0) {
    const std::string path = dir + "/" + kOptimLayoutFile;
    std::ofstream out(path);
    out << layout_json().dump(1) << "\n";
    if (!out) throw std::runtime_error("ZeroOptimizer: cannot write " + path);
  }
}

// Nothing read from the checkpoint is trusted: the layout is checked field by field against this model
// (types, ranges, and the arithmetic that ties total, shard, padding and world size together), and each
// shard's tensors against the layout, before a value is copied. Errors are CheckpointError naming the file
// and field, one line.
void ZeroOptimizer::load_state(const std::string& dir) {
  torch::NoGradGuard no_grad;
  const std::string layout_path = dir + "/" + kOptimLayoutFile;
  const CheckpointJson saved = CheckpointJson::read(layout_path);
  saved.require_object();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (saved.at("format").string() != "rgemma-zero-v1") {
    saved.at("format").fail("expected \"rgemma-zero-v1\", got " + io::json_brief(saved.at("format").value()));
  }
  // The flat layout must be the model's; only the slicing may differ.
  auto differs = [](const CheckpointJson& field, const std::string& problem) {
    field.fail("layout differs from the model: " + problem);
  };
  const CheckpointJson params = saved.at("params");
  if (params.array_size() != entries_.size()) {
    differs(params, std::to_string(params.array_size()) + " parameters, the model has " + std::to_string(entries_.size()));
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    const CheckpointJson p = params.at(i);
    if (p.at("name").string() != e.name) {
      differs(p.at("name"), io::json_brief(p.at("name").value()) + ", the model has \"" + e.name + "\" here");
    }
    const CheckpointJson shape = p.at("shape");
    const auto want = e.param.sizes();
    const std::string model_shape = "the model's '" + e.name + "' has shape " + c10::str(want);
    if (shape.array_size() != want.size()) differs(shape, std::to_string(shape.array_size()) + " dimensions, " + model_shape);
    for (size_t d = 0; d < want.size(); ++d) {
      const int64_t n = shape.at(d).integer(0, kMax);
      if (n != want[d]) differs(shape.at(d), std::to_string(n) + ", " + model_shape);
    }
    const int64_t offset = p.at("offset").integer(0, kMax), numel = p.at("numel").integer(0, kMax);
    if (offset != e.offset) differs(p.at("offset"), std::to_string(offset) + ", the model's is " + std::to_string(e.offset));
    if (numel != e.numel) p.at("numel").fail(std::to_string(numel) + ", the shape gives " + std::to_string(e.numel));
    p.at("weight_decay").boolean();  // informational: the decay rule is this run's
  }
  const int64_t total = saved.at("total_numel").integer(0, kMax);
  if (total != total_) differs(saved.at("total_numel"), std::to_string(total) + ", the model has " + std::to_string(total_));
  const int old_world = static_cast<int>(saved.at("world_size").integer(1, kMaxWorldSize));
  const int64_t old_shard = saved.at("shard_numel").integer(1, kMax);
  if (old_shard != (total_ + old_world - 1) / old_world) {  // also bounds old_shard * old_world below
    saved.at("shard_numel").fail(std::to_string(old_shard) + ", but " + std::to_string(total_) + " elements over " +
                                 "world_size " + std::to_string(old_world) + " give " +
                                 std::to_string((total_ + old_world - 1) / old_world));
  }
  const int64_t padded = saved.at("padded_numel").integer(0, kMax), padding = saved.at("padding").integer(0, kMax);
  if (padded != old_shard * old_world) {
    saved.at("padded_numel").fail(std::to_string(padded) + ", expected shard_numel x world_size = " +
                                  std::to_string(old_shard * old_world));
  }
  if (padding != padded - total_) {
    saved.at("padding").fail(std::to_string(padding) + ", expected " + std::to_string(padded - total_));
  }
  if (saved.at("master_dtype").string() != "Float") {
    saved.at("master_dtype").fail("expected \"Float\", got " + io::json_brief(saved.at("master_dtype").value()));
  }
  saved.at("param_dtype").string();  // informational: the master is fp32 whatever the parameters were
  saved.at("zero_stage").integer(1, 2);  // informational: either stage reads the same shards
  const int64_t saved_step = saved.at("step").integer(0, kMax);
  const CheckpointJson files = saved.at("shard_files");
  if (files.array_size() != static_cast<size_t>(old_world)) {
    files.fail(std::to_string(files.array_size()) + " files, expected world_size = " + std::to_string(old_world));
  }
  for (int q = 0; q < old_world; ++q) {
    const std::string& name = files.at(q).string();
    if (name != optim_shard_file_name(q, old_world)) {
      files.at(q).fail(io::json_brief(files.at(q).value()) + ", expected \"" + optim_shard_file_name(q, old_world) + "\"");
    }
  }

  // This rank's new range, clipped to the real elements (the padding stays zero). Each shard it overlaps
  // is checked whole before its part is copied.
  const int64_t lo = shard_offset(), hi = std::min(lo + shard_, total_);
  master_.zero_();
  exp_avg_.zero_();
  exp_avg_sq_.zero_();
  grad_slice_.zero_();
  for (int64_t q = lo / old_shard; lo < hi && q < old_world && q * old_shard < hi; ++q) {
    const std::string path = dir + "/" + optim_shard_file_name(static_cast<int>(q), old_world);
    torch::Tensor m, ea, eas, st, off;
    try {
      torch::serialize::InputArchive archive;
      archive.load_from(path);
      archive.read("master", m);
      archive.read("exp_avg", ea);
      archive.read("exp_avg_sq", eas);
      archive.read("step", st);
      archive.read("shard_offset", off);
    } catch (const std::exception& e) {
      throw CheckpointError(path + ": not a readable optimizer shard (" + one_line_error(e) + ")");
    }
    auto fail = [&](const std::string& field, const std::string& problem) {
      throw CheckpointError(path + ": " + field + ": " + problem);
    };
    const std::pair<const char*, torch::Tensor> moments[] = {{"master", m}, {"exp_avg", ea}, {"exp_avg_sq", eas}};
    for (const auto& [field, t] : moments) {
      if (t.scalar_type() != torch::kFloat || t.dim() != 1 || t.numel() != old_shard) {
        fail(field, std::string(c10::toString(t.scalar_type())) + " " + c10::str(t.sizes()) + ", expected Float [" +
                        std::to_string(old_shard) + "] (shard_numel of " + layout_path + ")");
      }
      if (!torch::isfinite(t).all().item<bool>()) fail(field, "holds NaN or infinite values");
    }
    if ((eas < 0).any().item<bool>()) fail("exp_avg_sq", "holds negative values (a second moment is >= 0)");
    const std::tuple<const char*, torch::Tensor, int64_t> counters[] = {{"step", st, saved_step},
                                                                        {"shard_offset", off, q * old_shard}};
    for (const auto& [field, t, want] : counters) {
      if (t.scalar_type() != torch::kLong || t.numel() != 1) {
        fail(field, std::string(c10::toString(t.scalar_type())) + " " + c10::str(t.sizes()) + ", expected one int64");
      }
      if (t.item<int64_t>() != want) {
        fail(field, std::to_string(t.item<int64_t>()) + ", but " + layout_path + " gives " + std::to_string(want));
      }
    }
    const int64_t a = std::max(lo, q * old_shard), b = std::min(hi, (q + 1) * old_shard);
    const int64_t src = a - q * old_shard, dst = a - lo;
    master_.narrow(0, dst, b - a).copy_(m.narrow(0, src, b - a));
    exp_avg_.narrow(0, dst, b - a).copy_(ea.narrow(0, src, b - a));
    exp_avg_sq_.narrow(0, dst, b - a).copy_(eas.narrow(0, src, b - a));
  }
  step_ = saved_step;
  sync_params_from_master();
  zero_grad();
}

}  // namespace rg::trainer
