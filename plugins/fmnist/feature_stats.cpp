#include "feature_stats.h"

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace msd::fmnist {
namespace {

torch::Tensor as_f64(const torch::Tensor& x) { return x.detach().to(torch::kCPU, torch::kFloat64); }

// Square root of a symmetric PSD matrix through its eigendecomposition.
torch::Tensor sqrt_psd(const torch::Tensor& m) {
  auto [values, vectors] = torch::linalg_eigh(0.5 * (m + m.t()), "L");
  return vectors.mm(torch::diag(values.clamp_min(0.0).sqrt())).mm(vectors.t());
}

torch::Tensor squared_distances(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor a2 = a.pow(2).sum(1, /*keepdim=*/true);
  const torch::Tensor b2 = b.pow(2).sum(1, /*keepdim=*/true).t();
  return (a2 + b2 - 2.0 * a.mm(b.t())).clamp_min(0.0);
}

constexpr std::int64_t kRowBlock = 1024;

// Squared distance from each point to its k-th nearest other point of the same set.
torch::Tensor kth_neighbour_radii2(const torch::Tensor& x, std::int64_t k) {
  std::vector<torch::Tensor> radii;
  for (std::int64_t i = 0; i < x.size(0); i += kRowBlock) {
    const torch::Tensor d = squared_distances(x.slice(0, i, std::min(i + kRowBlock, x.size(0))), x);
    // k + 1 smallest: the first is the point itself at distance 0.
    radii.push_back(std::get<0>(d.topk(k + 1, 1, /*largest=*/false, /*sorted=*/true)).select(1, k));
  }
  return torch::cat(radii);
}

// Share of the rows of `query` that lie within radius of at least one point of `set`.
double share_inside(const torch::Tensor& query, const torch::Tensor& set, const torch::Tensor& radii2) {
  std::int64_t inside = 0;
  for (std::int64_t i = 0; i < query.size(0); i += kRowBlock) {
    const torch::Tensor d = squared_distances(query.slice(0, i, std::min(i + kRowBlock, query.size(0))), set);
    inside += (d <= radii2.unsqueeze(0)).any(1).sum().item<std::int64_t>();
  }
  return static_cast<double>(inside) / static_cast<double>(query.size(0));
}

}  // namespace

Gaussian fit_gaussian(const torch::Tensor& features) {
  if (features.dim() != 2 || features.size(0) < 2) {
    throw std::invalid_argument("fit_gaussian needs at least 2 feature rows, got " + std::to_string(features.size(0)));
  }
  const torch::Tensor x = as_f64(features);
  const torch::Tensor mean = x.mean(0);
  const torch::Tensor centred = x - mean;
  return {mean, centred.t().mm(centred) / static_cast<double>(x.size(0) - 1)};
}

double frechet_distance(const Gaussian& a, const Gaussian& b) {
  const torch::Tensor root_a = sqrt_psd(a.cov);
  const torch::Tensor m = root_a.mm(b.cov).mm(root_a);
  const torch::Tensor eigen = torch::linalg_eigvalsh(0.5 * (m + m.t()), "L");
  const double cross = eigen.clamp_min(0.0).sqrt().sum().item<double>();
  return (a.mean - b.mean).pow(2).sum().item<double>() + a.cov.trace().item<double>() +
         b.cov.trace().item<double>() - 2.0 * cross;
}

double kernel_inception_distance(const torch::Tensor& x_in, const torch::Tensor& y_in, const KidOptions& options) {
  const torch::Tensor x = as_f64(x_in);
  const torch::Tensor y = as_f64(y_in);
  const std::int64_t m = options.subset_size;
  if (m < 2 || m > x.size(0) || m > y.size(0)) {
    throw std::invalid_argument("KID subset size " + std::to_string(m) + " must lie in 2.." +
                                std::to_string(std::min(x.size(0), y.size(0))) + " (the smaller set's size)");
  }
  const double dim = static_cast<double>(x.size(1));
  const auto kernel = [dim](const torch::Tensor& a, const torch::Tensor& b) { return (a.mm(b.t()) / dim + 1.0).pow(3); };
  const double pairs = static_cast<double>(m) * static_cast<double>(m - 1);
  double total = 0.0;
  for (std::int64_t s = 0; s < options.subsets; ++s) {
    const torch::Tensor a = x.index_select(0, torch::randperm(x.size(0), torch::kInt64).narrow(0, 0, m));
    const torch::Tensor b = y.index_select(0, torch::randperm(y.size(0), torch::kInt64).narrow(0, 0, m));
    const torch::Tensor kaa = kernel(a, a);
    const torch::Tensor kbb = kernel(b, b);
    // Leaving out the diagonals (each point with itself) makes the estimate unbiased.
    total += ((kaa.sum() - kaa.trace()) / pairs + (kbb.sum() - kbb.trace()) / pairs -
              2.0 * kernel(a, b).mean())
                 .item<double>();
  }
  return total / static_cast<double>(options.subsets);
}

PrecisionRecall precision_recall(const torch::Tensor& real_in, const torch::Tensor& generated_in, std::int64_t k) {
  const torch::Tensor real = as_f64(real_in);
  const torch::Tensor generated = as_f64(generated_in);
  if (k < 1 || k >= real.size(0) || k >= generated.size(0)) {
    throw std::invalid_argument("precision/recall: k = " + std::to_string(k) + " needs more than k samples in each set (" +
                                std::to_string(real.size(0)) + " real, " + std::to_string(generated.size(0)) +
                                " generated)");
  }
  return {share_inside(generated, real, kth_neighbour_radii2(real, k)),
          share_inside(real, generated, kth_neighbour_radii2(generated, k))};
}

double conditional_accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  if (logits.size(0) == 0) return std::numeric_limits<double>::quiet_NaN();
  return (logits.argmax(1).to(torch::kCPU) == labels.to(torch::kCPU, torch::kInt64)).to(torch::kFloat64).mean().item<double>();
}

}  // namespace msd::fmnist
