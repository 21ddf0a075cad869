// msd::AdamW and msd::clip_grad_norm against the LibTorch originals they replace: the same numbers
// (AdamW bit for bit, packed or not), and AdamW state that either class can load; packing itself.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <functional>
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

/// A loss whose gradient differs per step; on step 2 the last parameter gets no new gradient, so
/// with fresh gradients its step count (and bias correction) falls behind the others'. `zero` clears
/// the last step's gradients in place, as a training loop's zero_grad does; without it they are set
/// to none and backward makes new tensors.
void make_grads(std::vector<torch::Tensor>& params, int step, const std::function<void()>& zero = nullptr) {
  if (zero) {
    zero();
  } else {
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
  }
  torch::Tensor loss = (params[0].sin() * (step + 1)).sum() + params[1].pow(2).sum() * 0.5;
  if (step != 2) loss = loss + (params[2] * params[2].cos()).sum();
  loss.backward();
}

torch::optim::AdamWOptions options() { return torch::optim::AdamWOptions(3e-2).betas({0.8, 0.95}).weight_decay(0.1); }

/// Steps both optimizers 6 times on the same gradients (fresh ones, or the last step's zeroed by each
/// optimizer's zero_grad) and expects the same parameters, bit for bit.
void expect_same_steps(torch::optim::Optimizer& reference_opt, std::vector<torch::Tensor>& reference,
                       msd::AdamW& our_opt, std::vector<torch::Tensor>& ours, bool zeroed = false) {
  for (int step = 0; step < 6; ++step) {
    make_grads(reference, step, zeroed ? std::function<void()>([&] { reference_opt.zero_grad(); }) : nullptr);
    make_grads(ours, step, zeroed ? std::function<void()>([&] { our_opt.zero_grad(); }) : nullptr);
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

TEST(Optim, AdamWPacksItsTensorsOnTheFirstStepAndStillMatchesLibTorchsBitForBit) {
  auto reference = make_params();
  auto ours = make_params();
  std::vector<const c10::TensorImpl*> identities;
  for (const auto& p : ours) identities.push_back(p.unsafeGetTensorImpl());
  torch::optim::AdamW reference_opt(reference, options());
  msd::AdamW our_opt(ours, options());
  expect_same_steps(reference_opt, reference, our_opt, ours, /*zeroed=*/true);

  const torch::Tensor params = msd::packed_span(ours);
  ASSERT_TRUE(params.defined());
  EXPECT_EQ(params.numel(), 12 + 5 + 12);
  std::vector<torch::Tensor> grads;
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_EQ(ours[i].unsafeGetTensorImpl(), identities[i]) << "the parameter is still the same tensor";
    grads.push_back(ours[i].grad());
  }
  EXPECT_TRUE(msd::packed_span(grads).defined());
  our_opt.zero_grad();
  for (const auto& g : grads) EXPECT_EQ(g.abs().sum().item<float>(), 0.0f);
}

TEST(Optim, AdamWPacksAgainAfterALoadRePointsItsTensors) {
  auto params = make_params();
  msd::AdamW ours(params, options());
  auto reference = make_params();
  torch::optim::AdamW reference_opt(reference, options());
  expect_same_steps(reference_opt, reference, ours, params, /*zeroed=*/true);
  // A checkpoint load replaces the parameters' storage (InputArchive::read uses set_).
  for (size_t i = 0; i < params.size(); ++i) {
    torch::NoGradGuard no_grad;
    params[i].set_(reference[i].clone());
  }
  ASSERT_FALSE(msd::packed_span(params).defined());
  expect_same_steps(reference_opt, reference, ours, params, /*zeroed=*/true);
  EXPECT_TRUE(msd::packed_span(params).defined());
}

TEST(Optim, PackLeavesTensorsThatCannotShareABufferAlone) {
  const torch::Tensor a = torch::arange(6, torch::kFloat).view({2, 3});
  const torch::Tensor b = torch::ones({4}, torch::kDouble);
  EXPECT_FALSE(msd::pack({a, b}).defined()) << "two dtypes";
  const torch::Tensor transposed = torch::arange(6, torch::kFloat).view({2, 3}).t();
  EXPECT_FALSE(msd::pack({a, transposed}).defined()) << "not contiguous";
  EXPECT_FALSE(msd::pack({a, torch::Tensor()}).defined()) << "undefined";
  EXPECT_FALSE(msd::packed_span({a, torch::ones({2})}).defined()) << "two buffers are not one span";

  const torch::Tensor c = torch::full({2}, 7.0f);
  const torch::Tensor span = msd::pack({a, c});
  ASSERT_TRUE(span.defined());
  EXPECT_TRUE(torch::equal(span, torch::tensor({0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 7.f, 7.f})));
  EXPECT_TRUE(torch::equal(a, torch::arange(6, torch::kFloat).view({2, 3}))) << "values kept";
  span.mul_(2);
  EXPECT_EQ(c[1].item<float>(), 14.0f) << "the tensors are aliases of the buffer";
  EXPECT_TRUE(msd::packed_span({a, c}).defined());
  EXPECT_FALSE(msd::packed_span({c, a}).defined()) << "out of order";
}

TEST(Optim, UpdateAverageIsTheSameWhetherPackedOrNot) {
  auto average = make_params();
  auto packed_average = make_params();
  auto params = make_params();
  for (auto& p : params) p.detach_().mul_(3);
  msd::update_average(average, params, 0.9);
  msd::pack(packed_average);
  msd::pack(params);
  msd::update_average(packed_average, params, 0.9);
  for (size_t i = 0; i < average.size(); ++i) EXPECT_TRUE(torch::equal(average[i], packed_average[i])) << i;
  EXPECT_TRUE(torch::allclose(average[1], make_params()[1] * 0.9 + params[1] * 0.1));
  // Another network with as many elements in all is refused, packed or not.
  std::vector<torch::Tensor> other{torch::zeros({29})};
  std::vector<torch::Tensor> one{torch::zeros({29})};
  EXPECT_THROW(msd::update_average({packed_average[0]}, other, 0.9), std::invalid_argument);
  msd::pack(one);
  EXPECT_NO_THROW(msd::update_average(one, other, 0.9));
  EXPECT_THROW(msd::update_average({torch::zeros({2, 3})}, {torch::zeros({3, 2})}, 0.9), std::invalid_argument);
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
  // Packed gradients, as msd::AdamW leaves them: the same clipping.
  auto reference = make_params();
  auto ours = make_params();
  make_grads(reference, 0);
  make_grads(ours, 0);
  std::vector<torch::Tensor> grads;
  for (const auto& p : ours) grads.push_back(p.grad());
  ASSERT_TRUE(msd::pack(grads).defined());
  const double expected = torch::nn::utils::clip_grad_norm_(reference, 0.5);
  EXPECT_NEAR(msd::clip_grad_norm(ours, 0.5).item<double>(), expected, 1e-5 * expected);
  for (size_t i = 0; i < ours.size(); ++i) {
    EXPECT_TRUE(torch::allclose(ours[i].grad(), reference[i].grad(), 1e-6, 1e-7)) << "packed, parameter " << i;
  }
  std::vector<torch::Tensor> no_grads{torch::zeros({3}, torch::requires_grad())};
  EXPECT_FALSE(msd::clip_grad_norm(no_grads, 1.0).defined());
}

}  // namespace
