// The feature-space statistics behind image_metrics (plugins/fmnist/feature_stats.cpp, compiled into
// this binary) against closed forms and hand-checked cases, and the image_metrics plugin itself, loaded
// from libmsd_fmnist.so, on a dataset whose feature network is the identity.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "feature_stats.h"
#include "load_plugin.h"
#include "msd/dataset.h"
#include "msd/metric.h"

namespace {

using msd::fmnist::Gaussian;

torch::Tensor matrix(std::vector<double> values, std::int64_t rows, std::int64_t cols) {
  return torch::tensor(values, torch::kFloat64).view({rows, cols});
}

// --- Fréchet distance ---------------------------------------------------------------------------

TEST(FrechetDistance, DiagonalCovariancesMatchTheClosedForm) {
  // Commuting covariances: FD = |dmu|^2 + sum_i (sqrt a_i - sqrt b_i)^2.
  const Gaussian a{torch::tensor({0.0, 1.0, 2.0}, torch::kFloat64), torch::diag(torch::tensor({1.0, 4.0, 9.0}, torch::kFloat64))};
  const Gaussian b{torch::tensor({1.0, 1.0, 0.0}, torch::kFloat64), torch::diag(torch::tensor({4.0, 1.0, 0.25}, torch::kFloat64))};
  const double expected = (1.0 + 0.0 + 4.0) + (1.0 + 1.0 + 6.25);
  EXPECT_NEAR(msd::fmnist::frechet_distance(a, b), expected, 1e-10);
}

TEST(FrechetDistance, NonCommutingTwoByTwoMatchesTheClosedForm) {
  // For a 2x2 PSD matrix M, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); with M = S1^1/2 S2 S1^1/2,
  // tr M = tr(S1 S2) and det M = det S1 det S2, so no matrix square root is needed.
  const torch::Tensor s1 = matrix({2.0, 1.0, 1.0, 2.0}, 2, 2);
  const torch::Tensor s2 = matrix({1.0, -0.5, -0.5, 3.0}, 2, 2);
  ASSERT_FALSE(torch::allclose(s1.mm(s2), s2.mm(s1)));  // the case scipy's sqrtm(S1 S2) gets complex on
  const Gaussian a{torch::tensor({0.5, -1.0}, torch::kFloat64), s1};
  const Gaussian b{torch::tensor({0.0, 1.0}, torch::kFloat64), s2};
  const double tr_m = s1.mm(s2).trace().item<double>();
  const double det_m = 3.0 * 2.75;
  const double expected = (0.25 + 4.0) + 4.0 + 4.0 - 2.0 * std::sqrt(tr_m + 2.0 * std::sqrt(det_m));
  EXPECT_NEAR(msd::fmnist::frechet_distance(a, b), expected, 1e-10);
  EXPECT_NEAR(msd::fmnist::frechet_distance(b, a), expected, 1e-10);
}

TEST(FrechetDistance, IsZeroForASingularGaussianAndItself) {
  // Rank-1 covariance: rounding gives tiny negative eigenvalues that must be clamped, not NaN.
  const torch::Tensor v = matrix({1.0, 2.0, 3.0}, 3, 1);
  const Gaussian a{torch::zeros({3}, torch::kFloat64), v.mm(v.t())};
  const double fd = msd::fmnist::frechet_distance(a, a);
  EXPECT_FALSE(std::isnan(fd));
  EXPECT_NEAR(fd, 0.0, 1e-6);
}

TEST(FitGaussian, GivesMeanAndUnbiasedCovariance) {
  const Gaussian g = msd::fmnist::fit_gaussian(matrix({0.0, 0.0, 2.0, 0.0, 1.0, 3.0}, 3, 2));
  EXPECT_TRUE(torch::allclose(g.mean, torch::tensor({1.0, 1.0}, torch::kFloat64)));
  // Deviations (-1,-1), (1,-1), (0,2): sums of products 2, 0, 6, divided by N - 1 = 2.
  EXPECT_TRUE(torch::allclose(g.cov, matrix({1.0, 0.0, 0.0, 3.0}, 2, 2)));
}

// --- KID ----------------------------------------------------------------------------------------

TEST(Kid, MatchesAHandComputedCase) {
  // D = 1, k(a, b) = (ab + 1)^3. x = {0, 1}, y = {1, 2}: a subset of size 2 is the whole set, so the
  // estimate is exact: mean_{i!=j} k(x) = 1, mean_{i!=j} k(y) = 27, mean k(x, y) = (1+1+8+27)/4.
  const double kid = msd::fmnist::kernel_inception_distance(matrix({0.0, 1.0}, 2, 1), matrix({1.0, 2.0}, 2, 1), {2, 3});
  EXPECT_NEAR(kid, 1.0 + 27.0 - 2.0 * 37.0 / 4.0, 1e-12);
}

TEST(Kid, IsNearZeroForOneDistributionAndPositiveForAShiftedOne) {
  torch::manual_seed(0);
  const torch::Tensor x = torch::randn({2000, 8}, torch::kFloat64);
  const torch::Tensor y = torch::randn({2000, 8}, torch::kFloat64);
  const double same = msd::fmnist::kernel_inception_distance(x, y, {500, 20});
  const double shifted = msd::fmnist::kernel_inception_distance(x, y + 0.5, {500, 20});
  EXPECT_LT(std::abs(same), 0.01);
  EXPECT_GT(shifted, 0.1);
}

TEST(Kid, RejectsASubsetLargerThanASet) {
  EXPECT_THROW(msd::fmnist::kernel_inception_distance(torch::zeros({3, 2}), torch::zeros({5, 2}), {4, 1}),
               std::invalid_argument);
}

// --- precision and recall -----------------------------------------------------------------------

TEST(PrecisionRecall, MatchesAHandCheckedSet) {
  // Real points 0, 1, 2, 3 on a line: with k = 1 each ball has radius 1, covering [-1, 4].
  // Generated 0.5 (inside) and 10 (outside): precision 1/2. The generated balls have radius 9.5
  // (each other's distance): 0.5's ball covers every real point, so recall is 1.
  const torch::Tensor real = matrix({0, 0, 1, 0, 2, 0, 3, 0}, 4, 2);
  const torch::Tensor generated = matrix({0.5, 0, 10, 0}, 2, 2);
  const msd::fmnist::PrecisionRecall pr = msd::fmnist::precision_recall(real, generated, 1);
  EXPECT_DOUBLE_EQ(pr.precision, 0.5);
  EXPECT_DOUBLE_EQ(pr.recall, 1.0);
  // k = 2: real radii 2, 1, 1, 2 change nothing for 0.5; the generated set needs 3 points then.
  EXPECT_THROW(msd::fmnist::precision_recall(real, generated, 2), std::invalid_argument);
}

TEST(PrecisionRecall, DropsRecallWhenGeneratedSamplesCollapse) {
  // Generated samples all near real point 0 (mode collapse): precise but with poor recall.
  const torch::Tensor real = matrix({0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0}, 6, 2);
  const torch::Tensor generated = matrix({0, 0.01, 0.02, 0, 0, 0.03, 0.01, 0.01}, 4, 2);
  const msd::fmnist::PrecisionRecall pr = msd::fmnist::precision_recall(real, generated, 1);
  EXPECT_DOUBLE_EQ(pr.precision, 1.0);
  EXPECT_DOUBLE_EQ(pr.recall, 1.0 / 6.0);
}

TEST(ConditionalAccuracy, CountsArgmaxMatches) {
  const torch::Tensor logits = matrix({2, 1, 0, 3, 5, 0}, 3, 2);
  EXPECT_NEAR(msd::fmnist::conditional_accuracy(logits, torch::tensor({0, 1, 1}, torch::kInt64)), 2.0 / 3.0, 1e-12);
}

// --- the plugin ---------------------------------------------------------------------------------

// Features are the samples themselves; logits say class 1 when the first coordinate exceeds 1.5.
class IdentityFeatures final : public msd::FeatureSpace {
 public:
  msd::Embedding embed(const torch::Tensor& x) const override {
    const torch::Tensor f = x.to(torch::kFloat32).reshape({x.size(0), -1});
    const torch::Tensor first = f.select(1, 0) - 1.5;
    return {f, torch::stack({-first, first}, 1)};
  }
  double test_accuracy() const override { return 0.875; }
  std::string id() const override { return "identity"; }
};

// Two 2-D classes: class c is N((3c, 0), I) in both splits, so training images are as good as test ones.
class TwoBlobs final : public msd::Dataset {
 public:
  std::vector<std::int64_t> sample_shape() const override { return {2}; }
  std::int64_t num_classes() const override { return 2; }
  msd::Batch sample(std::int64_t n, const std::vector<std::int64_t>&) override {
    const torch::Tensor labels = torch::arange(n, torch::kInt64) % 2;
    return {sample_given(labels), labels};
  }
  torch::Tensor sample_given(const torch::Tensor& labels) override {
    const torch::Tensor centre = torch::stack({labels.to(torch::kFloat32) * 3.0, torch::zeros({labels.numel()})}, 1);
    return centre + torch::randn({labels.numel(), 2});
  }
  torch::Tensor sample_distinct(msd::Split split, const torch::Tensor& labels) override {
    splits_asked.push_back(split);
    return sample_given(labels);
  }
  const msd::FeatureSpace* feature_space() const override { return with_features ? &features_ : nullptr; }

  bool with_features = true;
  std::vector<msd::Split> splits_asked;

 private:
  IdentityFeatures features_;
};

std::optional<double> find(const std::vector<msd::MetricValue>& values, const std::string& name,
                           const std::string& scope = "") {
  for (const msd::MetricValue& v : values) {
    if (v.name == name && v.scope == scope) return v.value;
  }
  return std::nullopt;
}

std::unique_ptr<msd::Metric> image_metrics() {
  return msd::test::make_plugin<msd::Metric>("fmnist", "image_metrics",
                                             {{"samples", std::int64_t{400}}, {"kid_subset_size", std::int64_t{100}},
                                              {"kid_subsets", std::int64_t{10}}});
}

msd::EvalContext context(TwoBlobs& data, std::int64_t n, double shift) {
  msd::EvalContext ctx;
  ctx.data = &data;
  const torch::Tensor labels = torch::arange(n, torch::kInt64) % 2;
  ctx.generated = {data.sample_given(labels) + shift, labels};
  return ctx;
}

TEST(ImageMetricsPlugin, ReportsEveryValueAndItsFloorAgainstTheTestSplit) {
  torch::manual_seed(1);
  TwoBlobs data;
  const std::vector<msd::MetricValue> values = image_metrics()->evaluate(context(data, 500, 0.0));
  EXPECT_EQ(data.splits_asked, (std::vector<msd::Split>{msd::Split::test, msd::Split::train}));
  EXPECT_EQ(find(values, "feature_net.test_accuracy"), 0.875);
  EXPECT_EQ(find(values, "samples"), 400.0);
  EXPECT_EQ(find(values, "floor.samples"), 400.0);
  for (const std::string prefix : {"", "floor."}) {
    for (const std::string name : {"fd", "kid", "precision", "recall", "cond_accuracy"}) {
      EXPECT_TRUE(find(values, prefix + name).has_value()) << prefix + name;
    }
    EXPECT_TRUE(find(values, prefix + "fd", "class:1").has_value()) << prefix;
    EXPECT_TRUE(find(values, prefix + "cond_accuracy", "class:0").has_value()) << prefix;
  }
  // Generated samples from the data distribution score like the floor.
  EXPECT_LT(*find(values, "fd"), 0.2);
  EXPECT_GT(*find(values, "precision"), 0.8);
  EXPECT_GT(*find(values, "cond_accuracy"), 0.8);
}

TEST(ImageMetricsPlugin, ShiftedSamplesScoreWorseThanTheFloor) {
  torch::manual_seed(2);
  TwoBlobs data;
  const std::vector<msd::MetricValue> values = image_metrics()->evaluate(context(data, 400, 2.0));
  // Every generated point moved by 2 along both axes: |dmu|^2 = 8 in each class.
  EXPECT_NEAR(*find(values, "fd", "class:0"), 8.0, 1.0);
  EXPECT_GT(*find(values, "fd"), *find(values, "floor.fd") + 5.0);
  EXPECT_GT(*find(values, "kid"), *find(values, "floor.kid"));
  EXPECT_LT(*find(values, "precision"), *find(values, "floor.precision"));
}

TEST(ImageMetricsPlugin, ExplainsWhatIsMissing) {
  TwoBlobs data;
  try {
    image_metrics()->evaluate(context(data, 300, 0.0));
    ADD_FAILURE() << "accepted 300 generated samples for samples = 400";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("raise evaluate.samples"), std::string::npos) << e.what();
  }
  data.with_features = false;
  try {
    image_metrics()->evaluate(context(data, 400, 0.0));
    ADD_FAILURE() << "ran without a feature network";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no feature network"), std::string::npos) << e.what();
  }
}

}  // namespace
