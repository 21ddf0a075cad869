// Partition strategies for the two routing keys the platform knows:
//  - condition (MSD): class_consecutive, class_random split the class labels into K balanced cells;
//  - noise level (O2MKD): noise_uniform, noise_nonuniform split sigma into K contiguous ranges.
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
#include <utility>
#include <vector>

#include "msd/partition.h"
#include "msd/plugin.h"

namespace {

constexpr const char* kVersion = "1.0.0";

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

  msd::RoutingKey key() const override { return msd::RoutingKey::condition; }

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

  msd::RoutingKey key() const override { return msd::RoutingKey::condition; }

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    check_class_split("class_random", ctx);
    const std::uint64_t seed = shuffle_seed_ >= 0 ? static_cast<std::uint64_t>(shuffle_seed_) : ctx.seed;
    std::mt19937_64 rng(seed);  // mt19937_64's output sequence is fixed by the standard
    std::vector<std::int64_t> order = identity_order(ctx.num_classes);
    // Fisher-Yates by hand: std::shuffle's algorithm differs between standard libraries.
    for (size_t i = order.size(); i > 1; --i) {
      const size_t j = static_cast<size_t>(uniform_below(rng, static_cast<std::uint64_t>(i)));
      std::swap(order[i - 1], order[j]);
    }
    return cells_from_order(order, ctx.k);
  }

 private:
  std::int64_t shuffle_seed_;
};

// --- noise-level partitions ---------------------------------------------------------------------

std::string format_sigma(double sigma) {
  if (std::isinf(sigma)) return "inf";
  std::ostringstream os;
  os << std::setprecision(3) << sigma;
  return os.str();
}

// K contiguous ranges whose inner boundaries sit at
//   log sigma_i = log sigma_min + (log sigma_max - log sigma_min) * (i / K)^gamma,  i = 1..K-1.
// The outer ends are 0 and +inf rather than sigma_min and sigma_max: the sampler's last step goes
// to sigma = 0 and training draws sigmas outside the sampler's range, and each needs a student.
std::vector<msd::Cell> noise_cells(const char* plugin, const msd::PartitionContext& ctx, double gamma) {
  if (ctx.k < 1) {
    throw std::invalid_argument(std::string(plugin) + ": k = " + std::to_string(ctx.k) + " must be at least 1");
  }
  if (!(ctx.sigma_min > 0.0) || !(ctx.sigma_max > ctx.sigma_min) || std::isinf(ctx.sigma_max)) {
    throw std::invalid_argument(std::string(plugin) + ": needs 0 < sigma_min < sigma_max < inf, got sigma_min = " +
                                format_sigma(ctx.sigma_min) + ", sigma_max = " + format_sigma(ctx.sigma_max));
  }
  const double log_min = std::log(ctx.sigma_min);
  const double log_span = std::log(ctx.sigma_max) - log_min;
  std::vector<double> edges{0.0};
  for (std::int64_t i = 1; i < ctx.k; ++i) {
    const double t = static_cast<double>(i) / static_cast<double>(ctx.k);
    edges.push_back(std::exp(log_min + log_span * std::pow(t, gamma)));
  }
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

class NoiseUniform final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::partition,
            "noise_uniform",
            kVersion,
            "K noise-level ranges of equal width in log sigma over [sigma_min, sigma_max] (O2MKD uniform)",
            {}};
  }
  explicit NoiseUniform(const msd::Params&) {}

  msd::RoutingKey key() const override { return msd::RoutingKey::noise_level; }

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    return noise_cells("noise_uniform", ctx, 1.0);
  }
};

class NoiseNonuniform final : public msd::Partition {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::partition,
            "noise_nonuniform",
            kVersion,
            "K noise-level ranges, narrower at low sigma: more students where O2MKD found it pays",
            {msd::key_real("gamma", 2.0,
                           "warp of the boundaries, log sigma_i = log min + span * (i/K)^gamma (unitless); "
                           "1 = uniform in log sigma, > 1 = narrower cells (more students) at low noise, "
                           "following O2MKD's finding that more students at small timesteps is better",
                           1.0, 10.0)}};
  }
  explicit NoiseNonuniform(const msd::Params& params) : gamma_(params.get_real("gamma")) {}

  msd::RoutingKey key() const override { return msd::RoutingKey::noise_level; }

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    return noise_cells("noise_nonuniform", ctx, gamma_);
  }

 private:
  double gamma_;
};

}  // namespace

// Parenthesised: the macro takes one argument and the braces hold commas.
MSD_PLUGIN_LIBRARY((msd::PluginLibrary{"partitions",
                                       {msd::describe<ClassConsecutive>(), msd::describe<ClassRandom>(),
                                        msd::describe<NoiseUniform>(), msd::describe<NoiseNonuniform>()}}))
