// Metric plugins, loaded from the built libmsd_toy_metrics.so. The only test file that includes
// LibTorch.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "load_plugin.h"
#include "msd/dataset.h"
#include "msd/metric.h"

namespace {

using msd::Batch;
using msd::EvalContext;
using msd::MetricValue;

std::unique_ptr<msd::Metric> make(const std::string& name, const std::map<std::string, msd::Value>& overrides = {}) {
  return msd::test::make_plugin<msd::Metric>("toy_metrics", name, overrides);
}

// The value called `name` in `scope`; fails the test when it is missing or repeated.
double value_of(const std::vector<MetricValue>& values, const std::string& name, const std::string& scope = "") {
  std::optional<double> found;
  for (const MetricValue& v : values) {
    if (v.name != name || v.scope != scope) continue;
    EXPECT_FALSE(found.has_value()) << name << " [" << scope << "] reported twice";
    found = v.value;
  }
  EXPECT_TRUE(found.has_value()) << name << " [" << scope << "] not reported";
  return found.value_or(std::nan(""));
}

bool reports(const std::vector<MetricValue>& values, const std::string& name) {
  for (const MetricValue& v : values) {
    if (v.name == name) return true;
  }
  return false;
}

// Four 2-D modes on the corners of a square, two per class: class 0 owns (-1,-1) and (1,1),
// class 1 owns (-1,1) and (1,-1). Modes of the same class are equally likely.
class TinyMixture final : public msd::Dataset {
 public:
  explicit TinyMixture(bool known_density = true) : known_density_(known_density) {}

  std::vector<std::int64_t> sample_shape() const override { return {2}; }
  std::int64_t num_classes() const override { return 2; }

  Batch sample(std::int64_t n, const std::vector<std::int64_t>& classes) override {
    EXPECT_TRUE(classes.empty());
    const torch::Tensor labels = torch::randint(2, {n}, torch::kInt64);
    return {sample_given(labels), labels};
  }

  torch::Tensor sample_given(const torch::Tensor& labels) override {
    const torch::Tensor which = torch::randint(2, {labels.size(0)}, torch::kInt64);
    return sample_modes(kClassModes.index_select(0, labels).gather(1, which.unsqueeze(1)).squeeze(1));
  }

  // Exact samples of the given modes.
  torch::Tensor sample_modes(const torch::Tensor& modes) const {
    return mixture().means.index_select(0, modes) + kStd * torch::randn({modes.size(0), 2});
  }

  std::optional<msd::GaussianMixture> true_density() const override {
    if (!known_density_) return std::nullopt;
    return mixture();
  }

  static msd::GaussianMixture mixture() {
    return {torch::tensor({-1.0f, -1.0f, 1.0f, 1.0f, -1.0f, 1.0f, 1.0f, -1.0f}).view({4, 2}),
            torch::full({4}, kStd), torch::full({4}, 0.5f), torch::tensor({0, 0, 1, 1}, torch::kInt64)};
  }

  static constexpr float kStd = 0.05f;
  const torch::Tensor kClassModes = torch::tensor({0, 1, 2, 3}, torch::kInt64).view({2, 2});

 private:
  bool known_density_;
};

class ToyMetrics : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(0); }
};

EvalContext pair(const Batch& generated, const Batch& reference, msd::Dataset* data = nullptr) {
  EvalContext ctx;
  ctx.data = data;
  ctx.generated = generated;
  ctx.reference = reference;
  return ctx;
}

TEST_F(ToyMetrics, LibraryDeclaresFourMetricPlugins) {
  std::vector<std::string> names;
  for (const msd::PluginDescriptor& d : msd::test::load_library("toy_metrics").plugins) {
    names.push_back(d.info.name);
    EXPECT_EQ(d.info.kind, msd::PluginKind::metric) << d.info.name;
    for (const msd::KeySpec& key : d.info.keys) EXPECT_FALSE(key.doc.empty()) << d.info.name << "." << key.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"swd", "mmd", "mode_coverage", "cost"}));
}

TEST_F(ToyMetrics, SwdOfASetWithItselfIsZero) {
  TinyMixture data;
  const Batch b = data.sample(500, {});
  const auto values = make("swd")->evaluate(pair(b, b));
  EXPECT_NEAR(value_of(values, "swd"), 0.0, 1e-12);
  EXPECT_NEAR(value_of(values, "swd", "class:0"), 0.0, 1e-12);
  EXPECT_NEAR(value_of(values, "swd", "class:1"), 0.0, 1e-12);
}

// Shifting every point by v shifts each projection onto a unit direction u by v.u, so W2^2 = (v.u)^2
// and its mean over directions uniform on the circle is |v|^2 / 2: SW2 = |v| / sqrt(2). That holds
// for any point set, so few points suffice; the many directions bring the Monte Carlo error of the
// mean over directions to ~0.003.
TEST_F(ToyMetrics, SwdOfAShiftedSetIsTheShiftOverRootTwo) {
  const torch::Tensor x = torch::randn({256, 2});
  const torch::Tensor labels = torch::zeros({256}, torch::kInt64);
  const torch::Tensor v = torch::tensor({0.6f, 0.8f});  // |v| = 1
  const auto values = make("swd", {{"projections", std::int64_t{8192}}})
                          ->evaluate(pair({x, labels}, {x + v, labels}));
  EXPECT_NEAR(value_of(values, "swd"), 1.0 / std::sqrt(2.0), 0.015);
  EXPECT_NEAR(value_of(values, "swd", "class:0"), 1.0 / std::sqrt(2.0), 0.015);
}

// Between two finite samples of far-apart modes, SW2 is dominated by how many samples each mode
// happens to get: ~0.1 here for 2000 samples, against ~0.7 for a shift by (1, 1).
TEST_F(ToyMetrics, SwdSeparatesSameFromDifferentDistributions) {
  TinyMixture data;
  const Batch a = data.sample(2000, {});
  const Batch b{data.sample_given(a.labels), a.labels};
  const Batch shifted{b.x + 1.0, b.labels};
  const auto same = make("swd", {{"per_class", false}})->evaluate(pair(a, b));
  const auto different = make("swd", {{"per_class", false}})->evaluate(pair(a, shifted));
  EXPECT_EQ(same.size(), 1u);
  EXPECT_LT(value_of(same, "swd"), 0.2);
  EXPECT_GT(value_of(different, "swd"), 0.5);
}

TEST_F(ToyMetrics, SwdUsesTheFirstNOfUnequalSets) {
  const torch::Tensor x = torch::randn({300, 2});
  const torch::Tensor labels = torch::zeros({300}, torch::kInt64);
  // The reference's first 200 rows are the generated set itself.
  const Batch reference{torch::cat({x.narrow(0, 0, 200), torch::full({100, 2}, 50.0f)}), labels};
  const Batch generated{x.narrow(0, 0, 200), labels.narrow(0, 0, 200)};
  EXPECT_NEAR(value_of(make("swd")->evaluate(pair(generated, reference)), "swd"), 0.0, 1e-12);
}

TEST_F(ToyMetrics, MmdIsNearZeroForOneDistributionAndClearlyPositiveForTwo) {
  TinyMixture data;
  const Batch a = data.sample(2000, {});
  const Batch b{data.sample_given(a.labels), a.labels};
  // Twice the mode width: still overlapping the true modes, but visibly blurred. With bandwidth h,
  // modes of std s and s' give per mode h^2/(h^2+2s^2) + h^2/(h^2+2s'^2) - 2h^2/(h^2+s^2+s'^2) = 0.111
  // (2-D, h = 0.1, s = 0.05, s' = 0.1), and a pair shares a mode with probability 1/4 (1/2 within a
  // class): MMD^2 ~ 0.028 overall and ~0.056 per class.
  const Batch blurred{b.x + TinyMixture::kStd * torch::randn({2000, 2}) * std::sqrt(3.0f), b.labels};
  const auto same = make("mmd")->evaluate(pair(a, b));
  const auto different = make("mmd")->evaluate(pair(a, blurred));
  EXPECT_LT(std::abs(value_of(same, "mmd")), 0.003);
  EXPECT_LT(std::abs(value_of(same, "mmd", "class:1")), 0.005);
  EXPECT_NEAR(value_of(different, "mmd"), 0.028, 0.008);
  EXPECT_NEAR(value_of(different, "mmd", "class:0"), 0.056, 0.016);
  EXPECT_FALSE(reports(same, "mmd_bandwidth"));
}

TEST_F(ToyMetrics, MmdMedianHeuristicReportsItsBandwidth) {
  TinyMixture data;
  const Batch a = data.sample(1000, {});
  const Batch b{data.sample_given(a.labels), a.labels};
  const auto metric = make("mmd", {{"bandwidth", 0.0}, {"max_samples", std::int64_t{500}}});
  const auto same = metric->evaluate(pair(a, b));
  const auto different = metric->evaluate(pair(a, {b.x + 1.0, b.labels}));
  // Distances between corners of a 2 x 2 square: 0, 2, 2 and 2.83 in equal shares; median 2.
  EXPECT_NEAR(value_of(same, "mmd_bandwidth"), 2.0, 0.1);
  EXPECT_LT(std::abs(value_of(same, "mmd")), 0.01);
  EXPECT_GT(value_of(different, "mmd"), 0.05);
}

TEST_F(ToyMetrics, ModeCoverageOfExactSamples) {
  TinyMixture data;
  const Batch a = data.sample(2000, {});
  const auto values = make("mode_coverage")->evaluate(pair(a, a, &data));
  EXPECT_EQ(value_of(values, "coverage"), 1.0);
  // In 2-D, radius 3 holds 1 - exp(-4.5) = 98.9% of a mode's mass.
  EXPECT_NEAR(value_of(values, "near_mode"), 0.989, 0.01);
  EXPECT_EQ(value_of(values, "off_class"), 0.0);
  for (const char* scope : {"class:0", "class:1"}) {
    EXPECT_EQ(value_of(values, "coverage", scope), 1.0);
    EXPECT_NEAR(value_of(values, "near_mode", scope), 0.989, 0.015);
  }
}

TEST_F(ToyMetrics, ModeCoverageIsHalfWhenHalfTheModesGetNoSamples) {
  TinyMixture data;
  // Every class is sampled, but only at its first mode (0 for class 0, 2 for class 1).
  const torch::Tensor labels = torch::randint(2, {1000}, torch::kInt64);
  const Batch generated{data.sample_modes(labels * 2), labels};
  const auto values = make("mode_coverage")->evaluate(pair(generated, generated, &data));
  EXPECT_EQ(value_of(values, "coverage"), 0.5);
  EXPECT_EQ(value_of(values, "coverage", "class:0"), 0.5);
  EXPECT_EQ(value_of(values, "coverage", "class:1"), 0.5);
  EXPECT_GT(value_of(values, "near_mode"), 0.97);
}

TEST_F(ToyMetrics, ModeCoverageNeedsTheMinimumShare) {
  TinyMixture data;
  // Class 0: 96 samples at mode 0 and 4 at mode 1, which expects 50; 4 < 0.1 * 50 is not covered.
  const torch::Tensor modes = torch::cat({torch::zeros({96}, torch::kInt64), torch::ones({4}, torch::kInt64)});
  const Batch generated{data.sample_modes(modes), torch::zeros({100}, torch::kInt64)};
  const auto values = make("mode_coverage", {{"radius", 5.0}})->evaluate(pair(generated, generated, &data));
  EXPECT_EQ(value_of(values, "coverage", "class:0"), 0.5);
  // Class 1 has no samples at all: none of its modes is covered.
  EXPECT_EQ(value_of(values, "coverage", "class:1"), 0.0);
  EXPECT_EQ(value_of(values, "coverage"), 0.25);
  const auto lenient = make("mode_coverage", {{"radius", 5.0}, {"min_share", 0.05}})
                           ->evaluate(pair(generated, generated, &data));
  EXPECT_EQ(value_of(lenient, "coverage", "class:0"), 1.0);
}

TEST_F(ToyMetrics, ModeCoverageCountsSamplesNearAnotherClassesMode) {
  TinyMixture data;
  // 300 samples labelled class 0: 100 at its own mode 0, 200 at class 1's mode 2; plus 100 far away.
  const torch::Tensor modes = torch::cat({torch::zeros({100}, torch::kInt64), torch::full({200}, 2, torch::kInt64)});
  const torch::Tensor x = torch::cat({data.sample_modes(modes), torch::full({100, 2}, 9.0f)});
  const Batch generated{x, torch::zeros({400}, torch::kInt64)};
  const auto values = make("mode_coverage", {{"radius", 5.0}})->evaluate(pair(generated, generated, &data));
  EXPECT_EQ(value_of(values, "near_mode"), 0.25);
  EXPECT_EQ(value_of(values, "off_class"), 0.5);
  EXPECT_EQ(value_of(values, "near_mode", "class:0"), 0.25);
  EXPECT_TRUE(std::isnan(value_of(values, "near_mode", "class:1")));
}

TEST_F(ToyMetrics, ModeCoverageNeedsAKnownDensity) {
  TinyMixture unknown(/*known_density=*/false);
  const Batch a = unknown.sample(10, {});
  EXPECT_THROW(make("mode_coverage")->evaluate(pair(a, a, &unknown)), std::runtime_error);
  EXPECT_THROW(make("mode_coverage")->evaluate(pair(a, a, nullptr)), std::runtime_error);
}

TEST_F(ToyMetrics, CostReportsCountsAndMeasuredLatency) {
  std::vector<std::int64_t> calls;
  EvalContext ctx;
  ctx.nfe = 1;
  ctx.params_per_sample = 1234;
  ctx.params_total = 4936;
  ctx.num_students = 4;
  ctx.sample = [&calls](std::int64_t n) {
    calls.push_back(n);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return Batch{torch::zeros({n, 2}), torch::zeros({n}, torch::kInt64)};
  };
  const auto values = make("cost", {{"batch", std::int64_t{100}}, {"repeats", std::int64_t{4}}})->evaluate(ctx);
  EXPECT_EQ(value_of(values, "nfe"), 1.0);
  EXPECT_EQ(value_of(values, "params"), 1234.0);
  EXPECT_EQ(value_of(values, "params_total"), 4936.0);
  EXPECT_EQ(value_of(values, "students"), 4.0);
  // One warm-up plus four timed calls of 100 samples; each sleeps 2 ms, i.e. >= 0.02 ms per sample.
  EXPECT_EQ(calls, std::vector<std::int64_t>(5, 100));
  const double latency = value_of(values, "latency_ms_per_sample");
  EXPECT_GE(latency, 0.02);
  EXPECT_LT(latency, 10.0);
}

TEST_F(ToyMetrics, CostOfTheDatasetItselfReportsNoNetworkCounts) {
  EXPECT_TRUE(make("cost")->evaluate(EvalContext{}).empty());
  EvalContext timed;
  timed.sample = [](std::int64_t n) { return Batch{torch::zeros({n, 2}), torch::zeros({n}, torch::kInt64)}; };
  const auto values = make("cost", {{"batch", std::int64_t{10}}})->evaluate(timed);
  ASSERT_EQ(values.size(), 1u);
  EXPECT_EQ(values[0].name, "latency_ms_per_sample");
  EXPECT_GE(values[0].value, 0.0);
}

}  // namespace
