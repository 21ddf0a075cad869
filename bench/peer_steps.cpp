// The platform's side of the peer comparison (bench/compare_with_peer.sh): times one step of the
// platform's own code, as bench/peer/peer_steps.py times the same step written in Python PyTorch.
//
//   msd_peer_bench STEP [--threads T] [--iterations N] [--warmup W] [--repeats R] [--flops M]
//
// Prints "STEP SECONDS_PER_ITERATION" once per repeat; with --flops, then "STEP flops_per_iteration F",
// counted (msd::host::FlopCounter) over M more iterations. The steps (bench/README.md lists their shapes):
//   toy_teacher   one iteration of edm_mlp's training (EdmTeacher::train), batch 512
//   toy_dm        one iteration of the quickstart's DM stage (StudentTrainer), batch 128, update_every 5
//   unet_teacher  one iteration of edm_unet's training, the study UNet, batch 256
//   unet_dm       one iteration of the study's DM stage with unet_generator students, batch 64
//   toy_onestep   2048 one-step samples of a toy student (StudentEnsemble::sample)
//   toy_heun35    2048 samples of the toy teacher with Heun at 35 network evaluations
// Image steps draw from a fixed random tensor of Fashion-MNIST's shape, as the peer does, so that both
// sides time the networks and the loop, not the dataset.
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include <unistd.h>

#include <torch/torch.h>

#include "msd/dataset.h"
#include "msd/host/config.h"
#include "msd/host/pipeline/checkpoint.h"
#include "msd/host/pipeline/flops.h"
#include "msd/host/pipeline/models.h"
#include "msd/host/pipeline/student_trainer.h"
#include "msd/host/pipeline/teacher_cache.h"
#include "msd/host/plugin_registry.h"
#include "msd/host/progress.h"
#include "msd/host/runner.h"
#include "msd/host/run_monitor.h"
#include "msd/monitor.h"
#include "msd/results/store.h"
#include "msd/teacher.h"

namespace {

using msd::host::RunConfig;

/// Images of one shape drawn at random from a fixed tensor, like the peer's.
class RandomImages final : public msd::Dataset {
 public:
  RandomImages() : images_(torch::randn({6000, 1, 28, 28}).clamp(-1, 1)), labels_(torch::arange(6000) % 10) {}
  std::vector<std::int64_t> sample_shape() const override { return {1, 28, 28}; }
  std::int64_t num_classes() const override { return 10; }
  msd::Batch sample(std::int64_t n, const std::vector<std::int64_t>&) override {
    const torch::Tensor index = torch::randint(images_.size(0), {n}, torch::kInt64);
    return {images_.index_select(0, index), labels_.index_select(0, index)};
  }
  torch::Tensor sample_given(const torch::Tensor& labels) override {
    return images_.index_select(0, torch::randint(images_.size(0), {labels.numel()}, torch::kInt64));
  }

 private:
  torch::Tensor images_, labels_;
};

/// Receives the teacher's progress as a run's monitor does (the loss is read every step) and drops it.
class QuietMonitor final : public msd::Monitor {
 public:
  void progress(const std::string&, std::int64_t, std::int64_t, double) override {}
  void metric(const std::string&, std::int64_t, double, const std::string&) override {}
};

/// The dataset, teacher and student of the toy steps: the quickstart's.
const char* const kToyModels = R"(
[dataset]
plugin = "gaussian_grid"
[teacher]
plugin = "edm_mlp"
sigma_data = 0.5                # the peer's
[student]
plugin = "one_step_generator"
)";

/// The image steps' models: the study's UNet (experiments/fmnist_msd.toml).
const char* const kUNetModels = R"(
[dataset]
plugin = "fashion_mnist"
[teacher]
plugin = "edm_unet"
sigma_data = 0.5
base_channels = 32
channel_mult = [1, 2, 2]
res_blocks = 1
dropout = 0.0
batch_size = 256
lr = 1e-3
ema_halflife_kimg = 50.0
[student]
plugin = "unet_generator"
)";

/// One student and a DM stage (dm and regression) at `batch`, the student stepping every `update_every`
/// iterations, the regression weighted `weight`: the quickstart's stage, or the study's.
std::string stage_sections(std::int64_t batch, std::int64_t update_every, const std::string& weight) {
  return "[experiment]\nname = \"peer\"\n[partition]\nplugin = \"class_consecutive\"\nk = 1\n"
         "[distill]\npairs = 2048\n[budget]\nbatch_size = " + std::to_string(batch) +
         "\n[[stage]]\nname = \"dm\"\nupdate_every = " + std::to_string(update_every) +
         "\ngrad_clip = 10.0\n[[stage.loss]]\nplugin = \"dm\"\nfake_lr = 1e-4\n"
         "[[stage.loss]]\nplugin = \"regression\"\nweight = " + weight + "\n[evaluate]\nsamples = 1\n";
}

/// What every step needs: the plugins, a config whose teacher and stage run `steps` iterations, and
/// the dataset.
struct Bench {
  msd::host::PluginRegistry registry;
  std::unique_ptr<msd::Dataset> data;
  bool images = false;

  RunConfig config(std::int64_t steps) const {
    const std::string text = images ? kUNetModels + stage_sections(64, 1, "0.05") : kToyModels + stage_sections(128, 5, "0.25");
    auto file = msd::host::ExperimentFile::parse(text, "peer_steps");
    file.set_override("teacher.steps=" + std::to_string(steps));
    file.set_override("stage.0.steps=" + std::to_string(steps));
    RunConfig config = file.resolve(registry).front();
    config.checkpoint_seconds = 0;
    return config;
  }
};

using Step = std::function<void(Bench&, std::int64_t iterations)>;

void train_teacher(Bench& bench, std::int64_t iterations) {
  const RunConfig config = bench.config(iterations);
  auto plugin = msd::host::make_teacher(bench.registry, config, *bench.data);
  std::shared_ptr<msd::Denoiser> net = plugin->build(bench.data->sample_shape(), bench.data->num_classes());
  QuietMonitor monitor;
  plugin->train(*net, msd::TeacherContext{bench.data.get(), torch::kCPU, &monitor});
}

/// K = 1 student of an untrained teacher through `iterations` iterations of the DM stage.
void train_dm(Bench& bench, std::int64_t iterations) {
  const RunConfig config = bench.config(iterations);
  auto teacher_plugin =
      msd::host::make_teacher(bench.registry, config, *bench.data);
  std::shared_ptr<msd::Denoiser> teacher = teacher_plugin->build(bench.data->sample_shape(), bench.data->num_classes());
  msd::set_trainable(*teacher, false);
  teacher->eval();
  std::vector<std::int64_t> shape = bench.data->sample_shape();
  shape.insert(shape.begin(), config.distill.pairs);
  const msd::host::TeacherPairs pairs{torch::randn(shape), torch::arange(config.distill.pairs) % bench.data->num_classes(),
                                      torch::randn(shape)};
  const msd::host::StudentPlan plan = msd::host::plan_students(bench.registry, config, *bench.data, *teacher_plugin);
  std::shared_ptr<msd::Denoiser> student = plan.build(0, *teacher, *bench.data, *teacher_plugin);

  const std::filesystem::path folder = std::filesystem::temp_directory_path() / ("msd-peer-" + std::to_string(getpid()));
  std::filesystem::create_directories(folder);
  {
    msd::results::Store store((folder / "results.db").string());
    const std::int64_t run = store.begin_run({"peer", "peer", "", "", 0, "", false, "", "cpu", "", -1, {}, {}});
    std::ostringstream quiet;
    msd::host::ProgressReporter progress(quiet, false);
    msd::host::RunMonitor monitor(store, run, progress);
    const msd::host::RunFolder run_folder(folder / "run", torch::kCPU);
    std::string phase;
    const msd::host::TrainingContext context{config, bench.registry, *bench.data, *teacher, *teacher_plugin,
                                             *plan.plugin, &pairs, torch::kCPU, monitor, run_folder, quiet, phase};
    msd::host::Progress position;
    msd::host::StudentGroup group{0, {plan.cells[0]}, student, {at::detail::getDefaultCPUGenerator().clone()}};
    msd::host::StudentTrainer(context).train(group, position, std::nullopt);
    monitor.flush();
  }
  std::filesystem::remove_all(folder);
}

/// `iterations` batches of 2048 samples from an untrained toy teacher, or one-step samples of its copy.
void sample_toy(Bench& bench, std::int64_t iterations, bool one_step) {
  const RunConfig config = bench.config(1);
  auto teacher_plugin =
      msd::host::make_teacher(bench.registry, config, *bench.data);
  std::shared_ptr<msd::Denoiser> teacher = teacher_plugin->build(bench.data->sample_shape(), bench.data->num_classes());
  teacher->eval();
  msd::set_trainable(*teacher, false);
  const msd::host::StudentPlan plan = msd::host::plan_students(bench.registry, config, *bench.data, *teacher_plugin);
  std::shared_ptr<msd::Denoiser> student = plan.build(0, *teacher, *bench.data, *teacher_plugin);
  student->eval();
  const msd::host::StudentEnsemble ensemble(plan.plugin->type(), plan.plugin->generator_sigma(), {{plan.cells[0], student}},
                                            bench.data->num_classes());
  const msd::edm::DenoiseFn fn = msd::host::as_denoise_fn(*teacher);
  const torch::Tensor labels = torch::arange(2048) % bench.data->num_classes();
  torch::NoGradGuard no_grad;
  for (std::int64_t i = 0; i < iterations; ++i) {
    const torch::Tensor noise = torch::randn({2048, 2});
    const torch::Tensor x = one_step ? ensemble.sample(*teacher_plugin, noise, labels) : teacher_plugin->sample(fn, noise, labels);
    (void)x.sum().item<float>();
  }
}

const std::map<std::string, std::pair<bool, Step>>& steps() {
  static const std::map<std::string, std::pair<bool, Step>> table{
      {"toy_teacher", {false, train_teacher}},
      {"toy_dm", {false, train_dm}},
      {"unet_teacher", {true, train_teacher}},
      {"unet_dm", {true, train_dm}},
      {"toy_onestep", {false, [](Bench& b, std::int64_t n) { sample_toy(b, n, true); }}},
      {"toy_heun35", {false, [](Bench& b, std::int64_t n) { sample_toy(b, n, false); }}}};
  return table;
}

std::int64_t option(int argc, char** argv, const std::string& name, std::int64_t fallback) {
  for (int i = 2; i + 1 < argc; ++i) {
    if (argv[i] == name) return std::stoll(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2 || steps().count(argv[1]) == 0) {
    std::cerr << "usage: msd_peer_bench STEP [--threads T] [--iterations N] [--warmup W] [--repeats R] [--flops M]\nsteps:";
    for (const auto& [name, step] : steps()) std::cerr << " " << name;
    std::cerr << "\n";
    return 2;
  }
  const std::string name = argv[1];
  const auto& [images, step] = steps().at(name);
  torch::set_num_threads(static_cast<int>(option(argc, argv, "--threads", 2)));
  const std::int64_t iterations = option(argc, argv, "--iterations", 50);
  Bench bench;
  bench.registry.load_folder(MSD_PLUGIN_DIR);
  bench.images = images;
  if (images) {
    bench.data = std::make_unique<RandomImages>();
  } else {
    bench.data = bench.registry.make<msd::Dataset>(msd::PluginKind::dataset, "gaussian_grid", bench.config(1).dataset.params);
    bench.data->prepare({std::filesystem::temp_directory_path(), torch::kCPU, nullptr, 0});
  }
  torch::manual_seed(0);
  const std::int64_t warmup = option(argc, argv, "--warmup", 5);
  if (warmup > 0) step(bench, warmup);
  for (std::int64_t r = 0; r < option(argc, argv, "--repeats", 1); ++r) {
    const auto start = std::chrono::steady_clock::now();
    step(bench, iterations);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << name << " " << seconds / static_cast<double>(iterations) << std::endl;
  }
  if (option(argc, argv, "--flops", 0) > 0) {
    // The FLOPs of one iteration, counted over a few (counting slows them; they are not timed).
    const std::int64_t counted = option(argc, argv, "--flops", 0);
    const msd::host::FlopCounter counter;
    step(bench, counted);
    std::cout << name << " flops_per_iteration " << counter.flops() / static_cast<double>(counted) << std::endl;
  }
  return 0;
} catch (const std::exception& e) {
  std::cerr << "msd_peer_bench: " << msd::host::describe_error(e) << "\n";
  return 1;
}
