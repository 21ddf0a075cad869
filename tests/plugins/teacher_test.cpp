// What the built-in EDM teachers tell the host about their training: the noise levels they learnt,
// which students trained on noised real data draw from, and the data standard deviation they
// precondition with, which datasets declare.
#include <filesystem>
#include <stdexcept>

#include <unistd.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "load_plugin.h"
#include "msd/dataset.h"
#include "msd/teacher.h"

namespace {

/// A dataset that declares only its standard deviation.
class DeclaresSigma final : public msd::Dataset {
 public:
  explicit DeclaresSigma(double sigma) : sigma_(sigma) {}
  std::vector<std::int64_t> sample_shape() const override { return {2}; }
  std::int64_t num_classes() const override { return 1; }
  double sigma_data() const override { return sigma_; }
  msd::Batch sample(std::int64_t n, const std::vector<std::int64_t>&) override {
    return {torch::zeros({n, 2}), torch::zeros({n}, torch::kInt64)};
  }
  torch::Tensor sample_given(const torch::Tensor& labels) override { return torch::zeros({labels.size(0), 2}); }

 private:
  double sigma_;
};

TEST(EdmTeacher, TakesTheDatasetsSigmaDataUnlessTheKeySetsIt) {
  auto teacher = msd::test::make_plugin<msd::Teacher>("toy_mlp", "edm_mlp");
  EXPECT_THROW(teacher->sigma_data(), std::logic_error);  // 0, "the dataset's", and no dataset yet
  teacher->adopt_data(DeclaresSigma(0.83));
  EXPECT_EQ(teacher->sigma_data(), 0.83);

  auto set = msd::test::make_plugin<msd::Teacher>("toy_mlp", "edm_mlp", {{"sigma_data", 0.6}});
  set->adopt_data(DeclaresSigma(0.83));
  EXPECT_EQ(set->sigma_data(), 0.6);
}

TEST(EdmTeacher, BuildsItsNetworkWithTheAdoptedSigmaData) {
  auto teacher = msd::test::make_plugin<msd::Teacher>("toy_mlp", "edm_mlp");
  teacher->adopt_data(DeclaresSigma(0.83));
  auto net = teacher->build({2}, 1);
  // At sigma 0 EDM's preconditioning returns its input whatever the network: c_skip = 1, c_out = 0.
  // Between, c_skip = sd^2 / (sigma^2 + sd^2) weights the input: with all weights zero, denoise(x) is
  // c_skip x, which names the sigma_data the network was built with.
  torch::NoGradGuard no_grad;
  for (auto& p : net->parameters()) p.zero_();
  const torch::Tensor x = torch::ones({1, 2});
  const double sd2 = 0.83 * 0.83;
  const torch::Tensor out = net->denoise(x, torch::full({1}, 1.0), torch::zeros({1}, torch::kInt64));
  EXPECT_NEAR(out[0][0].item<double>(), sd2 / (1.0 + sd2), 1e-6);
}

TEST(GaussianGrid, SigmaDataIsTheStandardDeviationOfItsSamples) {
  auto data = msd::test::make_plugin<msd::Dataset>("toy_data", "gaussian_grid",
                                                   {{"grid", std::int64_t{4}}, {"classes", std::int64_t{3}},
                                                    {"spacing", 0.7}, {"mode_std", 0.2}});
  torch::manual_seed(0);
  const double measured = data->sample(400000, {}).x.std().item<double>();
  EXPECT_NEAR(data->sigma_data(), measured, 0.005 * measured);
}

TEST(FashionMnist, SigmaDataIsTheStandardDeviationOfItsTrainingPixels) {
  if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto data = msd::test::make_plugin<msd::Dataset>("fmnist", "fashion_mnist",
                                                   {{"train_limit", std::int64_t{500}},
                                                    {"classifier_epochs", std::int64_t{1}}});
  const auto cache = std::filesystem::temp_directory_path() / ("msd_sigma_data_" + std::to_string(::getpid()));
  data->prepare({cache, torch::kCPU, nullptr, 0});
  std::filesystem::remove_all(cache);
  torch::manual_seed(0);
  const double measured = data->sample(20000, {}).x.std().item<double>();
  EXPECT_NEAR(data->sigma_data(), measured, 0.01 * measured);
  EXPECT_GT(data->sigma_data(), 0.6);  // well above EDM's 0.5 for CIFAR-10: mostly black, some white
}

TEST(EdmTeacher, NoisePriorIsItsTrainingPrior) {
  const auto defaults = msd::test::make_plugin<msd::Teacher>("toy_mlp", "edm_mlp")->noise_prior();
  EXPECT_EQ(defaults.p_mean, msd::edm::kPMean);
  EXPECT_EQ(defaults.p_std, msd::edm::kPStd);
  const auto set = msd::test::make_plugin<msd::Teacher>("toy_mlp", "edm_mlp", {{"p_mean", 0.5}, {"p_std", 2.0}})
                       ->noise_prior();
  EXPECT_EQ(set.p_mean, 0.5);
  EXPECT_EQ(set.p_std, 2.0);
}

}  // namespace
