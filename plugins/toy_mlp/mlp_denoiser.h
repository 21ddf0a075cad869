// An EDM-preconditioned residual MLP denoiser for vector data. Used by the toy teacher and by both
// toy student plugins, so it lives in their shared library folder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "msd/denoiser.h"

namespace toy {

struct MlpDenoiserOptions {
  std::int64_t dim = 2;            ///< length of one (flattened) sample
  std::int64_t num_classes = 1;    ///< class labels 0..num_classes-1
  std::int64_t hidden = 256;       ///< width of every hidden layer
  std::int64_t blocks = 3;         ///< residual blocks (two linear layers each)
  std::int64_t embed = 64;         ///< width of the noise-level and class embeddings
  double sigma_data = 0.5;         ///< EDM's data standard deviation
};

/// D(x; sigma, c) = c_skip x + c_out F(c_in x; c_noise, c). F: input projection plus a conditioning
/// projection, then residual blocks h += W2 silu(W1 silu(h) + cond); features are h after each block.
class MlpDenoiser final : public msd::DenoiserFrom<MlpDenoiser, MlpDenoiserOptions> {
 public:
  explicit MlpDenoiser(const MlpDenoiserOptions& options);

  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels) override;
  msd::DenoiserOutput denoise_with_features(const torch::Tensor& x, const torch::Tensor& sigma,
                                            const torch::Tensor& labels) override;
  /// "block.0", "block.1", ...: the hidden state after each residual block.
  std::vector<std::string> feature_names() const override;
  /// A GroupedMlpDenoiser of `members`.
  std::shared_ptr<msd::Denoiser> group(const std::vector<const msd::Denoiser*>& members) const override;

 private:
  torch::Tensor frequencies_;  // buffer: Fourier frequencies of the noise embedding
  torch::nn::Linear noise_proj_{nullptr};
  torch::nn::Embedding class_embed_{nullptr};
  torch::nn::Linear input_proj_{nullptr};
  torch::nn::ModuleList first_{nullptr}, cond_{nullptr}, second_{nullptr};
  torch::nn::Linear output_proj_{nullptr};
};

/// A linear layer per member: weight [K, out, in], bias [K, out] (the stacks of K torch::nn::Linear);
/// input [K, B, in], output [K, B, out] (msd::grouped_linear: the members' products in parallel).
class GroupedLinear : public torch::nn::Module {
 public:
  GroupedLinear(std::int64_t members, std::int64_t in, std::int64_t out);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor weight_, bias_;
};

/// An embedding table per member: weight [K, classes, dim]; labels [K, B] give [K, B, dim].
class GroupedEmbedding : public torch::nn::Module {
 public:
  GroupedEmbedding(std::int64_t members, std::int64_t classes, std::int64_t dim);
  torch::Tensor forward(const torch::Tensor& labels);

 private:
  torch::Tensor weight_;
};

struct GroupedMlpOptions {
  MlpDenoiserOptions network;  ///< every member's architecture
  std::int64_t members = 1;    ///< K
};

/// K MlpDenoisers as one network (see msd::Denoiser::group): every parameter and buffer is named as
/// in MlpDenoiser and stacked on a leading member dimension, and the batch is K blocks of equal size.
class GroupedMlpDenoiser final : public msd::DenoiserFrom<GroupedMlpDenoiser, GroupedMlpOptions> {
 public:
  explicit GroupedMlpDenoiser(const GroupedMlpOptions& options);

  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels) override;
  msd::DenoiserOutput denoise_with_features(const torch::Tensor& x, const torch::Tensor& sigma,
                                            const torch::Tensor& labels) override;
  std::vector<std::string> feature_names() const override;
  std::int64_t group_size() const override { return options_.members; }
  std::shared_ptr<msd::Denoiser> member(std::int64_t k) const override;

 private:
  torch::Tensor frequencies_;  // buffer [K, embed / 2]
  std::shared_ptr<GroupedLinear> noise_proj_, input_proj_, output_proj_;
  std::shared_ptr<GroupedEmbedding> class_embed_;
  std::vector<std::shared_ptr<GroupedLinear>> first_, cond_, second_;
};

}  // namespace toy
