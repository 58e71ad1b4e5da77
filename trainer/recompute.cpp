// recomputed_block: a custom autograd function whose inputs are the block input and the block's
// parameters, so backward can hand each parameter its gradient.
#include "trainer/recompute.h"

#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

namespace rg::trainer {
namespace {

struct RecomputeFunction : public torch::autograd::Function<RecomputeFunction> {
  // inputs: x, segment_pos, then the block's parameters (so they receive gradients).
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, ResidualBlock block, torch::Tensor x,
                               torch::Tensor segment_pos, at::TensorList params) {
    ctx->saved_data["block"] = c10::IValue(reinterpret_cast<int64_t>(block.ptr().get()));
    ctx->save_for_backward({x, segment_pos});
    torch::NoGradGuard no_grad;
    return block->forward(x, segment_pos);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto* block = reinterpret_cast<ResidualBlockImpl*>(ctx->saved_data["block"].toInt());
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor x = saved[0].detach().requires_grad_(true);
    std::vector<torch::Tensor> params = block->parameters();
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      y = block->forward(x, saved[1]);
    }
    std::vector<torch::Tensor> wrt = {x};
    wrt.insert(wrt.end(), params.begin(), params.end());
    auto grads = torch::autograd::grad({y}, wrt, {grad_out[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                       /*allow_unused=*/true);
    torch::autograd::variable_list out = {torch::Tensor(), grads[0], torch::Tensor()};
    out.insert(out.end(), grads.begin() + 1, grads.end());
    return out;
  }
};

}  // namespace

torch::Tensor recomputed_block(ResidualBlock& block, const torch::Tensor& x, const torch::Tensor& segment_pos) {
  if (!torch::GradMode::is_enabled()) return block->forward(x, segment_pos);
  const std::vector<torch::Tensor> params = block->parameters();
  // A TensorList (not a std::vector) makes every parameter an input of the node, so each gets a gradient.
  return RecomputeFunction::apply(block, x, segment_pos, at::TensorList(params));
}

}  // namespace rg::trainer
