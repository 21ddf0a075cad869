#include "mlp_denoiser.h"

#include <cmath>

#include <torch/torch.h>

#include "msd/edm.h"

namespace toy {

MlpDenoiser::MlpDenoiser(const MlpDenoiserOptions& options) : DenoiserFrom(options) {
  const std::int64_t half = options.embed / 2;
  // Log-spaced frequencies for c_noise = ln(sigma)/4, which spans roughly [-1.6, 1.1].
  frequencies_ = register_buffer("frequencies", torch::exp(torch::linspace(0.0, std::log(100.0), half)));
  noise_proj_ = register_module("noise_proj", torch::nn::Linear(2 * half, options.embed));
  class_embed_ = register_module("class_embed", torch::nn::Embedding(options.num_classes, options.embed));
  input_proj_ = register_module("input_proj", torch::nn::Linear(options.dim, options.hidden));
  first_ = register_module("first", torch::nn::ModuleList());
  cond_ = register_module("cond", torch::nn::ModuleList());
  second_ = register_module("second", torch::nn::ModuleList());
  for (std::int64_t b = 0; b < options.blocks; ++b) {
    first_->push_back(torch::nn::Linear(options.hidden, options.hidden));
    cond_->push_back(torch::nn::Linear(options.embed, options.hidden));
    second_->push_back(torch::nn::Linear(options.hidden, options.hidden));
  }
  output_proj_ = register_module("output_proj", torch::nn::Linear(options.hidden, options.dim));
}

torch::Tensor MlpDenoiser::denoise(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels) {
  return denoise_with_features(x, sigma, labels).denoised;
}

msd::DenoiserOutput MlpDenoiser::denoise_with_features(const torch::Tensor& x, const torch::Tensor& sigma,
                                                       const torch::Tensor& labels) {
  const auto shape = x.sizes();
  torch::Tensor flat = x.reshape({x.size(0), -1});
  torch::Tensor s = sigma.reshape({-1, 1}).to(flat.dtype());
  msd::edm::Preconditioning pre = msd::edm::precondition(s, options_.sigma_data);
  torch::Tensor angles = pre.c_noise * frequencies_.unsqueeze(0);
  torch::Tensor emb = torch::silu(noise_proj_->forward(torch::cat({angles.sin(), angles.cos()}, 1)) +
                                  class_embed_->forward(labels));
  torch::Tensor h = input_proj_->forward(pre.c_in * flat);
  msd::DenoiserOutput out;
  for (size_t b = 0; b < first_->size(); ++b) {
    torch::Tensor inner = first_[b]->as<torch::nn::Linear>()->forward(torch::silu(h)) +
                          cond_[b]->as<torch::nn::Linear>()->forward(emb);
    h = h + second_[b]->as<torch::nn::Linear>()->forward(torch::silu(inner));
    out.features.push_back(h);
  }
  torch::Tensor f = output_proj_->forward(torch::silu(h));
  out.denoised = (pre.c_skip * flat + pre.c_out * f).reshape(shape);
  return out;
}

std::vector<std::string> MlpDenoiser::feature_names() const {
  std::vector<std::string> names;
  for (std::int64_t b = 0; b < options_.blocks; ++b) names.push_back("block." + std::to_string(b));
  return names;
}

}  // namespace toy
