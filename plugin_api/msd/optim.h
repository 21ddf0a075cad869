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

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <vector>

namespace msd {

/// torch::optim::AdamW with a multi-tensor step(): the same update, rounding included (checked
/// against torch::optim::AdamW in optim_test), and the same state, so checkpoints written by either
/// load into the other. `amsgrad` is not supported (the constructor rejects it).
class AdamW final : public torch::optim::AdamW {
 public:
  explicit AdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions options = {});
  torch::Tensor step(LossClosure closure = nullptr) override;
};

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
