// msd::linear and msd::grouped_linear against torch::nn::Linear: the same values and gradients (to
// float rounding) through oneDNN's GEMM, second derivatives included, and LibTorch's kernels where
// the GEMM does not apply.
#include <gtest/gtest.h>

#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/torch.h>

#include <set>
#include <string>
#include <vector>

#include "msd/linear.h"

namespace {

/// The names of the operations LibTorch runs on this thread while it lives.
class OperationLog {
 public:
  OperationLog()
      : handle_(at::addThreadLocalCallback(at::RecordFunctionCallback(
            [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
              names().insert(fn.name());
              return nullptr;
            }))) {
    names().clear();
  }
  ~OperationLog() { at::removeCallback(handle_); }
  bool ran(const std::string& name) const { return names().count(name) > 0; }

 private:
  static std::set<std::string>& names() {
    thread_local std::set<std::string> seen;
    return seen;
  }
  at::CallbackHandle handle_;
};

/// Gradients of sum(f(x) * probe) with respect to x, the weight and the bias.
std::vector<torch::Tensor> gradients(const torch::Tensor& y, const torch::Tensor& probe,
                                     const std::vector<torch::Tensor>& wrt) {
  return torch::autograd::grad({(y * probe).sum()}, wrt);
}

void expect_close(const torch::Tensor& actual, const torch::Tensor& expected, const std::string& what) {
  EXPECT_TRUE(torch::allclose(actual, expected, 1e-5, 1e-5))
      << what << ": largest difference " << (actual - expected).abs().max().item<double>();
}

TEST(Linear, ValuesAndGradientsMatchTorchLinearThroughOneDnnsGemm) {
  torch::manual_seed(3);
  for (const bool with_bias : {true, false}) {
    torch::nn::Linear layer(torch::nn::LinearOptions(48, 20).bias(with_bias));
    for (const std::vector<std::int64_t>& shape : {std::vector<std::int64_t>{37, 48}, {3, 5, 48}}) {
      const torch::Tensor x = torch::randn(shape, torch::requires_grad());
      const OperationLog log;
      const torch::Tensor fast = msd::linear(*layer, x), reference = layer->forward(x);
      EXPECT_TRUE(log.ran(msd::kGemmRecordName));
      expect_close(fast, reference, "values");
      const torch::Tensor probe = torch::randn_like(reference);
      std::vector<torch::Tensor> wrt{x, layer->weight};
      if (with_bias) wrt.push_back(layer->bias);
      const auto got = gradients(fast, probe, wrt), want = gradients(reference, probe, wrt);
      for (std::size_t i = 0; i < wrt.size(); ++i) expect_close(got[i], want[i], "gradient " + std::to_string(i));
    }
  }
}

TEST(Linear, SecondDerivativesMatchTorchLinear) {
  // A backward pass that builds a graph (as a gradient penalty does) differentiates through LibTorch's
  // products, not the GEMM's hand-written gradients.
  torch::manual_seed(4);
  torch::nn::Linear layer(6, 5);
  const torch::Tensor x = torch::randn({4, 6}, torch::requires_grad());
  auto penalty_gradient = [&](const torch::Tensor& y) {
    const torch::Tensor dx = torch::autograd::grad({y.pow(2).sum()}, {x}, {}, true, true)[0];
    return torch::autograd::grad({dx.pow(2).sum()}, {layer->weight})[0];
  };
  expect_close(penalty_gradient(msd::linear(*layer, x)), penalty_gradient(layer->forward(x)), "second derivative");
  // The weight's gradient as a function of a non-contiguous x: its derivative reaches x itself.
  const torch::Tensor leaf = torch::randn({6, 4}, torch::requires_grad());
  const torch::Tensor strided = leaf.t();
  auto weight_penalty_gradient = [&](const torch::Tensor& y) {
    const torch::Tensor dw = torch::autograd::grad({y.pow(2).sum()}, {layer->weight}, {}, true, true)[0];
    return torch::autograd::grad({dw.pow(2).sum()}, {leaf})[0];
  };
  expect_close(weight_penalty_gradient(msd::linear(*layer, strided)), weight_penalty_gradient(layer->forward(strided)),
               "second derivative through a non-contiguous input");
}

TEST(Linear, OtherTypesKeepLibTorchsKernel) {
  torch::manual_seed(5);
  torch::nn::Linear layer(8, 3);
  layer->to(torch::kFloat64);
  const torch::Tensor x = torch::randn({4, 8}, torch::kFloat64);
  const OperationLog log;
  EXPECT_TRUE(torch::equal(msd::linear(*layer, x), layer->forward(x)));
  EXPECT_FALSE(log.ran(msd::kGemmRecordName));
  EXPECT_THROW(msd::linear(*layer, torch::randn({4, 7}, torch::kFloat64)), c10::Error);
  torch::nn::Linear float_layer(8, 3);
  EXPECT_THROW(msd::linear(*float_layer, torch::randn({4, 7})), c10::Error);  // LibTorch's own message
}

TEST(Linear, AutocastSeesTheProductsAndRunsThemInBf16) {
  torch::manual_seed(7);
  torch::nn::Linear layer(16, 8);
  const torch::Tensor x = torch::randn({4, 16});
  at::autocast::set_cpu_enabled(true);
  const OperationLog log;
  const torch::Tensor single = msd::linear(*layer, x);
  const torch::Tensor grouped = msd::grouped_linear(x.unsqueeze(0), layer->weight.unsqueeze(0), layer->bias.unsqueeze(0));
  const torch::Tensor reference = layer->forward(x);
  at::autocast::set_cpu_enabled(false);
  at::autocast::clear_cache();
  EXPECT_FALSE(log.ran(msd::kGemmRecordName));
  EXPECT_EQ(reference.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(single.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(grouped.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(single, reference));
}

TEST(GroupedLinear, EachMemberIsItsOwnLayerOnOneAndTwoThreads) {
  torch::manual_seed(6);
  constexpr std::int64_t kMembers = 5, kBatch = 9, kIn = 16, kOut = 12;
  std::vector<torch::nn::Linear> layers;
  for (std::int64_t k = 0; k < kMembers; ++k) layers.emplace_back(kIn, kOut);
  std::vector<torch::Tensor> weights, biases;
  for (auto& layer : layers) {
    weights.push_back(layer->weight);
    biases.push_back(layer->bias);
  }
  const torch::Tensor weight = torch::stack(weights).detach().requires_grad_();
  const torch::Tensor bias = torch::stack(biases).detach().requires_grad_();
  const torch::Tensor x = torch::randn({kMembers, kBatch, kIn}, torch::requires_grad());
  const torch::Tensor probe = torch::randn({kMembers, kBatch, kOut});
  const int threads = at::get_num_threads();
  for (const int t : {1, 2}) {
    at::set_num_threads(t);
    const torch::Tensor y = msd::grouped_linear(x, weight, bias);
    const auto got = gradients(y, probe, {x, weight, bias});
    for (std::int64_t k = 0; k < kMembers; ++k) {
      const torch::Tensor xk = x[k].detach().requires_grad_();
      const torch::Tensor yk = layers[k]->forward(xk);
      expect_close(y[k], yk, "member " + std::to_string(k));
      const auto want = gradients(yk, probe[k], {xk, layers[k]->weight, layers[k]->bias});
      expect_close(got[0][k], want[0], "input gradient of member " + std::to_string(k));
      expect_close(got[1][k], want[1], "weight gradient of member " + std::to_string(k));
      expect_close(got[2][k], want[2], "bias gradient of member " + std::to_string(k));
    }
  }
  at::set_num_threads(threads);
}

TEST(GroupedLinear, ShapesThatDoNotFitAreRefusedByName) {
  const torch::Tensor weight = torch::randn({3, 4, 5}), bias = torch::randn({3, 4});
  EXPECT_THROW(msd::grouped_linear(torch::randn({2, 7, 5}), weight, bias), std::invalid_argument);
  EXPECT_THROW(msd::grouped_linear(torch::randn({3, 7, 6}), weight, bias), std::invalid_argument);
  EXPECT_THROW(msd::grouped_linear(torch::randn({3, 7, 5}), weight, torch::randn({3, 5})), std::invalid_argument);
  try {
    msd::grouped_linear(torch::randn({7, 5}), weight, bias);
    FAIL() << "a 2-D input was taken";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("x [K, B, in]"), std::string::npos) << e.what();
  }
  // Without a bias, and in double precision (LibTorch's batched product).
  const torch::Tensor x = torch::randn({3, 7, 5}, torch::kFloat64);
  const torch::Tensor w = weight.to(torch::kFloat64);
  EXPECT_TRUE(torch::allclose(msd::grouped_linear(x, w, {}), torch::bmm(x, w.transpose(1, 2))));
  expect_close(msd::grouped_linear(x.to(torch::kFloat), weight, {}), torch::bmm(x.to(torch::kFloat), weight.transpose(1, 2)),
               "float without bias");
}

}  // namespace
