#include "msd/denoiser.h"

#include <stdexcept>

#include <torch/nn/module.h>
#include <torch/utils.h>

namespace msd {

Denoiser::~Denoiser() = default;

DenoiserOutput Denoiser::denoise_with_features(const torch::Tensor& x, const torch::Tensor& sigma,
                                               const torch::Tensor& labels) {
  return DenoiserOutput{denoise(x, sigma, labels), {}};
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
