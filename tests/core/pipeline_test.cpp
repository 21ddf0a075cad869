// The run pipeline's parts, each on its own, with the built-in plugins of this build: the teacher
// cache, the run folder's checkpoints, the student trainer (an interrupted student resumes to the very
// weights of an uninterrupted one) and evaluation.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "msd/host/pipeline/checkpoint.h"
#include "msd/host/config.h"
#include "msd/host/pipeline/evaluation.h"
#include "msd/host/pipeline/flops.h"
#include "msd/host/pipeline/models.h"
#include "msd/host/plugin_registry.h"
#include "msd/host/progress.h"
#include "msd/host/run_monitor.h"
#include "msd/host/stop.h"
#include "msd/host/pipeline/student_trainer.h"
#include "msd/host/pipeline/teacher_cache.h"
#include "msd/linear.h"
#include "msd/optim.h"
#include "msd/results/store.h"
#include "../results/temp_dir.h"

namespace msd::host {
namespace {

using ::testing::HasSubstr;

/// K = 2 one-step students of a tiny teacher, one stage of DM (auxiliary fake score) and regression on
/// teacher pairs, 6 iterations with a student update every 2.
std::string tiny_config(const std::string& budget = "scope = \"per_student\"") {
  return R"([experiment]
name = "pipeline"
seed = 3
threads = 1
device = "cpu"

[dataset]
plugin = "gaussian_grid"

[teacher]
plugin = "edm_mlp"
steps = 20
hidden = 16
blocks = 1
batch_size = 64
sampler_steps = 3

[student]
plugin = "one_step_generator"

[partition]
plugin = "class_consecutive"
k = 2

[distill]
pairs = 64

[budget]
)" + budget + R"(
batch_size = 32

[[stage]]
name = "dm"
steps = 6
update_every = 2

[[stage.loss]]
plugin = "dm"

[[stage.loss]]
plugin = "regression"
weight = 0.25

[evaluate]
samples = 200

[[evaluate.metric]]
plugin = "swd"

[[evaluate.metric]]
plugin = "mode_coverage"
)";
}

const PluginRegistry& registry() {
  static PluginRegistry* loaded = [] {
    auto* r = new PluginRegistry();
    r->load_folder(MSD_PLUGIN_DIR);
    return r;
  }();
  return *loaded;
}

RunConfig resolve(const std::string& text) {
  return ExperimentFile::parse(text, "pipeline_test.toml").resolve(registry()).front();
}

std::vector<torch::Tensor> weights_of(const torch::nn::Module& net) {
  std::vector<torch::Tensor> copies;
  for (const torch::Tensor& p : net.parameters()) copies.push_back(p.detach().clone());
  return copies;
}

void expect_same_weights(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

/// A run's inputs as the runner prepares them, in a fresh folder with its own store and run row.
class Pipeline : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<results::Store>(dir_.file("results.db"));
    results::NewRun row;
    row.experiment = "pipeline";
    row.name = "tiny";
    row.device = "cpu";
    run_id_ = store_->begin_run(row);
    progress_ = std::make_unique<ProgressReporter>(log_, false);
    monitor_ = std::make_unique<RunMonitor>(*store_, run_id_, *progress_);
  }

  /// The dataset and the teacher plugin of `config`, the dataset prepared.
  void make_inputs(const RunConfig& config) {
    data_ = registry().make<Dataset>(PluginKind::dataset, config.dataset.plugin, config.dataset.params);
    data_->prepare({cache(), torch::kCPU, monitor_.get(), static_cast<std::uint64_t>(config.seed)});
    teacher_plugin_ = make_teacher(registry(), config, *data_);
  }

  std::filesystem::path cache() const { return std::filesystem::path(dir_.file("cache")); }

  results::testing::TempDir dir_;
  std::ostringstream log_;
  std::unique_ptr<results::Store> store_;
  std::int64_t run_id_ = 0;
  std::unique_ptr<ProgressReporter> progress_;
  std::unique_ptr<RunMonitor> monitor_;
  std::unique_ptr<Dataset> data_;
  std::unique_ptr<Teacher> teacher_plugin_;
};

TEST_F(Pipeline, TeacherIsTrainedOnceThenLoadedWithTheSameWeights) {
  const RunConfig config = resolve(tiny_config());
  make_inputs(config);
  const TeacherCache teachers(cache(), log_);
  const CachedTeacher first = teachers.teacher(config, *teacher_plugin_, *data_, torch::kCPU, *monitor_);
  EXPECT_FALSE(first.cached);
  EXPECT_GT(first.train_seconds, 0.0);
  EXPECT_TRUE(std::filesystem::exists(first.file));
  EXPECT_TRUE(std::filesystem::exists(first.file.string() + ".toml"));  // provenance
  EXPECT_EQ(first.file, teachers.teacher_file(config));

  const CachedTeacher second = teachers.teacher(config, *teacher_plugin_, *data_, torch::kCPU, *monitor_);
  EXPECT_TRUE(second.cached);
  expect_same_weights(weights_of(*first.net), weights_of(*second.net));
  EXPECT_EQ(weights_digest(*first.net), weights_digest(*second.net));
  EXPECT_FALSE(second.net->is_training());
  for (const torch::Tensor& p : second.net->parameters()) EXPECT_FALSE(p.requires_grad());
}

TEST(WeightsDigest, IsStableAndChangesWithAnyWeight) {
  torch::manual_seed(0);
  torch::nn::Linear net(3, 2);
  const std::string digest = weights_digest(*net);
  EXPECT_EQ(digest.size(), 16u);
  EXPECT_EQ(weights_digest(*net), digest);
  {
    torch::NoGradGuard no_grad;
    net->bias[1] += 1e-6;  // one float's last bits
  }
  EXPECT_NE(weights_digest(*net), digest);
  torch::nn::Linear other(3, 2);  // the same names and shapes, other values
  EXPECT_NE(weights_digest(*other), weights_digest(*net));
}

TEST_F(Pipeline, DamagedTeacherFileIsRefusedWithWhatToDo) {
  const RunConfig config = resolve(tiny_config());
  make_inputs(config);
  const TeacherCache teachers(cache(), log_);
  std::filesystem::create_directories(teachers.teacher_file(config).parent_path());
  std::ofstream(teachers.teacher_file(config)) << "not an archive";
  try {
    teachers.teacher(config, *teacher_plugin_, *data_, torch::kCPU, *monitor_);
    FAIL() << "a damaged teacher file was loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(teachers.teacher_file(config).string()));
    EXPECT_THAT(e.what(), HasSubstr("delete it"));
  }
}

TEST_F(Pipeline, TeacherPairsAreMadeOnceAndReadBackIdentical) {
  const RunConfig config = resolve(tiny_config());
  make_inputs(config);
  const TeacherCache teachers(cache(), log_);
  const CachedTeacher teacher = teachers.teacher(config, *teacher_plugin_, *data_, torch::kCPU, *monitor_);
  const CachedPairs made = teachers.pairs(config, *teacher_plugin_, *teacher.net, *data_, torch::kCPU);
  const CachedPairs read = teachers.pairs(config, *teacher_plugin_, *teacher.net, *data_, torch::kCPU);
  EXPECT_FALSE(made.cached);
  EXPECT_TRUE(read.cached);
  ASSERT_EQ(made.pairs.labels.size(0), config.distill.pairs);
  EXPECT_TRUE(torch::equal(made.pairs.noise, read.pairs.noise));
  EXPECT_TRUE(torch::equal(made.pairs.target, read.pairs.target));
  EXPECT_TRUE(torch::equal(made.pairs.labels, torch::arange(config.distill.pairs) % data_->num_classes()));

  const TeacherPairs class_one = made.pairs.of_classes({1});
  EXPECT_EQ(class_one.labels.size(0), (made.pairs.labels == 1).sum().item<std::int64_t>());
  EXPECT_TRUE((class_one.labels == 1).all().item<bool>());
  EXPECT_EQ(made.pairs.of_classes({}).labels.size(0), config.distill.pairs);
}

TEST(StageBudget, TotalBudgetsAreDividedAmongTheStudents) {
  const RunConfig per_student = resolve(tiny_config());
  EXPECT_EQ(stage_budget(per_student, per_student.stages[0]).steps, 6);
  EXPECT_EQ(stage_budget(per_student, per_student.stages[0]).batch, 32);
  const RunConfig by_steps = resolve(tiny_config("scope = \"total\"\ndivide = \"steps\""));
  EXPECT_EQ(stage_budget(by_steps, by_steps.stages[0]).steps, 3);
  EXPECT_EQ(stage_budget(by_steps, by_steps.stages[0]).batch, 32);
  const RunConfig by_batch = resolve(tiny_config("scope = \"total\"\ndivide = \"batch\""));
  EXPECT_EQ(stage_budget(by_batch, by_batch.stages[0]).steps, 6);
  EXPECT_EQ(stage_budget(by_batch, by_batch.stages[0]).batch, 16);
}

TEST(RunFolderFiles, FinishedStudentsAndDoneFilesRoundTrip) {
  results::testing::TempDir dir;
  const RunFolder folder(dir.file("run-1"), torch::kCPU);
  std::filesystem::create_directories(folder.path());
  EXPECT_EQ(folder.read_finished().student, 0);  // none recorded yet
  EXPECT_FALSE(folder.student_done(0));

  Progress progress;
  progress.finish_student({10, 5, 320, 1.5});
  progress.finish_student({12, 6, 384, 2.5});
  folder.save_finished(progress);
  const Progress read = folder.read_finished();
  ASSERT_EQ(read.student, 2);
  EXPECT_EQ(read.students_spent[1].samples, 384);
  EXPECT_DOUBLE_EQ(read.students_spent[0].seconds, 1.5);

  folder.save_student_done(1, {7, 3, 21, 0.25});
  ASSERT_TRUE(folder.student_done(1));
  EXPECT_EQ(folder.student_done(1)->student_updates, 3);
  folder.remove_checkpoints(2);
  EXPECT_FALSE(folder.student_done(1));
  EXPECT_FALSE(std::filesystem::exists(folder.run_checkpoint()));
}

// A checkpoint of two students trained as one network resumes with both members' generators as they
// stood, and not into a run that now trains one student per network.
TEST(RunFolderFiles, AGroupsCheckpointKeepsEachMembersGeneratorAndItsGroupSize) {
  results::testing::TempDir dir;
  const RunFolder folder(dir.file("run-1"), torch::kCPU);
  std::filesystem::create_directories(folder.path());
  std::vector<at::Generator> generators{at::detail::createCPUGenerator(1), at::detail::createCPUGenerator(2)};
  torch::randn({3}, generators[1]);  // member 1's stream moves on
  const torch::Tensor next = torch::randn({4}, generators[1].clone());
  std::vector<std::unique_ptr<Loss>> no_losses;
  class Plain final : public DenoiserFrom<Plain, int> {
   public:
    explicit Plain(int) : DenoiserFrom(0) { register_parameter("w", torch::zeros({2})); }
    torch::Tensor denoise(const torch::Tensor& x, const torch::Tensor&, const torch::Tensor&) override { return x; }
  };
  Plain student(0);
  msd::AdamW optimizer(student.parameters());
  Progress position;
  folder.save_student(position, {student, optimizer, no_losses, generators});

  std::vector<at::Generator> restored{at::detail::createCPUGenerator(7), at::detail::createCPUGenerator(8)};
  folder.read_student(0)->restore({student, optimizer, no_losses, restored});
  EXPECT_TRUE(torch::equal(torch::randn({4}, restored[1]), next)) << "member 1 draws on where it stood";

  std::vector<at::Generator> alone{at::detail::createCPUGenerator(9)};
  try {
    folder.read_student(0)->restore({student, optimizer, no_losses, alone});
    FAIL() << "a group's checkpoint was restored into one student";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("holds 2 students trained as one network"));
    EXPECT_THAT(e.what(), HasSubstr("experiment.students_per_network"));
  }
}

TEST(RunFolderFiles, DamagedCheckpointIsRefusedNamingTheFile) {
  results::testing::TempDir dir;
  const RunFolder folder(dir.file("run-1"), torch::kCPU);
  std::filesystem::create_directories(folder.path());
  std::ofstream(folder.run_checkpoint()) << "half a checkpoint";
  try {
    folder.read_finished();
    FAIL() << "a damaged checkpoint was read";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(folder.run_checkpoint().string()));
    EXPECT_THAT(e.what(), HasSubstr(RunFolder::kDamaged));
  }
}

/// Trains student 0 of the tiny run from its seed phase, from `resume` when given.
struct TrainedStudent {
  std::shared_ptr<Denoiser> net;
  Compute spent;
};

class Training : public Pipeline {
 protected:
  TrainedStudent train_student(const RunFolder& folder, std::optional<StudentCheckpoint> resume) {
    seed_phase(config_.seed, "student/0");
    TrainedStudent trained{plan_.build(0, *teacher_.net, *data_, *teacher_plugin_), {}};
    TrainingContext context{config_, registry(), *data_, *teacher_.net, *teacher_plugin_, *plan_.plugin,
                            &pairs_.pairs, torch::kCPU, *monitor_, folder, log_, phase_};
    StudentGroup group{0, {plan_.cells[0]}, trained.net, {at::detail::getDefaultCPUGenerator().clone()}};
    Progress progress;
    trained.spent = StudentTrainer(context).train(group, progress, std::move(resume));
    return trained;
  }

  void SetUp() override {
    Pipeline::SetUp();
    config_ = resolve(tiny_config());
    make_inputs(config_);
    const TeacherCache teachers(cache(), log_);
    teacher_ = teachers.teacher(config_, *teacher_plugin_, *data_, torch::kCPU, *monitor_);
    plan_ = plan_students(registry(), config_, *data_, *teacher_plugin_);
    pairs_ = teachers.pairs(config_, *teacher_plugin_, *teacher_.net, *data_, torch::kCPU);
  }

  RunConfig config_;
  CachedTeacher teacher_;
  StudentPlan plan_;
  CachedPairs pairs_;
  std::string phase_;
};

TEST_F(Training, CountsTheComputeItSpends) {
  const RunFolder folder(dir_.file("run-1"), torch::kCPU);
  const TrainedStudent trained = train_student(folder, std::nullopt);
  EXPECT_EQ(trained.spent.iterations, 6);
  EXPECT_EQ(trained.spent.student_updates, 3);  // every second iteration
  EXPECT_EQ(trained.spent.samples, 6 * 32);
  monitor_->flush();
  int curve_points = 0;
  for (const results::MetricRow& row : store_->metrics(run_id_)) curve_points += row.name == "train.dm.dm" ? 1 : 0;
  EXPECT_EQ(curve_points, 3);
}

TEST_F(Training, AnInterruptedStudentResumesToTheSameWeights) {
  const RunFolder whole(dir_.file("run-1"), torch::kCPU);
  const TrainedStudent uninterrupted = train_student(whole, std::nullopt);

  const RunFolder halves(dir_.file("run-2"), torch::kCPU);
  g_stop_requested = true;  // stops after the first iteration, leaving a checkpoint
  EXPECT_THROW(train_student(halves, std::nullopt), Interrupted);
  g_stop_requested = false;
  std::optional<StudentCheckpoint> checkpoint = halves.read_student(0);
  ASSERT_TRUE(checkpoint);
  EXPECT_EQ(checkpoint->position.stage, 0);
  EXPECT_EQ(checkpoint->position.iteration, 1);
  const TrainedStudent resumed = train_student(halves, std::move(checkpoint));

  expect_same_weights(weights_of(*uninterrupted.net), weights_of(*resumed.net));
  EXPECT_EQ(resumed.spent.iterations, uninterrupted.spent.iterations);
  EXPECT_EQ(resumed.spent.student_updates, uninterrupted.spent.student_updates);
}

TEST_F(Training, EvaluationRecordsMetricsAndRefusesNonFiniteSamples) {
  std::string phase;
  const std::filesystem::path folder = dir_.file("run-1");
  const edm::DenoiseFn fn = as_denoise_fn(*teacher_.net);
  const EvaluatedModel model{"teacher",
                             [&](const torch::Tensor& noise, const torch::Tensor& labels) {
                               return teacher_plugin_->sample(fn, noise, labels);
                             },
                             teacher_plugin_->nfe(), 1, 1, 0};
  evaluate(config_, registry(), *data_, torch::kCPU, model, {*store_, run_id_, folder, log_, phase});
  EXPECT_TRUE(std::filesystem::exists(folder / "samples.npy"));
  std::set<std::string> names;
  for (const results::MetricRow& row : store_->final_metrics(run_id_)) names.insert(row.name);
  EXPECT_TRUE(names.count("swd"));
  EXPECT_TRUE(names.count("coverage"));  // from mode_coverage

  const EvaluatedModel broken{"students",
                              [](const torch::Tensor& noise, const torch::Tensor&) {
                                return torch::full_like(noise, std::numeric_limits<float>::quiet_NaN());
                              },
                              1, 1, 1, 2};
  try {
    evaluate(config_, registry(), *data_, torch::kCPU, broken, {*store_, run_id_, folder, log_, phase});
    FAIL() << "NaN samples were evaluated";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("samples of the students are NaN or infinite"));
  }
}

}  // namespace
}  // namespace msd::host

namespace msd::host {
namespace {

TEST(FlopCounter, CountsMatrixProductsAndConvolutionsWithTheirGradients) {
  torch::nn::Linear linear(3, 4);
  {
    const FlopCounter counter;
    linear->forward(torch::randn({5, 3}));
    EXPECT_DOUBLE_EQ(counter.flops(), 2.0 * 5 * 3 * 4);
  }
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(2, 4, 3).padding(1));
  const double forward = 2.0 * 4 * 8 * 8 * (2 * 3 * 3);  // per output value: 2 x 3 x 3 multiply-adds
  {
    const FlopCounter counter;
    conv->forward(torch::randn({1, 2, 8, 8})).sum().backward();  // the input needs no gradient
    EXPECT_DOUBLE_EQ(counter.flops(), 2 * forward);
  }
  {
    // msd::linear's GEMMs are counted as well: the forward product, then the input's and the weight's
    // gradients.
    const torch::Tensor x = torch::randn({5, 3}, torch::requires_grad());
    const FlopCounter counter;
    msd::linear(*linear, x).sum().backward();
    EXPECT_DOUBLE_EQ(counter.flops(), 3 * 2.0 * 5 * 3 * 4);
  }
  {
    const FlopCounter outer;
    linear->forward(torch::randn({1, 3}));
    const FlopCounter inner;  // counters nest: each counts from its start
    linear->forward(torch::randn({2, 3}));
    EXPECT_DOUBLE_EQ(inner.flops(), 2.0 * 2 * 3 * 4);
    EXPECT_DOUBLE_EQ(outer.flops(), 2.0 * 3 * 3 * 4);
  }
}

TEST(FlopCounter, NetworkFlopsLeaveTheRunAsItWas) {
  const RunConfig config = resolve(tiny_config());
  auto data = registry().make<Dataset>(PluginKind::dataset, config.dataset.plugin, config.dataset.params);
  auto teacher = make_teacher(registry(), config, *data);
  std::shared_ptr<Denoiser> net = teacher->build({2}, 5);  // hidden 16, 1 block, embed 64
  net->train();
  torch::manual_seed(11);
  const torch::Tensor expected = torch::rand({4});
  torch::manual_seed(11);
  const NetworkFlops flops = count_network_flops(*net, {2}, torch::kCPU);
  EXPECT_TRUE(torch::equal(torch::rand({4}), expected));  // no draw from the run's generator
  EXPECT_TRUE(net->is_training());
  for (const torch::Tensor& p : net->parameters()) EXPECT_FALSE(p.grad().defined());
  // noise_proj 64x64, input_proj 2x16, one block of 16x16 + 64x16 + 16x16, output_proj 16x2.
  EXPECT_DOUBLE_EQ(flops.forward, 2.0 * (64 * 64 + 2 * 16 + 16 * 16 + 64 * 16 + 16 * 16 + 16 * 2));
  EXPECT_GT(flops.training, 2 * flops.forward);
  EXPECT_LE(flops.training, 3 * flops.forward);
}

TEST_F(Training, RecordsTheFlopsOfItsStages) {
  const RunFolder folder(dir_.file("run-1"), torch::kCPU);
  train_student(folder, std::nullopt);
  monitor_->flush();
  std::map<std::string, double> final;
  for (const results::MetricRow& row : store_->final_metrics(run_id_)) final[row.name] = row.value;
  ASSERT_TRUE(final.count("train.dm.flops"));
  EXPECT_GT(final["train.dm.flops"], 0.0);
  EXPECT_GT(final["train.dm.flops_per_second"], 0.0);
}

TEST_F(Training, SmallStagesOnTheCpuRunOnOneThreadWhenTheRunPicksItsThreads) {
  const int run_threads = torch::get_num_threads();
  const auto stage_threads = [this](const std::string& run) {
    const RunFolder folder(dir_.file(run), torch::kCPU);
    train_student(folder, std::nullopt);
    monitor_->flush();
    std::map<std::string, double> final;
    for (const results::MetricRow& row : store_->final_metrics(run_id_)) final[row.name] = row.value;
    return final.at("train.dm.threads");
  };
  torch::set_num_threads(2);
  config_.threads = 0;
  config_.one_thread_below_gflop = 1.0;  // the tiny 2-D stage does far less
  EXPECT_EQ(stage_threads("small"), 1.0);
  EXPECT_EQ(torch::get_num_threads(), 2);  // the run's count again after the stage
  config_.one_thread_below_gflop = 0.0;  // never
  EXPECT_EQ(stage_threads("never"), 2.0);
  config_.one_thread_below_gflop = 1.0;
  config_.threads = 2;  // threads the config fixes are kept
  EXPECT_EQ(stage_threads("fixed"), 2.0);
  torch::set_num_threads(run_threads);
}

}  // namespace
}  // namespace msd::host
