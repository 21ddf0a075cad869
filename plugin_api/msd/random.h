// Where a student's random numbers come from: a generator of its own, cloned from the device's default
// generator right after the student's network is built from its seed phase. A student trained alone
// and the same student trained as member k of a grouped network (Denoiser::group) therefore draw the
// same numbers, whatever else (building a loss's networks, say) draws from the default generator.
#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>
#include <c10/util/Optional.h>
#include <torch/types.h>

namespace msd {

class Random {
 public:
  /// Draws on `device`, from `generator` (a generator of that device), or from torch's default
  /// generator of the device without one.
  explicit Random(torch::Device device, c10::optional<at::Generator> generator = c10::nullopt);

  /// Standard normal values of `shape`, float32 unless `dtype` says otherwise.
  torch::Tensor normal(at::IntArrayRef shape, torch::Dtype dtype = torch::kFloat32) const;
  /// Standard normal values shaped like `like`, with its dtype (torch::randn_like).
  torch::Tensor normal_like(const torch::Tensor& like) const;
  /// Uniform values in [0, 1) of `shape`.
  torch::Tensor uniform(at::IntArrayRef shape, torch::Dtype dtype = torch::kFloat32) const;
  /// Integers in [low, high) of `shape`, int64.
  torch::Tensor integers(std::int64_t low, std::int64_t high, at::IntArrayRef shape) const;

  const torch::Device& device() const { return device_; }
  /// The generator drawn from; nothing for torch's default one.
  const c10::optional<at::Generator>& generator() const { return generator_; }

 private:
  torch::TensorOptions options(torch::Dtype dtype) const { return torch::TensorOptions().dtype(dtype).device(device_); }

  torch::Device device_;
  c10::optional<at::Generator> generator_;
};

}  // namespace msd
