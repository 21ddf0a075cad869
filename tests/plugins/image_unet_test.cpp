// The image_unet library: the edm_unet teacher's network and training, and the unet_generator student.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "load_plugin.h"
#include "msd/dataset.h"
#include "msd/student.h"
#include "msd/teacher.h"

namespace {

using msd::Denoiser;
using msd::Teacher;

// Small enough to run in milliseconds: 8 base channels, two levels (28 -> 14).
const std::map<std::string, msd::Value> kTiny = {{"base_channels", std::int64_t{8}},
                                                 {"channel_mult", std::vector<std::int64_t>{1, 2}},
                                                 {"embed", std::int64_t{16}},
                                                 {"dropout", 0.0}};

/// EDM's sigma_data 0.5 unless `overrides` set it: these tests adopt no dataset.
std::unique_ptr<Teacher> make_teacher(std::map<std::string, msd::Value> overrides = kTiny) {
  overrides.emplace("sigma_data", 0.5);
  return msd::test::make_plugin<Teacher>("image_unet", "edm_unet", overrides);
}

torch::Tensor images(std::int64_t n) { return torch::rand({n, 1, 28, 28}) * 2 - 1; }

/// Random images of Fashion-MNIST's shape in [-1, 1] (the teacher only needs batches).
class RandomImages final : public msd::Dataset {
 public:
  std::vector<std::int64_t> sample_shape() const override { return {1, 28, 28}; }
  std::int64_t num_classes() const override { return 10; }
  msd::Batch sample(std::int64_t n, const std::vector<std::int64_t>&) override {
    return {images(n), torch::randint(10, {n}, torch::kInt64)};
  }
  torch::Tensor sample_given(const torch::Tensor& labels) override { return images(labels.size(0)); }
};

std::vector<torch::Tensor> snapshot(const Denoiser& net) {
  std::vector<torch::Tensor> copy;
  for (const auto& p : net.parameters()) copy.push_back(p.detach().clone());
  return copy;
}

double max_change(const std::vector<torch::Tensor>& before, const Denoiser& net) {
  double change = 0.0;
  auto after = net.parameters();
  for (size_t i = 0; i < before.size(); ++i) {
    change = std::max(change, (after[i] - before[i]).abs().max().item<double>());
  }
  return change;
}

TEST(ImageUNet, ShapesAndBottleneckFeatures) {
  torch::manual_seed(0);
  auto net = make_teacher({{"channel_mult", std::vector<std::int64_t>{1, 2, 2}}, {"base_channels", std::int64_t{16}},
                           {"attention", true}})
                 ->build({1, 28, 28}, 10);
  const torch::Tensor x = images(3);
  const msd::DenoiserOutput out = net->denoise_with_features(x, torch::full({3}, 1.0), torch::tensor({0, 4, 9}));
  EXPECT_EQ(out.denoised.sizes(), x.sizes());
  EXPECT_EQ(net->feature_names(),
            (std::vector<std::string>{"mid", "enc.0", "enc.1", "enc.2", "dec.2", "dec.1", "dec.0"}));
  ASSERT_EQ(out.features.size(), 7u);
  // 28 -> 14 -> 7 with 16 x 1, 2, 2 channels; the decoder's levels mirror the encoder's.
  using Sizes = std::vector<std::int64_t>;
  EXPECT_EQ(out.features[0].sizes(), (Sizes{3, 32, 7, 7}));
  EXPECT_EQ(out.features[1].sizes(), (Sizes{3, 16, 28, 28}));
  EXPECT_EQ(out.features[2].sizes(), (Sizes{3, 32, 14, 14}));
  EXPECT_EQ(out.features[3].sizes(), (Sizes{3, 32, 7, 7}));
  EXPECT_EQ(out.features[4].sizes(), (Sizes{3, 32, 7, 7}));
  EXPECT_EQ(out.features[5].sizes(), (Sizes{3, 32, 14, 14}));
  EXPECT_EQ(out.features[6].sizes(), (Sizes{3, 16, 28, 28}));
  EXPECT_TRUE(torch::isfinite(out.denoised).all().item<bool>());
}

TEST(ImageUNet, OddSizesAndColourImages) {
  auto net = make_teacher()->build({3, 9, 11}, 2);
  const torch::Tensor x = torch::randn({2, 3, 9, 11});
  EXPECT_EQ(net->denoise(x, torch::ones({2}), torch::tensor({0, 1})).sizes(), x.sizes());
}

TEST(ImageUNet, RejectsBadShapesWithClearErrors) {
  EXPECT_THROW(make_teacher()->build({2}, 10), std::invalid_argument);
  EXPECT_THROW(make_teacher({{"channel_mult", std::vector<std::int64_t>{1, 1, 1, 1, 1, 1}}})->build({1, 8, 8}, 10),
               std::invalid_argument);
  auto net = make_teacher()->build({1, 28, 28}, 10);
  EXPECT_THROW(net->denoise(torch::zeros({2, 1, 27, 28}), torch::ones({2}), torch::zeros({2}, torch::kInt64)),
               std::invalid_argument);
}

TEST(ImageUNet, ClassConditioningChangesTheOutput) {
  torch::manual_seed(1);
  auto net = make_teacher()->build({1, 28, 28}, 10);
  const torch::Tensor x = images(4);
  const torch::Tensor sigma = torch::full({4}, 2.0);
  torch::NoGradGuard no_grad;
  const torch::Tensor a = net->denoise(x, sigma, torch::zeros({4}, torch::kInt64));
  const torch::Tensor b = net->denoise(x, sigma, torch::full({4}, 7, torch::kInt64));
  EXPECT_GT((a - b).abs().max().item<double>(), 1e-4);
  // The same label gives the same output (no hidden randomness with dropout 0).
  EXPECT_TRUE(torch::equal(a, net->denoise(x, sigma, torch::zeros({4}, torch::kInt64))));
}

// c_skip -> 1 and c_out -> 0 as sigma -> 0: D(x; sigma) -> x whatever the network computes.
TEST(ImageUNet, PreconditioningIsTheIdentityAtZeroNoise) {
  auto net = make_teacher()->build({1, 28, 28}, 10);
  const torch::Tensor x = images(2);
  torch::NoGradGuard no_grad;
  const torch::Tensor d = net->denoise(x, torch::full({2}, 1e-5), torch::zeros({2}, torch::kInt64));
  EXPECT_LT((d - x).abs().max().item<double>(), 1e-3);
}

TEST(ImageUNet, CloneCopiesWeightsIndependently) {
  auto net = make_teacher()->build({1, 28, 28}, 10);
  auto copy = net->clone_denoiser();
  const torch::Tensor x = images(2);
  const torch::Tensor sigma = torch::ones({2});
  const torch::Tensor labels = torch::tensor({1, 2});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(net->denoise(x, sigma, labels), copy->denoise(x, sigma, labels)));
  for (auto& p : copy->parameters()) p.add_(0.1);
  EXPECT_FALSE(torch::equal(net->denoise(x, sigma, labels), copy->denoise(x, sigma, labels)));
}

// With a half-life of 10^9 kimg the EMA barely moves, so the trained network keeps its initial weights;
// with the EMA off the network is the last iterate, which Adam moved by about lr per step.
TEST(ImageUNet, TrainingReturnsTheWeightEma) {
  RandomImages data;
  msd::TeacherContext ctx;
  ctx.data = &data;
  std::map<std::string, msd::Value> settings = kTiny;
  settings["steps"] = std::int64_t{3};
  settings["batch_size"] = std::int64_t{4};
  settings["warmup"] = std::int64_t{0};
  settings["lr"] = 1e-2;

  settings["ema_halflife_kimg"] = 1e9;
  auto slow = make_teacher(settings);
  auto net = slow->build({1, 28, 28}, 10);
  auto before = snapshot(*net);
  slow->train(*net, ctx);
  EXPECT_LT(max_change(before, *net), 1e-6);

  settings["ema_halflife_kimg"] = 0.0;
  auto none = make_teacher(settings);
  net = none->build({1, 28, 28}, 10);
  before = snapshot(*net);
  none->train(*net, ctx);
  EXPECT_GT(max_change(before, *net), 1e-3);
  EXPECT_FALSE(net->is_training());
}

TEST(ImageUNet, SamplerKeysAreSamplingOnly) {
  const msd::PluginInfo& info = msd::test::find_plugin("image_unet", "edm_unet").info;
  for (const msd::KeySpec& key : info.keys) {
    const bool sampler = key.name == "sampler_steps" || key.name == "sigma_min" || key.name == "sigma_max" ||
                         key.name == "rho";
    EXPECT_EQ(key.sampling_only, sampler) << key.name;
  }
  EXPECT_EQ(make_teacher({{"sampler_steps", std::int64_t{5}}})->nfe(), 9);
}

msd::StudentContext student_ctx(const Denoiser& teacher) {
  msd::StudentContext ctx;
  ctx.teacher = &teacher;
  ctx.sample_shape = {1, 28, 28};
  ctx.num_classes = 10;
  return ctx;
}

TEST(UNetGenerator, FullSizeIsACopyOfTheTeacher) {
  auto teacher = make_teacher()->build({1, 28, 28}, 10);
  auto plugin = msd::test::make_plugin<msd::Student>("image_unet", "unet_generator");
  EXPECT_EQ(plugin->type(), msd::StudentType::one_step);
  EXPECT_EQ(plugin->generator_sigma(), 80.0);
  auto student = plugin->build(student_ctx(*teacher));
  EXPECT_EQ(msd::count_parameters(*student), msd::count_parameters(*teacher));
  const torch::Tensor z = torch::randn({2, 1, 28, 28}) * 80.0;
  const torch::Tensor sigma = torch::full({2}, 80.0);
  const torch::Tensor labels = torch::tensor({3, 5});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(student->denoise(z, sigma, labels), teacher->denoise(z, sigma, labels)));
  for (const auto& p : student->parameters()) EXPECT_TRUE(p.requires_grad());
}

TEST(UNetGenerator, SmallerStudentIsAFreshScaledUNet) {
  auto teacher = make_teacher({{"base_channels", std::int64_t{16}}, {"res_blocks", std::int64_t{2}},
                               {"channel_mult", std::vector<std::int64_t>{1, 2}}})
                     ->build({1, 28, 28}, 10);
  auto half = msd::test::make_plugin<msd::Student>("image_unet", "unet_generator",
                                                    {{"width_mult", 0.5}, {"depth_mult", 0.5}})
                  ->build(student_ctx(*teacher));
  EXPECT_LT(msd::count_parameters(*half), msd::count_parameters(*teacher) / 3);
  const torch::Tensor z = torch::randn({2, 1, 28, 28});
  const msd::DenoiserOutput out = half->denoise_with_features(z, torch::full({2}, 80.0), torch::tensor({0, 1}));
  EXPECT_EQ(out.denoised.sizes(), z.sizes());
  EXPECT_EQ(out.features[0].size(1), 16);  // 8 base channels * 2
}

// O2MKD's multi-step student with half the teacher's blocks: started from the teacher, it takes every
// weight whose name and shape it shares (the bottleneck, the input layer), and nothing with init =
// "scratch"; it is sampled with the teacher's sampler and names the teacher's features.
TEST(UNetDenoiser, StartsFromTheTeachersWeightsWhereNamesAndShapesAgree) {
  auto teacher = make_teacher({{"base_channels", std::int64_t{8}}, {"res_blocks", std::int64_t{2}},
                               {"channel_mult", std::vector<std::int64_t>{1, 2}}})
                     ->build({1, 28, 28}, 10);
  const auto shallow = [&](const std::string& init) {
    auto plugin = msd::test::make_plugin<msd::Student>("image_unet", "unet_denoiser",
                                                       {{"depth_mult", 0.5}, {"init", init}});
    EXPECT_EQ(plugin->type(), msd::StudentType::multi_step);
    return plugin->build(student_ctx(*teacher));
  };
  const auto same = [&](const msd::Denoiser& student, const std::string& name) {
    return torch::equal(*student.named_parameters().find(name), *teacher->named_parameters().find(name));
  };
  torch::manual_seed(1);
  auto from_teacher = shallow("teacher");
  EXPECT_LT(msd::count_parameters(*from_teacher), msd::count_parameters(*teacher));
  for (const char* name : {"middle1.conv1.weight", "middle2.conv2.weight", "input_conv.weight", "class_embed.weight"}) {
    EXPECT_TRUE(same(*from_teacher, name)) << name;
  }
  EXPECT_EQ(from_teacher->feature_names(), teacher->feature_names());
  torch::manual_seed(1);
  auto scratch = shallow("scratch");
  EXPECT_FALSE(same(*scratch, "middle1.conv1.weight"));
}

}  // namespace
