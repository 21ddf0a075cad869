// Partition plugins split a routing key space into K cells. MSD routes by condition (class label),
// O2MKD by noise level; a cell names both, so a router needs no plugin code and a hybrid partition
// is the product of two cell lists.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "msd/plugin.h"

namespace msd {

/// What a partition splits.
enum class RoutingKey { condition, noise_level };

/// One cell of a partition: the student trained for it handles exactly these keys.
struct Cell {
  std::vector<std::int64_t> classes;  ///< class labels of this cell, sorted; empty: every class
  double sigma_lo = 0.0;              ///< noise levels sigma in [sigma_lo, sigma_hi) belong to the cell
  double sigma_hi = std::numeric_limits<double>::infinity();
  std::string label;                  ///< human-readable, e.g. "classes 0-1" or "sigma [0.002, 0.1)"

  bool contains_class(std::int64_t c) const;
  bool contains_sigma(double sigma) const { return sigma >= sigma_lo && sigma < sigma_hi; }
};

/// What a partition may look at when it splits.
struct PartitionContext {
  std::int64_t k = 1;                           ///< number of cells wanted
  std::int64_t num_classes = 0;                 ///< size of the condition space
  double sigma_min = 0.002;                     ///< lowest noise level the sampler visits
  double sigma_max = 80.0;                      ///< highest noise level the sampler visits
  std::uint64_t seed = 0;                       ///< for random splits
  std::vector<std::vector<double>> class_features;  ///< per-class embedding (Dataset::class_features) when
                                                    ///< uses_class_features(); else, or when unknown, empty
};

/// Splits the key space into ctx.k disjoint cells that together cover it.
class Partition : public Plugin {
 public:
  ~Partition() override;
  virtual RoutingKey key() const = 0;
  /// Exactly ctx.k cells. Condition cells list disjoint classes covering 0..num_classes-1; noise cells
  /// tile [0, inf) so that every sigma (including the sampler's final 0) has a student.
  virtual std::vector<Cell> split(const PartitionContext& ctx) const = 0;
  /// True if split() reads ctx.class_features. The host fills them only then: a dataset may compute
  /// them with a pass over its whole training split (Fashion-MNIST: seconds on a CPU).
  virtual bool uses_class_features() const { return false; }
};

/// Checks that `cells` is a valid partition for `key` (disjoint, covering); throws
/// std::invalid_argument naming the offending cell. The host calls it on every plugin's output.
void check_partition(const std::vector<Cell>& cells, RoutingKey key, std::int64_t num_classes);

}  // namespace msd
