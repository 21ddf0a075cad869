// A class-conditional EDM-preconditioned UNet for small images ([C, H, W], e.g. Fashion-MNIST's
// [1, 28, 28]). Shared by the `edm_unet` teacher and the `unet_generator` student of this library.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "msd/denoiser.h"

namespace unet {

struct UNetOptions {
  std::int64_t channels = 1;                   ///< image channels C
  std::int64_t height = 28;                    ///< image height H
  std::int64_t width = 28;                     ///< image width W
  std::int64_t num_classes = 10;               ///< class labels 0..num_classes-1
  std::int64_t base_channels = 32;             ///< channels of the first (full-resolution) level
  std::vector<std::int64_t> channel_mult{1, 2, 2};  ///< per level, channels = base * mult; each level after
                                               ///< the first halves the resolution (28 -> 14 -> 7)
  std::int64_t res_blocks = 1;                 ///< residual blocks per level in the encoder (decoder: one more)
  bool attention = false;                      ///< self-attention in the bottleneck (lowest resolution)
  double dropout = 0.0;                        ///< dropout probability inside every residual block
  std::int64_t embed = 128;                    ///< width of the noise-level + class embedding (even)
  double sigma_data = 0.5;                     ///< EDM's data standard deviation
};

/// Checks `options` and throws std::invalid_argument naming the offending field; `where` prefixes the
/// message (the plugin name).
void validate(const UNetOptions& options, const std::string& where);

class ResBlock;
class Attention;

/// D(x; sigma, c) = c_skip x + c_out F(c_in x; c_noise, c) with F a UNet (ADM/DDPM++ style): an
/// embedding of c_noise plus a learned class embedding modulates every residual block (scale and
/// shift after GroupNorm); stride-2 convolutions go down, nearest upsampling plus a convolution goes
/// back up (to the skip's size, so odd sizes such as 7 -> 14 work), skips are concatenated. The
/// bottleneck (middle blocks at the lowest resolution) is features[0] of denoise_with_features, as
/// [B, C, h, w]: DMD2's discriminator head reads it. Then each encoder level's output and each decoder
/// level's, for feature KD.
class UNetDenoiser final : public msd::DenoiserFrom<UNetDenoiser, UNetOptions> {
 public:
  explicit UNetDenoiser(const UNetOptions& options);

  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor& sigma, const torch::Tensor& labels) override;
  msd::DenoiserOutput denoise_with_features(const torch::Tensor& x, const torch::Tensor& sigma,
                                            const torch::Tensor& labels) override;
  /// "mid" (the bottleneck), then "enc.0" .. "enc.L-1" (each encoder level's output, before it goes
  /// down) and "dec.L-1" .. "dec.0" (each decoder level's, before it goes up, and the last before the
  /// output layer), all [B, C_l, h_l, w_l] for L = channel_mult's levels.
  std::vector<std::string> feature_names() const override;

  /// Changes the dropout probability of every residual block (a student may train without it).
  void set_dropout(double p);

 private:
  torch::Tensor frequencies_;  // buffer: frequencies of the Fourier embedding of c_noise
  torch::nn::Linear noise_fc1_{nullptr}, noise_fc2_{nullptr};
  torch::nn::Embedding class_embed_{nullptr};
  torch::nn::Conv2d input_conv_{nullptr};
  torch::nn::ModuleList encoder_{nullptr};      // ResBlocks and stride-2 convolutions, in order
  std::vector<bool> encoder_is_down_;
  std::shared_ptr<ResBlock> middle1_, middle2_;
  std::shared_ptr<Attention> middle_attention_;
  torch::nn::ModuleList decoder_{nullptr};      // ResBlocks and upsampling convolutions, in order
  std::vector<bool> decoder_is_up_;
  torch::nn::GroupNorm output_norm_{nullptr};
  torch::nn::Conv2d output_conv_{nullptr};
};

/// Groups for a GroupNorm over `channels`: EDM's min(32, channels / 4), lowered to a divisor.
std::int64_t group_count(std::int64_t channels);

}  // namespace unet
