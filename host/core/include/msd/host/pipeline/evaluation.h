// Evaluating a run's model: samples drawn at the run's precision, checked, saved with pictures, and
// every metric plugin the config lists, recorded in the results store.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include <torch/types.h>

#include "msd/dataset.h"

namespace msd::results {
class Store;
}

namespace msd::host {

struct RunConfig;
class PluginRegistry;

/// The model under evaluation, as the metrics see it (msd::EvalContext).
struct EvaluatedModel {
  std::string name;  ///< "teacher" or "students": the run's `model` tag and the log's word for it
  /// Samples for standard-normal `noise` with `labels`, on the run's device.
  std::function<torch::Tensor(const torch::Tensor& noise, const torch::Tensor& labels)> sample;
  std::int64_t nfe = 0;                ///< network evaluations per sample
  std::int64_t params_per_sample = 0;  ///< parameters one sample passes through
  std::int64_t params_total = 0;
  std::int64_t students = 0;           ///< 0 for the teacher
  /// The teacher's sampler, as `sample`, for timing students against it; empty for the teacher.
  std::function<torch::Tensor(const torch::Tensor& noise, const torch::Tensor& labels)> teacher;
  std::int64_t teacher_nfe = 0;
  /// "" for the run's evaluation; "nfe:<NFE>" for a point of its NFE curve (evaluate.sampler_steps):
  /// every metric is recorded under it ("nfe:7", "nfe:7/class:3"), and no samples are kept.
  std::string scope;
};

/// Where evaluation reads from and writes to.
struct EvaluationTarget {
  results::Store& store;
  std::int64_t run_id;
  std::filesystem::path folder;  ///< the run's folder: samples.npy, samples_labels.npy, pictures
  std::ostream& log;
  std::string& phase;            ///< set to what evaluation is doing, for errors that do not say it
};

/// Draws evaluate.samples samples of `model` (labels cycling through the classes) and as many reference
/// samples of `data`, each from its own seed phase; saves and draws them; records every metric of
/// config.evaluate.metrics and the `model` tag (at model.scope: see there). Throws, naming the model or
/// metric, when a sample or a metric is NaN or infinite (metrics are recorded before), and Interrupted
/// on a stop request.
void evaluate(const RunConfig& config, const PluginRegistry& registry, Dataset& data, const torch::Device& device,
              const EvaluatedModel& model, const EvaluationTarget& target);

}  // namespace msd::host
