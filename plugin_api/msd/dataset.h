// Dataset plugins yield (data, class) batches and describe the condition space.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "msd/plugin.h"

namespace msd {

/// Samples and their class labels.
struct Batch {
  torch::Tensor x;       ///< [B, ...sample shape], float32, CPU unless stated
  torch::Tensor labels;  ///< [B], int64
};

/// A known density: a mixture of isotropic Gaussians. Lets metrics measure mode coverage.
struct GaussianMixture {
  torch::Tensor means;       ///< [M, D]
  torch::Tensor stds;        ///< [M]
  torch::Tensor weights;     ///< [M], sums to 1 within each class
  torch::Tensor mode_class;  ///< [M] int64: the class each mode belongs to
};

class Dataset : public Plugin {
 public:
  ~Dataset() override;
  /// Shape of one sample, e.g. {2} for points or {1, 28, 28} for images.
  virtual std::vector<std::int64_t> sample_shape() const = 0;
  virtual std::int64_t num_classes() const = 0;
  virtual std::string class_name(std::int64_t c) const { return std::to_string(c); }
  /// n samples whose labels are drawn uniformly from `classes` (empty: all classes), drawn with
  /// torch's default generator so that the host's seeding makes them reproducible. CPU tensors.
  virtual Batch sample(std::int64_t n, const std::vector<std::int64_t>& classes) = 0;
  /// n samples with the given labels ([n] int64), for metrics that compare class by class.
  virtual torch::Tensor sample_given(const torch::Tensor& labels) = 0;
  /// The true density, when the dataset knows it.
  virtual std::optional<GaussianMixture> true_density() const { return std::nullopt; }
};

}  // namespace msd
