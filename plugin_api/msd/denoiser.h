// The network every method revolves around: an EDM denoiser D(x; sigma, class). Teachers, multi-step
// students, fake-score networks and one-step generators (evaluated at a fixed sigma) are all Denoisers.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace msd {

/// The denoised estimate and, for feature distillation, intermediate activations.
struct DenoiserOutput {
  torch::Tensor denoised;               ///< same shape as x
  std::vector<torch::Tensor> features;  ///< [batch, channels...] per tapped layer; may be empty
};

class Denoiser : public torch::nn::Module {
 public:
  ~Denoiser() override;
  /// D(x; sigma, labels). x: [B, ...sample shape], sigma: [B] (> 0), labels: [B] int64.
  virtual torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                const torch::Tensor& labels) = 0;
  /// As denoise(), also returning intermediate features. Default: no features.
  virtual DenoiserOutput denoise_with_features(const torch::Tensor& x, const torch::Tensor& sigma,
                                               const torch::Tensor& labels);
  /// A deep copy with the same architecture and weights, on the same device.
  virtual std::shared_ptr<Denoiser> clone_denoiser() const = 0;
  /// Widths of the tensors denoise_with_features returns (flattened per sample).
  virtual std::vector<std::int64_t> feature_sizes() const { return {}; }
};

/// Number of scalar parameters in a module.
std::int64_t count_parameters(const torch::nn::Module& module);

/// Copies every parameter and buffer of `from` into the same-named tensor of `to` (same architecture).
void copy_weights(const torch::nn::Module& from, torch::nn::Module& to);

/// Sets requires_grad on every parameter.
void set_trainable(torch::nn::Module& module, bool trainable);

}  // namespace msd
