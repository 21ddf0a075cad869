// Metric plugins score a model under test: the teacher, a student ensemble, or the dataset itself.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "msd/dataset.h"
#include "msd/plugin.h"

namespace msd {

/// The model under test, as metrics see it.
struct EvalContext {
  Dataset* data = nullptr;
  Batch generated;    ///< samples from the model under test (CPU)
  Batch reference;    ///< fresh dataset samples with the same labels (CPU)
  /// Draws n new samples from the model under test (labels uniform over classes), for timing.
  std::function<Batch(std::int64_t n)> sample;
  std::int64_t nfe = 0;                  ///< network evaluations per sample
  std::int64_t params_per_sample = 0;    ///< parameters of the network(s) one sample passes through
  std::int64_t params_total = 0;         ///< parameters of every network kept for sampling
  std::int64_t num_students = 0;         ///< 0 for the teacher and the dataset
  /// Draws n samples from the teacher, for timing students against it; null when the teacher (or the
  /// dataset) is under test.
  std::function<Batch(std::int64_t n)> teacher_sample;
  std::int64_t teacher_nfe = 0;          ///< network evaluations per sample of teacher_sample
  torch::Device device{torch::kCPU};
};

/// One scalar result.
struct MetricValue {
  std::string name;   ///< e.g. "swd"
  double value;       ///< may be NaN or infinite; the store keeps it as such
  std::string scope;  ///< "" for the whole model, "class:3", "student:1"
};

class Metric : public Plugin {
 public:
  ~Metric() override;
  /// Called by `msd validate` and before a run's work begins with evaluate.samples, the samples the model
  /// under test will generate: throw std::invalid_argument, naming the key, for a setting evaluate()
  /// could not honour, so that it fails at once and not after the training.
  virtual void check(std::int64_t samples) const { (void)samples; }
  virtual std::vector<MetricValue> evaluate(const EvalContext& ctx) = 0;
};

}  // namespace msd
