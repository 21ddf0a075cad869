#include "msd/host/pipeline/evaluation.h"

#include <chrono>
#include <cmath>
#include <ostream>

#include "msd/host/config.h"
#include "msd/host/pipeline/models.h"
#include "msd/host/plugin_registry.h"
#include "msd/host/run_monitor.h"
#include "msd/host/runner.h"
#include "msd/host/stop.h"
#include "msd/metric.h"
#include "msd/results/pictures.h"
#include "msd/results/store.h"

namespace msd::host {

namespace {

using Sampler = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;

/// `model` sampled at the run's precision (the latency metric times it so too); metrics see fp32.
Sampler at_precision(const Sampler& sample, const torch::Device& device, const std::string& precision) {
  return [sample, device, precision](const torch::Tensor& noise, const torch::Tensor& labels) {
    check_stop();  // between chunks; the teacher's sampler also checks at every network evaluation
    const MixedPrecision guard(device, precision);
    return sample(noise, labels).to(torch::kFloat32);
  };
}

/// n samples of `sample` with labels cycling through the classes, for timing.
std::function<Batch(std::int64_t)> timed_sampler(const Sampler& sample, const Dataset& data, const torch::Device& device) {
  const std::int64_t classes = data.num_classes();
  const std::vector<std::int64_t> shape = data.sample_shape();
  return [sample, classes, shape, device](std::int64_t m) {
    const torch::Tensor l = torch::arange(m, torch::kInt64) % classes;
    return Batch{sample_in_chunks(sample, shape, l, device, m), l};
  };
}

void require_finite_samples(const Batch& generated, const std::string& model) {
  const std::int64_t non_finite = (~torch::isfinite(generated.x)).sum().item<std::int64_t>();
  if (non_finite > 0) {
    throw std::runtime_error("evaluation: " + std::to_string(non_finite) + " values in the samples of the " + model +
                             " are NaN or infinite, so no metric of them means anything");
  }
}

/// samples.npy and samples_labels.npy in the run's folder, and pictures of them. Pictures help a
/// reader but are no result: failing to draw one is a warning.
void save_samples(const Batch& generated, const EvaluationTarget& target) {
  std::filesystem::create_directories(target.folder);
  write_npy(generated.x, target.folder / "samples.npy");
  write_npy(generated.labels, target.folder / "samples_labels.npy");
  target.store.add_artifact(target.run_id, {"samples", (target.folder / "samples.npy").string()});
  try {
    const torch::Tensor x = generated.x.to(torch::kCPU, torch::kFloat).contiguous();
    const torch::Tensor y = generated.labels.to(torch::kCPU, torch::kInt64).contiguous();
    for (const results::Artifact& picture :
         results::draw_sample_pictures({x.data_ptr<float>(), y.data_ptr<std::int64_t>(), x.sizes().vec()}, target.folder)) {
      target.store.add_artifact(target.run_id, picture);
    }
  } catch (const std::exception& e) {
    target.log << "warning: sample pictures not drawn: " << e.what() << "\n";
  }
}

void require_finite_metrics(const std::vector<results::MetricRow>& rows) {
  for (const results::MetricRow& row : rows) {
    if (!std::isfinite(row.value)) {
      throw std::runtime_error("evaluation: metric '" + row.name + "'" +
                               (row.scope.empty() ? std::string() : " at scope " + row.scope) + " is " +
                               number_text(row.value) + " (recorded); a run with a non-finite metric is no result");
    }
  }
}

}  // namespace

void check_metrics(const PluginRegistry& registry, const RunConfig& config) {
  for (size_t i = 0; i < config.evaluate.metrics.size(); ++i) {
    const PluginSection& m = config.evaluate.metrics[i];
    try {
      registry.make<Metric>(PluginKind::metric, m.plugin, m.params)->check(config.evaluate.samples);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error("run " + config.name + ": evaluate.metric." + std::to_string(i) + " (" + m.plugin +
                               "): " + e.what());
    }
  }
}

void evaluate(const RunConfig& config, const PluginRegistry& registry, Dataset& data, const torch::Device& device,
              const EvaluatedModel& model, const EvaluationTarget& target) {
  target.phase = "evaluation of the " + model.name + (model.scope.empty() ? "" : " at " + model.scope);
  const std::int64_t n = config.evaluate.samples;
  const std::int64_t classes = data.num_classes();
  const torch::Tensor labels = torch::arange(n, torch::kInt64) % classes;
  // Every run with the same seed compares against the same reference samples.
  seed_phase(config.seed, "evaluate/reference");
  const Batch reference{data.sample_given(labels), labels};
  seed_phase(config.seed, "evaluate/samples");
  const Sampler sample = at_precision(model.sample, device, config.precision);
  const auto start = std::chrono::steady_clock::now();
  const Batch generated{sample_in_chunks(sample, data.sample_shape(), labels, device), labels};
  const std::string what = model.name + (model.scope.empty() ? "" : " (" + model.scope + ")");
  target.log << what << ": " << n << " samples in " << seconds_since(start) << " s\n";
  require_finite_samples(generated, what);
  if (model.scope.empty()) save_samples(generated, target);

  EvalContext ctx;
  ctx.data = &data;
  ctx.generated = generated;
  ctx.reference = reference;
  ctx.sample = timed_sampler(sample, data, device);
  if (model.teacher) ctx.teacher_sample = timed_sampler(at_precision(model.teacher, device, config.precision), data, device);
  ctx.teacher_nfe = model.teacher_nfe;
  ctx.nfe = model.nfe;
  ctx.params_per_sample = model.params_per_sample;
  ctx.params_total = model.params_total;
  ctx.num_students = model.students;
  ctx.device = device;
  std::vector<results::MetricRow> rows;
  for (const PluginSection& m : config.evaluate.metrics) {
    seed_phase(config.seed, "metric/" + m.plugin);
    target.phase = "metric '" + m.plugin + "'";
    auto metric = registry.make<Metric>(PluginKind::metric, m.plugin, m.params);
    for (const MetricValue& v : metric->evaluate(ctx)) {
      const std::string scope =
          model.scope.empty() || v.scope.empty() ? model.scope + v.scope : model.scope + "/" + v.scope;
      rows.push_back({v.name, 0, v.value, scope});
    }
  }
  target.store.log_metrics(target.run_id, rows);
  target.store.set_tag(target.run_id, "model", model.name);
  require_finite_metrics(rows);
}

}  // namespace msd::host
