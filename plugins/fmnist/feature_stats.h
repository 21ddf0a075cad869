// Distances between two sets of feature vectors, as used by FID, KID and improved precision/recall.
// Everything is computed in float64: FD subtracts traces of magnitude ~10^3 to get values ~1.
#pragma once

#include <cstdint>

#include <torch/types.h>

namespace msd::fmnist {

/// A Gaussian fitted to features: mean and unbiased covariance.
struct Gaussian {
  torch::Tensor mean;  ///< [D] float64
  torch::Tensor cov;   ///< [D, D] float64, divided by N - 1
};

/// Mean and covariance of features [N, D] (N >= 2).
Gaussian fit_gaussian(const torch::Tensor& features);

/// Fréchet distance between two Gaussians (Dowson & Landau 1982; FID, Heusel et al. 2017):
///   |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr( (S1^1/2 S2 S1^1/2)^1/2 ).
/// Both square roots come from symmetric eigendecompositions, with eigenvalues below zero (rounding
/// of PSD matrices) clamped to zero, so the result is real; unlike scipy's sqrtm on S1 S2, which is
/// not symmetric and returns complex parts that must be dropped.
double frechet_distance(const Gaussian& a, const Gaussian& b);

/// How KID is estimated.
struct KidOptions {
  std::int64_t subset_size = 1000;  ///< samples of each set per subset (without replacement)
  std::int64_t subsets = 100;       ///< subsets averaged over
};

/// Kernel Inception Distance (Bińkowski et al. 2018): the unbiased MMD^2 between x [N, D] and y [M, D]
/// with the cubic polynomial kernel k(a, b) = (a.b / D + 1)^3, averaged over random subsets drawn
/// with torch's default generator. About 0 (and possibly slightly negative) for equal distributions.
double kernel_inception_distance(const torch::Tensor& x, const torch::Tensor& y, const KidOptions& options);

/// Improved precision and recall (Kynkäänniemi et al. 2019).
struct PrecisionRecall {
  double precision;  ///< share of generated samples inside the real manifold
  double recall;     ///< share of real samples inside the generated manifold
};

/// A set's manifold is the union of balls around its points, each with the radius to that point's
/// k-th nearest neighbour within the set (the point itself excluded). Distances are computed in
/// row blocks so that 10^4 x 10^4 pairs never sit in memory at once.
PrecisionRecall precision_recall(const torch::Tensor& real, const torch::Tensor& generated, std::int64_t k);

/// Share of rows whose largest logit is at the given label: logits [N, C], labels [N] int64.
double conditional_accuracy(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace msd::fmnist
