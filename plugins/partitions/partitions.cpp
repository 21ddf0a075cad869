// Partition strategies for the routing keys the platform knows:
//  - condition (MSD): class_consecutive, class_random split the class labels into K balanced cells,
//    class_kmeans clusters the dataset's per-class features;
//  - noise level (O2MKD): noise_uniform, noise_nonuniform, noise_timestep_uniform, noise_equal_nfe,
//    noise_difficulty split sigma into K contiguous ranges;
//  - both (the hybrid): class_x_noise, class groups times noise ranges.
// No LibTorch here: splitting is bookkeeping, and this keeps the library quick to build and load.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "msd/partition.h"
#include "msd/plugin.h"

namespace {

constexpr const char* kVersion = "1.0.0";

/// `info` with what its partition splits (PluginInfo::partition).
msd::PluginInfo with_traits(msd::PluginInfo info, msd::RoutingKey key, bool class_features = false,
                            bool probe = false) {
  info.partition = {key, class_features, probe};
  return info;
}

// --- condition partitions -----------------------------------------------------------------------

void check_class_split(const char* plugin, const msd::PartitionContext& ctx) {
  if (ctx.k < 1) {
    throw std::invalid_argument(std::string(plugin) + ": k = " + std::to_string(ctx.k) + " must be at least 1");
  }
  if (ctx.k > ctx.num_classes) {
    throw std::invalid_argument(std::string(plugin) + ": k = " + std::to_string(ctx.k) + " exceeds num_classes = " +
                                std::to_string(ctx.num_classes) + "; every cell needs at least one class");
  }
}

// Balanced sizes: the first num_classes % k cells get one class more than the others.
std::vector<std::int64_t> balanced_sizes(std::int64_t num_classes, std::int64_t k) {
  std::vector<std::int64_t> sizes(static_cast<size_t>(k), num_classes / k);
  for (std::int64_t i = 0; i < num_classes % k; ++i) ++sizes[static_cast<size_t>(i)];
  return sizes;
}

// "class 3", "classes 0-2" for a run of consecutive labels, otherwise "classes 1,4,7".
std::string class_label(const std::vector<std::int64_t>& classes) {
  if (classes.size() == 1) return "class " + std::to_string(classes.front());
  const bool run = classes.back() - classes.front() + 1 == static_cast<std::int64_t>(classes.size());
  if (run) return "classes " + std::to_string(classes.front()) + "-" + std::to_string(classes.back());
  std::string label = "classes ";
  for (size_t i = 0; i < classes.size(); ++i) label += (i ? "," : "") + std::to_string(classes[i]);
  return label;
}

// Cuts `order` into consecutive chunks of balanced size; each chunk, sorted, is one cell.
std::vector<msd::Cell> cells_from_order(const std::vector<std::int64_t>& order, std::int64_t k) {
  std::vector<msd::Cell> cells;
  size_t next = 0;
  for (std::int64_t size : balanced_sizes(static_cast<std::int64_t>(order.size()), k)) {
    msd::Cell cell;
    cell.classes.assign(order.begin() + static_cast<std::ptrdiff_t>(next),
                        order.begin() + static_cast<std::ptrdiff_t>(next + static_cast<size_t>(size)));
    std::sort(cell.classes.begin(), cell.classes.end());
    cell.label = class_label(cell.classes);
    cells.push_back(std::move(cell));
    next += static_cast<size_t>(size);
  }
  return cells;
}

std::vector<std::int64_t> identity_order(std::int64_t n) {
  std::vector<std::int64_t> order(static_cast<size_t>(n));
  for (std::int64_t c = 0; c < n; ++c) order[static_cast<size_t>(c)] = c;
  return order;
}

class ClassConsecutive final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::partition,
            "class_consecutive",
            kVersion,
            "K cells of consecutive class labels, sizes as equal as possible (MSD's best split)",
            {}};
  }
  explicit ClassConsecutive(const msd::Params&) {}

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    check_class_split("class_consecutive", ctx);
    return cells_from_order(identity_order(ctx.num_classes), ctx.k);
  }
};

// Uniform integer in [0, bound) from raw engine output. std::uniform_int_distribution is not
// specified bit-for-bit, so it would make a split depend on the standard library; rejecting the
// top partial block of the 64-bit range keeps the result unbiased and portable.
std::uint64_t uniform_below(std::mt19937_64& rng, std::uint64_t bound) {
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t limit = max - max % bound;
  std::uint64_t draw = 0;
  do {
    draw = rng();
  } while (draw >= limit);
  return draw % bound;
}

// 0..n-1 in an order drawn from `seed`, the same with every standard library.
std::vector<std::int64_t> shuffled_order(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);  // mt19937_64's output sequence is fixed by the standard
  std::vector<std::int64_t> order = identity_order(n);
  // Fisher-Yates by hand: std::shuffle's algorithm differs between standard libraries.
  for (size_t i = order.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(uniform_below(rng, static_cast<std::uint64_t>(i)));
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

class ClassRandom final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::partition,
            "class_random",
            kVersion,
            "K balanced cells of randomly chosen classes (MSD's random-split ablation)",
            {msd::key_int("shuffle_seed", -1,
                          "seed of the class shuffle; -1 uses the run's seed, so a sweep over seeds also "
                          "varies the split",
                          -1)}};
  }
  explicit ClassRandom(const msd::Params& params) : shuffle_seed_(params.get_int("shuffle_seed")) {}

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    check_class_split("class_random", ctx);
    const std::uint64_t seed = shuffle_seed_ >= 0 ? static_cast<std::uint64_t>(shuffle_seed_) : ctx.seed;
    return cells_from_order(shuffled_order(ctx.num_classes, seed), ctx.k);
  }

 private:
  std::int64_t shuffle_seed_;
};

// --- k-means on class features ------------------------------------------------------------------

// Uniform double in [0, 1) from the engine's top 53 bits: portable, unlike uniform_real_distribution.
double uniform_unit(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

double squared_distance(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) sum += (a[i] - b[i]) * (a[i] - b[i]);
  return sum;
}

using Points = std::vector<std::vector<double>>;

// k-means++ seeding: the first centre uniformly, each next one with probability proportional to the
// squared distance to the nearest centre chosen so far.
Points kmeanspp_centres(const Points& points, std::int64_t k, std::mt19937_64& rng) {
  Points centres{points[static_cast<size_t>(uniform_below(rng, points.size()))]};
  std::vector<double> nearest(points.size(), std::numeric_limits<double>::infinity());
  while (static_cast<std::int64_t>(centres.size()) < k) {
    double total = 0.0;
    for (size_t i = 0; i < points.size(); ++i) {
      nearest[i] = std::min(nearest[i], squared_distance(points[i], centres.back()));
      total += nearest[i];
    }
    size_t chosen = 0;
    if (total > 0.0) {
      double target = uniform_unit(rng) * total;
      for (size_t i = 0; i < points.size(); ++i) {
        if (nearest[i] == 0.0) continue;
        chosen = i;  // the last candidate also absorbs rounding of the running subtraction
        if (target < nearest[i]) break;
        target -= nearest[i];
      }
    } else {
      chosen = static_cast<size_t>(uniform_below(rng, points.size()));  // all points coincide with centres
    }
    centres.push_back(points[chosen]);
  }
  return centres;
}

// Means of the points of each cluster; a cluster without points keeps its centre.
void update_centres(const Points& points, const std::vector<std::int64_t>& assignment, Points& centres) {
  Points sums(centres.size(), std::vector<double>(points.front().size(), 0.0));
  std::vector<std::int64_t> counts(centres.size(), 0);
  for (size_t i = 0; i < points.size(); ++i) {
    const auto c = static_cast<size_t>(assignment[i]);
    for (size_t d = 0; d < points[i].size(); ++d) sums[c][d] += points[i][d];
    ++counts[c];
  }
  for (size_t c = 0; c < centres.size(); ++c) {
    if (counts[c] == 0) continue;
    for (size_t d = 0; d < sums[c].size(); ++d) centres[c][d] = sums[c][d] / static_cast<double>(counts[c]);
  }
}

// Lloyd's assignment: nearest centre (lowest index on ties). A cluster left empty takes the point
// farthest from its centre among clusters of two or more, so every cell gets a class.
std::vector<std::int64_t> assign_nearest(const Points& points, const Points& centres) {
  std::vector<std::int64_t> assignment(points.size());
  std::vector<std::int64_t> counts(centres.size(), 0);
  for (size_t i = 0; i < points.size(); ++i) {
    size_t best = 0;
    for (size_t c = 1; c < centres.size(); ++c) {
      if (squared_distance(points[i], centres[c]) < squared_distance(points[i], centres[best])) best = c;
    }
    assignment[i] = static_cast<std::int64_t>(best);
    ++counts[best];
  }
  for (size_t empty = 0; empty < centres.size(); ++empty) {
    if (counts[empty] != 0) continue;
    size_t farthest = points.size();
    double farthest_distance = -1.0;
    for (size_t i = 0; i < points.size(); ++i) {
      const auto c = static_cast<size_t>(assignment[i]);
      const double d = squared_distance(points[i], centres[c]);
      if (counts[c] > 1 && d > farthest_distance) {
        farthest = i;
        farthest_distance = d;
      }
    }
    --counts[static_cast<size_t>(assignment[farthest])];
    assignment[farthest] = static_cast<std::int64_t>(empty);
    ++counts[empty];
  }
  return assignment;
}

// Balanced assignment: every cluster gets floor(n/k) or ceil(n/k) points. Greedy over all (point,
// centre) pairs by increasing distance: a pair is taken when the point is free and the centre has
// room. Room only shrinks, so a point whose every pair was refused would mean all centres are full,
// which capacity n rules out: every point is assigned.
std::vector<std::int64_t> assign_balanced(const Points& points, const Points& centres) {
  struct Pair {
    double distance;
    size_t point, centre;
  };
  std::vector<Pair> pairs;
  for (size_t i = 0; i < points.size(); ++i) {
    for (size_t c = 0; c < centres.size(); ++c) pairs.push_back({squared_distance(points[i], centres[c]), i, c});
  }
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) {
    return std::tie(a.distance, a.point, a.centre) < std::tie(b.distance, b.point, b.centre);
  });
  const std::int64_t small = static_cast<std::int64_t>(points.size() / centres.size());
  std::int64_t large_left = static_cast<std::int64_t>(points.size() % centres.size());  // clusters that may hold small + 1
  std::vector<std::int64_t> assignment(points.size(), -1);
  std::vector<std::int64_t> counts(centres.size(), 0);
  for (const Pair& p : pairs) {
    if (assignment[p.point] >= 0) continue;
    std::int64_t& count = counts[p.centre];
    if (count < small) {
      ++count;
    } else if (count == small && large_left > 0) {
      ++count;
      --large_left;
    } else {
      continue;
    }
    assignment[p.point] = static_cast<std::int64_t>(p.centre);
  }
  return assignment;
}

double inertia(const Points& points, const Points& centres, const std::vector<std::int64_t>& assignment) {
  double sum = 0.0;
  for (size_t i = 0; i < points.size(); ++i) sum += squared_distance(points[i], centres[static_cast<size_t>(assignment[i])]);
  return sum;
}

class ClassKMeans final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return with_traits({msd::PluginKind::partition,
            "class_kmeans",
            kVersion,
            "K cells from k-means on the dataset's per-class mean features (MSD's embedding clustering)",
            {msd::key_bool("balanced", true,
                           "equal class counts per cell (sizes differ by at most one): Lloyd's iterations with "
                           "a greedy capacity-constrained assignment; false: plain k-means, cells may be uneven"),
             msd::key_int("restarts", 10, "k-means++ restarts; the split with the lowest within-cell squared "
                                          "distance wins", 1, 10000),
             msd::key_int("iterations", 100, "maximum Lloyd iterations per restart", 1, 100000)}}, msd::RoutingKey::condition, /*class_features=*/true);
  }
  explicit ClassKMeans(const msd::Params& params)
      : balanced_(params.get_bool("balanced")),
        restarts_(params.get_int("restarts")),
        iterations_(params.get_int("iterations")) {}

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    check_class_split("class_kmeans", ctx);
    const Points& points = ctx.class_features;
    if (points.empty()) {
      throw std::invalid_argument("class_kmeans: dataset provides no class features; use class_consecutive or class_random");
    }
    if (static_cast<std::int64_t>(points.size()) != ctx.num_classes) {
      throw std::invalid_argument("class_kmeans: the dataset gives features for " + std::to_string(points.size()) +
                                  " classes but has num_classes = " + std::to_string(ctx.num_classes));
    }
    for (size_t c = 0; c < points.size(); ++c) {
      if (points[c].empty() || points[c].size() != points.front().size()) {
        throw std::invalid_argument("class_kmeans: class " + std::to_string(c) + " has a feature vector of length " +
                                    std::to_string(points[c].size()) + ", class 0 of length " +
                                    std::to_string(points.front().size()) + "; they must be equal and non-zero");
      }
      for (double v : points[c]) {
        if (!std::isfinite(v)) throw std::invalid_argument("class_kmeans: class " + std::to_string(c) + " has a non-finite feature");
      }
    }
    std::mt19937_64 rng(ctx.seed);
    std::vector<std::int64_t> best;
    double best_inertia = std::numeric_limits<double>::infinity();
    for (std::int64_t restart = 0; restart < restarts_; ++restart) {
      Points centres = kmeanspp_centres(points, ctx.k, rng);
      std::vector<std::int64_t> assignment;
      for (std::int64_t it = 0; it < iterations_; ++it) {
        std::vector<std::int64_t> next = balanced_ ? assign_balanced(points, centres) : assign_nearest(points, centres);
        if (next == assignment) break;
        assignment = std::move(next);
        update_centres(points, assignment, centres);
      }
      const double value = inertia(points, centres, assignment);
      if (value < best_inertia) {
        best_inertia = value;
        best = assignment;
      }
    }
    std::vector<msd::Cell> cells(static_cast<size_t>(ctx.k));
    for (size_t c = 0; c < best.size(); ++c) cells[static_cast<size_t>(best[c])].classes.push_back(static_cast<std::int64_t>(c));
    // Cells in order of their smallest class, so that equal splits read the same whatever the seed.
    std::sort(cells.begin(), cells.end(), [](const msd::Cell& a, const msd::Cell& b) { return a.classes < b.classes; });
    for (msd::Cell& cell : cells) cell.label = class_label(cell.classes);
    return cells;
  }

 private:
  bool balanced_;
  std::int64_t restarts_;
  std::int64_t iterations_;
};

// --- noise-level partitions ---------------------------------------------------------------------

std::string format_sigma(double sigma) {
  if (std::isinf(sigma)) return "inf";
  std::ostringstream os;
  os << std::setprecision(3) << sigma;
  return os.str();
}

/// Where a noise partition puts the K - 1 boundaries between its K contiguous ranges.
struct NoiseSplit {
  enum class Kind { log_warp, timestep_uniform, equal_evaluations, equal_difficulty };
  Kind kind = Kind::log_warp;
  double gamma = 1.0;            ///< log_warp: 1 is uniform in log sigma
  std::int64_t timesteps = 1000;  ///< timestep_uniform: DDPM's T and linear beta schedule
  double beta_start = 1e-4;
  double beta_end = 0.02;
};

void check_sampler_range(const char* plugin, const msd::PartitionContext& ctx) {
  if (ctx.k < 1) {
    throw std::invalid_argument(std::string(plugin) + ": k = " + std::to_string(ctx.k) + " must be at least 1");
  }
  if (!(ctx.sigma_min > 0.0) || !(ctx.sigma_max > ctx.sigma_min) || std::isinf(ctx.sigma_max)) {
    throw std::invalid_argument(std::string(plugin) + ": needs 0 < sigma_min < sigma_max < inf, got sigma_min = " +
                                format_sigma(ctx.sigma_min) + ", sigma_max = " + format_sigma(ctx.sigma_max));
  }
}

// log sigma_i = log sigma_min + (log sigma_max - log sigma_min) * (i / K)^gamma,  i = 1..K-1.
std::vector<double> log_warp_edges(const msd::PartitionContext& ctx, double gamma) {
  const double log_min = std::log(ctx.sigma_min);
  const double log_span = std::log(ctx.sigma_max) - log_min;
  std::vector<double> edges;
  for (std::int64_t i = 1; i < ctx.k; ++i) {
    const double t = static_cast<double>(i) / static_cast<double>(ctx.k);
    edges.push_back(std::exp(log_min + log_span * std::pow(t, gamma)));
  }
  return edges;
}

// O2MKD's uniform split: student i takes DDPM timesteps ((i-1) T/K, i T/K] of the linear beta schedule,
// so boundary i sits at the noise level of timestep floor(i T / K): sigma_t = sqrt((1 - abar_t) / abar_t),
// abar_t = prod_{s <= t} (1 - beta_s), beta_s linear from beta_start (s = 1) to beta_end (s = T).
std::vector<double> timestep_edges(const msd::PartitionContext& ctx, const NoiseSplit& split) {
  if (ctx.k > split.timesteps) {
    throw std::invalid_argument("noise_timestep_uniform: k = " + std::to_string(ctx.k) + " exceeds timesteps = " +
                                std::to_string(split.timesteps));
  }
  std::vector<double> sigma_at{0.0};  // sigma_at[t], t = 0..T
  double log_abar = 0.0;
  for (std::int64_t t = 1; t <= split.timesteps; ++t) {
    const double frac = split.timesteps == 1 ? 0.0 : static_cast<double>(t - 1) / static_cast<double>(split.timesteps - 1);
    log_abar += std::log1p(-(split.beta_start + frac * (split.beta_end - split.beta_start)));
    sigma_at.push_back(std::sqrt(std::expm1(-log_abar)));  // sqrt(1 / abar - 1)
  }
  std::vector<double> edges;
  for (std::int64_t i = 1; i < ctx.k; ++i) edges.push_back(sigma_at[static_cast<size_t>(i * split.timesteps / ctx.k)]);
  return edges;
}

// Boundaries that give each range as close to W / K of the total weight W of the sampler's network
// evaluations (evaluation i weighs weights[i]) as whole levels allow (a level evaluated twice stays in
// one range), each between two neighbouring levels at their geometric mean.
std::vector<double> balanced_level_edges(const char* plugin, const msd::PartitionContext& ctx,
                                         const std::vector<double>& weights) {
  std::vector<std::pair<double, double>> evaluations;  // (level, weight) of each evaluation above 0
  for (size_t i = 0; i < ctx.sampler_levels.size(); ++i) {
    if (ctx.sampler_levels[i] > 0.0) evaluations.emplace_back(ctx.sampler_levels[i], weights[i]);
  }
  std::sort(evaluations.begin(), evaluations.end());
  std::vector<std::pair<double, double>> distinct;  // (level, its evaluations' weight), ascending
  double total = 0.0;
  for (const auto& [level, weight] : evaluations) {
    if (distinct.empty() || distinct.back().first != level) distinct.emplace_back(level, 0.0);
    distinct.back().second += weight;
    total += weight;
  }
  if (static_cast<std::int64_t>(distinct.size()) < ctx.k) {
    throw std::invalid_argument(std::string(plugin) + ": k = " + std::to_string(ctx.k) + " exceeds the " +
                                std::to_string(distinct.size()) +
                                " distinct noise levels the teacher's sampler evaluates; raise its sampler_steps");
  }
  std::vector<double> edges;
  double seen = 0.0;
  for (size_t j = 0; j + 1 < distinct.size() && static_cast<std::int64_t>(edges.size()) + 1 < ctx.k; ++j) {
    seen += distinct[j].second;
    const double target = total * static_cast<double>(edges.size() + 1) / static_cast<double>(ctx.k);
    const double with_next = seen + distinct[j + 1].second;
    // Cut here when the next level would overshoot the target by more than stopping short misses it,
    // or when every remaining level is needed to give each remaining range one.
    const std::int64_t ranges_left = ctx.k - static_cast<std::int64_t>(edges.size()) - 1;
    const bool must = static_cast<std::int64_t>(distinct.size() - j - 1) == ranges_left;
    if (must || std::abs(with_next - target) > std::abs(seen - target)) {
      edges.push_back(std::sqrt(distinct[j].first * distinct[j + 1].first));
    }
  }
  return edges;
}

// The probe's loss at each sampler evaluation, checked: one finite, non-negative value per evaluation,
// not all zero.
const std::vector<double>& level_difficulty(const char* plugin, const msd::PartitionContext& ctx) {
  const std::vector<double>& difficulty = ctx.level_difficulty;
  if (difficulty.size() != ctx.sampler_levels.size()) {
    throw std::invalid_argument(std::string(plugin) + ": got " + std::to_string(difficulty.size()) +
                                " level difficulties for the sampler's " + std::to_string(ctx.sampler_levels.size()) +
                                " evaluations (the host measures one per evaluation)");
  }
  double total = 0.0;
  for (size_t i = 0; i < difficulty.size(); ++i) {
    if (!std::isfinite(difficulty[i]) || difficulty[i] < 0.0) {
      throw std::invalid_argument(std::string(plugin) + ": the probe's loss at sigma = " +
                                  format_sigma(ctx.sampler_levels[i]) + " is " + std::to_string(difficulty[i]) +
                                  "; it must be finite and at least 0");
    }
    total += difficulty[i];
  }
  if (!(total > 0.0)) throw std::invalid_argument(std::string(plugin) + ": the probe's loss is 0 at every level");
  return difficulty;
}

// K contiguous ranges with the split's inner boundaries. The outer ends are 0 and +inf rather than
// sigma_min and sigma_max: the sampler's last step goes to sigma = 0 and training draws sigmas outside
// the sampler's range, and each needs a student.
std::vector<msd::Cell> noise_cells(const char* plugin, const msd::PartitionContext& ctx, const NoiseSplit& split) {
  check_sampler_range(plugin, ctx);
  std::vector<double> edges{0.0};
  std::vector<double> inner;
  switch (split.kind) {
    case NoiseSplit::Kind::log_warp: inner = log_warp_edges(ctx, split.gamma); break;
    case NoiseSplit::Kind::timestep_uniform: inner = timestep_edges(ctx, split); break;
    case NoiseSplit::Kind::equal_evaluations:
      inner = balanced_level_edges(plugin, ctx, std::vector<double>(ctx.sampler_levels.size(), 1.0));
      break;
    case NoiseSplit::Kind::equal_difficulty:
      inner = balanced_level_edges(plugin, ctx, level_difficulty(plugin, ctx));
      break;
  }
  edges.insert(edges.end(), inner.begin(), inner.end());
  edges.push_back(std::numeric_limits<double>::infinity());

  std::vector<msd::Cell> cells;
  for (size_t i = 0; i + 1 < edges.size(); ++i) {
    msd::Cell cell;
    cell.sigma_lo = edges[i];
    cell.sigma_hi = edges[i + 1];
    cell.label = "sigma [" + format_sigma(cell.sigma_lo) + ", " + format_sigma(cell.sigma_hi) + ")";
    cells.push_back(std::move(cell));
  }
  return cells;
}

NoiseSplit log_warp(double gamma) {
  NoiseSplit split;
  split.gamma = gamma;
  return split;
}

NoiseSplit equal_evaluations() {
  NoiseSplit split;
  split.kind = NoiseSplit::Kind::equal_evaluations;
  return split;
}

std::vector<msd::KeySpec> timestep_keys() {
  return {msd::key_int("timesteps", 1000, "DDPM's number of timesteps T", 1, 1000000),
          msd::key_real("beta_start", 1e-4, "DDPM's beta at the first timestep (linear schedule)", 1e-9, 0.999),
          msd::key_real("beta_end", 0.02, "DDPM's beta at the last timestep", 1e-9, 0.999)};
}

NoiseSplit timestep_split(const msd::Params& params) {
  NoiseSplit split;
  split.kind = NoiseSplit::Kind::timestep_uniform;
  split.timesteps = params.get_int("timesteps");
  split.beta_start = params.get_real("beta_start");
  split.beta_end = params.get_real("beta_end");
  return split;
}

class NoiseUniform final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return with_traits({msd::PluginKind::partition,
            "noise_uniform",
            kVersion,
            "K noise-level ranges of equal width in log sigma over [sigma_min, sigma_max] (O2MKD uniform)",
            {}}, msd::RoutingKey::noise_level);
  }
  explicit NoiseUniform(const msd::Params&) {}

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    return noise_cells("noise_uniform", ctx, log_warp(1.0));
  }
};

class NoiseNonuniform final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return with_traits({msd::PluginKind::partition,
            "noise_nonuniform",
            kVersion,
            "K noise-level ranges, narrower at low sigma: more students where O2MKD found it pays",
            {msd::key_real("gamma", 2.0,
                           "warp of the boundaries, log sigma_i = log min + span * (i/K)^gamma (unitless); "
                           "1 = uniform in log sigma, > 1 = narrower cells (more students) at low noise, "
                           "following O2MKD's finding that more students at small timesteps is better",
                           1.0, 10.0)}}, msd::RoutingKey::noise_level);
  }
  explicit NoiseNonuniform(const msd::Params& params) : gamma_(params.get_real("gamma")) {}

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    return noise_cells("noise_nonuniform", ctx, log_warp(gamma_));
  }

 private:
  double gamma_;
};

class NoiseTimestepUniform final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return with_traits({msd::PluginKind::partition,
            "noise_timestep_uniform",
            kVersion,
            "K noise-level ranges of equal width in DDPM timesteps (linear beta schedule): O2MKD's uniform split",
            timestep_keys()}, msd::RoutingKey::noise_level);
  }
  explicit NoiseTimestepUniform(const msd::Params& params) : split_(timestep_split(params)) {}

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    return noise_cells("noise_timestep_uniform", ctx, split_);
  }

 private:
  NoiseSplit split_;
};

class NoiseEqualNfe final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return with_traits({msd::PluginKind::partition,
            "noise_equal_nfe",
            kVersion,
            "K noise-level ranges holding equal shares of the network evaluations of the teacher's sampler, "
            "so that every student does the same share of the sampling",
            {}}, msd::RoutingKey::noise_level);
  }
  explicit NoiseEqualNfe(const msd::Params&) {}

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    return noise_cells("noise_equal_nfe", ctx, equal_evaluations());
  }
};

class NoiseDifficulty final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return with_traits({msd::PluginKind::partition,
            "noise_difficulty",
            kVersion,
            "K noise-level ranges holding equal shares of the sampler's evaluations weighted by how hard each "
            "level is to distil (the loss there of a one-student probe the host trains first)",
            {msd::key_int("probe_steps", 300,
                          "iterations of the probe: one student for every noise level, trained with the run's "
                          "student plugin and its first stage's losses and batch (its cost is the run's, "
                          "recorded as probe.seconds)",
                          1, 1000000),
             msd::key_int("probe_samples", 256,
                          "real samples per sampler level at which the probe's loss is measured", 1, 1000000),
             msd::KeySpec{"probe_losses", msd::KeyType::string_list, msd::Value{std::vector<std::string>{}},
                          "the loss plugins of that stage whose weighted sum is the difficulty, e.g. "
                          "[\"kd_prediction\"] (the student's distance from the teacher, without the diffusion "
                          "loss's irreducible noise); empty: the stage's whole objective",
                          {}, {}, {}}}},
            msd::RoutingKey::noise_level, false, true);
  }
  explicit NoiseDifficulty(const msd::Params& params)
      : probe_{params.get_int("probe_steps"), params.get_int("probe_samples"),
               params.get_string_list("probe_losses")} {}

  msd::ProbeOptions probe_options() const override { return probe_; }

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    NoiseSplit split;
    split.kind = NoiseSplit::Kind::equal_difficulty;
    return noise_cells("noise_difficulty", ctx, split);
  }

 private:
  msd::ProbeOptions probe_;
};

// --- both at once -------------------------------------------------------------------------------

/// The hybrid of MSD and O2MKD: class_cells groups of classes times noise_cells noise ranges, one
/// student per (group, range). Each cell bounds classes and sigma; the router picks by both.
class ClassXNoise final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    std::vector<msd::KeySpec> keys{
        msd::key_string("classes", "consecutive",
                        "how classes are grouped: as class_consecutive or class_random (shuffled with the run's seed)",
                        {"consecutive", "random"}),
        msd::key_int("class_cells", 2, "groups of classes", 1, 1024),
        msd::key_string("noise", "uniform",
                        "how sigma is cut: as noise_uniform, noise_nonuniform, noise_timestep_uniform or "
                        "noise_equal_nfe",
                        {"uniform", "nonuniform", "timestep_uniform", "equal_nfe"}),
        msd::key_int("noise_cells", 2, "noise-level ranges", 1, 1024),
        msd::key_real("gamma", 2.0, "noise = nonuniform: the warp of noise_nonuniform", 1.0, 10.0)};
    for (const msd::KeySpec& key : timestep_keys()) keys.push_back(key);
    return with_traits({msd::PluginKind::partition, "class_x_noise", kVersion,
                        "class groups x noise-level ranges (the MSD x O2MKD hybrid); partition.k = class_cells x "
                        "noise_cells",
                        keys},
                       msd::RoutingKey::condition_and_noise);
  }
  explicit ClassXNoise(const msd::Params& params)
      : random_(params.get_string("classes") == "random"),
        class_cells_(params.get_int("class_cells")),
        split_(noise_split(params)),
        noise_cells_(params.get_int("noise_cells")) {}

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    if (ctx.k != class_cells_ * noise_cells_) {
      throw std::invalid_argument("class_x_noise: partition.k = " + std::to_string(ctx.k) +
                                  " must equal class_cells x noise_cells = " + std::to_string(class_cells_) + " x " +
                                  std::to_string(noise_cells_));
    }
    msd::PartitionContext classes = ctx, noise = ctx;
    classes.k = class_cells_;
    noise.k = noise_cells_;
    check_class_split("class_x_noise", classes);
    const std::vector<std::int64_t> order =
        random_ ? shuffled_order(ctx.num_classes, ctx.seed) : identity_order(ctx.num_classes);
    std::vector<msd::Cell> cells;
    for (const msd::Cell& group : cells_from_order(order, class_cells_)) {
      for (const msd::Cell& range : noise_cells("class_x_noise", noise, split_)) {
        msd::Cell cell = range;
        cell.classes = group.classes;
        cell.label = group.label + ", " + range.label;
        cells.push_back(std::move(cell));
      }
    }
    return cells;
  }

 private:
  /// The split of the noise partition that `noise` names.
  static NoiseSplit noise_split(const msd::Params& params) {
    const std::string noise = params.get_string("noise");
    if (noise == "timestep_uniform") return timestep_split(params);
    if (noise == "equal_nfe") return equal_evaluations();
    return log_warp(noise == "nonuniform" ? params.get_real("gamma") : 1.0);
  }

  bool random_;
  std::int64_t class_cells_;
  NoiseSplit split_;
  std::int64_t noise_cells_;
};

}  // namespace

// Parenthesised: the macro takes one argument and the braces hold commas.
MSD_PLUGIN_LIBRARY((msd::PluginLibrary{"partitions",
                                       {msd::describe<ClassConsecutive>(), msd::describe<ClassRandom>(),
                                        msd::describe<ClassKMeans>(), msd::describe<NoiseUniform>(),
                                        msd::describe<NoiseNonuniform>(), msd::describe<NoiseTimestepUniform>(),
                                        msd::describe<NoiseEqualNfe>(), msd::describe<NoiseDifficulty>(),
                                        msd::describe<ClassXNoise>()}}))
