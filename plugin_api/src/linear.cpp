#include "msd/linear.h"

#include <ATen/Context.h>
#include <ATen/ops/mkldnn_linear.h>
#include <torch/autograd.h>

namespace msd {

namespace {

bool onednn_pays(const torch::nn::LinearImpl& layer, const torch::Tensor& x) {
  const torch::Tensor& weight = layer.weight;
  const bool needs_gradient =
      torch::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() ||
                                        (layer.bias.defined() && layer.bias.requires_grad()));
  return !needs_gradient && at::hasMKLDNN() && x.dim() == 2 && x.device().is_cpu() &&
         x.scalar_type() == torch::kFloat && weight.scalar_type() == torch::kFloat &&
         x.size(0) >= kOneDnnMinRows && weight.size(0) >= kOneDnnMinOutputs;
}

}  // namespace

torch::Tensor linear(const torch::nn::LinearImpl& layer, const torch::Tensor& x) {
  if (!onednn_pays(layer, x)) return torch::nn::functional::linear(x, layer.weight, layer.bias);
  c10::optional<torch::Tensor> bias;
  if (layer.bias.defined()) bias = layer.bias.to_mkldnn();
  return at::mkldnn_linear(x.contiguous().to_mkldnn(), layer.weight.to_mkldnn(), bias).to_dense();
}

}  // namespace msd
