// The router of a student ensemble: every sample of a network evaluation goes to the student whose
// cell holds its class and the evaluation's noise level, for condition, noise-level and hybrid cells.
#include <limits>
#include <memory>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "msd/host/pipeline/models.h"

namespace msd::host {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

/// A student that answers with its own number, so that the output says who denoised each sample.
class Numbered final : public DenoiserFrom<Numbered, double> {
 public:
  explicit Numbered(double number) : DenoiserFrom(number) {}
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) override {
    return torch::full_like(x, options_);
  }
  std::shared_ptr<Denoiser> group(const std::vector<const Denoiser*>& members) const override;
};

/// Numbered students as one grouped network: block k of the batch is answered with member k's number
/// plus 100, so that a test sees which of the two answered.
class NumberedGroup final : public DenoiserFrom<NumberedGroup, std::vector<double>> {
 public:
  explicit NumberedGroup(std::vector<double> numbers) : DenoiserFrom(std::move(numbers)) {}
  torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) override {
    const auto k = static_cast<std::int64_t>(options_.size());
    EXPECT_EQ(x.size(0) % k, 0) << "a grouped network takes equal blocks";
    return (torch::tensor(options_) + 100).repeat_interleave(x.size(0) / k).unsqueeze(1).expand_as(x).clone();
  }
  std::int64_t group_size() const override { return static_cast<std::int64_t>(options_.size()); }
};

std::shared_ptr<Denoiser> Numbered::group(const std::vector<const Denoiser*>& members) const {
  std::vector<double> numbers;
  for (const Denoiser* m : members) numbers.push_back(dynamic_cast<const Numbered&>(*m).options());
  return std::make_shared<NumberedGroup>(numbers);
}

Cell cell(std::vector<std::int64_t> classes, double lo, double hi) {
  Cell c;
  c.classes = std::move(classes);
  c.sigma_lo = lo;
  c.sigma_hi = hi;
  return c;
}

StudentEnsemble ensemble(const std::vector<Cell>& cells, bool as_group = false) {
  std::vector<StudentSlot> slots;
  for (std::size_t k = 0; k < cells.size(); ++k) {
    slots.push_back({cells[k], std::make_shared<Numbered>(static_cast<double>(k))});
  }
  return StudentEnsemble(StudentType::multi_step, 80.0, std::move(slots), 0, as_group);
}

/// Which student served each sample of a batch with these labels at `sigma`.
std::vector<double> served(const StudentEnsemble& students, const std::vector<std::int64_t>& labels, double sigma) {
  const torch::Tensor y = torch::tensor(labels, torch::kInt64);
  const torch::Tensor out = students.routed_denoise(torch::zeros({y.size(0), 2}), sigma, y);
  std::vector<double> who;
  for (std::int64_t i = 0; i < out.size(0); ++i) who.push_back(out[i][0].item<double>());
  return who;
}

TEST(Router, HybridCellsRouteByClassAndNoiseLevel) {
  // Classes {0, 1} and {2} times sigma [0, 1) and [1, inf): students 0..3, class-major.
  const StudentEnsemble students =
      ensemble({cell({0, 1}, 0, 1), cell({0, 1}, 1, kInf), cell({2}, 0, 1), cell({2}, 1, kInf)});
  const std::vector<std::int64_t> labels{2, 0, 1, 2, 0};
  EXPECT_EQ(served(students, labels, 0.5), (std::vector<double>{2, 0, 0, 2, 0}));
  EXPECT_EQ(served(students, labels, 0.0), (std::vector<double>{2, 0, 0, 2, 0}));  // the sampler's last step
  EXPECT_EQ(served(students, labels, 1.0), (std::vector<double>{3, 1, 1, 3, 1}));  // a boundary belongs above
  EXPECT_EQ(served(students, labels, 80.0), (std::vector<double>{3, 1, 1, 3, 1}));
}

TEST(Router, ConditionAndNoiseCellsRouteByTheirOwnKey) {
  const StudentEnsemble by_class = ensemble({cell({0, 2}, 0, kInf), cell({1}, 0, kInf)});
  EXPECT_EQ(served(by_class, {0, 1, 2, 1}, 3.0), (std::vector<double>{0, 1, 0, 1}));
  const StudentEnsemble by_noise = ensemble({cell({}, 0, 0.1), cell({}, 0.1, 10), cell({}, 10, kInf)});
  EXPECT_EQ(served(by_noise, {0, 1, 2}, 0.05), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(served(by_noise, {0, 1, 2}, 5.0), (std::vector<double>{1, 1, 1}));
  EXPECT_EQ(served(by_noise, {0, 1, 2}, 50.0), (std::vector<double>{2, 2, 2}));
}

TEST(Router, ACellListingEveryClassServesTheWholeBatch) {
  std::vector<StudentSlot> slots{{cell({2, 0, 1}, 0, kInf), std::make_shared<Numbered>(7.0)}};
  const StudentEnsemble students(StudentType::multi_step, 80.0, std::move(slots), /*num_classes=*/3);
  EXPECT_EQ(served(students, {0, 1, 2, 2}, 1.0), (std::vector<double>{7, 7, 7, 7}));
}

TEST(Router, ASampleNoCellHoldsIsAnError) {
  const StudentEnsemble students = ensemble({cell({0}, 0, kInf)});
  EXPECT_THROW(served(students, {0, 1}, 1.0), std::logic_error);
}

// Sampled as one grouped network, condition cells of unequal sizes (one student with no sample in
// the batch) route every sample to the same student as one network at a time.
TEST(Router, AGroupedPassServesEverySampleByItsOwnStudent) {
  const std::vector<Cell> cells{cell({0, 3}, 0, kInf), cell({1}, 0, kInf), cell({2}, 0, kInf), cell({4}, 0, kInf)};
  const std::vector<std::int64_t> labels{3, 1, 0, 3, 3, 1, 0, 2};  // none of class 4
  EXPECT_EQ(served(ensemble(cells), labels, 2.0), (std::vector<double>{0, 1, 0, 0, 0, 1, 0, 2}));
  EXPECT_EQ(served(ensemble(cells, true), labels, 2.0), (std::vector<double>{100, 101, 100, 100, 100, 101, 100, 102}));
  // Noise-level cells are not grouped: one student serves each evaluation anyway.
  EXPECT_EQ(served(ensemble({cell({}, 0, 1), cell({}, 1, kInf)}, true), {0, 1}, 2.0), (std::vector<double>{1, 1}));
}

}  // namespace
}  // namespace msd::host
