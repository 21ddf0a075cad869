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
  /// How many networks this one is: 1, or K for a grouped network (see group()).
  virtual std::int64_t group_size() const { return 1; }

  /// K networks of this one's architecture (`members`, this one among them or not) as one grouped
  /// network holding copies of their weights, stacked on a leading group dimension, so that K students
  /// train at the cost of little more than one: their matrix products become batched ones. A grouped
  /// network takes a batch of K equal blocks, block k for member k, and returns its outputs and
  /// features in the same blocks. nullptr (the default): this architecture has no grouped form, and
  /// its students train one at a time. copy_stacked() fills a grouped network from its members.
  virtual std::shared_ptr<Denoiser> group(const std::vector<const Denoiser*>& members) const {
    (void)members;
    return nullptr;
  }
  /// Of a grouped network: a copy of member k as an ordinary network (copy_member() fills it). Of an
  /// ordinary network: a copy of it, k being 0.
  virtual std::shared_ptr<Denoiser> member(std::int64_t k) const;
};

/// Fills grouped network `to` from `members`: every parameter and buffer of `to` is the stack, on
/// dimension 0, of the same-named tensor of each member. Also takes the first member's device and
/// training mode. The convention a grouped network follows to need no more code than this.
void copy_stacked(const std::vector<const Denoiser*>& members, Denoiser& to);

/// Fills ordinary network `to` with member `k` of grouped network `from` (the inverse of copy_stacked).
void copy_member(const Denoiser& from, std::int64_t k, Denoiser& to);

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
