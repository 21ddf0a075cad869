// K students as one grouped network (msd::Denoiser::group), on toy_mlp's MLP: the grouped network
// computes what its members compute, its gradients and its per-member clipping are theirs, and its
// members come back out unchanged. The end-to-end check, the same students trained either way, is
// integration_test's GroupedStudents.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "load_plugin.h"
#include "msd/optim.h"
#include "msd/teacher.h"

namespace {

constexpr std::int64_t kMembers = 3, kBlock = 5, kClasses = 4;

/// Three MLP denoisers of one architecture with different weights, and their grouped network.
class Grouped : public ::testing::Test {
 protected:
  void SetUp() override {
    auto plugin = msd::test::make_plugin<msd::Teacher>(
        "toy_mlp", "edm_mlp", {{"hidden", std::int64_t{16}}, {"blocks", std::int64_t{2}}, {"embed", std::int64_t{8}},
                                     {"sigma_data", 0.5}});
    for (std::int64_t k = 0; k < kMembers; ++k) {
      torch::manual_seed(static_cast<std::uint64_t>(k));
      members_.push_back(plugin->build({2}, kClasses));
    }
    std::vector<const msd::Denoiser*> members;
    for (const auto& m : members_) members.push_back(m.get());
    grouped_ = members_.front()->group(members);
    torch::manual_seed(42);
    x_ = torch::randn({kMembers * kBlock, 2});
    sigma_ = torch::rand({kMembers * kBlock}) * 10 + 0.01;
    labels_ = torch::randint(kClasses, {kMembers * kBlock}, torch::kInt64);
  }

  /// Member k's block of a batch.
  static torch::Tensor block(const torch::Tensor& t, std::int64_t k) { return t.narrow(0, k * kBlock, kBlock); }

  /// A loss per member on the outputs of `net` (grouped or not) for `x`: its gradients are each member's own.
  static torch::Tensor loss(msd::Denoiser& net, const torch::Tensor& x, const torch::Tensor& s, const torch::Tensor& l) {
    return net.denoise(x, s, l).pow(2).sum();
  }

  std::vector<std::shared_ptr<msd::Denoiser>> members_;
  std::shared_ptr<msd::Denoiser> grouped_;
  torch::Tensor x_, sigma_, labels_;
};

TEST_F(Grouped, IsAGroupOfItsMembers) {
  ASSERT_NE(grouped_, nullptr);
  EXPECT_EQ(grouped_->group_size(), kMembers);
  EXPECT_EQ(msd::count_parameters(*grouped_), kMembers * msd::count_parameters(*members_.front()));
  EXPECT_EQ(grouped_->group({grouped_.get()}), nullptr) << "a group of groups is not a thing";
}

TEST_F(Grouped, ComputesWhatEachMemberComputesOnItsBlock) {
  const msd::DenoiserOutput together = grouped_->denoise_with_features(x_, sigma_, labels_);
  ASSERT_EQ(together.features.size(), 2u);
  for (std::int64_t k = 0; k < kMembers; ++k) {
    const msd::DenoiserOutput alone =
        members_[static_cast<size_t>(k)]->denoise_with_features(block(x_, k), block(sigma_, k), block(labels_, k));
    EXPECT_TRUE(torch::allclose(block(together.denoised, k), alone.denoised, 1e-5, 1e-6)) << "member " << k;
    for (size_t f = 0; f < alone.features.size(); ++f) {
      EXPECT_TRUE(torch::allclose(block(together.features[f], k), alone.features[f], 1e-5, 1e-6)) << k << " " << f;
    }
  }
}

TEST_F(Grouped, GradientsAreEachMembersOwn) {
  loss(*grouped_, x_, sigma_, labels_).backward();
  const auto grouped_params = grouped_->named_parameters();
  for (std::int64_t k = 0; k < kMembers; ++k) {
    msd::Denoiser& alone = *members_[static_cast<size_t>(k)];
    loss(alone, block(x_, k), block(sigma_, k), block(labels_, k)).backward();
    for (const auto& p : alone.named_parameters()) {
      const torch::Tensor g = grouped_params[p.key()].grad()[k];
      EXPECT_TRUE(torch::allclose(g, p.value().grad(), 1e-4, 1e-6)) << p.key() << " of member " << k;
    }
  }
}

TEST_F(Grouped, MembersComeBackOutExactly) {
  for (std::int64_t k = 0; k < kMembers; ++k) {
    const std::shared_ptr<msd::Denoiser> out = grouped_->member(k);
    EXPECT_EQ(out->group_size(), 1);
    const auto original = members_[static_cast<size_t>(k)]->named_parameters();
    for (const auto& p : out->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), original[p.key()])) << p.key();
  }
  EXPECT_THROW(grouped_->member(kMembers), std::invalid_argument);
}

// Each member's gradients are clipped on their own norm, as msd::clip_grad_norm clips a student alone;
// then one AdamW step of the stacked parameters is each member's own step.
TEST_F(Grouped, ClippingAndAdamWStepsAreEachMembersOwn) {
  const double max_norm = 0.05;
  loss(*grouped_, x_, sigma_, labels_).backward();
  std::vector<torch::Tensor> grouped_params = grouped_->parameters();
  const torch::Tensor norms = msd::clip_grad_norm(grouped_params, max_norm, kMembers);
  ASSERT_EQ(norms.sizes(), torch::IntArrayRef({kMembers}));
  msd::AdamW(grouped_params, torch::optim::AdamWOptions(1e-2)).step();
  const auto stepped = grouped_->named_parameters();
  for (std::int64_t k = 0; k < kMembers; ++k) {
    msd::Denoiser& alone = *members_[static_cast<size_t>(k)];
    loss(alone, block(x_, k), block(sigma_, k), block(labels_, k)).backward();
    const torch::Tensor norm = msd::clip_grad_norm(alone.parameters(), max_norm);
    EXPECT_NEAR(norms[k].item<double>(), norm.item<double>(), 1e-4 * norm.item<double>()) << k;
    msd::AdamW(alone.parameters(), torch::optim::AdamWOptions(1e-2)).step();
    for (const auto& p : alone.named_parameters()) {
      EXPECT_TRUE(torch::allclose(stepped[p.key()][k], p.value(), 1e-5, 1e-6)) << p.key() << " of member " << k;
    }
  }
}

TEST_F(Grouped, RejectsABatchThatDoesNotSplitIntoItsMembers) {
  EXPECT_THROW(grouped_->denoise(x_.narrow(0, 0, 7), sigma_.narrow(0, 0, 7), labels_.narrow(0, 0, 7)),
               std::invalid_argument);
}

}  // namespace
