#include "msd/random.h"

#include <torch/torch.h>

namespace msd {

Random::Random(torch::Device device, c10::optional<at::Generator> generator)
    : device_(device), generator_(std::move(generator)) {}

torch::Tensor Random::normal(at::IntArrayRef shape, torch::Dtype dtype) const {
  return torch::randn(shape, generator_, options(dtype));
}

torch::Tensor Random::normal_like(const torch::Tensor& like) const {
  return torch::randn(like.sizes(), generator_, like.options());
}

torch::Tensor Random::uniform(at::IntArrayRef shape, torch::Dtype dtype) const {
  return torch::rand(shape, generator_, options(dtype));
}

torch::Tensor Random::integers(std::int64_t low, std::int64_t high, at::IntArrayRef shape) const {
  return torch::randint(low, high, shape, generator_, options(torch::kInt64));
}

}  // namespace msd
