// EDM (Karras et al. 2022) building blocks shared by teachers, students and losses: preconditioning,
// noise-level distributions, the sampling schedule and the Heun sampler. One implementation, so that
// every plugin gets the same science.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include <torch/types.h>

#include "msd/random.h"

namespace msd::edm {

/// EDM's training prior on ln(sigma), used wherever a loss needs "any noise level".
constexpr double kPMean = -1.2;
constexpr double kPStd = 1.2;

/// A log-normal distribution of noise levels: ln(sigma) ~ N(p_mean, p_std^2).
struct NoisePrior {
  double p_mean = kPMean;
  double p_std = kPStd;
};

/// The preconditioning coefficients of D(x; s) = c_skip x + c_out F(c_in x; c_noise).
struct Preconditioning {
  torch::Tensor c_skip, c_out, c_in, c_noise;  ///< each shaped like sigma
};
/// EDM's coefficients for noise level `sigma` ([B]) and data standard deviation `sigma_data`.
Preconditioning precondition(const torch::Tensor& sigma, double sigma_data);

/// EDM loss weight lambda(s) = (s^2 + sd^2) / (s sd)^2, shaped like sigma.
torch::Tensor loss_weight(const torch::Tensor& sigma, double sigma_data);

/// EDM's denoising loss mean(lambda(s) ||denoised - target||^2): `sigma` is [B], broadcast over the
/// other dimensions. The teacher's loss, the fake score's, TSM/KD on predictions and the diffusion loss.
torch::Tensor weighted_denoising_loss(const torch::Tensor& denoised, const torch::Tensor& target,
                                      const torch::Tensor& sigma, double sigma_data);

/// Noise levels for training: ln s ~ N(p_mean, p_std^2). [n], float32, drawn from `random`.
torch::Tensor sample_training_sigma(std::int64_t n, double p_mean, double p_std, const Random& random);

/// As sample_training_sigma, restricted to [lo, hi) by inverse-CDF sampling of the truncated normal
/// (exact, no rejection), so that a narrow range far in the tail costs nothing extra.
torch::Tensor sample_training_sigma_in(std::int64_t n, double p_mean, double p_std, double lo,
                                       double hi, const Random& random);

/// O2MKD's p-mixing for a student responsible for [lo, hi): n levels of `prior`, each restricted to the
/// range with probability 1 - p and from the whole prior with probability p. A range that covers
/// every level ([0, inf)) draws from the prior alone.
torch::Tensor sample_cell_sigma(std::int64_t n, const NoisePrior& prior, double lo, double hi, double p,
                                const Random& random);

/// EDM's denoising loss of each of `members` equal blocks of the batch (the members of a grouped
/// network, see Denoiser::group): [members]. With one member, weighted_denoising_loss itself (0-dim).
torch::Tensor weighted_denoising_loss(const torch::Tensor& denoised, const torch::Tensor& target,
                                      const torch::Tensor& sigma, double sigma_data, std::int64_t members);

/// The sampler's noise levels: N levels from sigma_max down to sigma_min with exponent rho, then 0.
/// Returns N + 1 values (double precision, on CPU).
std::vector<double> karras_schedule(std::int64_t num_steps, double sigma_min, double sigma_max,
                                    double rho);

/// A denoiser as the sampler sees it: D(x; sigma, labels) with sigma a scalar broadcast to [B].
using DenoiseFn = std::function<torch::Tensor(const torch::Tensor& x, double sigma,
                                              const torch::Tensor& labels)>;

/// Settings of the deterministic Heun sampler (EDM Algorithm 1, no churn).
struct SamplerOptions {
  std::int64_t num_steps = 18;  ///< N noise levels; NFE = 2N - 1
  double sigma_min = 0.002;     ///< lowest non-zero noise level
  double sigma_max = 80.0;      ///< starting noise level
  double rho = 7.0;             ///< schedule exponent
};

/// Number of network evaluations the Heun sampler makes: 2N - 1.
std::int64_t heun_nfe(const SamplerOptions& options);

/// Runs the Heun sampler from x = noise * sigma_max. `noise` is standard normal, [B, ...].
torch::Tensor heun_sample(const DenoiseFn& denoise, const torch::Tensor& noise,
                          const torch::Tensor& labels, const SamplerOptions& options);

/// A one-step generator built from a denoiser (DMD style): G(z, c) = D(sigma_gen z; sigma_gen, c).
torch::Tensor one_step_generate(const DenoiseFn& denoise, const torch::Tensor& noise,
                                const torch::Tensor& labels, double sigma_gen);

/// DMD2's training grid: `levels` noise levels on the Karras schedule (rho = 7, ascending index =
/// descending sigma), from which losses draw by index. [levels], float32 on CPU.
torch::Tensor training_grid(std::int64_t levels, double sigma_min, double sigma_max, double rho);

}  // namespace msd::edm
