// The network every method revolves around: an EDM denoiser D(x; sigma, class). Teachers, multi-step
// students, fake-score networks and one-step generators (evaluated at a fixed sigma) are all Denoisers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

namespace msd {

/// The denoised estimate and, for feature distillation, intermediate activations.
struct DenoiserOutput {
  torch::Tensor denoised;               ///< same shape as x
  std::vector<torch::Tensor> features;  ///< [batch, channels...] per Denoiser::feature_names(), in order
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
  /// The names of the features denoise_with_features() returns, in its order ("block.0", "mid", ...):
  /// feature and relational distillation pick the blocks they read by name. Default: none.
  virtual std::vector<std::string> feature_names() const { return {}; }
  /// A deep copy with the same architecture, weights, device and training mode. DenoiserFrom writes it.
  virtual std::shared_ptr<Denoiser> clone_denoiser() const = 0;
  /// How many students this network is (a grouped network holds K on a group dimension; the batch
  /// is then K blocks of equal size, block k for student k). 1 for every network of this host.
  virtual std::int64_t group_size() const { return 1; }
};

/// Gives `to`, a network of the same architecture as `from`, its device, weights and training mode.
void copy_state(const Denoiser& from, Denoiser& to);

/// Base of a denoiser built from one options struct: clone_denoiser() is written here, once, as a new
/// `Derived(options())` that copy_state() makes equal to this one.
///
///   class MlpDenoiser : public msd::DenoiserFrom<MlpDenoiser, MlpOptions> { ... };
template <typename Derived, typename Options>
class DenoiserFrom : public Denoiser {
 public:
  explicit DenoiserFrom(Options options) : options_(std::move(options)) {}
  std::shared_ptr<Denoiser> clone_denoiser() const override {
    auto copy = std::make_shared<Derived>(options_);
    copy_state(*this, *copy);
    return copy;
  }
  const Options& options() const { return options_; }

 protected:
  Options options_;
};

/// Number of scalar parameters in a module.
std::int64_t count_parameters(const torch::nn::Module& module);

/// Copies every parameter and buffer of `from` into the same-named tensor of `to` (same architecture).
void copy_weights(const torch::nn::Module& from, torch::nn::Module& to);

/// Sets requires_grad on every parameter.
void set_trainable(torch::nn::Module& module, bool trainable);

}  // namespace msd
