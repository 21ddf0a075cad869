#include "msd/optim.h"

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_addcdiv.h>
#include <ATen/ops/_foreach_addcmul.h>
#include <ATen/ops/_foreach_div.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_foreach_sqrt.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace msd {
namespace {

/// The key torch::optim::Optimizer files a parameter's state under: its TensorImpl address, as a
/// string in LibTorch 1.x and as a pointer in 2.x. Using the base class's own key type keeps the
/// state (and therefore save() and load()) interchangeable with torch::optim::AdamW in both.
template <class StateMap>
typename StateMap::key_type state_key(const torch::Tensor& p) {
  using Key = typename StateMap::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream text;  // what c10::guts::to_string did (LibTorch 2 no longer has it)
    text << p.unsafeGetTensorImpl();
    return text.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

/// The tensors of the parameters that share one step count (and so one bias correction).
struct Bucket {
  std::vector<torch::Tensor> params, grads, exp_avg, exp_avg_sq;

  /// The same bucket as one packed tensor per list, if all four lists can be packed.
  std::optional<Bucket> packed() const {
    Bucket one{{pack(params)}, {pack(grads)}, {pack(exp_avg)}, {pack(exp_avg_sq)}};
    for (const auto* list : {&one.params, &one.grads, &one.exp_avg, &one.exp_avg_sq}) {
      if (!list->front().defined()) return std::nullopt;
    }
    return one;
  }
};

/// Makes `tensor` an alias of its own number of elements of `storage` from `offset`, keeping its shape.
void alias(const torch::Tensor& tensor, const c10::Storage& storage, std::int64_t offset) {
  tensor.set_(storage, offset, tensor.sizes(), c10::contiguous_strides(tensor.sizes()));
}

}  // namespace

torch::Tensor packed_span(const std::vector<torch::Tensor>& tensors) {
  if (tensors.empty() || !tensors.front().defined() || !tensors.front().has_storage()) return {};
  const torch::Tensor& first = tensors.front();
  const c10::StorageImpl* storage = first.storage().unsafeGetStorageImpl();
  std::int64_t end = first.storage_offset();
  for (const torch::Tensor& t : tensors) {
    if (!t.defined() || !t.has_storage() || t.storage().unsafeGetStorageImpl() != storage ||
        t.storage_offset() != end || t.dtype() != first.dtype() || !t.is_contiguous()) {
      return {};
    }
    end += t.numel();
  }
  torch::Tensor span = torch::empty({0}, first.options());
  span.set_(first.storage(), first.storage_offset(), {end - first.storage_offset()}, {1});
  return span;
}

torch::Tensor pack(const std::vector<torch::Tensor>& tensors) {
  torch::Tensor span = packed_span(tensors);
  if (span.defined() || tensors.empty()) return span;
  std::int64_t total = 0;
  for (const torch::Tensor& t : tensors) {
    if (!t.defined() || t.is_sparse() || !t.is_contiguous() || t.dtype() != tensors.front().dtype() ||
        t.device() != tensors.front().device()) {
      return {};
    }
    total += t.numel();
  }
  torch::NoGradGuard no_grad;
  torch::Tensor buffer = torch::empty({total}, tensors.front().options());
  std::int64_t offset = 0;
  for (const torch::Tensor& t : tensors) {
    buffer.narrow(0, offset, t.numel()).copy_(t.reshape({-1}));
    alias(t, buffer.storage(), offset);
    offset += t.numel();
  }
  return buffer;
}

void update_average(const std::vector<torch::Tensor>& average, const std::vector<torch::Tensor>& params, double beta) {
  if (average.size() != params.size()) throw std::invalid_argument("update_average: lists of different lengths");
  for (size_t i = 0; i < average.size(); ++i) {
    // The packed path pairs elements by position: it needs the tensors paired shape by shape.
    if (average[i].sizes() != params[i].sizes()) {
      throw std::invalid_argument("update_average: tensor " + std::to_string(i) + " is " + c10::str(average[i].sizes()) +
                                  " in the average and " + c10::str(params[i].sizes()) + " in the parameters");
    }
  }
  torch::NoGradGuard no_grad;
  torch::Tensor to = packed_span(average);
  torch::Tensor from = packed_span(params);
  if (to.defined() && from.defined() && to.numel() == from.numel()) {
    to.mul_(beta).add_(from, 1.0 - beta);
    return;
  }
  for (size_t i = 0; i < average.size(); ++i) average[i].mul_(beta).add_(params[i], 1.0 - beta);
}

AdamW::AdamW(std::vector<torch::Tensor> params, torch::optim::AdamWOptions options)
    : torch::optim::AdamW(std::move(params), options) {
  if (options.amsgrad()) throw std::invalid_argument("msd::AdamW: amsgrad is not supported");
}

torch::Tensor AdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    // A parameter that had no gradient on some earlier step has a smaller step count, hence its
    // own bias correction; in practice there is one bucket.
    std::map<std::int64_t, Bucket> buckets;
    for (const torch::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (p.grad().is_sparse()) throw std::invalid_argument("msd::AdamW: sparse gradients are not supported");
      std::unique_ptr<torch::optim::OptimizerParamState>& slot = state_[state_key<decltype(state_)>(p)];
      if (slot == nullptr) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& state = static_cast<torch::optim::AdamWParamState&>(*slot);
      state.step(state.step() + 1);
      Bucket& bucket = buckets[state.step()];
      bucket.params.push_back(p);
      bucket.grads.push_back(p.grad());
      bucket.exp_avg.push_back(state.exp_avg());
      bucket.exp_avg_sq.push_back(state.exp_avg_sq());
    }
    const double lr = options.lr();
    const auto [beta1, beta2] = options.betas();
    if (buckets.size() == 1 && buckets.begin()->second.params.size() == group.params().size()) {
      if (std::optional<Bucket> packed = buckets.begin()->second.packed()) buckets.begin()->second = *packed;
    }
    for (auto& [step, b] : buckets) {
      // The order and form of torch::optim::AdamW::step, one operation at a time over all tensors.
      if (options.weight_decay() != 0) at::_foreach_mul_(b.params, 1 - lr * options.weight_decay());
      at::_foreach_mul_(b.exp_avg, beta1);
      at::_foreach_add_(b.exp_avg, b.grads, 1 - beta1);
      at::_foreach_mul_(b.exp_avg_sq, beta2);
      at::_foreach_addcmul_(b.exp_avg_sq, b.grads, b.grads, 1 - beta2);
      const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
      const double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
      std::vector<torch::Tensor> denom = at::_foreach_sqrt(b.exp_avg_sq);
      at::_foreach_div_(denom, std::sqrt(bias_correction2));
      at::_foreach_add_(denom, options.eps());
      at::_foreach_addcdiv_(b.params, b.exp_avg, denom, -lr / bias_correction1);
    }
  }
  return loss;
}

void AdamW::zero_grad() {
  for (auto& group : param_groups_) {
    std::vector<torch::Tensor> grads;
    for (const torch::Tensor& p : group.params()) grads.push_back(p.grad());
    torch::Tensor span = packed_span(grads);
    // A gradient with history (backward with create_graph) is detached tensor by tensor, as LibTorch does.
    const bool plain = std::none_of(grads.begin(), grads.end(), [](const torch::Tensor& g) { return g.requires_grad(); });
    if (span.defined() && plain) {
      span.zero_();
      continue;
    }
    for (torch::Tensor& g : grads) {
      if (!g.defined()) continue;
      g.detach_();
      g.zero_();
    }
  }
}

namespace {

/// clip_grad_norm of a grouped network's gradients: member k's norm over row k of every gradient.
torch::Tensor clip_grad_norm_per_member(std::vector<torch::Tensor>& grads, double max_norm, std::int64_t groups) {
  torch::Tensor squares = torch::zeros({groups}, grads.front().options());
  for (const torch::Tensor& g : grads) {
    if (g.dim() == 0 || g.size(0) != groups) {
      throw std::invalid_argument("clip_grad_norm: a gradient of shape " + c10::str(g.sizes()) +
                                  " has no leading group dimension of " + std::to_string(groups));
    }
    squares = squares + g.reshape({groups, -1}).pow(2).sum(1);
  }
  const torch::Tensor total = squares.sqrt();
  const torch::Tensor scale = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (torch::Tensor& g : grads) {
    std::vector<std::int64_t> shape(static_cast<size_t>(g.dim()), 1);
    shape[0] = groups;
    g.mul_(scale.view(shape));
  }
  return total;
}

}  // namespace

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& parameters, double max_norm, std::int64_t groups) {
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& p : parameters) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return {};
  torch::NoGradGuard no_grad;
  if (groups > 1) return clip_grad_norm_per_member(grads, max_norm, groups);
  // Packed gradients (msd::AdamW packs them) are one tensor to measure and scale.
  if (torch::Tensor span = packed_span(grads); span.defined()) grads = {span};
  const std::vector<torch::Tensor> norms = at::_foreach_norm(grads, 2);
  torch::Tensor total = norms.size() == 1 ? norms[0] : torch::stack(norms).norm(2);
  const torch::Tensor scale = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (torch::Tensor& g : grads) g.mul_(scale);
  return total;
}

}  // namespace msd
