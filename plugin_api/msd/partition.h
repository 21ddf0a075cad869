// Partition plugins split a routing key space into K cells. MSD routes by condition (class label),
// O2MKD by noise level; a cell bounds both, so the router needs no plugin code and a hybrid partition
// (classes x noise ranges) is a plugin returning product cells, declared RoutingKey::condition_and_noise.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "msd/plugin.h"

namespace msd {

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
  std::vector<double> sampler_levels;           ///< the noise levels at which the teacher's sampler evaluates
                                                ///< the network, one entry per evaluation (Heun at N steps:
                                                ///< 2N - 1), as the host recorded them from one sampling
  std::vector<std::vector<double>> class_features;  ///< per-class embedding (Dataset::class_features) when
                                                    ///< uses_class_features(); else, or when unknown, empty
  /// When the partition uses_probe: one entry per entry of sampler_levels, how hard that level is to
  /// distil, measured as the stage's weighted student loss of a one-student probe at exactly that level
  /// (docs/CONFIG.md, partition.probe_steps). Before the teacher is trained the host checks the
  /// configuration with a split in which every level weighs 1. Else empty.
  std::vector<double> level_difficulty;
};

/// How the host measures PartitionContext::level_difficulty for a partition that uses_probe: it trains
/// one student for every key (the run's student plugin, its first stage's losses and batch) for `steps`
/// iterations, then evaluates that stage's weighted loss at each sampler level on `samples` real
/// samples noised at exactly that level.
struct ProbeOptions {
  std::int64_t steps = 300;    ///< the probe's training iterations
  std::int64_t samples = 256;  ///< samples per sampler level at which its loss is measured
  std::vector<std::string> losses;  ///< the stage's loss plugins whose weighted sum is measured; empty: all
};

/// Splits the key space into ctx.k disjoint cells that together cover it. What it splits is declared
/// in PluginInfo::partition (the routing key, and whether split() reads ctx.class_features: the host
/// fills them only then, since a dataset may compute them with a pass over its whole training split).
class Partition : public Plugin {
 public:
  ~Partition() override;
  /// Exactly ctx.k cells such that every (class, sigma) pair falls in exactly one: condition cells list
  /// disjoint classes covering 0..num_classes-1; noise cells tile sigma in [0, inf) (the sampler's
  /// final 0 included); condition_and_noise cells do both, the cells of each class tiling [0, inf).
  virtual std::vector<Cell> split(const PartitionContext& ctx) const = 0;
  /// Read by the host only when the partition declares PartitionTraits::uses_probe.
  virtual ProbeOptions probe_options() const { return {}; }
};

/// Checks that `cells` is a valid partition for `key`: every (class, sigma) in exactly one cell, and
/// each cell bounding only what `key` says. Throws std::invalid_argument naming the offending cell or
/// class. The host calls it on every plugin's output.
void check_partition(const std::vector<Cell>& cells, RoutingKey key, std::int64_t num_classes);

}  // namespace msd
