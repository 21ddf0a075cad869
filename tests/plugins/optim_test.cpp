// msd::AdamW and msd::clip_grad_norm against the LibTorch originals they replace: the same numbers
// (AdamW bit for bit), and AdamW state that either class can load.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <sstream>

#include "msd/optim.h"

namespace {

/// Three parameters of different shapes, the same values for every call.
std::vector<torch::Tensor> make_params() {
  torch::manual_seed(7);
  std::vector<torch::Tensor> params{torch::randn({4, 3}), torch::randn({5}), torch::randn({2, 2, 3})};
  for (auto& p : params) p.requires_grad_(true);
  return params;
}

/// A loss whose gradient differs per step; on step 2 the last parameter gets no gradient, so its
/// step count (and bias correction) falls behind the others'.
void make_grads(std::vector<torch::Tensor>& params, int step) {
  for (auto& p : params) p.mutable_grad() = torch::Tensor();
  torch::Tensor loss = (params[0].sin() * (step + 1)).sum() + params[1].pow(2).sum() * 0.5;
  if (step != 2) loss = loss + (params[2] * params[2].cos()).sum();
  loss.backward();
}

torch::optim::AdamWOptions options() { return torch::optim::AdamWOptions(3e-2).betas({0.8, 0.95}).weight_decay(0.1); }

/// Steps both optimizers 6 times on the same gradients and expects the same parameters, bit for bit.
void expect_same_steps(torch::optim::Optimizer& reference_opt, std::vector<torch::Tensor>& reference,
                       msd::AdamW& our_opt, std::vector<torch::Tensor>& ours) {
  for (int step = 0; step < 6; ++step) {
    make_grads(reference, step);
    make_grads(ours, step);
    reference_opt.step();
    our_opt.step();
  }
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_TRUE(torch::equal(ours[i], reference[i])) << "parameter " << i;
  }
}

TEST(Optim, AdamWMatchesLibTorchsBitForBitIncludingAParameterThatMissedAStep) {
  auto reference = make_params();
  auto ours = make_params();
  torch::optim::AdamW reference_opt(reference, options());
  msd::AdamW our_opt(ours, options());
  expect_same_steps(reference_opt, reference, our_opt, ours);
}

TEST(Optim, AdamWWithoutWeightDecayStepsExactlyAsLibTorchsAdam) {
  // EDM teachers train with Adam through msd::AdamW (plugin_api/src/edm.cpp).
  auto reference = make_params();
  auto ours = make_params();
  torch::optim::Adam reference_opt(reference, torch::optim::AdamOptions(3e-2).betas({0.8, 0.95}));
  msd::AdamW our_opt(ours, torch::optim::AdamWOptions(3e-2).betas({0.8, 0.95}).weight_decay(0.0));
  expect_same_steps(reference_opt, reference, our_opt, ours);
}

TEST(Optim, AdamWStateLoadsIntoLibTorchsAdamWAndBack) {
  auto params = make_params();
  msd::AdamW ours(params, options());
  for (int step = 0; step < 3; ++step) {
    make_grads(params, step);
    ours.step();
  }
  std::stringstream buffer;
  {
    torch::serialize::OutputArchive archive;
    ours.save(archive);
    archive.save_to(buffer);
  }
  // Both continue from the saved state on copies of the same parameters: same numbers.
  auto a = make_params();
  auto b = make_params();
  for (size_t i = 0; i < params.size(); ++i) {
    torch::NoGradGuard no_grad;
    a[i].copy_(params[i]);
    b[i].copy_(params[i]);
  }
  torch::optim::AdamW reference(a, options());
  msd::AdamW resumed(b, options());
  for (torch::optim::Optimizer* opt : std::vector<torch::optim::Optimizer*>{&reference, &resumed}) {
    buffer.seekg(0);
    torch::serialize::InputArchive archive;
    archive.load_from(buffer);
    opt->load(archive);
  }
  make_grads(a, 3);
  make_grads(b, 3);
  reference.step();
  resumed.step();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

TEST(Optim, AdamWRejectsAmsgrad) {
  auto params = make_params();
  EXPECT_THROW(msd::AdamW(params, options().amsgrad(true)), std::invalid_argument);
}

TEST(Optim, ClipGradNormScalesLikeLibTorchsAndReturnsTheNormBeforeClipping) {
  for (const double max_norm : {0.5, 1e6}) {  // clipped, and left alone
    auto reference = make_params();
    auto ours = make_params();
    make_grads(reference, 0);
    make_grads(ours, 0);
    const double expected = torch::nn::utils::clip_grad_norm_(reference, max_norm);
    const torch::Tensor norm = msd::clip_grad_norm(ours, max_norm);
    ASSERT_TRUE(norm.defined());
    EXPECT_NEAR(norm.item<double>(), expected, 1e-5 * expected);
    for (size_t i = 0; i < ours.size(); ++i) {
      EXPECT_TRUE(torch::allclose(ours[i].grad(), reference[i].grad(), 1e-6, 1e-7)) << "max_norm " << max_norm;
    }
  }
  std::vector<torch::Tensor> no_grads{torch::zeros({3}, torch::requires_grad())};
  EXPECT_FALSE(msd::clip_grad_norm(no_grads, 1.0).defined());
}

}  // namespace
