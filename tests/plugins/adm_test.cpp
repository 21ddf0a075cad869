// The adm loss (DMD2's GAN stage) and the dm -> adm hand-over of the fake-score network, with a tiny
// edm_unet teacher on 8 x 8 images.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <sstream>
#include <stdexcept>

#include <torch/torch.h>

#include "load_plugin.h"
#include "msd/loss.h"
#include "msd/teacher.h"

namespace {

using msd::Loss;

/// A StepContext over fixed batches: generated() is `fake`, noised_real() holds `real`.
class FixedStep final : public msd::StepContext {
 public:
  FixedStep(torch::Tensor real, torch::Tensor fake, bool logs = true) : logs_(logs) {
    const std::int64_t n = real.size(0);
    real_.x0 = real;
    real_.labels = torch::zeros({n}, torch::kInt64);
    real_.sigma = torch::ones({n});
    real_.noise = torch::randn_like(real);
    real_.xt = real + real_.noise;
    generated_.noise = torch::randn_like(fake);
    generated_.labels = torch::zeros({fake.size(0)}, torch::kInt64);
    generated_.x = fake;
  }
  std::int64_t iteration() const override { return 0; }
  bool updates_student() const override { return true; }
  const msd::NoisedBatch& noised_real() override { return real_; }
  const msd::DenoiserOutput& student_on_noised() override { throw std::logic_error("not used by dm/adm"); }
  const msd::DenoiserOutput& teacher_on_noised() override { throw std::logic_error("not used by dm/adm"); }
  const msd::GeneratedBatch& generated() override { return generated_; }
  msd::PairedBatch paired() override { throw std::logic_error("not used by dm/adm"); }
  bool logs() const override { return logs_; }
  const msd::Random& random(std::int64_t) const override { return random_; }

 private:
  bool logs_;
  msd::Random random_{torch::kCPU};
  msd::NoisedBatch real_;
  msd::GeneratedBatch generated_;
};

class Adm : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    teacher_ = msd::test::make_plugin<msd::Teacher>("image_unet", "edm_unet",
                                                     {{"base_channels", std::int64_t{8}},
                                                      {"channel_mult", std::vector<std::int64_t>{1, 2}},
                                                      {"embed", std::int64_t{16}},
                                                      {"dropout", 0.0},
                                                      {"sigma_data", 0.5}})
                   ->build({1, 8, 8}, 2);
    teacher_->eval();
    msd::set_trainable(*teacher_, false);
    setup_.teacher = teacher_.get();
    setup_.sample_shape = {1, 8, 8};
    setup_.num_classes = 2;
  }

  std::unique_ptr<Loss> make(const std::string& name, const std::map<std::string, msd::Value>& overrides = {}) {
    auto loss = msd::test::make_plugin<Loss>("distill_losses", name, overrides);
    loss->setup(setup_);
    return loss;
  }

  /// The loss's student_loss with torch seeded, so two calls draw the same noise levels and noise.
  static torch::Tensor seeded_loss(Loss& loss, msd::StepContext& ctx, std::uint64_t seed = 7) {
    torch::manual_seed(seed);
    return loss.student_loss(ctx);
  }

  static std::stringstream saved(const Loss& loss) {
    torch::serialize::OutputArchive archive;
    loss.save(archive);
    std::stringstream stream;
    archive.save_to(stream);
    return stream;
  }

  static void load(Loss& loss, std::stringstream& stream) {
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    loss.load(archive);
  }

  std::shared_ptr<msd::Denoiser> teacher_;
  msd::LossSetup setup_;
};

TEST_F(Adm, DeclaresWhatItResumesFrom) {
  const auto resumes_from = [](const char* name) {
    return msd::test::find_plugin("distill_losses", name).info.loss.resumes_from;
  };
  EXPECT_EQ(resumes_from("dm"), (std::vector<std::string>{"dm"}));
  EXPECT_EQ(resumes_from("adm"), (std::vector<std::string>{"dm", "adm"}));
  EXPECT_TRUE(msd::test::find_plugin("distill_losses", "regression").info.loss.uses_teacher_pairs);
}

// Fresh, the fake score is the teacher itself (dropout 0), so the DM gradient is exactly zero.
TEST_F(Adm, DmGradientVanishesWhileTheFakeScoreIsTheTeacher) {
  const torch::Tensor fake = torch::randn({6, 1, 8, 8}) * 0.5;
  auto without_gan = make("adm", {{"gan_weight", 0.0}});
  torch::Tensor x = fake.clone().requires_grad_(true);
  FixedStep ctx(fake, x);
  seeded_loss(*without_gan, ctx).backward();
  EXPECT_EQ(x.grad().abs().max().item<double>(), 0.0);
}

// Real images are +0.8 everywhere, fakes -0.8. Once the discriminator has learnt to tell them apart,
// the generator's GAN term softplus(-D(x)) must move the fakes toward the real images (higher logits):
// its gradient, isolated as the difference between gan_weight 1 and 0 on the same noise, points away
// from the real images.
TEST_F(Adm, GeneratorGanTermMovesFakesTowardHigherLogits) {
  const torch::Tensor real = torch::full({8, 1, 8, 8}, 0.8);
  const torch::Tensor fake = torch::full({8, 1, 8, 8}, -0.8);
  std::vector<torch::Tensor> grads;
  msd::LoggedValues last;
  for (double gan_weight : {1.0, 0.0}) {
    torch::manual_seed(5);  // the same head initialisation and training noise for both
    auto adm = make("adm", {{"gan_weight", gan_weight}, {"disc_weight", 100.0}, {"fake_lr", 1e-3}});
    FixedStep train_ctx(real, fake);
    for (int i = 0; i < 10; ++i) last = adm->update_auxiliary(train_ctx);
    torch::Tensor x = fake.clone().requires_grad_(true);
    FixedStep ctx(real, x);
    seeded_loss(*adm, ctx).backward();
    grads.push_back(x.grad());
  }
  ASSERT_GT(last["disc_real_logit"].item<double>(), last["disc_fake_logit"].item<double>());  // the discriminator tells them apart
  // Below sigma_data the images show and it is never wrong; above, noise of up to sigma 80 drowns them.
  ASSERT_EQ(last.count("disc_accuracy_low_noise"), 1u);
  EXPECT_EQ(last["disc_accuracy_low_noise"].item<double>(), 1.0);
  EXPECT_GT(last["disc_accuracy"].item<double>(), 0.5);
  const torch::Tensor gan_grad = grads[0] - grads[1];
  ASSERT_GT(gan_grad.norm().item<double>(), 0.0);
  EXPECT_GT((-gan_grad * (real - fake)).sum().item<double>(), 0.0);
}

// Real images +0.8 everywhere, fakes -0.8, at the default weights: within 100 steps the discriminator
// tells them apart wherever the noise leaves them visible. With one channel per GroupNorm group (an
// instance norm) it cannot: the images differ only in their mean, which that norm removes.
TEST_F(Adm, DiscriminatorLearnsUnlessItsNormErasesEachChannelsMean) {
  const torch::Tensor real = torch::full({32, 1, 8, 8}, 0.8);
  const torch::Tensor fake = torch::full({32, 1, 8, 8}, -0.8);
  const auto train = [&](std::int64_t group_channels) {
    torch::manual_seed(5);
    auto adm = make("adm", {{"disc_group_channels", group_channels}});
    FixedStep ctx(real, fake);
    msd::LoggedValues last;
    for (int i = 0; i < 100; ++i) last = adm->update_auxiliary(ctx);
    return last;
  };
  const msd::LoggedValues learns = train(8);
  EXPECT_LT(learns.at("disc_loss").item<double>(), 1.25);  // 2 ln 2 = 1.386 at chance
  EXPECT_EQ(learns.at("disc_accuracy_low_noise").item<double>(), 1.0);
  const msd::LoggedValues erased = train(1);
  EXPECT_GT(erased.at("disc_loss").item<double>(), 1.37);
}

// One discriminator step (its loss dominating the fake network's objective) widens the gap between the
// logits of real and fake images and lowers softplus(-D(real)) + softplus(D(fake)), on the same noise.
TEST_F(Adm, DiscriminatorStepPushesRealUpAndFakeDown) {
  auto adm = make("adm", {{"disc_weight", 100.0}, {"fake_lr", 1e-3}});
  FixedStep ctx(torch::full({8, 1, 8, 8}, 0.8), torch::full({8, 1, 8, 8}, -0.8));
  msd::LoggedValues first, second;
  for (auto* values : {&first, &second}) {
    torch::manual_seed(3);
    *values = adm->update_auxiliary(ctx);
  }
  EXPECT_GT(second["disc_real_logit"].item<double>() - second["disc_fake_logit"].item<double>(), first["disc_real_logit"].item<double>() - first["disc_fake_logit"].item<double>());
  EXPECT_LT(second["disc_loss"].item<double>(), first["disc_loss"].item<double>());
}

// dm's state (fake score and its optimizer, no head) loads into adm: with gan_weight 0 the resumed adm
// computes dm's loss exactly, which a fresh adm (fake = teacher) does not.
TEST_F(Adm, ResumesTheFakeScoreOfADmStage) {
  auto dm = make("dm", {{"fake_lr", 1e-2}});
  FixedStep ctx(torch::randn({6, 1, 8, 8}) * 0.5, torch::randn({6, 1, 8, 8}) * 0.5);
  for (int i = 0; i < 3; ++i) dm->update_auxiliary(ctx);
  std::stringstream stream = saved(*dm);

  auto resumed = make("adm", {{"gan_weight", 0.0}});
  load(*resumed, stream);
  auto fresh = make("adm", {{"gan_weight", 0.0}});
  const double expected = seeded_loss(*dm, ctx).item<double>();
  EXPECT_NEAR(seeded_loss(*resumed, ctx).item<double>(), expected, 1e-6 * std::abs(expected));
  EXPECT_GT(std::abs(seeded_loss(*fresh, ctx).item<double>() - expected), 1e-6 * std::abs(expected));
}

// adm -> adm restores the head and both optimizers: the next auxiliary step of the original and of the
// restored copy leave them computing the same student loss.
TEST_F(Adm, SaveLoadRoundTripIncludesTheHeadAndOptimizers) {
  FixedStep ctx(torch::randn({6, 1, 8, 8}) * 0.5, torch::randn({6, 1, 8, 8}) * 0.5);
  auto original = make("adm", {{"fake_lr", 1e-2}, {"disc_weight", 1.0}});
  for (int i = 0; i < 2; ++i) original->update_auxiliary(ctx);
  std::stringstream stream = saved(*original);
  auto restored = make("adm", {{"fake_lr", 1e-2}, {"disc_weight", 1.0}});
  load(*restored, stream);
  for (Loss* loss : {original.get(), restored.get()}) {
    torch::manual_seed(11);
    loss->update_auxiliary(ctx);
  }
  const double expected = seeded_loss(*original, ctx).item<double>();
  EXPECT_NEAR(seeded_loss(*restored, ctx).item<double>(), expected, 1e-5 * std::abs(expected));
}

// On iterations the host does not record, dm and adm still train their networks, the same way, but
// return no values (reading one off a GPU would wait for all queued work).
TEST_F(Adm, UnrecordedIterationsTrainTheSameAndReturnNothing) {
  const torch::Tensor real = torch::randn({6, 1, 8, 8}) * 0.5;
  const torch::Tensor fake = torch::randn({6, 1, 8, 8}) * 0.5;
  for (const char* name : {"dm", "adm"}) {
    std::vector<double> after;
    for (bool logs : {true, false}) {
      torch::manual_seed(13);
      auto loss = std::string(name) == "adm" ? make(name, {{"fake_lr", 1e-2}, {"disc_weight", 1.0}})
                                             : make(name, {{"fake_lr", 1e-2}});
      FixedStep ctx(real, fake, logs);
      msd::LoggedValues values;
      for (int i = 0; i < 2; ++i) values = loss->update_auxiliary(ctx);
      EXPECT_EQ(values.empty(), !logs) << name;
      after.push_back(seeded_loss(*loss, ctx).item<double>());
    }
    EXPECT_EQ(after[0], after[1]) << name << ": the networks trained differently";
  }
}

TEST_F(Adm, LoadingSomethingElseFailsClearly) {
  torch::serialize::OutputArchive empty;
  std::stringstream stream;
  empty.write("unrelated", torch::zeros({1}));
  empty.save_to(stream);
  auto dm = make("dm");
  try {
    load(*dm, stream);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("dm: the saved loss state holds no fake-score network"), std::string::npos)
        << e.what();
  }
}

}  // namespace
