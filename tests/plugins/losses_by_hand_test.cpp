// The distillation losses and the EDM pieces under them (the Heun sampler, the truncated sigma sampler,
// p-mixing), on cases small enough to check by hand: each test works out its values in its comment.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "load_plugin.h"
#include "msd/edm.h"
#include "msd/loss.h"

namespace {

/// A stand-in network: D(x) = x, and one feature "f" of `width` channels (x's first coordinate in each).
/// Losses read its feature names and shapes in setup(); the tests give the features themselves.
class Identity final : public msd::DenoiserFrom<Identity, std::int64_t> {
 public:
  explicit Identity(std::int64_t width) : DenoiserFrom(width) {}
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) override { return x; }
  msd::DenoiserOutput denoise_with_features(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) override {
    return {x, {x.narrow(1, 0, 1).expand({x.size(0), options_}).contiguous()}};
  }
  std::vector<std::string> feature_names() const override { return {"f"}; }
};

/// A step whose real batch is noised at `sigma` and whose student and teacher outputs are given.
class Given final : public msd::StepContext {
 public:
  Given(msd::DenoiserOutput student, msd::DenoiserOutput teacher, torch::Tensor x0, torch::Tensor sigma)
      : student_(std::move(student)), teacher_(std::move(teacher)) {
    batch_.x0 = x0;
    batch_.sigma = sigma;
    batch_.labels = torch::zeros({x0.size(0)}, torch::kInt64);
  }
  std::int64_t iteration() const override { return 0; }
  bool updates_student() const override { return true; }
  bool logs() const override { return true; }
  const msd::Random& random(std::int64_t) const override { return random_; }
  const msd::NoisedBatch& noised_real() override { return batch_; }
  const msd::DenoiserOutput& student_on_noised() override { return student_; }
  const msd::DenoiserOutput& teacher_on_noised() override { return teacher_; }
  const msd::GeneratedBatch& generated() override { throw std::logic_error("not used"); }
  msd::PairedBatch paired() override { throw std::logic_error("not used"); }

 private:
  msd::DenoiserOutput student_, teacher_;
  msd::NoisedBatch batch_;
  msd::Random random_{torch::kCPU};
};

/// D(x) = value wherever x is: a denoiser whose prediction noise cannot move.
class Constant final : public msd::DenoiserFrom<Constant, double> {
 public:
  explicit Constant(double value) : DenoiserFrom(value) {
    value_ = register_parameter("value", torch::tensor(static_cast<float>(value)));
  }
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) override {
    return value_.expand_as(x);
  }

 private:
  torch::Tensor value_;
};

/// A step whose one-step samples are `x` (the noise and labels do not matter to Constant denoisers).
class Generated final : public msd::StepContext {
 public:
  explicit Generated(torch::Tensor x) {
    batch_.x = x;
    batch_.noise = torch::zeros_like(x);
    batch_.labels = torch::zeros({x.size(0)}, torch::kInt64);
  }
  std::int64_t iteration() const override { return 0; }
  bool updates_student() const override { return true; }
  bool logs() const override { return true; }
  const msd::Random& random(std::int64_t) const override { return random_; }
  const msd::NoisedBatch& noised_real() override { throw std::logic_error("not used"); }
  const msd::DenoiserOutput& student_on_noised() override { throw std::logic_error("not used"); }
  const msd::DenoiserOutput& teacher_on_noised() override { throw std::logic_error("not used"); }
  const msd::GeneratedBatch& generated() override { return batch_; }
  msd::PairedBatch paired() override { throw std::logic_error("not used"); }

 private:
  msd::GeneratedBatch batch_;
  msd::Random random_{torch::kCPU};
};

std::unique_ptr<msd::Loss> make(const std::string& name, msd::Denoiser& student, msd::Denoiser& teacher,
                                const std::map<std::string, msd::Value>& overrides = {}) {
  auto loss = msd::test::make_plugin<msd::Loss>("distill_losses", name, overrides);
  msd::LossSetup setup;
  setup.teacher = &teacher;
  setup.student = &student;
  setup.student_type = msd::StudentType::multi_step;
  setup.sample_shape = {2};
  setup.sigma_data = 0.5;
  loss->setup(setup);
  return loss;
}

torch::Tensor rows(std::vector<std::vector<float>> values) {
  std::vector<torch::Tensor> out;
  for (const auto& row : values) out.push_back(torch::tensor(row));
  return torch::stack(out);
}

// The student's feature (1, 2), the teacher's (1, 0); equal widths, so the adapter A starts as the
// identity: ||A f_s - f_t||^2 / ||f_t||^2 = (0 + 4) / 1 = 4. Its gradient is 2 (A f_s - f_t) / ||f_t||^2
// = (0, 4) for f_s, the same for A's bias, and (0, 4)^T (1, 2) = [[0, 0], [4, 8]] for A's weight.
TEST(KdFeature, RelativeSquaredErrorThroughAnIdentityAdapter) {
  Identity student(2), teacher(2);
  auto loss = make("kd_feature", student, teacher);
  const torch::Tensor fs = rows({{1, 2}}).requires_grad_(true);
  Given ctx({fs, {fs}}, {rows({{1, 0}}), {rows({{1, 0}})}}, rows({{0, 0}}), torch::ones({1}));
  const torch::Tensor value = loss->student_loss(ctx);
  EXPECT_FLOAT_EQ(value.item<float>(), 4.0f);
  value.backward();
  EXPECT_TRUE(torch::allclose(fs.grad(), rows({{0, 4}})));
  const std::vector<torch::Tensor> adapter = loss->extra_parameters();  // weight, bias
  ASSERT_EQ(adapter.size(), 2u);
  EXPECT_TRUE(torch::allclose(adapter[0].grad(), rows({{0, 0}, {4, 8}})));
  EXPECT_TRUE(torch::allclose(adapter[1].grad(), torch::tensor({0.0f, 4.0f})));
}

// A student narrower than the teacher: the adapter maps 2 channels to 3 and starts random (so the loss
// is positive), and the student's copy of the teacher's features leaves nothing to learn only when the
// widths agree.
TEST(KdFeature, AdaptsWidthsAndNamesWhatItCannotFind) {
  Identity narrow(2), wide(3);
  auto loss = make("kd_feature", narrow, wide);
  ASSERT_EQ(loss->extra_parameters().at(0).sizes(), (std::vector<std::int64_t>{3, 2}));
  Given ctx({rows({{1, 2}}), {rows({{1, 2}})}}, {rows({{1, 0, 0}}), {rows({{1, 0, 0}})}}, rows({{0, 0}}),
            torch::ones({1}));
  EXPECT_GT(loss->student_loss(ctx).item<double>(), 0.0);
  try {
    make("kd_feature", narrow, wide, {{"features", std::vector<std::string>{"mid"}}});
    FAIL() << "an unknown feature name was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("which the student does not name; it names f"), std::string::npos)
        << error.what();
  }
}

// Student features (1, 0) and (0, 1) have cosine-similarity matrix I; the teacher's, (1, 0) twice, the
// all-ones J. The loss is mean((I - J)^2) = (0 + 1 + 1 + 0) / 4 = 0.5. Its gradient on the Gram matrix
// is (G - T) / 2 = [[0, -1/2], [-1/2, 0]]; through G = N N^T (both factors) it is [[0, -1], [-1, 0]] on
// the normalised rows, which are unit already, so each row keeps the part orthogonal to itself: the
// gradient on the features is [[0, -1], [-1, 0]].
TEST(KdRelational, GramMatricesOfTheBatch) {
  Identity student(2), teacher(2);
  auto loss = make("kd_relational", student, teacher);
  const torch::Tensor fs = rows({{1, 0}, {0, 1}}).requires_grad_(true);
  const torch::Tensor ft = rows({{1, 0}, {1, 0}});
  Given ctx({fs, {fs}}, {ft, {ft}}, rows({{0, 0}, {0, 0}}), torch::ones({2}));
  const torch::Tensor value = loss->student_loss(ctx);
  EXPECT_FLOAT_EQ(value.item<float>(), 0.5f);
  value.backward();
  EXPECT_TRUE(torch::allclose(fs.grad(), rows({{0, -1}, {-1, 0}}), 1e-5, 1e-6)) << fs.grad();
}

// EDM's weight at sigma 1 with sigma_data 0.5: (1 + 0.25) / (1 * 0.25) = 5. The denoised sample is off
// by (0.1, 0.2): mean(5 * (0.01, 0.04)) = 0.125, with gradient 2 * 5 * (0.1, 0.2) / 2 = (0.5, 1.0).
TEST(Diffusion, EdmWeightedDenoisingError) {
  Identity student(2), teacher(2);
  auto loss = make("diffusion", student, teacher);
  const torch::Tensor x0 = rows({{1, -1}});
  const torch::Tensor denoised = (x0 + rows({{0.1f, 0.2f}})).requires_grad_(true);
  Given ctx({denoised, {}}, {x0, {}}, x0, torch::ones({1}));
  const torch::Tensor value = loss->student_loss(ctx);
  EXPECT_NEAR(value.item<double>(), 0.125, 1e-6);
  value.backward();
  EXPECT_TRUE(torch::allclose(denoised.grad(), rows({{0.5f, 1.0f}})));
}

// The same weight on the distance to the teacher's prediction instead of the clean sample: the student
// at (1, 1), the teacher at (1, 0.8), sigma 1: mean(5 * (0, 0.04)) = 0.1; gradient (0, 2 * 5 * 0.2 / 2).
TEST(KdPredictionValue, EdmWeightedDistanceToTheTeachersPrediction) {
  Identity student(2), teacher(2);
  auto loss = make("kd_prediction", student, teacher);
  const torch::Tensor mine = rows({{1, 1}}).requires_grad_(true);
  Given ctx({mine, {}}, {rows({{1, 0.8f}}), {}}, rows({{0, 0}}), torch::ones({1}));
  const torch::Tensor value = loss->student_loss(ctx);
  EXPECT_NEAR(value.item<double>(), 0.1, 1e-6);
  value.backward();
  EXPECT_TRUE(torch::allclose(mine.grad(), rows({{0.0f, 1.0f}})));
}

// DM with a teacher that predicts 0 everywhere and a fake score that predicts 1: for the sample (1, 3) the
// normaliser is mean |x - mu_real| = 2, so the DM direction is (mu_fake - mu_real) / 2 = (0.5, 0.5). The
// loss 0.5 mean((x - stopgrad(x - g))^2) is 0.5 * 0.25 = 0.125 and its gradient g / 2 = (0.25, 0.25)
// (the mean over 2 coordinates), pushing x away from the fake score's prediction.
TEST(DistributionMatching, DirectionNormalisedByTheDistanceToTheTeachersPrediction) {
  Constant zero(0.0), one(1.0);
  auto dm = msd::test::make_plugin<msd::Loss>("distill_losses", "dm");
  auto donor = msd::test::make_plugin<msd::Loss>("distill_losses", "dm");
  msd::LossSetup setup;
  setup.student_type = msd::StudentType::one_step;
  setup.teacher = &zero;
  dm->setup(setup);
  setup.teacher = &one;
  donor->setup(setup);
  torch::serialize::OutputArchive saved;  // the donor's fake score (a copy of its teacher: 1) into dm
  donor->save(saved);
  std::stringstream bytes;
  saved.save_to(bytes);
  torch::serialize::InputArchive loaded;
  loaded.load_from(bytes);
  dm->load(loaded);

  const torch::Tensor x = rows({{1, 3}}).requires_grad_(true);
  Generated ctx(x);
  const torch::Tensor value = dm->student_loss(ctx);
  EXPECT_FLOAT_EQ(value.item<float>(), 0.125f);
  value.backward();
  EXPECT_TRUE(torch::allclose(x.grad(), rows({{0.25f, 0.25f}})));
}

// Heun at 2 levels (2, then 1, then the last Euler step to 0) with D(x) = x / 2, from x = 1:
// d = (x - D) / 2 = 0.25, Euler to sigma 1 gives 0.75, d' = 0.375, Heun gives 1 - (0.25 + 0.375) / 2
// = 0.6875; the step to 0 is x - 1 * (x - D(x)) = D(x) = 0.34375. Three network evaluations.
TEST(HeunSampler, TwoLevelsByHand) {
  msd::edm::SamplerOptions options;
  options.num_steps = 2;
  options.sigma_min = 1.0;
  options.sigma_max = 2.0;
  std::vector<double> seen;
  const msd::edm::DenoiseFn half = [&seen](const torch::Tensor& x, double sigma, const torch::Tensor&) {
    seen.push_back(sigma);
    return x / 2;
  };
  // heun_sample starts from noise * sigma_max: noise 0.5 is x = 1.
  const torch::Tensor x = msd::edm::heun_sample(half, torch::full({1, 1}, 0.5), torch::zeros({1}, torch::kInt64), options);
  EXPECT_NEAR(x.item<double>(), 0.34375, 1e-6);
  ASSERT_EQ(seen.size(), 3u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_NEAR(seen[i], std::vector<double>({2.0, 1.0, 1.0})[i], 1e-12);
  EXPECT_EQ(msd::edm::heun_nfe(options), 3);
}

// ln sigma ~ N(p_mean, p_std^2) truncated to sigma >= exp(p_mean), the upper half: a sample lies below
// exp(p_mean + p_std) with probability (Phi(1) - 1/2) / (1/2) = 0.6827, and never below the bound.
TEST(TruncatedSigmaSampler, DrawsTheNormalOfLnSigmaInsideTheRange) {
  const double p_mean = -1.2, p_std = 1.2;
  const msd::Random random(torch::kCPU);
  torch::manual_seed(3);
  const torch::Tensor sigma =
      msd::edm::sample_training_sigma_in(200000, p_mean, p_std, std::exp(p_mean), INFINITY, random).to(torch::kFloat64);
  EXPECT_GE(sigma.min().item<double>(), std::exp(p_mean) * (1 - 1e-6));
  const double below = (sigma < std::exp(p_mean + p_std)).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(below, 0.6827, 0.005);
  // A bounded range keeps every draw inside it.
  const torch::Tensor inside = msd::edm::sample_training_sigma_in(1000, p_mean, p_std, 0.5, 2.0, random);
  EXPECT_GE(inside.min().item<double>(), 0.5);
  EXPECT_LT(inside.max().item<double>(), 2.0);
}

// p-mixing for the upper half of the prior, [exp(p_mean), inf): a level falls below the range only when
// drawn from the whole prior (probability p) and then below its median (1/2): p / 2 = 0.15 at p = 0.3,
// none at p = 0.
TEST(CellSigma, PMixingDrawsOutsideTheRangeWithProbabilityPTimesThePriorsMassThere) {
  const msd::edm::NoisePrior prior;
  const double median = std::exp(prior.p_mean);
  const msd::Random random(torch::kCPU);
  torch::manual_seed(4);
  const auto below = [&](double p) {
    const torch::Tensor sigma = msd::edm::sample_cell_sigma(100000, prior, median, INFINITY, p, random);
    return (sigma < median * (1 - 1e-6)).to(torch::kFloat64).mean().item<double>();
  };
  EXPECT_EQ(below(0.0), 0.0);
  EXPECT_NEAR(below(0.3), 0.15, 0.005);
  // A student of every level draws from the prior: half of it below the median.
  const torch::Tensor all = msd::edm::sample_cell_sigma(100000, prior, 0.0, INFINITY, 0.0, random);
  EXPECT_NEAR((all < median).to(torch::kFloat64).mean().item<double>(), 0.5, 0.005);
}

}  // namespace
