#include "msd/denoiser.h"

#include <stdexcept>
#include <string>
#include <utility>

#include <torch/nn/module.h>
#include <torch/utils.h>

namespace msd {

Denoiser::~Denoiser() = default;

DenoiserOutput Denoiser::denoise_with_features(const torch::Tensor& x, const torch::Tensor& sigma,
                                               const torch::Tensor& labels) {
  return DenoiserOutput{denoise(x, sigma, labels), {}};
}

std::shared_ptr<Denoiser> Denoiser::member(std::int64_t k) const {
  if (k != 0 || group_size() != 1) {
    throw std::logic_error("Denoiser::member(" + std::to_string(k) + "): this grouped network of " +
                           std::to_string(group_size()) + " does not override member()");
  }
  return clone_denoiser();
}

namespace {

/// Every parameter and buffer of `module`, by name.
std::vector<std::pair<std::string, torch::Tensor>> named_state(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, torch::Tensor>> state;
  for (const auto& item : module.named_parameters()) state.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) state.emplace_back(item.key(), item.value());
  return state;
}

// By value: named_parameters() and named_buffers() return temporaries.
torch::Tensor state_tensor(const torch::nn::Module& module, const std::string& name) {
  if (const torch::Tensor* t = module.named_parameters().find(name)) return *t;
  if (const torch::Tensor* t = module.named_buffers().find(name)) return *t;
  throw std::invalid_argument("grouped network: a member has no tensor '" + name + "'");
}

}  // namespace

void copy_stacked(const std::vector<const Denoiser*>& members, Denoiser& to) {
  if (members.empty()) throw std::invalid_argument("copy_stacked: no members");
  const auto params = members.front()->parameters();
  if (!params.empty()) to.to(params.front().device());
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : named_state(to)) {
    std::vector<torch::Tensor> stack;
    for (const Denoiser* member : members) stack.push_back(state_tensor(*member, name));
    torch::Tensor stacked = torch::stack(stack);
    if (!stacked.sizes().equals(tensor.sizes())) {
      throw std::invalid_argument("copy_stacked: '" + name + "' of " + std::to_string(members.size()) +
                                  " members does not fit the grouped network's");
    }
    tensor.copy_(stacked);
  }
  to.train(members.front()->is_training());
}

void copy_member(const Denoiser& from, std::int64_t k, Denoiser& to) {
  const auto params = from.parameters();
  if (!params.empty()) to.to(params.front().device());
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : named_state(to)) {
    const torch::Tensor grouped = state_tensor(from, name);
    if (grouped.dim() == 0 || k < 0 || k >= grouped.size(0) || !grouped[k].sizes().equals(tensor.sizes())) {
      throw std::invalid_argument("copy_member: member " + std::to_string(k) + "'s '" + name +
                                  "' does not fit the ordinary network's");
    }
    tensor.copy_(grouped[k]);
  }
  to.train(from.is_training());
}

void copy_state(const Denoiser& from, Denoiser& to) {
  const auto params = from.parameters();
  if (!params.empty()) to.to(params.front().device());
  copy_weights(from, to);
  to.train(from.is_training());
}

std::int64_t count_parameters(const torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

void copy_weights(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto source_params = from.named_parameters();
  for (auto& item : to.named_parameters()) {
    const torch::Tensor* src = source_params.find(item.key());
    if (src == nullptr || !src->sizes().equals(item.value().sizes())) {
      throw std::invalid_argument("copy_weights: architectures differ at parameter '" + item.key() + "'");
    }
    item.value().copy_(*src);
  }
  auto source_buffers = from.named_buffers();
  for (auto& item : to.named_buffers()) {
    const torch::Tensor* src = source_buffers.find(item.key());
    if (src == nullptr) throw std::invalid_argument("copy_weights: no buffer '" + item.key() + "'");
    item.value().copy_(*src);
  }
}

void set_trainable(torch::nn::Module& module, bool trainable) {
  for (auto& p : module.parameters()) p.set_requires_grad(trainable);
}

}  // namespace msd
