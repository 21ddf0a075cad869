// kd_prediction's noise levels: O2MKD's KD on the student's own batch, and MSD's TSM at the levels a
// one-step student is used at (levels = "generator"), with denoisers that record the levels they see.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <vector>

#include <torch/torch.h>

#include "load_plugin.h"
#include "msd/loss.h"

namespace {

/// D(x; sigma) = scale x, keeping every sigma it was asked for.
class Recording final : public msd::DenoiserFrom<Recording, double> {
 public:
  explicit Recording(double scale) : DenoiserFrom(scale) {}
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor&) override {
    seen = sigma.detach().clone();
    return x * options_;
  }
  torch::Tensor seen;
};

/// Real data at sigma 0.7: the batch a student would train on.
class RealBatch final : public msd::StepContext {
 public:
  RealBatch(msd::Denoiser& student, msd::Denoiser& teacher, std::int64_t n) : student_(student), teacher_(teacher) {
    batch_.x0 = torch::randn({n, 2});
    batch_.labels = torch::zeros({n}, torch::kInt64);
    batch_.sigma = torch::full({n}, 0.7);
    batch_.noise = torch::randn({n, 2});
    batch_.xt = batch_.x0 + 0.7 * batch_.noise;
  }
  std::int64_t iteration() const override { return 0; }
  bool updates_student() const override { return true; }
  bool logs() const override { return true; }
  const msd::Random& random(std::int64_t) const override { return random_; }
  const msd::NoisedBatch& noised_real() override { return batch_; }
  const msd::DenoiserOutput& student_on_noised() override {
    student_out_ = student_.denoise_with_features(batch_.xt, batch_.sigma, batch_.labels);
    return student_out_;
  }
  const msd::DenoiserOutput& teacher_on_noised() override {
    teacher_out_ = teacher_.denoise_with_features(batch_.xt, batch_.sigma, batch_.labels);
    return teacher_out_;
  }
  const msd::GeneratedBatch& generated() override { throw std::logic_error("not used"); }
  msd::PairedBatch paired() override { throw std::logic_error("not used"); }

 private:
  msd::Denoiser& student_;
  msd::Denoiser& teacher_;
  msd::NoisedBatch batch_;
  msd::DenoiserOutput student_out_, teacher_out_;
  msd::Random random_{torch::kCPU};
};

class KdPrediction : public ::testing::Test {
 protected:
  std::unique_ptr<msd::Loss> make(const std::string& levels, msd::StudentType type = msd::StudentType::one_step) {
    auto loss = msd::test::make_plugin<msd::Loss>("distill_losses", "kd_prediction", {{"levels", levels}});
    msd::LossSetup setup;
    setup.teacher = &teacher_;
    setup.student = &student_;
    setup.student_type = type;
    setup.generator_sigma = 80.0;  // setup.sampler: sigma in [0.002, 80]
    loss->setup(setup);
    return loss;
  }
  Recording student_{1.0}, teacher_{0.5};
};

TEST_F(KdPrediction, StudentLevelsAreThoseOfTheStudentsBatch) {
  torch::manual_seed(0);
  RealBatch ctx(student_, teacher_, 64);
  const double loss = make("student")->student_loss(ctx).item<double>();
  EXPECT_TRUE(torch::equal(student_.seen, torch::full({64}, 0.7)));
  // lambda(0.7) (1 - 0.5)^2 mean(xt^2), with lambda(s) = (s^2 + 0.25) / (0.5 s)^2.
  const double lambda = (0.49 + 0.25) / (0.35 * 0.35);
  EXPECT_NEAR(loss, lambda * 0.25 * ctx.noised_real().xt.pow(2).mean().item<double>(), 1e-5 * loss);
}

// TSM: half the samples at sigma_gen = 80, the others log-uniform over [0.002, 80], the teacher asked
// at exactly the student's levels.
TEST_F(KdPrediction, GeneratorLevelsPutHalfTheBatchAtTheGeneratorsLevel) {
  torch::manual_seed(0);
  const std::int64_t n = 20000;
  RealBatch ctx(student_, teacher_, n);
  make("generator")->student_loss(ctx);
  ASSERT_TRUE(torch::equal(student_.seen, teacher_.seen));
  const torch::Tensor at_generator = student_.seen == 80.0;
  EXPECT_NEAR(at_generator.to(torch::kFloat64).mean().item<double>(), 0.5, 0.02);
  const torch::Tensor spread = student_.seen.masked_select(~at_generator);
  EXPECT_GE(spread.min().item<double>(), 0.002 * (1 - 1e-6));
  EXPECT_LE(spread.max().item<double>(), 80.0 * (1 + 1e-6));
  EXPECT_NEAR(spread.log().mean().item<double>(), (std::log(0.002) + std::log(80.0)) / 2, 0.1);
  EXPECT_GT((spread > 20.0).to(torch::kFloat64).mean().item<double>(), 0.1);  // the prior: about 2e-4
}

TEST_F(KdPrediction, GeneratorLevelsAreRefusedForAMultiStepStudent) {
  EXPECT_THROW(make("generator", msd::StudentType::multi_step), std::invalid_argument);
}

}  // namespace
