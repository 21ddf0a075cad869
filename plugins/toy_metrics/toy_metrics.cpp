// Metrics for low-dimensional (toy) data and for cost:
//  - swd:           sliced Wasserstein-2 distance between generated and reference samples;
//  - mmd:           unbiased squared MMD with a Gaussian kernel;
//  - mode_coverage: which modes of a known Gaussian mixture the generated samples reach;
//  - cost:          network evaluations, parameters and measured sampling latency.
// All four live in one translation unit because every file that includes LibTorch costs tens of
// seconds to compile. Distances are accumulated in float64: squared differences of float32 samples
// summed over thousands of points lose digits that a metric near zero needs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "msd/dataset.h"
#include "msd/metric.h"
#include "msd/plugin.h"

namespace {

/// `info` with the values it shows as columns of the run summary (PluginInfo::metric).
msd::PluginInfo with_summary(msd::PluginInfo info, std::vector<msd::SummaryColumn> columns) {
  info.metric.summary = std::move(columns);
  return info;
}

constexpr const char* kVersion = "1.0.0";
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string class_scope(std::int64_t c) { return "class:" + std::to_string(c); }

// [N, ...] samples as an [N, D] float64 matrix, cut off from any autograd graph.
torch::Tensor as_matrix(const torch::Tensor& x) {
  return x.detach().to(torch::kCPU, torch::kFloat64).reshape({x.size(0), -1});
}

torch::Tensor as_labels(const torch::Tensor& labels) { return labels.detach().to(torch::kCPU, torch::kInt64); }

// Rows of `x` whose label is c.
torch::Tensor rows_of_class(const torch::Tensor& x, const torch::Tensor& labels, std::int64_t c) {
  return x.index_select(0, torch::nonzero(labels == c).squeeze(1));
}

// Sorted distinct labels of both sets, so that a class missing from one side is still reported.
std::vector<std::int64_t> classes_of(const torch::Tensor& a, const torch::Tensor& b) {
  std::set<std::int64_t> classes;
  for (const torch::Tensor& labels : {a, b}) {
    const torch::Tensor flat = labels.contiguous();
    const std::int64_t* p = flat.data_ptr<std::int64_t>();
    classes.insert(p, p + flat.numel());
  }
  return {classes.begin(), classes.end()};
}

// Pairwise squared Euclidean distances [A, B]; clamped because cancellation can make them
// slightly negative.
torch::Tensor squared_distances(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor a2 = a.pow(2).sum(1, /*keepdim=*/true);
  const torch::Tensor b2 = b.pow(2).sum(1, /*keepdim=*/true).t();
  return (a2 + b2 - 2.0 * a.mm(b.t())).clamp_min(0.0);
}

void check_same_dim(const char* plugin, const torch::Tensor& a, const torch::Tensor& b) {
  if (a.size(1) != b.size(1)) {
    throw std::invalid_argument(std::string(plugin) + ": generated samples have " + std::to_string(a.size(1)) +
                                " values each but reference samples " + std::to_string(b.size(1)));
  }
}

// --- swd ----------------------------------------------------------------------------------------

class SlicedWasserstein final : public msd::Metric {
 public:
  static msd::PluginInfo info() {
    return with_summary({msd::PluginKind::metric,
            "swd",
            kVersion,
            "sliced Wasserstein-2 distance between generated and reference samples (data units)",
            {msd::key_int("projections", 256, "random unit directions averaged over; error shrinks as 1/sqrt(n)",
                          1, 1e6),
             msd::key_bool("per_class", true, "also report the distance of each class (scope class:<c>)")}}, {{"swd", "swd"}});
  }
  explicit SlicedWasserstein(const msd::Params& params)
      : projections_(params.get_int("projections")), per_class_(params.get_bool("per_class")) {}

  std::vector<msd::MetricValue> evaluate(const msd::EvalContext& ctx) override {
    const torch::Tensor gen = as_matrix(ctx.generated.x);
    const torch::Tensor ref = as_matrix(ctx.reference.x);
    check_same_dim("swd", gen, ref);
    // One set of directions for every scope, so that class values and the total are comparable.
    torch::Tensor dirs = torch::randn({gen.size(1), projections_}, torch::kFloat64);
    dirs = dirs / dirs.norm(2, /*dim=*/{0}, /*keepdim=*/true);

    std::vector<msd::MetricValue> out{{"swd", distance(gen, ref, dirs), ""}};
    if (per_class_) {
      const torch::Tensor gen_labels = as_labels(ctx.generated.labels);
      const torch::Tensor ref_labels = as_labels(ctx.reference.labels);
      for (std::int64_t c : classes_of(gen_labels, ref_labels)) {
        out.push_back({"swd",
                       distance(rows_of_class(gen, gen_labels, c), rows_of_class(ref, ref_labels, c), dirs),
                       class_scope(c)});
      }
    }
    return out;
  }

 private:
  // sqrt(mean over directions of W2^2 of the 1-D projections). In 1-D the optimal coupling of two
  // equal-size samples pairs them in sorted order, so W2^2 is the mean squared difference of the
  // sorted projections. Unequal sizes use the first n of each (sample order is random).
  static double distance(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& dirs) {
    const std::int64_t n = std::min(a.size(0), b.size(0));
    if (n == 0) return kNaN;
    // Projections as [directions, n] so that each sort runs over contiguous memory (sorting the
    // strided dim 0 of [n, directions] was ~20x slower).
    const torch::Tensor pa = std::get<0>(dirs.t().mm(a.narrow(0, 0, n).t()).sort(1));
    const torch::Tensor pb = std::get<0>(dirs.t().mm(b.narrow(0, 0, n).t()).sort(1));
    return std::sqrt((pa - pb).pow(2).mean().item<double>());
  }

  std::int64_t projections_;
  bool per_class_;
};

// --- mmd ----------------------------------------------------------------------------------------

class Mmd final : public msd::Metric {
 public:
  static msd::PluginInfo info() {
    return with_summary({msd::PluginKind::metric,
            "mmd",
            kVersion,
            "unbiased squared maximum mean discrepancy, Gaussian kernel (may be slightly negative)",
            {msd::key_real("bandwidth", 0.1,
                           "Gaussian kernel width h in data units, k = exp(-|a-b|^2 / (2 h^2)); 0 = median "
                           "pairwise distance of the pooled samples; 0.1 suits the 2-D grids (mode std 0.05, "
                           "spacing 0.5): it resolves mode width and misplaced modes",
                           0.0),
             msd::key_int("max_samples", 2000,
                          "use at most the first n samples of each set (cost grows as n^2)", 2, 1e6),
             msd::key_bool("per_class", true, "also report MMD within each class (scope class:<c>)")}}, {{"mmd", "mmd"}});
  }
  explicit Mmd(const msd::Params& params)
      : bandwidth_(params.get_real("bandwidth")),
        max_samples_(params.get_int("max_samples")),
        per_class_(params.get_bool("per_class")) {}

  std::vector<msd::MetricValue> evaluate(const msd::EvalContext& ctx) override {
    const torch::Tensor gen = as_matrix(ctx.generated.x);
    const torch::Tensor ref = as_matrix(ctx.reference.x);
    check_same_dim("mmd", gen, ref);
    std::vector<msd::MetricValue> out;
    double h = bandwidth_;
    if (h == 0.0) {
      h = median_distance(gen, ref);
      out.push_back({"mmd_bandwidth", h, ""});
    }
    out.push_back({"mmd", mmd2(gen, ref, h), ""});
    if (per_class_) {
      // Every scope uses the whole-model bandwidth, so that class values share one kernel.
      const torch::Tensor gen_labels = as_labels(ctx.generated.labels);
      const torch::Tensor ref_labels = as_labels(ctx.reference.labels);
      for (std::int64_t c : classes_of(gen_labels, ref_labels)) {
        out.push_back({"mmd", mmd2(rows_of_class(gen, gen_labels, c), rows_of_class(ref, ref_labels, c), h),
                       class_scope(c)});
      }
    }
    return out;
  }

 private:
  torch::Tensor first(const torch::Tensor& x) const { return x.narrow(0, 0, std::min(x.size(0), max_samples_)); }

  // Gretton et al. (2012): MMD_u^2 = mean_{i!=j} k(x_i,x_j) + mean_{i!=j} k(y_i,y_j) - 2 mean k(x_i,y_j).
  // Leaving out the diagonal makes it unbiased, hence it can dip below zero for equal distributions.
  double mmd2(const torch::Tensor& x_all, const torch::Tensor& y_all, double h) const {
    const torch::Tensor x = first(x_all);
    const torch::Tensor y = first(y_all);
    const double m = static_cast<double>(x.size(0));
    const double n = static_cast<double>(y.size(0));
    if (m < 2 || n < 2) return kNaN;
    const double scale = -0.5 / (h * h);
    const torch::Tensor kxx = (squared_distances(x, x) * scale).exp();
    const torch::Tensor kyy = (squared_distances(y, y) * scale).exp();
    const torch::Tensor kxy = (squared_distances(x, y) * scale).exp();
    const double xx = (kxx.sum() - kxx.diagonal().sum()).item<double>() / (m * (m - 1));
    const double yy = (kyy.sum() - kyy.diagonal().sum()).item<double>() / (n * (n - 1));
    const double xy = kxy.sum().item<double>() / (m * n);
    return xx + yy - 2.0 * xy;
  }

  // Median heuristic: the median distance between distinct points of the pooled sample. The median
  // of 500 + 500 points (~500k pairs) is already stable to well under 1%, and a full 4000-point
  // distance matrix would cost 128 MB.
  static double median_distance(const torch::Tensor& x, const torch::Tensor& y) {
    constexpr std::int64_t kPerSet = 500;
    const torch::Tensor z = torch::cat({x.narrow(0, 0, std::min(x.size(0), kPerSet)),
                                        y.narrow(0, 0, std::min(y.size(0), kPerSet))});
    const std::int64_t p = z.size(0);
    if (p < 2) throw std::invalid_argument("mmd: the median heuristic needs at least 2 samples");
    const torch::Tensor upper = torch::ones({p, p}, torch::kBool).triu(1);
    const double h = squared_distances(z, z).masked_select(upper).median().sqrt().item<double>();
    if (!(h > 0.0)) throw std::invalid_argument("mmd: all samples coincide, the median heuristic gives bandwidth 0");
    return h;
  }

  double bandwidth_;
  std::int64_t max_samples_;
  bool per_class_;
};

// --- mode_coverage ------------------------------------------------------------------------------

class ModeCoverage final : public msd::Metric {
 public:
  static msd::PluginInfo info() {
    return with_summary({msd::PluginKind::metric,
            "mode_coverage",
            kVersion,
            "fraction of a known mixture's modes reached by samples of the right class, and sample precision",
            {msd::key_real("radius", 3.0,
                           "a sample is near a mode within this many of the mode's standard deviations "
                           "(in 2-D, 3 holds 98.9% of a mode's own mass)",
                           0.0),
             msd::key_real("min_share", 0.1,
                           "a mode is covered when its class's samples near it number at least this share "
                           "of the expected count (class samples x mode weight)",
                           0.0, 1.0),
             msd::key_bool("per_class", true, "also report coverage and near_mode of each class (scope class:<c>)")}}, {{"coverage", "coverage"}, {"near_mode", "near_mode"}});
  }
  explicit ModeCoverage(const msd::Params& params)
      : radius_(params.get_real("radius")),
        min_share_(params.get_real("min_share")),
        per_class_(params.get_bool("per_class")) {}

  std::vector<msd::MetricValue> evaluate(const msd::EvalContext& ctx) override {
    const std::optional<msd::GaussianMixture> density =
        ctx.data ? ctx.data->true_density() : std::optional<msd::GaussianMixture>{};
    if (!density) throw std::runtime_error("mode_coverage needs a dataset with a known density");
    const torch::Tensor x = as_matrix(ctx.generated.x);
    const torch::Tensor labels = as_labels(ctx.generated.labels);
    const torch::Tensor means = as_matrix(density->means);
    const torch::Tensor stds = density->stds.to(torch::kCPU, torch::kFloat64);
    const torch::Tensor weights = density->weights.to(torch::kCPU, torch::kFloat64);
    const torch::Tensor mode_class = as_labels(density->mode_class);
    check_same_dim("mode_coverage", x, means);

    // [N, M] relations between samples and modes.
    const torch::Tensor within = squared_distances(x, means).sqrt() <= stds.unsqueeze(0) * radius_;
    const torch::Tensor own = labels.unsqueeze(1) == mode_class.unsqueeze(0);
    const torch::Tensor near_own = (within & own).any(1);
    const torch::Tensor near_other = (within & ~own).any(1);

    // Per mode: samples of its class near it, against what a perfect model would put there.
    const torch::Tensor hits = (within & own).sum(0).to(torch::kFloat64);
    const torch::Tensor expected = own.sum(0).to(torch::kFloat64) * weights;
    // A mode whose class has no samples at all is not covered (expected 0 would pass trivially).
    const torch::Tensor covered = (hits > 0) & (hits >= expected * min_share_);

    std::vector<msd::MetricValue> out{
        {"coverage", fraction(covered), ""},
        {"near_mode", fraction(near_own), ""},
        {"off_class", fraction(near_other & ~near_own), ""}};
    if (per_class_) {
      for (std::int64_t c : classes_of(mode_class, labels)) {
        out.push_back({"coverage", fraction(covered.masked_select(mode_class == c)), class_scope(c)});
        out.push_back({"near_mode", fraction(near_own.masked_select(labels == c)), class_scope(c)});
      }
    }
    return out;
  }

 private:
  // Share of true entries of a bool vector; NaN when empty.
  static double fraction(const torch::Tensor& flags) {
    return flags.numel() == 0 ? kNaN : flags.to(torch::kFloat64).mean().item<double>();
  }

  double radius_;
  double min_share_;
  bool per_class_;
};

// --- cost ---------------------------------------------------------------------------------------

class Cost final : public msd::Metric {
 public:
  static msd::PluginInfo info() {
    return with_summary({msd::PluginKind::metric,
            "cost",
            kVersion,
            "network evaluations and parameters per sample, students, and measured latency per sample; for "
            "students also the teacher's latency (timed alternately with theirs) and the acceleration, "
            "teacher latency / student latency",
            {msd::key_int("batch", 1000, "samples per timed call", 1, 1e7),
             msd::key_int("repeats", 3, "timed calls after one warm-up; the median is reported", 1, 1000)}}, {{"nfe", "NFE"}, {"latency_ms_per_sample", "ms/sample"}, {"params", "params"}});
  }
  explicit Cost(const msd::Params& params) : batch_(params.get_int("batch")), repeats_(params.get_int("repeats")) {}

  std::vector<msd::MetricValue> evaluate(const msd::EvalContext& ctx) override {
    std::vector<msd::MetricValue> out;
    // The dataset itself under test has no networks: nothing to count.
    if (ctx.nfe != 0 || ctx.num_students != 0) {
      out.push_back({"nfe", static_cast<double>(ctx.nfe), ""});
      out.push_back({"params", static_cast<double>(ctx.params_per_sample), ""});
      out.push_back({"params_total", static_cast<double>(ctx.params_total), ""});
      out.push_back({"students", static_cast<double>(ctx.num_students), ""});
    }
    if (!ctx.sample) return out;
    if (!ctx.teacher_sample) {
      out.push_back({"latency_ms_per_sample", latency_ms({ctx.sample}).front(), ""});
      return out;
    }
    const std::vector<double> ms = latency_ms({ctx.sample, ctx.teacher_sample});
    out.push_back({"latency_ms_per_sample", ms[0], ""});
    out.push_back({"teacher_latency_ms_per_sample", ms[1], ""});
    out.push_back({"teacher_nfe", static_cast<double>(ctx.teacher_nfe), ""});
    out.push_back({"acceleration", ms[1] / ms[0], ""});
    return out;
  }

 private:
  using Sampler = std::function<msd::Batch(std::int64_t)>;

  /// Median milliseconds per sample of each sampler. The calls alternate between the samplers, so that
  /// a slow spell of a shared machine falls on all of them; one warm-up call each absorbs one-time
  /// costs (allocator growth, lazy initialisation), and the median ignores a stray slow call.
  std::vector<double> latency_ms(const std::vector<Sampler>& samplers) const {
    for (const Sampler& sample : samplers) sample(batch_);
    std::vector<std::vector<double>> ms(samplers.size());
    for (std::int64_t r = 0; r < repeats_; ++r) {
      for (size_t i = 0; i < samplers.size(); ++i) {
        const auto start = std::chrono::steady_clock::now();
        samplers[i](batch_);
        ms[i].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
      }
    }
    std::vector<double> medians;
    for (std::vector<double>& times : ms) {
      std::sort(times.begin(), times.end());
      const size_t mid = times.size() / 2;
      const double median = times.size() % 2 ? times[mid] : 0.5 * (times[mid - 1] + times[mid]);
      medians.push_back(median / static_cast<double>(batch_));
    }
    return medians;
  }

  std::int64_t batch_;
  std::int64_t repeats_;
};

}  // namespace

// Parenthesised: the macro takes one argument and the braces hold commas.
MSD_PLUGIN_LIBRARY((msd::PluginLibrary{"toy_metrics",
                                       {msd::describe<SlicedWasserstein>(), msd::describe<Mmd>(),
                                        msd::describe<ModeCoverage>(), msd::describe<Cost>()}}))
