// msd::linear against torch::nn::Linear: the same values, through oneDNN only where it pays and no
// gradient is needed.
#include <gtest/gtest.h>

#include <ATen/record_function.h>
#include <torch/torch.h>

#include <set>
#include <string>

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

TEST(Linear, LargeProductsWithoutGradientsRunThroughOneDnnWithTheSameValues) {
  if (!at::hasMKLDNN()) GTEST_SKIP() << "this LibTorch has no oneDNN";
  torch::manual_seed(3);
  torch::nn::Linear layer(128, 64);
  const torch::Tensor x = torch::randn({msd::kOneDnnMinRows, 128});
  torch::NoGradGuard no_grad;
  const OperationLog log;
  const torch::Tensor fast = msd::linear(*layer, x);
  EXPECT_TRUE(log.ran("aten::mkldnn_linear"));
  EXPECT_FALSE(fast.is_mkldnn());
  EXPECT_TRUE(torch::allclose(fast, layer->forward(x), 1e-5, 1e-5));
}

TEST(Linear, SmallProductsAndGradientsKeepLibTorchsKernel) {
  torch::manual_seed(3);
  torch::nn::Linear layer(128, 64), narrow(128, msd::kOneDnnMinOutputs - 1);
  const torch::Tensor small = torch::randn({msd::kOneDnnMinRows - 1, 128});
  const torch::Tensor large = torch::randn({msd::kOneDnnMinRows, 128});
  {
    torch::NoGradGuard no_grad;
    const OperationLog log;
    EXPECT_TRUE(torch::equal(msd::linear(*layer, small), layer->forward(small)));
    EXPECT_TRUE(torch::equal(msd::linear(*narrow, large), narrow->forward(large)));
    EXPECT_FALSE(log.ran("aten::mkldnn_linear"));
  }
  // With gradients the layer's own kernel runs, so that autograd sees it and the weights learn.
  const OperationLog log;
  torch::Tensor y = msd::linear(*layer, large);
  EXPECT_FALSE(log.ran("aten::mkldnn_linear"));
  y.sum().backward();
  ASSERT_TRUE(layer->weight.grad().defined());
  EXPECT_TRUE(torch::allclose(layer->weight.grad(), large.sum(0).expand({64, 128}), 1e-4, 1e-3));
}

}  // namespace
