#include "msd/host/sample_command.h"

#include <stdexcept>

#include <torch/torch.h>

#include "msd/host/config.h"
#include "msd/host/pipeline/models.h"
#include "msd/host/pipeline/teacher_cache.h"

namespace msd::host {

std::filesystem::path labels_path_for(const std::filesystem::path& samples) {
  std::filesystem::path p = samples;
  return p.replace_filename(samples.stem().string() + "_labels.npy");
}

namespace {

/// The memory the samples of one `msd sample` may take, in GiB.
constexpr double kMaxSampleGiB = 4.0;

/// What to do when a finished run's weights cannot be read.
constexpr const char* kRetrain =
    "the run's weights are lost: run its experiment again (`msd sweep FILE --force`) to train them anew";

std::vector<std::string> artifacts_of_kind(const results::Store& store, std::int64_t run_id, const std::string& kind) {
  std::vector<std::string> paths;
  for (const auto& a : store.artifacts(run_id)) {
    if (a.kind == kind) paths.push_back(a.path);
  }
  return paths;
}

/// Refuses what cannot be sampled: no such run, an unfinished one (but for its data), a bad --n.
results::RunRecord sampled_run(const SampleRequest& request, const results::Store& store) {
  const auto run = store.find_run(request.run_id);
  if (!run) throw std::runtime_error("no run with id " + std::to_string(request.run_id) + " in " + store.path());
  if (request.from != "data" && run->status != results::RunStatus::finished) {
    throw std::runtime_error("run " + std::to_string(run->id) + " is " + results::to_string(run->status) +
                             ", not finished: it has no complete models to sample");
  }
  if (request.n < 1 || request.n > kMaxSampleCount) {
    throw std::runtime_error("--n must be from 1 to " + std::to_string(kMaxSampleCount));
  }
  return *run;
}

void require_memory_for(std::int64_t n, const std::vector<std::int64_t>& sample_shape) {
  std::int64_t values_per_sample = 1;
  for (std::int64_t d : sample_shape) values_per_sample *= d;
  const double gib = static_cast<double>(n) * static_cast<double>(values_per_sample) * 4.0 / (1 << 30);
  if (gib > kMaxSampleGiB) {
    throw std::runtime_error("--n " + std::to_string(n) + ": the samples would take " + std::to_string(gib) +
                             " GiB in memory (at most " + std::to_string(kMaxSampleGiB) +
                             "); draw them in parts, each with its own --seed");
  }
}

/// The run's students behind their router, rebuilt from its stored config and saved weights.
StudentEnsemble load_students(const PluginRegistry& registry, const results::Store& store, const RunConfig& config,
                              std::int64_t run_id, const Denoiser& teacher, Dataset& data, const Teacher& teacher_plugin,
                              const torch::Device& device) {
  const auto files = artifacts_of_kind(store, run_id, "student");
  if (files.empty()) {
    throw std::runtime_error("run " + std::to_string(run_id) + " has no students (a teacher-only run?); use --from teacher");
  }
  std::optional<LevelDifficulty> difficulty;
  if (partition_probe(registry, config)) {
    difficulty = recorded_difficulty(store, run_id);
    if (!difficulty) {
      throw std::runtime_error("run " + std::to_string(run_id) + ": its partition '" + config.partition.plugin +
                               "' splits by a difficulty probe, and the run recorded none (probe.sigma, probe.loss)");
    }
  }
  const StudentPlan plan = plan_students(registry, config, data, teacher_plugin, difficulty ? &*difficulty : nullptr);
  if (plan.cells.size() != files.size()) {
    throw std::runtime_error("run " + std::to_string(run_id) + " has " + std::to_string(files.size()) +
                             " student checkpoints for " + std::to_string(plan.cells.size()) + " cells");
  }
  std::vector<StudentSlot> slots;
  for (size_t k = 0; k < plan.cells.size(); ++k) {
    std::shared_ptr<Denoiser> net = plan.build(static_cast<std::int64_t>(k), teacher, data, teacher_plugin);
    load_weights(*net, files[k], kRetrain);
    net->to(device);
    net->eval();
    slots.push_back({plan.cells[k], net});
  }
  return StudentEnsemble(plan.plugin->type(), plan.plugin->generator_sigma(), std::move(slots), data.num_classes(),
                         config.students_per_network != 1);
}

}  // namespace

std::string sample_run(const SampleRequest& request, const PluginRegistry& registry, const results::Store& store) {
  const results::RunRecord run = sampled_run(request, store);
  const std::vector<RunConfig> configs =
      ExperimentFile::parse(run.config_text, "config of run " + std::to_string(run.id)).resolve(registry);
  const RunConfig& config = configs.front();
  const torch::Device device = resolve_device(request.device);

  auto data = registry.make<Dataset>(PluginKind::dataset, config.dataset.plugin, config.dataset.params);
  // The run's default cache (msd run --cache elsewhere: a dataset's cached networks are made again here).
  seed_phase(config.seed, "dataset");
  data->prepare({std::filesystem::path(store.path()).parent_path() / "cache", device, nullptr,
                 static_cast<std::uint64_t>(config.seed)});
  require_memory_for(request.n, data->sample_shape());
  torch::Tensor labels = torch::arange(request.n, torch::kInt64) % data->num_classes();
  seed_phase(request.seed, "sample/" + request.from);
  torch::Tensor x;
  std::string what;
  if (request.from == "data") {
    x = data->sample_given(labels);
    what = "dataset '" + config.dataset.plugin + "'";
  } else {
    auto teacher_plugin = make_teacher(registry, config, *data);
    const auto teacher_files = artifacts_of_kind(store, run.id, "teacher");
    if (teacher_files.empty()) throw std::runtime_error("run " + std::to_string(run.id) + " recorded no teacher");
    const std::shared_ptr<Denoiser> teacher = load_teacher(*teacher_plugin, *data, teacher_files.front(), device, kRetrain);
    if (request.from == "teacher") {
      const edm::DenoiseFn fn = as_denoise_fn(*teacher);
      x = sample_in_chunks([&](const torch::Tensor& z, const torch::Tensor& l) { return teacher_plugin->sample(fn, z, l); },
                           data->sample_shape(), labels, device);
      what = "teacher (" + std::to_string(teacher_plugin->nfe()) + " NFE)";
    } else {
      const StudentEnsemble ensemble = load_students(registry, store, config, run.id, *teacher, *data, *teacher_plugin, device);
      x = sample_in_chunks([&](const torch::Tensor& z, const torch::Tensor& l) { return ensemble.sample(*teacher_plugin, z, l); },
                           data->sample_shape(), labels, device);
      what = std::to_string(ensemble.students().size()) + " students (" + std::to_string(ensemble.nfe(*teacher_plugin)) + " NFE)";
    }
  }
  if (!request.out.parent_path().empty()) std::filesystem::create_directories(request.out.parent_path());
  write_npy(x, request.out);
  write_npy(labels, labels_path_for(request.out));
  return "wrote " + std::to_string(request.n) + " samples of " + what + " of run " + std::to_string(run.id) +
         " to " + request.out.string() + " (labels: " + labels_path_for(request.out).string() + ")";
}

}  // namespace msd::host
