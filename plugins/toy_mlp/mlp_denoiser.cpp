#include "mlp_denoiser.h"

#include <cmath>
#include <stdexcept>

#include <torch/torch.h>

#include "msd/edm.h"
#include "msd/linear.h"

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
  torch::Tensor emb = torch::silu(msd::linear(*noise_proj_, torch::cat({angles.sin(), angles.cos()}, 1)) +
                                  class_embed_->forward(labels));
  torch::Tensor h = msd::linear(*input_proj_, pre.c_in * flat);
  msd::DenoiserOutput out;
  for (size_t b = 0; b < first_->size(); ++b) {
    torch::Tensor inner = msd::linear(*first_[b]->as<torch::nn::Linear>(), torch::silu(h)) +
                          msd::linear(*cond_[b]->as<torch::nn::Linear>(), emb);
    h = h + msd::linear(*second_[b]->as<torch::nn::Linear>(), torch::silu(inner));
    out.features.push_back(h);
  }
  torch::Tensor f = msd::linear(*output_proj_, torch::silu(h));
  out.denoised = (pre.c_skip * flat + pre.c_out * f).reshape(shape);
  return out;
}

namespace {

std::vector<std::string> block_names(std::int64_t blocks) {
  std::vector<std::string> names;
  for (std::int64_t b = 0; b < blocks; ++b) names.push_back("block." + std::to_string(b));
  return names;
}

}  // namespace

std::vector<std::string> MlpDenoiser::feature_names() const { return block_names(options_.blocks); }

std::shared_ptr<msd::Denoiser> MlpDenoiser::group(const std::vector<const msd::Denoiser*>& members) const {
  auto grouped = std::make_shared<GroupedMlpDenoiser>(
      GroupedMlpOptions{options_, static_cast<std::int64_t>(members.size())});
  msd::copy_stacked(members, *grouped);
  return grouped;
}

GroupedLinear::GroupedLinear(std::int64_t members, std::int64_t in, std::int64_t out) {
  // Each member initialised as torch::nn::Linear is (the values are replaced by copy_stacked).
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  weight_ = register_parameter("weight", torch::empty({members, out, in}).uniform_(-bound, bound));
  bias_ = register_parameter("bias", torch::empty({members, out}).uniform_(-bound, bound));
}

torch::Tensor GroupedLinear::forward(const torch::Tensor& x) {
  return msd::grouped_linear(x, weight_, bias_);
}

GroupedEmbedding::GroupedEmbedding(std::int64_t members, std::int64_t classes, std::int64_t dim) {
  weight_ = register_parameter("weight", torch::randn({members, classes, dim}));
}

torch::Tensor GroupedEmbedding::forward(const torch::Tensor& labels) {
  const std::int64_t members = weight_.size(0), classes = weight_.size(1);
  torch::Tensor offsets = torch::arange(members, labels.options()).unsqueeze(1) * classes;
  torch::Tensor rows = (labels + offsets).reshape({-1});
  return weight_.reshape({members * classes, -1}).index_select(0, rows).view({members, labels.size(1), -1});
}

GroupedMlpDenoiser::GroupedMlpDenoiser(const GroupedMlpOptions& options) : DenoiserFrom(options) {
  const MlpDenoiserOptions& o = options.network;
  const std::int64_t k = options.members, half = o.embed / 2;
  frequencies_ = register_buffer("frequencies", torch::exp(torch::linspace(0.0, std::log(100.0), half)).repeat({k, 1}));
  noise_proj_ = register_module("noise_proj", std::make_shared<GroupedLinear>(k, 2 * half, o.embed));
  class_embed_ = register_module("class_embed", std::make_shared<GroupedEmbedding>(k, o.num_classes, o.embed));
  input_proj_ = register_module("input_proj", std::make_shared<GroupedLinear>(k, o.dim, o.hidden));
  auto first = register_module("first", torch::nn::ModuleList());
  auto cond = register_module("cond", torch::nn::ModuleList());
  auto second = register_module("second", torch::nn::ModuleList());
  for (std::int64_t b = 0; b < o.blocks; ++b) {
    first_.push_back(std::make_shared<GroupedLinear>(k, o.hidden, o.hidden));
    cond_.push_back(std::make_shared<GroupedLinear>(k, o.embed, o.hidden));
    second_.push_back(std::make_shared<GroupedLinear>(k, o.hidden, o.hidden));
    first->push_back(first_.back());
    cond->push_back(cond_.back());
    second->push_back(second_.back());
  }
  output_proj_ = register_module("output_proj", std::make_shared<GroupedLinear>(k, o.hidden, o.dim));
}

torch::Tensor GroupedMlpDenoiser::denoise(const torch::Tensor& x, const torch::Tensor& sigma,
                                          const torch::Tensor& labels) {
  return denoise_with_features(x, sigma, labels).denoised;
}

/// MlpDenoiser's computation on [K, B, ...] blocks.
msd::DenoiserOutput GroupedMlpDenoiser::denoise_with_features(const torch::Tensor& x, const torch::Tensor& sigma,
                                                              const torch::Tensor& labels) {
  const std::int64_t k = options_.members;
  if (x.size(0) % k != 0) {
    throw std::invalid_argument("a grouped network of " + std::to_string(k) + " takes a batch of " +
                                std::to_string(k) + " equal blocks; got " + std::to_string(x.size(0)) + " samples");
  }
  const std::int64_t b = x.size(0) / k;
  torch::Tensor flat = x.reshape({k, b, -1});
  torch::Tensor s = sigma.reshape({k, b, 1}).to(flat.dtype());
  msd::edm::Preconditioning pre = msd::edm::precondition(s, options_.network.sigma_data);
  torch::Tensor angles = pre.c_noise * frequencies_.unsqueeze(1);
  torch::Tensor emb = torch::silu(noise_proj_->forward(torch::cat({angles.sin(), angles.cos()}, 2)) +
                                  class_embed_->forward(labels.reshape({k, b})));
  torch::Tensor h = input_proj_->forward(pre.c_in * flat);
  msd::DenoiserOutput out;
  for (size_t i = 0; i < first_.size(); ++i) {
    torch::Tensor inner = first_[i]->forward(torch::silu(h)) + cond_[i]->forward(emb);
    h = h + second_[i]->forward(torch::silu(inner));
    out.features.push_back(h.reshape({k * b, -1}));
  }
  torch::Tensor f = output_proj_->forward(torch::silu(h));
  out.denoised = (pre.c_skip * flat + pre.c_out * f).reshape(x.sizes());
  return out;
}

std::vector<std::string> GroupedMlpDenoiser::feature_names() const { return block_names(options_.network.blocks); }

std::shared_ptr<msd::Denoiser> GroupedMlpDenoiser::member(std::int64_t k) const {
  auto single = std::make_shared<MlpDenoiser>(options_.network);
  msd::copy_member(*this, k, *single);
  return single;
}

}  // namespace toy
