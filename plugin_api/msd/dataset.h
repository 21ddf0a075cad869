// Dataset plugins yield (data, class) batches and describe the condition space.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "msd/monitor.h"
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

/// What a dataset may use while it prepares itself (loading files, training its feature network).
struct DatasetContext {
  std::filesystem::path cache;      ///< folder for artifacts worth keeping between runs (the run's cache)
  torch::Device device{torch::kCPU};  ///< where to train auxiliary networks
  Monitor* monitor = nullptr;       ///< progress of long work; may be null
  std::uint64_t seed = 0;           ///< the run's seed (the host has already seeded torch's generator)
};

/// Which part of a dataset with held-out data to draw from.
enum class Split { train, test };

/// Both outputs of a feature network for one batch.
struct Embedding {
  torch::Tensor features;  ///< [N, D] float32, CPU
  torch::Tensor logits;    ///< [N, classes] float32, CPU
};

/// A network that embeds samples for distribution metrics: the role Inception-v3 plays for FID.
/// Owned by its dataset, which trained it on its own training split.
class FeatureSpace {
 public:
  virtual ~FeatureSpace();
  /// Features and class logits of x ([N, ...sample shape], data scale, any device); no gradients.
  virtual Embedding embed(const torch::Tensor& x) const = 0;
  /// Accuracy of the logits on the dataset's whole test split, in [0, 1].
  virtual double test_accuracy() const = 0;
  /// Names the network (a hash of what it was trained from): equal ids give equal features.
  virtual std::string id() const = 0;
};

class Dataset : public Plugin {
 public:
  ~Dataset() override;
  /// Called once by the host before any other use: load files, train or load auxiliary networks.
  virtual void prepare(const DatasetContext& ctx) { (void)ctx; }
  /// Shape of one sample, e.g. {2} for points or {1, 28, 28} for images.
  virtual std::vector<std::int64_t> sample_shape() const = 0;
  virtual std::int64_t num_classes() const = 0;
  virtual std::string class_name(std::int64_t c) const { return std::to_string(c); }
  /// The standard deviation of all the data's values (every coordinate of every sample), valid after
  /// prepare(): EDM's sigma_data, which teachers take unless told otherwise.
  /// Default: 0.5, EDM's value for CIFAR-10, for a dataset that does not know its own.
  virtual double sigma_data() const { return 0.5; }
  /// n samples whose labels are drawn uniformly from `classes` (empty: all classes), drawn with
  /// torch's default generator so that the host's seeding makes them reproducible. CPU tensors.
  virtual Batch sample(std::int64_t n, const std::vector<std::int64_t>& classes) = 0;
  /// n samples with the given labels ([n] int64), for metrics that compare class by class.
  virtual torch::Tensor sample_given(const torch::Tensor& labels) = 0;
  /// The true density, when the dataset knows it.
  virtual std::optional<GaussianMixture> true_density() const { return std::nullopt; }
  /// Distinct samples of `split` (drawn without replacement) with the given labels ([n] int64), for
  /// reference sets and floors, where a repeated image would fake a perfect nearest neighbour. Throws
  /// when the split holds fewer samples of a class than asked. A dataset without held-out data has
  /// one distribution, so the default draws from it.
  virtual torch::Tensor sample_distinct(Split split, const torch::Tensor& labels) {
    (void)split;
    return sample_given(labels);
  }
  /// The network metrics embed samples with; null when the dataset has none.
  virtual const FeatureSpace* feature_space() const { return nullptr; }
  /// Per-class mean feature vector of the feature network on training samples ([classes][D]), for
  /// partitions that group similar classes (PartitionContext::class_features); empty when unknown.
  virtual std::vector<std::vector<double>> class_features() const { return {}; }
};

}  // namespace msd
