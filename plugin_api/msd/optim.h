#pragma once
// The optimizer step and gradient clipping of distillation: the host's student loop and the loss
// plugins' fake-score networks and discriminator heads.
//
// Why not torch::optim::AdamW and torch::nn::utils::clip_grad_norm_ as they are: on a GPU these small
// networks are bound by how many operations the CPU dispatches, not by arithmetic. AdamW's step costs
// about eight operations per parameter tensor and clip_grad_norm_ two more, then waits for the GPU to
// return the norm; for a UNet of ~100 tensors that is most of a distillation iteration. The versions
// here do the same arithmetic over all tensors at once (multi-tensor `_foreach` kernels) and never
// wait for the GPU.
//
// On the CPU a `_foreach` kernel is still one operation per tensor, and on the toy MLP (25 tensors)
// the optimizer's step, zero_grad and the weight EMA took about 0.6 ms of a 6 ms teacher step. So
// msd::AdamW packs its parameters, their gradients and its moments into one buffer each (pack()):
// each of the update's operations then runs once over the whole buffer, on either device.

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <vector>

namespace msd {

/// torch::optim::AdamW with a multi-tensor step(): the same update, rounding included (checked
/// against torch::optim::AdamW in optim_test), and the same state, so checkpoints written by either
/// load into the other. `amsgrad` is not supported (the constructor rejects it).
///
/// When every parameter of a group has a gradient and the same step count, step() packs the group's
/// parameters, gradients and moments (pack()) and updates each buffer in one operation per term. It
/// packs again whenever something re-pointed a tensor (a checkpoint load, gradients set to none).
class AdamW final : public torch::optim::AdamW {
 public:
  explicit AdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions options = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
  /// torch::optim::Optimizer::zero_grad (which is not virtual), in one operation per packed group.
  void zero_grad();
};

/// The one-dimensional view of the buffer that `tensors` tile, in order, contiguous and adjacent, or
/// an undefined tensor when they do not. An operation on it is the same operation on each of them.
torch::Tensor packed_span(const std::vector<torch::Tensor>& tensors);

/// packed_span(tensors) if they already tile a buffer; otherwise moves their values into one new
/// buffer and makes each tensor an alias of its piece (the same TensorImpl, so modules, autograd and
/// optimizer state keys still see the same tensors) and returns its span. Returns an undefined tensor,
/// changing nothing, when they cannot share one (dtypes or devices differ, or one is sparse, not
/// contiguous or undefined).
torch::Tensor pack(const std::vector<torch::Tensor>& tensors);

/// The exponential moving average of weights, `average = beta * average + (1 - beta) * params`,
/// tensor by tensor, in one operation per term when both lists are packed (pack `average` once; an
/// msd::AdamW over `params` packs them on its first step).
void update_average(const std::vector<torch::Tensor>& average, const std::vector<torch::Tensor>& params, double beta);

/// Scales the gradients of `parameters` so that their joint L2 norm is at most `max_norm`, as
/// torch::nn::utils::clip_grad_norm_ does, but returns the norm before clipping as a 0-dim tensor
/// on the gradients' device instead of reading it back (which would wait for the GPU). Parameters
/// without a gradient are skipped; with none at all, returns an undefined tensor.
///
/// With `groups` > 1 the parameters are those of a grouped network (msd::Denoiser::group): dimension
/// 0 of every gradient is the member, and each member's gradients are clipped on their own joint norm,
/// as they would be trained alone. Returns the [groups] norms.
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm, std::int64_t groups = 1);

}  // namespace msd
