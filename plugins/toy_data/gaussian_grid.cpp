// gaussian_grid: a 2-D mixture of Gaussians on a g x g grid whose modes are grouped into classes.
// Each class owns several modes spread over the grid, so a per-class student still has a multi-modal
// distribution to learn, and the true density is known to the metrics.
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "msd/dataset.h"
#include "msd/plugin.h"

namespace {

class GaussianGrid final : public msd::Dataset {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::dataset,
            "gaussian_grid",
            "1.0",
            "2-D Gaussian mixture on a grid, modes grouped into classes; true density known",
            {msd::key_int("grid", 5, "modes per side of the square grid", 1, 64),
             msd::key_int("classes", 5, "number of classes the modes are grouped into", 1, 4096),
             msd::key_real("spacing", 0.5, "distance between neighbouring modes", 1e-6),
             msd::key_real("mode_std", 0.05, "standard deviation of each mode", 1e-6),
             msd::key_string("grouping", "diagonal",
                             "class of mode (i, j): diagonal = (i + j) mod classes, spreading every class "
                             "over the whole grid; rows = (i * grid + j) * classes / grid^2, contiguous blocks",
                             {"diagonal", "rows"})}};
  }

  explicit GaussianGrid(const msd::Params& params)
      : grid_(params.get_int("grid")), classes_(params.get_int("classes")) {
    const std::int64_t modes = grid_ * grid_;
    if (classes_ > modes) {
      throw std::invalid_argument("gaussian_grid: classes (" + std::to_string(classes_) +
                                  ") exceeds the number of modes grid^2 (" + std::to_string(modes) + ")");
    }
    const double spacing = params.get_real("spacing");
    const bool diagonal = params.get_string("grouping") == "diagonal";
    std::vector<float> means;
    std::vector<std::int64_t> mode_class;
    std::vector<std::vector<std::int64_t>> modes_of_class(static_cast<size_t>(classes_));
    const double centre = 0.5 * static_cast<double>(grid_ - 1);
    for (std::int64_t i = 0; i < grid_; ++i) {
      for (std::int64_t j = 0; j < grid_; ++j) {
        means.push_back(static_cast<float>((static_cast<double>(j) - centre) * spacing));
        means.push_back(static_cast<float>((centre - static_cast<double>(i)) * spacing));
        const std::int64_t c = diagonal ? (i + j) % classes_ : (i * grid_ + j) * classes_ / modes;
        modes_of_class[c].push_back(static_cast<std::int64_t>(mode_class.size()));
        mode_class.push_back(c);
      }
    }
    // A [classes, max modes per class] table (padded by repeating) lets sampling pick a mode of a
    // class with one gather instead of a loop over samples.
    std::int64_t widest = 0;
    for (const auto& m : modes_of_class) widest = std::max<std::int64_t>(widest, static_cast<std::int64_t>(m.size()));
    std::vector<std::int64_t> table;
    std::vector<std::int64_t> counts;
    for (const auto& m : modes_of_class) {
      for (std::int64_t r = 0; r < widest; ++r) table.push_back(m[static_cast<size_t>(r) % m.size()]);
      counts.push_back(static_cast<std::int64_t>(m.size()));
    }
    means_ = torch::tensor(means).view({modes, 2});
    mode_class_ = torch::tensor(mode_class);
    class_modes_ = torch::tensor(table).view({classes_, widest});
    class_mode_count_ = torch::tensor(counts);
    stds_ = torch::full({modes}, params.get_real("mode_std"));
    weights_ = 1.0 / class_mode_count_.index_select(0, mode_class_).to(torch::kFloat32);
    sigma_data_ = mixture_std();
  }

  std::vector<std::int64_t> sample_shape() const override { return {2}; }
  std::int64_t num_classes() const override { return classes_; }
  double sigma_data() const override { return sigma_data_; }

  msd::Batch sample(std::int64_t n, const std::vector<std::int64_t>& classes) override {
    torch::Tensor labels;
    if (classes.empty()) {
      labels = torch::randint(classes_, {n}, torch::kInt64);
    } else {
      torch::Tensor allowed = torch::tensor(classes, torch::kInt64);
      labels = allowed.index_select(0, torch::randint(allowed.numel(), {n}, torch::kInt64));
    }
    return {sample_given(labels), labels};
  }

  torch::Tensor sample_given(const torch::Tensor& labels) override {
    const std::int64_t n = labels.numel();
    torch::Tensor count = class_mode_count_.index_select(0, labels);
    torch::Tensor pick = (torch::rand({n}, torch::kFloat64) * count).floor().to(torch::kInt64).clamp_max(count - 1);
    torch::Tensor mode = class_modes_.index({labels, pick});
    return means_.index_select(0, mode) + torch::randn({n, 2}) * stds_.index_select(0, mode).unsqueeze(1);
  }

  std::optional<msd::GaussianMixture> true_density() const override {
    return msd::GaussianMixture{means_, stds_, weights_, mode_class_};
  }

 private:
  /// The standard deviation of both coordinates together under sample()'s distribution (classes
  /// uniform, modes uniform within a class), from the mixture's moments.
  double mixture_std() const {
    const torch::Tensor p = (weights_.to(torch::kFloat64) / static_cast<double>(classes_)).unsqueeze(1);  // [M, 1]
    const torch::Tensor means = means_.to(torch::kFloat64);
    const torch::Tensor variances = stds_.to(torch::kFloat64).pow(2).unsqueeze(1);
    const double mean = (p * means).sum().item<double>() / 2.0;
    const double second = (p * (means.pow(2) + variances)).sum().item<double>() / 2.0;
    return std::sqrt(second - mean * mean);
  }

  std::int64_t grid_;
  std::int64_t classes_;
  torch::Tensor means_;             // [M, 2]
  torch::Tensor stds_;              // [M]
  torch::Tensor weights_;           // [M], within-class weights
  torch::Tensor mode_class_;        // [M]
  torch::Tensor class_modes_;       // [C, widest]: modes of each class, padded
  torch::Tensor class_mode_count_;  // [C]
  double sigma_data_;
};

}  // namespace

MSD_PLUGIN_LIBRARY(msd::PluginLibrary{"toy_data", {msd::describe<GaussianGrid>()}})
