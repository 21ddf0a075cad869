#include "unet.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

#include "msd/edm.h"

namespace unet {

namespace {

const double kSkipScale = std::sqrt(0.5);  // keeps the variance of residual sums at that of one branch

torch::nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2));
}

torch::nn::GroupNorm norm(std::int64_t channels) {
  return torch::nn::GroupNorm(torch::nn::GroupNormOptions(group_count(channels), channels));
}

}  // namespace

std::int64_t group_count(std::int64_t channels) {
  std::int64_t groups = std::max<std::int64_t>(1, std::min<std::int64_t>(32, channels / 4));
  while (channels % groups != 0) --groups;
  return groups;
}

/// GroupNorm -> SiLU -> conv, then the embedding scales and shifts the second GroupNorm's output ->
/// SiLU -> dropout -> conv; plus the (1x1-projected) input, times sqrt(1/2).
class ResBlock : public torch::nn::Module {
 public:
  ResBlock(std::int64_t in, std::int64_t out, std::int64_t embed, double dropout)
      : norm1_(register_module("norm1", norm(in))),
        conv1_(register_module("conv1", conv(in, out, 3))),
        affine_(register_module("affine", torch::nn::Linear(embed, 2 * out))),
        norm2_(register_module("norm2", norm(out))),
        dropout_(register_module("dropout", torch::nn::Dropout(dropout))),
        conv2_(register_module("conv2", conv(out, out, 3))) {
    if (in != out) skip_ = register_module("skip", conv(in, out, 1));
  }

  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& emb) {
    torch::Tensor h = conv1_->forward(torch::silu(norm1_->forward(x)));
    std::vector<torch::Tensor> scale_shift = affine_->forward(emb).unsqueeze(2).unsqueeze(3).chunk(2, 1);
    h = torch::silu(norm2_->forward(h) * (scale_shift[0] + 1.0) + scale_shift[1]);
    h = conv2_->forward(dropout_->forward(h));
    torch::Tensor shortcut = skip_ ? skip_->forward(x) : x;
    return (h + shortcut) * kSkipScale;
  }

  void set_dropout(double p) { dropout_->options.p(p); }

 private:
  torch::nn::GroupNorm norm1_;
  torch::nn::Conv2d conv1_;
  torch::nn::Linear affine_;
  torch::nn::GroupNorm norm2_;
  torch::nn::Dropout dropout_;
  torch::nn::Conv2d conv2_;
  torch::nn::Conv2d skip_{nullptr};
};

/// Multi-head self-attention over the h * w positions (64 channels per head, as EDM), residual.
class Attention : public torch::nn::Module {
 public:
  explicit Attention(std::int64_t channels)
      : heads_(std::max<std::int64_t>(1, channels / 64)),
        norm_(register_module("norm", norm(channels))),
        qkv_(register_module("qkv", conv(channels, 3 * channels, 1))),
        proj_(register_module("proj", conv(channels, channels, 1))) {
    if (channels % heads_ != 0) heads_ = 1;
  }

  torch::Tensor forward(const torch::Tensor& x) {
    const std::int64_t b = x.size(0), c = x.size(1), hw = x.size(2) * x.size(3);
    std::vector<torch::Tensor> qkv = qkv_->forward(norm_->forward(x)).reshape({b * heads_, 3, c / heads_, hw}).unbind(1);
    torch::Tensor weights = torch::softmax(torch::einsum("nci,ncj->nij", {qkv[0], qkv[1]}) /
                                               std::sqrt(static_cast<double>(c / heads_)), 2);
    torch::Tensor attended = torch::einsum("nij,ncj->nci", {weights, qkv[2]}).reshape(x.sizes());
    return (x + proj_->forward(attended)) * kSkipScale;
  }

 private:
  std::int64_t heads_;
  torch::nn::GroupNorm norm_;
  torch::nn::Conv2d qkv_, proj_;
};

void validate(const UNetOptions& o, const std::string& where) {
  auto fail = [&where](const std::string& what) { throw std::invalid_argument(where + ": " + what); };
  if (o.channels < 1 || o.height < 1 || o.width < 1) {
    fail("image shape [" + std::to_string(o.channels) + ", " + std::to_string(o.height) + ", " +
         std::to_string(o.width) + "] must be positive");
  }
  if (o.num_classes < 1) fail("num_classes = " + std::to_string(o.num_classes) + " must be at least 1");
  if (o.base_channels < 1) fail("base_channels = " + std::to_string(o.base_channels) + " must be at least 1");
  if (o.channel_mult.empty()) fail("channel_mult must list at least one level");
  for (std::int64_t m : o.channel_mult) {
    if (m < 1) fail("channel_mult entries must be at least 1, got " + std::to_string(m));
  }
  if (o.res_blocks < 1) fail("res_blocks = " + std::to_string(o.res_blocks) + " must be at least 1");
  if (o.embed < 2 || o.embed % 2 != 0) fail("embed = " + std::to_string(o.embed) + " must be even and at least 2");
  if (!(o.dropout >= 0.0 && o.dropout < 1.0)) fail("dropout = " + std::to_string(o.dropout) + " must be in [0, 1)");
  // Each level after the first halves the resolution with a stride-2 convolution (ceil division).
  std::int64_t h = o.height, w = o.width;
  for (size_t level = 1; level < o.channel_mult.size(); ++level) {
    if (h < 2 || w < 2) {
      fail(std::to_string(o.channel_mult.size()) + " levels are too many for " + std::to_string(o.height) + " x " +
           std::to_string(o.width) + " images: level " + std::to_string(level) + " would be below 1 x 1");
    }
    h = (h + 1) / 2;
    w = (w + 1) / 2;
  }
}

UNetDenoiser::UNetDenoiser(const UNetOptions& options) : DenoiserFrom(options) {
  validate(options, "unet");
  const std::int64_t embed = options.embed;
  const std::int64_t half = embed / 2;
  // Log-spaced frequencies for c_noise = ln(sigma)/4, which spans roughly [-1.6, 1.1] over EDM's range.
  frequencies_ = register_buffer("frequencies", torch::exp(torch::linspace(0.0, std::log(100.0), half)));
  noise_fc1_ = register_module("noise_fc1", torch::nn::Linear(embed, embed));
  noise_fc2_ = register_module("noise_fc2", torch::nn::Linear(embed, embed));
  class_embed_ = register_module("class_embed", torch::nn::Embedding(options.num_classes, embed));

  const std::int64_t base = options.base_channels;
  input_conv_ = register_module("input_conv", conv(options.channels, base, 3));
  encoder_ = register_module("encoder", torch::nn::ModuleList());
  std::vector<std::int64_t> skip_channels{base};
  std::int64_t ch = base;
  const size_t levels = options.channel_mult.size();
  for (size_t level = 0; level < levels; ++level) {
    if (level > 0) {
      encoder_->push_back(conv(ch, ch, 3, 2));
      encoder_is_down_.push_back(true);
      skip_channels.push_back(ch);
    }
    const std::int64_t out = base * options.channel_mult[level];
    for (std::int64_t b = 0; b < options.res_blocks; ++b) {
      encoder_->push_back(std::make_shared<ResBlock>(ch, out, embed, options.dropout));
      encoder_is_down_.push_back(false);
      ch = out;
      skip_channels.push_back(ch);
    }
  }
  middle1_ = register_module("middle1", std::make_shared<ResBlock>(ch, ch, embed, options.dropout));
  if (options.attention) middle_attention_ = register_module("middle_attention", std::make_shared<Attention>(ch));
  middle2_ = register_module("middle2", std::make_shared<ResBlock>(ch, ch, embed, options.dropout));

  decoder_ = register_module("decoder", torch::nn::ModuleList());
  for (size_t level = levels; level-- > 0;) {
    const std::int64_t out = base * options.channel_mult[level];
    for (std::int64_t b = 0; b <= options.res_blocks; ++b) {
      const std::int64_t skip = skip_channels.back();
      skip_channels.pop_back();
      decoder_->push_back(std::make_shared<ResBlock>(ch + skip, out, embed, options.dropout));
      decoder_is_up_.push_back(false);
      ch = out;
    }
    if (level > 0) {
      decoder_->push_back(conv(ch, ch, 3));
      decoder_is_up_.push_back(true);
    }
  }
  output_norm_ = register_module("output_norm", norm(ch));
  output_conv_ = register_module("output_conv", conv(ch, options.channels, 3));
}

torch::Tensor UNetDenoiser::denoise(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels) {
  return denoise_with_features(x, sigma, labels).denoised;
}

msd::DenoiserOutput UNetDenoiser::denoise_with_features(const torch::Tensor& x, const torch::Tensor& sigma,
                                                        const torch::Tensor& labels) {
  if (x.dim() != 4 || x.size(1) != options_.channels || x.size(2) != options_.height ||
      x.size(3) != options_.width) {
    throw std::invalid_argument("unet: expected images [B, " + std::to_string(options_.channels) + ", " +
                                std::to_string(options_.height) + ", " + std::to_string(options_.width) +
                                "], got " + c10::str(x.sizes()));
  }
  msd::edm::Preconditioning pre = msd::edm::precondition(sigma.reshape({-1, 1}).to(x.dtype()), options_.sigma_data);
  torch::Tensor angles = pre.c_noise * frequencies_.unsqueeze(0);
  torch::Tensor emb = noise_fc2_->forward(torch::silu(noise_fc1_->forward(torch::cat({angles.sin(), angles.cos()}, 1))));
  emb = torch::silu(emb + class_embed_->forward(labels));

  auto image = [](const torch::Tensor& c) { return c.view({-1, 1, 1, 1}); };
  torch::Tensor h = input_conv_->forward(image(pre.c_in) * x);
  std::vector<torch::Tensor> skips{h};
  std::vector<torch::Tensor> encoder_levels;  // each level's output, before it goes down
  for (size_t i = 0; i < encoder_->size(); ++i) {
    if (encoder_is_down_[i]) encoder_levels.push_back(h);
    h = encoder_is_down_[i] ? encoder_[i]->as<torch::nn::Conv2d>()->forward(h)
                            : encoder_[i]->as<ResBlock>()->forward(h, emb);
    skips.push_back(h);
  }
  encoder_levels.push_back(h);
  h = middle1_->forward(h, emb);
  if (middle_attention_) h = middle_attention_->forward(h);
  h = middle2_->forward(h, emb);
  msd::DenoiserOutput out;
  out.features.push_back(h);
  out.features.insert(out.features.end(), encoder_levels.begin(), encoder_levels.end());
  for (size_t i = 0; i < decoder_->size(); ++i) {
    if (decoder_is_up_[i]) {
      out.features.push_back(h);  // the decoder level's output, before it goes up
      const torch::Tensor& next_skip = skips.back();
      h = torch::nn::functional::interpolate(
          h, torch::nn::functional::InterpolateFuncOptions()
                 .size(std::vector<std::int64_t>{next_skip.size(2), next_skip.size(3)})
                 .mode(torch::kNearest));
      h = decoder_[i]->as<torch::nn::Conv2d>()->forward(h);
    } else {
      h = decoder_[i]->as<ResBlock>()->forward(torch::cat({h, skips.back()}, 1), emb);
      skips.pop_back();
    }
  }
  out.features.push_back(h);
  torch::Tensor f = output_conv_->forward(torch::silu(output_norm_->forward(h)));
  out.denoised = image(pre.c_skip) * x + image(pre.c_out) * f;
  return out;
}

std::vector<std::string> UNetDenoiser::feature_names() const {
  const auto levels = static_cast<std::int64_t>(options_.channel_mult.size());
  std::vector<std::string> names{"mid"};
  for (std::int64_t l = 0; l < levels; ++l) names.push_back("enc." + std::to_string(l));
  for (std::int64_t l = levels - 1; l >= 0; --l) names.push_back("dec." + std::to_string(l));
  return names;
}

void UNetDenoiser::set_dropout(double p) {
  if (!(p >= 0.0 && p < 1.0)) throw std::invalid_argument("unet: dropout = " + std::to_string(p) + " must be in [0, 1)");
  options_.dropout = p;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (auto* block = dynamic_cast<ResBlock*>(module.get())) block->set_dropout(p);
  }
}

}  // namespace unet
