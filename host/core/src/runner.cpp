#include "msd/host/runner.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <iostream>
#include <ostream>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include "msd/atomic_file.h"
#include "msd/cache_lock.h"
#include "msd/dataset.h"
#include "msd/host/child_process.h"
#include "msd/host/models.h"
#include "msd/host/progress.h"
#include "msd/loss.h"
#include "msd/metric.h"
#include "msd/optim.h"
#include "msd/partition.h"
#include "msd/results/pictures.h"
#include "msd/student.h"
#include "msd/teacher.h"

namespace msd::host {

std::atomic<bool> g_stop_requested{false};

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string number_text(double value) {
  if (std::isnan(value)) return "nan";  // whatever its sign bit, which streams print as "-nan"
  std::ostringstream text;
  text << value;
  return text.str();
}

/// What to do about a run's own checkpoint or student file that cannot be read.
constexpr const char* kDamagedCheckpoint =
    "delete it (or the run's folder), and `msd sweep` trains the students it held again";

struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted by a signal") {}
};

void check_stop() {
  if (g_stop_requested.load()) throw Interrupted();
}

/// Caps this process's data memory at the machine's physical memory (RLIMIT_DATA), so that a network
/// too large for it (`hidden = 65536`, a typo) fails to allocate, and the run fails with LibTorch's
/// message, instead of the kernel's OOM killer ending the process and leaving the run `running`. Only
/// for runs on the CPU: a CUDA context reserves address space the limit would count.
void limit_memory_to_this_machine() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return;
  const auto bytes = static_cast<rlim_t>(pages) * static_cast<rlim_t>(page_size);
  rlimit limit{};
  if (getrlimit(RLIMIT_DATA, &limit) != 0 || limit.rlim_cur <= bytes) return;
  limit.rlim_cur = bytes;
  setrlimit(RLIMIT_DATA, &limit);
}

/// The teacher's denoiser for the run's own sampling (teacher pairs, evaluation): a stop request
/// ends the run at its next network evaluation, not after the thousands a sampling pass makes.
edm::DenoiseFn stoppable_denoise_fn(Denoiser& net) {
  const edm::DenoiseFn fn = as_denoise_fn(net);
  return [fn](const torch::Tensor& x, double sigma, const torch::Tensor& labels) {
    check_stop();
    return fn(x, sigma, labels);
  };
}

/// `t` on `device`. From the CPU to a GPU it goes through pinned memory without waiting: a plain copy
/// from pageable memory would wait for every kernel queued before it, every iteration.
torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device) {
  if (!device.is_cuda() || !t.device().is_cpu()) return t.to(device);
  return t.pin_memory().to(device, /*non_blocking=*/true);
}

/// Teacher noise -> sample pairs for regression losses, made once per run.
struct TeacherPairs {
  torch::Tensor noise, labels, target;  // on the training device
};

/// The per-iteration view of one student's training that losses read (see msd/loss.h).
class StepContextImpl final : public StepContext {
 public:
  struct Fixed {
    Dataset* data;
    Denoiser* teacher;
    Denoiser* student;
    const Cell* cell;
    StudentType type;
    double generator_sigma;
    double outside_cell_p;
    std::int64_t batch;
    torch::Device device;
    const TeacherPairs* pairs;  // this student's pairs, or nullptr
  };

  StepContextImpl(const Fixed& fixed, std::int64_t iteration, bool updates, bool logs)
      : f_(fixed), iteration_(iteration), updates_(updates), logs_(logs) {}

  std::int64_t iteration() const override { return iteration_; }
  bool updates_student() const override { return updates_; }
  bool logs() const override { return logs_; }

  const NoisedBatch& noised_real() override {
    if (!noised_) {
      Batch b = f_.data->sample(f_.batch, f_.cell->classes);
      NoisedBatch n;
      n.x0 = to_device(b.x, f_.device);
      n.labels = to_device(b.labels, f_.device);
      n.sigma = draw_sigma();
      n.noise = torch::randn_like(n.x0);
      std::vector<std::int64_t> shape(static_cast<size_t>(n.x0.dim()), 1);
      shape[0] = n.x0.size(0);
      n.xt = n.x0 + n.noise * n.sigma.view(shape);
      noised_ = std::move(n);
    }
    return *noised_;
  }

  const DenoiserOutput& student_on_noised() override {
    if (!student_out_) {
      const NoisedBatch& n = noised_real();
      torch::AutoGradMode grad(updates_);
      student_out_ = f_.student->denoise_with_features(n.xt, n.sigma, n.labels);
    }
    return *student_out_;
  }

  const DenoiserOutput& teacher_on_noised() override {
    if (!teacher_out_) {
      const NoisedBatch& n = noised_real();
      torch::NoGradGuard no_grad;
      teacher_out_ = f_.teacher->denoise_with_features(n.xt, n.sigma, n.labels);
    }
    return *teacher_out_;
  }

  const GeneratedBatch& generated() override {
    if (f_.type != StudentType::one_step) {
      throw std::logic_error("a loss asked for one-step samples from a multi-step student");
    }
    if (!generated_) {
      GeneratedBatch g;
      g.labels = class_labels(f_.batch);
      std::vector<std::int64_t> shape = f_.data->sample_shape();
      shape.insert(shape.begin(), f_.batch);
      g.noise = torch::randn(shape, torch::TensorOptions().device(f_.device));
      torch::AutoGradMode grad(updates_);
      const double s = f_.generator_sigma;
      g.x = f_.student->denoise(g.noise * s, torch::full({f_.batch}, s, g.noise.options()), g.labels);
      generated_ = std::move(g);
    }
    return *generated_;
  }

  PairedBatch paired() override {
    if (f_.pairs == nullptr || f_.pairs->labels.numel() == 0) {
      throw std::logic_error("a loss asked for teacher pairs but none were made for this student");
    }
    torch::Tensor index = torch::randint(f_.pairs->labels.size(0), {f_.batch},
                                         torch::TensorOptions().dtype(torch::kInt64).device(f_.device));
    return {f_.pairs->noise.index_select(0, index), f_.pairs->labels.index_select(0, index),
            f_.pairs->target.index_select(0, index)};
  }

 private:
  torch::Tensor class_labels(std::int64_t n) const {
    const auto& classes = f_.cell->classes;
    if (classes.empty()) {
      return to_device(torch::randint(f_.data->num_classes(), {n}, torch::TensorOptions().dtype(torch::kInt64)), f_.device);
    }
    torch::Tensor allowed = torch::tensor(classes, torch::kInt64);
    return to_device(allowed.index_select(0, torch::randint(allowed.numel(), {n}, torch::kInt64)), f_.device);
  }

  /// O2MKD: with probability 1 - p a level inside the student's cell, else any level from EDM's prior.
  torch::Tensor draw_sigma() const {
    const Cell& c = *f_.cell;
    torch::Tensor prior = edm::sample_training_sigma(f_.batch, edm::kPMean, edm::kPStd, f_.device);
    if (c.sigma_lo <= 0.0 && std::isinf(c.sigma_hi)) return prior;
    torch::Tensor inside = edm::sample_training_sigma_in(f_.batch, edm::kPMean, edm::kPStd, c.sigma_lo, c.sigma_hi, f_.device);
    torch::Tensor outside = torch::rand({f_.batch}, torch::TensorOptions().device(f_.device)) < f_.outside_cell_p;
    return torch::where(outside, prior, inside);
  }

  const Fixed& f_;
  std::int64_t iteration_;
  bool updates_;
  bool logs_;
  std::optional<NoisedBatch> noised_;
  std::optional<DenoiserOutput> student_out_, teacher_out_;
  std::optional<GeneratedBatch> generated_;
};

/// Progress lines and training curves from plugins, into the console and the store.
class RunMonitor final : public Monitor {
 public:
  RunMonitor(results::Store& store, std::int64_t run_id, ProgressReporter& progress)
      : store_(store), run_id_(run_id), progress_(progress) {}
  void progress(const std::string& what, std::int64_t step, std::int64_t total, double loss) override {
    if (!std::isfinite(loss)) {
      throw std::runtime_error(what + ", step " + std::to_string(step) + " of " + std::to_string(total) +
                               ": the training loss is " + number_text(loss) +
                               ", so the weights are lost to it; lower the learning rate of this phase");
    }
    progress_.update(what, step, total, loss);
    check_stop();
    if (seconds_since(last_heartbeat_) > 30.0) {
      store_.heartbeat(run_id_);
      last_heartbeat_ = Clock::now();
    }
  }
  void metric(const std::string& name, std::int64_t step, double value, const std::string& scope) override {
    pending_.push_back({name, step, value, scope});
    if (pending_.size() >= 256) flush();
  }
  void flush() {
    if (!pending_.empty()) store_.log_metrics(run_id_, pending_);
    pending_.clear();
  }

 private:
  results::Store& store_;
  std::int64_t run_id_;
  ProgressReporter& progress_;
  std::vector<results::MetricRow> pending_;
  Clock::time_point last_heartbeat_ = Clock::now();
};

/// Compute a student spent, recorded with the run (see "Fair comparisons").
struct Compute {
  std::int64_t iterations = 0;
  std::int64_t student_updates = 0;
  std::int64_t samples = 0;
  double seconds = 0.0;
  void add(const Compute& o) {
    iterations += o.iterations;
    student_updates += o.student_updates;
    samples += o.samples;
    seconds += o.seconds;
  }
  void log(std::vector<results::MetricRow>& rows, const std::string& scope) const {
    rows.push_back({"train.iterations", 0, static_cast<double>(iterations), scope});
    rows.push_back({"train.student_updates", 0, static_cast<double>(student_updates), scope});
    rows.push_back({"train.samples", 0, static_cast<double>(samples), scope});
    rows.push_back({"train.seconds", 0, seconds, scope});
  }
  torch::Tensor to_tensor() const {
    return torch::tensor({static_cast<double>(iterations), static_cast<double>(student_updates),
                          static_cast<double>(samples), seconds}, torch::kFloat64);
  }
  static Compute from_tensor(const torch::Tensor& t) {
    const auto v = t.accessor<double, 1>();
    return {static_cast<std::int64_t>(v[0]), static_cast<std::int64_t>(v[1]), static_cast<std::int64_t>(v[2]), v[3]};
  }
};

/// Where a run's distillation stands, in two kinds of file in the run's folder:
/// - checkpoint.pt, the run's: the finished students and their compute, written after each student;
/// - checkpoint-student-<k>.pt, student k's: its stage, iteration and compute so far, with its weights,
///   optimizer, losses' auxiliary state and the random generators, written every
///   experiment.checkpoint_seconds and when the run is interrupted.
/// The run's process and a student process (--student-jobs) write the same student checkpoint, so a
/// run resumes each student where it stopped, with or without student processes, and continues exactly
/// as the interrupted attempt would have.
struct Progress {
  std::int64_t student = 0;    ///< students before this one are finished (weights in student-<k>.pt)
  std::int64_t stage = 0;      ///< stages of `student` before this one are finished
  std::int64_t iteration = 0;  ///< the next iteration of `stage`
  std::int64_t updates = 0;    ///< student updates made so far in `stage`
  double stage_seconds = 0.0;  ///< training time spent so far in `stage`
  Compute student_spent;       ///< compute of the finished stages of `student`
  std::vector<Compute> students_spent;  ///< compute of each finished student

  /// Student `student` is finished, having spent `spent`: on to the next one, from its first stage.
  void finish_student(const Compute& spent) {
    students_spent.push_back(spent);
    ++student;
    stage = iteration = updates = 0;
    stage_seconds = 0.0;
    student_spent = Compute{};
  }
};

void write_int(torch::serialize::OutputArchive& archive, const std::string& key, std::int64_t value) {
  archive.write(key, torch::tensor(value, torch::kInt64));
}
std::int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  return t.item<std::int64_t>();
}

/// The state of torch's default CPU generator (and the CUDA one when training there).
torch::Tensor generator_state(const torch::Device& device) {
  at::Generator generator = at::globalContext().defaultGenerator(device.is_cuda() ? device : torch::Device(torch::kCPU));
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}
void set_generator_state(const torch::Device& device, const torch::Tensor& state) {
  at::Generator generator = at::globalContext().defaultGenerator(device.is_cuda() ? device : torch::Device(torch::kCPU));
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

/// Copies a loss's auxiliary state into another loss (stage to stage, see Loss::resumes_from).
void hand_on(const Loss& from, Loss& to) {
  torch::serialize::OutputArchive out;
  from.save(out);
  std::stringstream buffer;
  out.save_to(buffer);
  torch::serialize::InputArchive in;
  in.load_from(buffer);
  to.load(in);
}

/// Everything one run builds, in the order it builds it.
class RunExecution {
 public:
  RunExecution(const PluginRegistry& registry, results::Store& store, const Workspace& workspace,
               const RunConfig& config, std::int64_t run_id, bool resume, std::ostream& log)
      : resume_(resume),
        registry_(registry),
        store_(store),
        workspace_(workspace),
        config_(config),
        run_id_(run_id),
        log_(log),
        progress_(log, ProgressReporter::stdout_is_terminal() && &log == &std::cout),
        monitor_(store, run_id, progress_),
        device_(resolve_device(workspace.device.empty() ? config.device : workspace.device)),
        run_dir_(workspace.artifacts / ("run-" + std::to_string(run_id))) {
    if (device_.is_cpu()) limit_memory_to_this_machine();
  }

  void execute() {
    if (!resume_) set_aside_stale_folder();
    prepare();
    if (!config_.distill.enabled) {
      const edm::DenoiseFn fn = stoppable_denoise_fn(*teacher_);
      evaluate("teacher", [&](const torch::Tensor& noise, const torch::Tensor& labels) {
        return teacher_plugin_->sample(fn, noise, labels);
      }, teacher_plugin_->nfe(), count_parameters(*teacher_), count_parameters(*teacher_), 0);
      return;
    }

    StudentEnsemble ensemble = distill();
    evaluate("students", [&](const torch::Tensor& noise, const torch::Tensor& labels) {
      return ensemble.sample(*teacher_plugin_, noise, labels);
    }, ensemble.nfe(*teacher_plugin_), ensemble.params_per_sample(), ensemble.params_total(),
             static_cast<std::int64_t>(ensemble.students().size()));
  }

  /// The work of one student process of --student-jobs (see Runner::train_student): the same
  /// student, from the same seed phase, as the run's own process would train.
  void train_one_student(std::int64_t k) {
    only_student_ = k;
    prepare();
    const StudentPlan plan = plan_students();
    if (k < 0 || k >= static_cast<std::int64_t>(plan.cells.size())) {
      throw std::invalid_argument("student " + std::to_string(k) + ": run " + std::to_string(run_id_) + " has " +
                                  std::to_string(plan.cells.size()) + " students");
    }
    std::shared_ptr<Denoiser> net = build_student(plan, k);
    Progress progress;
    progress.student = k;
    resume_student(progress);
    const Compute spent = train_student(plan.cells[static_cast<size_t>(k)], *plan.plugin, *net, progress);
    save_weights(*net, student_file(k));
    // Curves first: the compute file tells the run's process that the student is finished.
    monitor_.flush();
    torch::serialize::OutputArchive archive;
    archive.write("spent", spent.to_tensor());
    save_archive(archive, compute_file(k));
    std::filesystem::remove(student_checkpoint_file(k));
  }

  void flush() { monitor_.flush(); }

  /// What the run was doing: told to errors that do not say it themselves (LibTorch's, say).
  const std::string& phase() const { return phase_; }

  /// A new run's folder is empty. One that holds files was left by a run of the same id in a database
  /// since deleted or replaced; its checkpoints and students must not be taken for this run's, and
  /// nothing in it is deleted: it is renamed run-<id>.stale-<n>.
  void set_aside_stale_folder() {
    if (!std::filesystem::exists(run_dir_) || std::filesystem::is_empty(run_dir_)) return;
    std::filesystem::path aside;
    for (int n = 1; aside.empty() || std::filesystem::exists(aside); ++n) {
      aside = run_dir_.string() + ".stale-" + std::to_string(n);
    }
    std::filesystem::rename(run_dir_, aside);
    log_ << "warning: " << run_dir_.string() << " held files of an earlier run " << run_id_
         << " that this database does not know (was the database deleted?); moved them to " << aside.string()
         << "\n";
  }

  /// A finished run needs no checkpoints: its students are saved on their own.
  void remove_checkpoints() {
    std::filesystem::remove(run_checkpoint_file());
    for (std::int64_t k = 0; k < config_.k; ++k) {
      std::filesystem::remove(student_checkpoint_file(k));
      std::filesystem::remove(compute_file(k));
    }
  }

 private:
  /// The cores this run may use: its share under sweep workers or student processes, else all.
  std::int64_t cores() const {
    return workspace_.cores > 0 ? workspace_.cores
                                : static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  }

  /// Threads, the dataset and the teacher: what every run and every student process starts with.
  void prepare() {
    const std::int64_t threads = config_.threads > 0 ? config_.threads : cores();
    torch::set_num_threads(static_cast<int>(threads));
    if (!only_student_) store_.set_tag(run_id_, "threads", std::to_string(threads));

    phase_ = "dataset '" + config_.dataset.plugin + "'";
    data_ = registry_.make<Dataset>(PluginKind::dataset, config_.dataset.plugin, config_.dataset.params);
    seed_phase(config_.seed, "dataset");
    data_->prepare({workspace_.cache, device_, &monitor_, static_cast<std::uint64_t>(config_.seed)});
    phase_ = "teacher '" + config_.teacher.plugin + "'";
    teacher_plugin_ = registry_.make<Teacher>(PluginKind::teacher, config_.teacher.plugin, config_.teacher.params);
    obtain_teacher();
  }

  void obtain_teacher() {
    // Seed before build(): the initial weights are part of what the teacher hash promises.
    seed_phase(config_.seed, "teacher");
    teacher_ = teacher_plugin_->build(data_->sample_shape(), data_->num_classes());
    const std::filesystem::path file = teacher_cache_file(workspace_, config_);
    const CacheLock lock(file.string() + ".lock", &log_);
    std::vector<results::MetricRow> rows;
    if (std::filesystem::exists(file)) {
      load_weights(*teacher_, file, "delete it, and the next run trains the teacher again");
      log_ << "teacher: reusing " << file.string() << "\n";
      // A resumed run keeps what its first attempt recorded (it may have trained this teacher).
      if (!resume_) rows.push_back({"teacher.cached", 0, 1.0, ""});
    } else {
      teacher_->to(device_);
      const auto start = Clock::now();
      {
        const MixedPrecision precision(device_, config_.precision);
        teacher_plugin_->train(*teacher_, TeacherContext{data_.get(), device_, &monitor_});
      }
      progress_.finish();
      rows.push_back({"teacher.cached", 0, 0.0, ""});
      rows.push_back({"teacher.train_seconds", 0, seconds_since(start), ""});
      save_weights(*teacher_, file);
      // Provenance beside the weights: the run config whose dataset, teacher and seed produced them.
      write_file_atomically(file.string() + ".toml", config_.canonical_toml);
      log_ << "teacher: trained and cached at " << file.string() << "\n";
    }
    teacher_->to(device_);
    teacher_->eval();
    set_trainable(*teacher_, false);
    rows.push_back({"teacher.params", 0, static_cast<double>(count_parameters(*teacher_)), ""});
    if (only_student_) return;  // the run's own process recorded the teacher
    store_.log_metrics(run_id_, rows);
    store_.add_artifact(run_id_, {"teacher", file.string()});
  }

  /// Budget of one student in one stage: per student as configured, or the total divided by K.
  std::pair<std::int64_t, std::int64_t> steps_and_batch(const StageConfig& stage) const {
    std::int64_t steps = stage.steps;
    std::int64_t batch = config_.budget.batch_size;
    if (config_.budget.scope == "total" && steps > 0) {
      if (config_.budget.divide == "steps") steps = std::max<std::int64_t>(1, steps / config_.k);
      else batch = std::max<std::int64_t>(1, batch / config_.k);
    }
    return {steps, batch};
  }

  bool stages_use_pairs() const {
    for (const StageConfig& stage : config_.stages) {
      for (const LossConfig& l : stage.losses) {
        if (registry_.find(PluginKind::loss, l.plugin)->loss.uses_teacher_pairs) return true;
      }
    }
    return false;
  }

  /// The teacher's noise -> sample pairs, from the cache when a run with the same teacher, sampler,
  /// seed and count made them (config.pairs_hash), else made here and cached. They come from their
  /// own seed phase, so a run computes the same numbers whether it made them or loaded them.
  void make_teacher_pairs() {
    if (config_.distill.pairs <= 0) {
      throw std::runtime_error("a loss uses teacher pairs but distill.pairs = 0; set distill.pairs > 0");
    }
    const std::filesystem::path file = workspace_.cache / "teacher_pairs" / (config_.pairs_hash + ".pt");
    const CacheLock lock(file.string() + ".lock", &log_);
    const auto start = Clock::now();
    torch::Tensor noise, labels, target;
    const bool cached = std::filesystem::exists(file);
    if (cached) {
      read_archive(file, torch::kCPU, "delete it, and the next run makes the teacher pairs again",
                   [&](torch::serialize::InputArchive& archive) {
                     archive.read("noise", noise);
                     archive.read("labels", labels);
                     archive.read("target", target);
                   });
      log_ << "teacher pairs: reusing " << file.string() << "\n";
    } else {
      seed_phase(config_.seed, "teacher-pairs");
      const std::int64_t n = config_.distill.pairs;
      labels = torch::arange(n, torch::kInt64) % data_->num_classes();
      std::vector<std::int64_t> shape = data_->sample_shape();
      shape.insert(shape.begin(), n);
      noise = torch::randn(shape);
      const edm::DenoiseFn fn = stoppable_denoise_fn(*teacher_);
      {
        torch::NoGradGuard no_grad;
        const MixedPrecision precision(device_, config_.precision);
        std::vector<torch::Tensor> parts;
        for (std::int64_t i = 0; i < n; i += 2048) {
          const std::int64_t m = std::min<std::int64_t>(2048, n - i);
          parts.push_back(teacher_plugin_->sample(fn, noise.slice(0, i, i + m).to(device_),
                                                  labels.slice(0, i, i + m).to(device_))
                              .to(torch::kCPU, torch::kFloat32));
        }
        target = torch::cat(parts, 0);
      }
      torch::serialize::OutputArchive archive;
      archive.write("noise", noise);
      archive.write("labels", labels);
      archive.write("target", target);
      save_archive(archive, file);
      write_file_atomically(file.string() + ".toml", config_.canonical_toml);
      log_ << "teacher pairs: " << n << " made in " << seconds_since(start) << " s and cached at " << file.string() << "\n";
    }
    pairs_ = TeacherPairs{noise.to(device_), labels.to(device_), target.to(device_)};
    if (only_student_) return;  // the run's own process made them and recorded them
    std::vector<results::MetricRow> rows{{"teacher_pairs.count", 0, static_cast<double>(labels.size(0)), ""}};
    // A resumed run that finds them cached keeps what its first attempt recorded (it may have made them).
    if (!(resume_ && cached)) {
      rows.push_back({"teacher_pairs.cached", 0, cached ? 1.0 : 0.0, ""});
      rows.push_back({"teacher_pairs.seconds", 0, seconds_since(start), ""});
    }
    store_.log_metrics(run_id_, rows);
  }

  /// This student's pairs: all of them (shared, the MSD default), or those of its cell's classes.
  TeacherPairs pairs_for(const Cell& cell) const {
    if (config_.distill.pairs_split == "shared" || cell.classes.empty()) return pairs_;
    torch::Tensor keep = torch::isin(pairs_.labels, torch::tensor(cell.classes, pairs_.labels.options()));
    torch::Tensor index = keep.nonzero().squeeze(1);
    return {pairs_.noise.index_select(0, index), pairs_.labels.index_select(0, index), pairs_.target.index_select(0, index)};
  }

  /// The student plugin and the partition's cells.
  struct StudentPlan {
    std::unique_ptr<Student> plugin;
    std::vector<Cell> cells;
  };

  /// The students' plugin and cells, and the teacher pairs when a loss uses them: what the run's
  /// process and each student process compute alike before any student trains.
  StudentPlan plan_students() {
    StudentPlan plan;
    phase_ = "partition '" + config_.partition.plugin + "'";
    plan.plugin = registry_.make<Student>(PluginKind::student, config_.student.plugin, config_.student.params);
    plan.cells = partition_cells(registry_, config_, *data_, *teacher_plugin_, plan.plugin->type());
    phase_ = "teacher pairs";
    if (stages_use_pairs()) make_teacher_pairs();
    return plan;
  }

  /// Student k's network as its training starts, from the student's own seed phase, so that the
  /// same student comes out whichever process trains it.
  std::shared_ptr<Denoiser> build_student(const StudentPlan& plan, std::int64_t k) {
    phase_ = "student " + std::to_string(k) + " ('" + config_.student.plugin + "')";
    seed_phase(config_.seed, "student/" + std::to_string(k));
    return plan.plugin->build(
        student_context(*teacher_, *data_, *teacher_plugin_, k, plan.cells[static_cast<size_t>(k)]));
  }

  StudentEnsemble distill() {
    const StudentPlan plan = plan_students();
    const std::vector<Cell>& cells = plan.cells;
    const Student& student_plugin = *plan.plugin;
    for (size_t k = 0; k < cells.size(); ++k) store_.set_tag(run_id_, "cell." + std::to_string(k), cells[k].label);

    std::vector<StudentSlot> slots;
    Compute total;
    std::vector<results::MetricRow> rows;
    Progress progress = resume_ ? read_run_progress() : Progress{};
    const auto students_start = Clock::now();
    take_finished_students(progress);
    if (workspace_.student_jobs > 1 && config_.k - progress.student > 1) {
      train_in_student_processes(progress);
      take_finished_students(progress);
      if (progress.student < config_.k) {
        throw std::logic_error("student processes exited 0 but student " + std::to_string(progress.student) +
                               " left no " + compute_file(progress.student).string());
      }
      monitor_.flush();
      save_run_progress(progress);
    }
    for (size_t k = 0; k < cells.size(); ++k) {
      const auto index = static_cast<std::int64_t>(k);
      take_finished_students(progress);  // student processes of an earlier attempt may have finished any
      std::shared_ptr<Denoiser> net = build_student(plan, index);
      const std::filesystem::path file = student_file(index);
      Compute spent;
      if (index < progress.student) {
        load_weights(*net, file, kDamagedCheckpoint);
        net->to(device_);
        spent = progress.students_spent.at(k);
        log_ << "student " << k << ": trained earlier, loaded from " << file.string() << "\n";
      } else {
        resume_student(progress);
        spent = train_student(cells[k], student_plugin, *net, progress);
        save_weights(*net, file);
        progress.finish_student(spent);
        monitor_.flush();  // a resumed run does not train this student again: its curves must be stored now
        save_run_progress(progress);
        std::filesystem::remove(student_checkpoint_file(index));
      }
      net->eval();
      const std::string scope = "student:" + std::to_string(k);
      spent.log(rows, scope);
      rows.push_back({"params", 0, static_cast<double>(count_parameters(*net)), scope});
      total.add(spent);
      store_.add_artifact(run_id_, {"student", file.string()});
      slots.push_back({cells[k], net});
    }
    total.log(rows, "");
    rows.push_back({"train.wall_seconds", 0, seconds_since(students_start), ""});
    store_.log_metrics(run_id_, rows);
    return StudentEnsemble(student_plugin.type(), student_plugin.generator_sigma(), std::move(slots));
  }

  /// Trains student `progress.student` through every stage, from where `progress` says it stands
  /// (a resumed checkpoint), and returns the compute it spent in all.
  Compute train_student(const Cell& cell, const Student& student_plugin, Denoiser& net, Progress& progress) {
    net.to(device_);
    net.train();
    const TeacherPairs pairs = pairs_.labels.defined() ? pairs_for(cell) : TeacherPairs{};
    Compute spent = progress.student_spent;
    std::vector<std::unique_ptr<Loss>> previous_losses;
    for (std::int64_t s = progress.stage; s < static_cast<std::int64_t>(config_.stages.size()); ++s) {
      progress.stage = s;
      progress.student_spent = spent;
      spent.add(train_stage(s, cell, student_plugin, net, pairs, progress, previous_losses));
      progress.iteration = progress.updates = 0;
      progress.stage_seconds = 0.0;
    }
    return spent;
  }

  std::filesystem::path student_file(std::int64_t k) const { return run_dir_ / ("student-" + std::to_string(k) + ".pt"); }
  /// Written by a student process beside the weights when its student is finished.
  std::filesystem::path compute_file(std::int64_t k) const {
    return run_dir_ / ("student-" + std::to_string(k) + ".compute.pt");
  }

  /// Counts the students that student processes finished (weights and compute file) as finished,
  /// from `progress.student` on, in order.
  void take_finished_students(Progress& progress) {
    while (progress.student < config_.k && std::filesystem::exists(compute_file(progress.student))) {
      torch::Tensor t;
      read_archive(compute_file(progress.student), torch::kCPU, kDamagedCheckpoint,
                   [&](torch::serialize::InputArchive& archive) { archive.read("spent", t); });
      progress.finish_student(Compute::from_tensor(t));
    }
  }

  /// Trains the unfinished students from `progress.student` on in `msd train-student` processes,
  /// workspace.student_jobs at a time, each with its share of the threads and its output in
  /// <run folder>/student-<k>.log. Each student starts from its own seed phase, so the students are
  /// those this process would have trained. Throws Interrupted on a stop request (passed on to the
  /// processes, which checkpoint), and an error naming the log when a process fails (the others are
  /// stopped and keep their checkpoints for a resume).
  void train_in_student_processes(const Progress& progress) {
    if (workspace_.student_command.empty()) {
      throw std::logic_error("--student-jobs: the runner was given no student command");
    }
    std::vector<std::int64_t> students;
    for (std::int64_t k = progress.student; k < config_.k; ++k) {
      if (!std::filesystem::exists(compute_file(k))) students.push_back(k);
    }
    const auto jobs = std::min<std::int64_t>(workspace_.student_jobs, static_cast<std::int64_t>(students.size()));
    const std::int64_t threads = std::max<std::int64_t>(1, cores() / jobs);
    std::filesystem::create_directories(run_dir_);
    log_ << "training " << students.size() << " students in " << jobs << " processes at once (logs: "
         << (run_dir_ / "student-*.log").string() << ")\n";
    std::vector<ChildJob> children;
    for (const std::int64_t k : students) {
      std::vector<std::string> command = workspace_.student_command;
      for (const std::string& arg : {std::string("--run"), std::to_string(run_id_), std::string("--student"),
                                     std::to_string(k), std::string("--threads"), std::to_string(threads)}) {
        command.push_back(arg);
      }
      children.push_back({command, run_dir_ / ("student-" + std::to_string(k) + ".log")});
    }
    std::string failure;
    LiveBlock block(log_);
    supervise_children(children, student_supervision(students, children, static_cast<std::size_t>(jobs), block, failure));
    block.clear();
    if (!failure.empty()) throw std::runtime_error(failure);
    check_stop();
  }

  /// How the run's process watches its student processes: it says when each starts and ends, keeps the
  /// run's heartbeat, shows each one's progress line, and puts the first failure in `failure`.
  Supervision student_supervision(const std::vector<std::int64_t>& students, const std::vector<ChildJob>& children,
                                  std::size_t jobs, LiveBlock& block, std::string& failure) {
    const bool interactive = ProgressReporter::stdout_is_terminal() && &log_ == &std::cout;
    const auto say = [this, &block](const std::string& message) {
      block.clear();
      log_ << message << "\n";
    };
    const auto name = [&students](std::size_t job) { return "student " + std::to_string(students[job]); };
    Supervision supervision;
    supervision.parallel = jobs;
    supervision.stop_on_failure = true;
    supervision.tick = std::chrono::milliseconds(interactive ? 500 : 200);
    supervision.on_start = [=](std::size_t job, pid_t pid) { say(name(job) + ": process " + std::to_string(pid)); };
    supervision.on_exit = [=, &children, &failure](const ChildExit& exit) {
      if (exit.status == 0) {
        say(name(exit.job) + ": finished in " + std::to_string(static_cast<int>(std::lround(exit.seconds))) + " s");
      } else if (!g_stop_requested.load() && failure.empty()) {
        failure = name(exit.job) + ": its process exited with status " + std::to_string(exit.status) + " (" +
                  last_line(children[exit.job].log, 400) + "); see " + children[exit.job].log.string();
      }
    };
    auto last_shown = std::make_shared<Clock::time_point>(Clock::now());
    auto last_heartbeat = std::make_shared<Clock::time_point>(Clock::now());
    supervision.on_tick = [=, &children, &block](const std::vector<std::size_t>& running) {
      if (seconds_since(*last_heartbeat) > 30.0) {
        store_.heartbeat(run_id_);
        *last_heartbeat = Clock::now();
      }
      if (!interactive && seconds_since(*last_shown) <= 30.0) return;
      // A student's progress line names it ("student 2 of 4, dm ..."); its other lines may not.
      std::vector<std::string> lines;
      for (const std::size_t job : running) {
        std::string line = last_line(children[job].log);
        line.erase(0, line.find_first_not_of(' '));
        if (line.rfind(name(job) + " ", 0) != 0) line = name(job) + ": " + line;
        lines.push_back("  " + line);
      }
      if (interactive) {
        block.draw(lines);
      } else {
        for (const std::string& line : lines) log_ << line << "\n";
      }
      *last_shown = Clock::now();
    };
    return supervision;
  }


  /// What every loss of student `k`'s stage `stage` is told at setup.
  LossSetup loss_setup(const StageConfig& stage, std::int64_t k, const Cell& cell, const Student& student_plugin,
                       Denoiser& student, std::int64_t steps, std::int64_t batch) {
    LossSetup setup;
    setup.teacher = teacher_.get();
    setup.student = &student;
    setup.student_type = student_plugin.type();
    setup.generator_sigma = student_plugin.generator_sigma();
    setup.student_index = k;
    setup.cell = cell;
    setup.members = {cell};
    setup.data = data_.get();
    setup.stage = stage.name;
    setup.stage_steps = steps;
    setup.batch_size = batch;
    setup.sample_shape = data_->sample_shape();
    setup.num_classes = data_->num_classes();
    setup.sigma_data = teacher_plugin_->sigma_data();
    setup.sampler = teacher_plugin_->sampler();
    setup.device = device_;
    setup.monitor = &monitor_;
    return setup;
  }

  /// The losses of stage `stage_index`, built once and set up. A loss whose LossTraits::resumes_from
  /// names a loss of the previous stage (`previous`, as that stage left them) starts from its state.
  std::vector<std::unique_ptr<Loss>> make_losses(std::int64_t stage_index, const LossSetup& setup,
                                                 const std::vector<std::unique_ptr<Loss>>& previous) {
    const StageConfig& stage = config_.stages.at(static_cast<size_t>(stage_index));
    const std::vector<LossConfig>* previous_configs =
        stage_index > 0 ? &config_.stages[static_cast<size_t>(stage_index - 1)].losses : nullptr;
    std::vector<std::unique_ptr<Loss>> losses;
    for (const LossConfig& l : stage.losses) {
      losses.push_back(registry_.make<Loss>(PluginKind::loss, l.plugin, l.params));
      losses.back()->setup(setup);
      const std::vector<std::string>& from = registry_.find(PluginKind::loss, l.plugin)->loss.resumes_from;
      for (size_t j = 0; previous_configs != nullptr && j < previous.size(); ++j) {
        if (std::find(from.begin(), from.end(), (*previous_configs)[j].plugin) != from.end()) {
          hand_on(*previous[j], *losses.back());
          log_ << stage.name << "." << l.plugin << ": starts from the state of " << (*previous_configs)[j].plugin << "\n";
          break;
        }
      }
    }
    return losses;
  }

  /// One step of the student on `ctx`: the weighted sum of the losses' student_loss(), backpropagated
  /// once, clipped and applied, at the warmed-up learning rate. Returns each loss's value when `log_now`.
  std::vector<double> step_student(const StageConfig& stage, StepContextImpl& ctx, std::vector<std::unique_ptr<Loss>>& losses,
                                   msd::AdamW& optimizer, const std::vector<torch::Tensor>& trained,
                                   std::int64_t updates, bool log_now) {
    std::vector<double> values(losses.size(), 0.0);
    const double warm = stage.warmup > 0 ? std::min(1.0, static_cast<double>(updates + 1) / stage.warmup) : 1.0;
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(stage.lr * warm);
    }
    torch::Tensor objective = torch::zeros({}, torch::TensorOptions().device(device_));
    for (size_t i = 0; i < losses.size(); ++i) {
      torch::Tensor value = losses[i]->student_loss(ctx);
      objective = objective + stage.losses[i].weight * value;
      if (log_now) values[i] = value.item<double>();
    }
    optimizer.zero_grad();
    objective.backward();
    if (stage.grad_clip > 0) msd::clip_grad_norm(trained, stage.grad_clip);
    optimizer.step();
    return values;
  }

  /// Records one logged iteration: each loss's curve point, the auxiliary values, and returns the
  /// weighted sum the progress line shows. Fails the run on a non-finite value.
  double log_iteration(std::int64_t stage_index, const std::string& what, std::int64_t it, const std::vector<double>& values,
                       const std::map<std::string, double>& aux, const std::string& scope) {
    const StageConfig& stage = config_.stages.at(static_cast<size_t>(stage_index));
    require_finite_losses(stage_index, what, it, values, aux);
    double shown = 0.0;
    for (size_t i = 0; i < values.size(); ++i) {
      monitor_.metric("train." + stage.name + "." + stage.losses[i].plugin, it, values[i], scope);
      shown += stage.losses[i].weight * values[i];
    }
    for (const auto& [name, value] : aux) monitor_.metric("train." + stage.name + "." + name, it, value, scope);
    return shown;
  }

  /// Trains the student through stage `stage_index`, from `progress.iteration` on when resuming (the
  /// checkpoint then restores the student, its optimizer, the losses and the generators). Losses that
  /// resume from a loss of the previous stage start from its state; this stage's losses are left in
  /// `losses_out` for the next stage.
  Compute train_stage(std::int64_t stage_index, const Cell& cell, const Student& student_plugin, Denoiser& student,
                      const TeacherPairs& pairs, Progress& progress, std::vector<std::unique_ptr<Loss>>& losses_out) {
    const StageConfig& stage = config_.stages.at(static_cast<size_t>(stage_index));
    const std::int64_t k = progress.student;
    const auto [steps, batch] = steps_and_batch(stage);
    const std::string scope = "student:" + std::to_string(k);
    const std::string what = "student " + std::to_string(k) + " of " + std::to_string(config_.k) + ", " + stage.name;
    phase_ = what;
    std::vector<std::unique_ptr<Loss>> losses =
        make_losses(stage_index, loss_setup(stage, k, cell, student_plugin, student, steps, batch), losses_out);
    std::vector<torch::Tensor> trained = student.parameters();
    for (auto& loss : losses) {
      for (const torch::Tensor& p : loss->extra_parameters()) trained.push_back(p);
    }
    msd::AdamW optimizer(trained, torch::optim::AdamWOptions(stage.lr)
                                      .betas({stage.beta1, stage.beta2})
                                      .weight_decay(stage.weight_decay));
    if (progress.iteration > 0) {
      restore_checkpoint(k, student, optimizer, losses);
      log_ << what << ": resumed at iteration " << progress.iteration << " of " << steps << "\n";
    }
    StepContextImpl::Fixed fixed{data_.get(), teacher_.get(), &student, &cell, student_plugin.type(),
                                 student_plugin.generator_sigma(), config_.distill.outside_cell_p, batch,
                                 device_, pairs.labels.defined() ? &pairs : nullptr};
    // Curves and progress are taken on student-update iterations (about 100 points per stage), so
    // every logged point has the student's losses, whatever the two-time-scale ratio.
    const std::int64_t expected_updates = (steps + stage.update_every - 1) / stage.update_every;
    const std::int64_t log_every = std::max<std::int64_t>(1, expected_updates / 100);
    const auto start = Clock::now();
    auto last_checkpoint = start;
    std::int64_t updates = progress.updates;
    // Saves the state after `done` iterations (the next to run is `done`).
    const auto checkpoint = [&](std::int64_t done) {
      progress.iteration = done;
      progress.updates = updates;
      const double before = progress.stage_seconds;
      progress.stage_seconds += seconds_since(start);
      monitor_.flush();  // curve points up to here are in the store before the state that follows them
      save_student_checkpoint(progress, student, optimizer, losses);
      progress.stage_seconds = before;
      last_checkpoint = Clock::now();
    };
    const MixedPrecision precision(device_, config_.precision);
    for (std::int64_t it = progress.iteration; it < steps; ++it) {
      const bool updates_student = it % stage.update_every == 0;
      const bool log_now = updates_student && (updates % log_every == 0 || it + stage.update_every >= steps);
      StepContextImpl ctx(fixed, it, updates_student, log_now);
      std::vector<double> values(losses.size(), 0.0);
      if (updates_student) values = step_student(stage, ctx, losses, optimizer, trained, updates++, log_now);
      std::map<std::string, double> aux;
      for (auto& loss : losses) {
        for (const auto& [name, value] : loss->update_auxiliary(ctx)) aux[name] = value;
      }
      try {
        if (log_now) {
          monitor_.progress(what, it + 1, steps, log_iteration(stage_index, what, it, values, aux, scope));
        } else {
          check_stop();
        }
      } catch (const Interrupted&) {
        checkpoint(it + 1);
        throw;
      }
      if (config_.checkpoint_seconds > 0 && seconds_since(last_checkpoint) >= config_.checkpoint_seconds &&
          it + 1 < steps) {
        checkpoint(it + 1);
      }
    }
    progress_.finish();
    losses_out = std::move(losses);
    return Compute{steps, updates, steps * batch, progress.stage_seconds + seconds_since(start)};
  }

  /// A loss that turned NaN or infinite has spoilt the weights it updates: the run fails here, naming
  /// the stage, the iteration and the loss, instead of finishing with NaN metrics.
  void require_finite_losses(std::int64_t stage_index, const std::string& what, std::int64_t iteration,
                             const std::vector<double>& values, const std::map<std::string, double>& aux) const {
    const StageConfig& stage = config_.stages.at(static_cast<size_t>(stage_index));
    const auto fail = [&](const std::string& loss, double value) {
      throw std::runtime_error(what + ", iteration " + std::to_string(iteration) + ": " + loss + " is " +
                               number_text(value) + ", so the weights it trains are lost; lower stage." +
                               std::to_string(stage_index) + ".lr (" + number_text(stage.lr) +
                               ") or the loss weights of stage '" + stage.name + "'");
    };
    for (size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) fail("the loss '" + stage.losses[i].plugin + "'", values[i]);
    }
    for (const auto& [name, value] : aux) {
      if (!std::isfinite(value)) fail("the auxiliary value '" + name + "'", value);
    }
  }

  std::filesystem::path run_checkpoint_file() const { return run_dir_ / "checkpoint.pt"; }
  std::filesystem::path student_checkpoint_file(std::int64_t k) const {
    return run_dir_ / ("checkpoint-student-" + std::to_string(k) + ".pt");
  }

  /// Writes the finished students and their compute to checkpoint.pt, atomically (as every
  /// checkpoint: a kill while writing leaves the previous one intact).
  void save_run_progress(const Progress& progress) {
    torch::serialize::OutputArchive archive;
    write_int(archive, "students_done", static_cast<std::int64_t>(progress.students_spent.size()));
    for (size_t k = 0; k < progress.students_spent.size(); ++k) {
      archive.write("spent." + std::to_string(k), progress.students_spent[k].to_tensor());
    }
    save_archive(archive, run_checkpoint_file());
  }

  /// The finished students of the interrupted attempt, from checkpoint.pt; none when it left none.
  Progress read_run_progress() {
    Progress progress;
    if (!std::filesystem::exists(run_checkpoint_file())) {
      log_ << "resuming: no student finished in the interrupted attempt\n";
      return progress;
    }
    std::int64_t done = 0;
    read_archive(run_checkpoint_file(), torch::kCPU, kDamagedCheckpoint, [&](torch::serialize::InputArchive& archive) {
      done = read_int(archive, "students_done");
      for (std::int64_t k = 0; k < done; ++k) {
        torch::Tensor t;
        archive.read("spent." + std::to_string(k), t);
        progress.finish_student(Compute::from_tensor(t));
      }
    });
    log_ << "resuming from " << run_checkpoint_file().string() << ": " << done << " of " << config_.k
         << " students finished\n";
    return progress;
  }

  /// Writes student `progress.student`'s stage, iteration and compute so far, with the mid-stage
  /// training state, to its checkpoint-student-<k>.pt.
  void save_student_checkpoint(const Progress& progress, const Denoiser& student, torch::optim::Optimizer& optimizer,
                               const std::vector<std::unique_ptr<Loss>>& losses) {
    torch::serialize::OutputArchive archive, net, opt;
    write_int(archive, "stage", progress.stage);
    write_int(archive, "iteration", progress.iteration);
    write_int(archive, "updates", progress.updates);
    archive.write("stage_seconds", torch::tensor(progress.stage_seconds, torch::kFloat64));
    archive.write("student_spent", progress.student_spent.to_tensor());
    student.save(net);
    optimizer.save(opt);
    archive.write("net", net);
    archive.write("optimizer", opt);
    for (size_t i = 0; i < losses.size(); ++i) {
      torch::serialize::OutputArchive loss;
      losses[i]->save(loss);
      archive.write("loss." + std::to_string(i), loss);
    }
    archive.write("rng", generator_state(device_));
    save_archive(archive, student_checkpoint_file(progress.student));
  }

  /// Moves student `progress.student`, which `progress` has at its first iteration (a new Progress, or
  /// one past finish_student), to where its checkpoint says it stands, whichever process wrote it;
  /// leaves it there when it has none.
  void resume_student(Progress& progress) {
    const std::filesystem::path file = student_checkpoint_file(progress.student);
    if (!std::filesystem::exists(file)) return;
    read_archive(file, torch::kCPU, kDamagedCheckpoint, [&](torch::serialize::InputArchive& archive) {
      progress.stage = read_int(archive, "stage");
      progress.iteration = read_int(archive, "iteration");
      progress.updates = read_int(archive, "updates");
      torch::Tensor t;
      archive.read("stage_seconds", t);
      progress.stage_seconds = t.item<double>();
      archive.read("student_spent", t);
      progress.student_spent = Compute::from_tensor(t);
    });
    log_ << "resuming from " << file.string() << ": student " << progress.student << ", stage " << progress.stage
         << ", iteration " << progress.iteration << "\n";
  }

  /// Loads the mid-stage training state of student `k`'s checkpoint into freshly set-up objects.
  void restore_checkpoint(std::int64_t k, Denoiser& student, torch::optim::Optimizer& optimizer,
                          std::vector<std::unique_ptr<Loss>>& losses) {
    read_archive(student_checkpoint_file(k), device_, kDamagedCheckpoint, [&](torch::serialize::InputArchive& archive) {
      torch::serialize::InputArchive net, opt;
      archive.read("net", net);
      student.load(net);
      archive.read("optimizer", opt);
      optimizer.load(opt);
      for (size_t i = 0; i < losses.size(); ++i) {
        torch::serialize::InputArchive loss;
        archive.read("loss." + std::to_string(i), loss);
        losses[i]->load(loss);
      }
      torch::Tensor rng;
      archive.read("rng", rng);
      set_generator_state(device_, rng.to(torch::kCPU));
    });
  }

  using Sampler = std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>;

  void evaluate(const std::string& model, const Sampler& sampler, std::int64_t nfe, std::int64_t params_per_sample,
                std::int64_t params_total, std::int64_t students) {
    phase_ = "evaluation of the " + model;
    const std::int64_t n = config_.evaluate.samples;
    const std::int64_t classes = data_->num_classes();
    torch::Tensor labels = torch::arange(n, torch::kInt64) % classes;
    // Every run with the same seed compares against the same reference samples.
    seed_phase(config_.seed, "evaluate/reference");
    Batch reference{data_->sample_given(labels), labels};
    seed_phase(config_.seed, "evaluate/samples");
    // The model samples at the run's precision (the latency metric times it so too); metrics see fp32.
    const Sampler sample_at_precision = [&](const torch::Tensor& noise, const torch::Tensor& l) {
      check_stop();  // between chunks; the teacher's sampler also checks at every network evaluation
      const MixedPrecision precision(device_, config_.precision);
      return sampler(noise, l).to(torch::kFloat32);
    };
    const auto start = Clock::now();
    Batch generated{sample_in_chunks(sample_at_precision, data_->sample_shape(), labels, device_), labels};
    log_ << model << ": " << n << " samples in " << seconds_since(start) << " s\n";
    const std::int64_t non_finite = (~torch::isfinite(generated.x)).sum().item<std::int64_t>();
    if (non_finite > 0) {
      throw std::runtime_error("evaluation: " + std::to_string(non_finite) + " values in the samples of the " + model +
                               " are NaN or infinite, so no metric of them means anything");
    }

    std::filesystem::create_directories(run_dir_);
    write_npy(generated.x, run_dir_ / "samples.npy");
    write_npy(generated.labels, run_dir_ / "samples_labels.npy");
    store_.add_artifact(run_id_, {"samples", (run_dir_ / "samples.npy").string()});
    // Pictures of the samples help a reader but are no result: failing to draw one is a warning.
    try {
      const torch::Tensor x = generated.x.to(torch::kCPU, torch::kFloat).contiguous();
      const torch::Tensor y = generated.labels.to(torch::kCPU, torch::kInt64).contiguous();
      for (const results::Artifact& picture :
           results::draw_sample_pictures({x.data_ptr<float>(), y.data_ptr<std::int64_t>(), x.sizes().vec()}, run_dir_)) {
        store_.add_artifact(run_id_, picture);
      }
    } catch (const std::exception& e) {
      log_ << "warning: sample pictures not drawn: " << e.what() << "\n";
    }

    EvalContext ctx;
    ctx.data = data_.get();
    ctx.generated = generated;
    ctx.reference = reference;
    ctx.sample = [&](std::int64_t m) {
      torch::Tensor l = torch::arange(m, torch::kInt64) % classes;
      return Batch{sample_in_chunks(sample_at_precision, data_->sample_shape(), l, device_, m), l};
    };
    ctx.nfe = nfe;
    ctx.params_per_sample = params_per_sample;
    ctx.params_total = params_total;
    ctx.num_students = students;
    ctx.device = device_;
    std::vector<results::MetricRow> rows;
    for (const PluginSection& m : config_.evaluate.metrics) {
      seed_phase(config_.seed, "metric/" + m.plugin);
      phase_ = "metric '" + m.plugin + "'";
      auto metric = registry_.make<Metric>(PluginKind::metric, m.plugin, m.params);
      for (const MetricValue& v : metric->evaluate(ctx)) rows.push_back({v.name, 0, v.value, v.scope});
    }
    store_.log_metrics(run_id_, rows);
    store_.set_tag(run_id_, "model", model);
    for (const results::MetricRow& row : rows) {
      if (!std::isfinite(row.value)) {
        throw std::runtime_error("evaluation: metric '" + row.name + "'" +
                                 (row.scope.empty() ? std::string() : " at scope " + row.scope) + " is " +
                                 number_text(row.value) + " (recorded); a run with a non-finite metric is no result");
      }
    }
  }

  std::string phase_;  ///< see phase()
  bool resume_;  ///< continuing an interrupted attempt of the same run
  std::optional<std::int64_t> only_student_;  ///< set in a student process: the student it trains
  const PluginRegistry& registry_;
  results::Store& store_;
  const Workspace& workspace_;
  const RunConfig& config_;
  std::int64_t run_id_;
  std::ostream& log_;
  ProgressReporter progress_;
  RunMonitor monitor_;
  torch::Device device_;
  std::filesystem::path run_dir_;
  std::unique_ptr<Dataset> data_;
  std::unique_ptr<Teacher> teacher_plugin_;
  std::shared_ptr<Denoiser> teacher_;
  TeacherPairs pairs_;
};

/// What a failed run records. msd's own errors say where they arose; LibTorch's (an allocation that
/// failed, shapes that do not fit), the file system's and bugs (logic errors) are told the phase.
std::string failure_message(const std::exception& error, const std::string& phase) {
  const bool says_where = dynamic_cast<const c10::Error*>(&error) == nullptr &&
                          dynamic_cast<const std::logic_error*>(&error) == nullptr &&
                          dynamic_cast<const std::filesystem::filesystem_error*>(&error) == nullptr &&
                          dynamic_cast<const std::bad_alloc*>(&error) == nullptr;
  const std::string message = describe_error(error);
  return says_where || phase.empty() ? message : phase + ": " + message;
}

/// Runs `work` and sets `report.status`: finished, interrupted (a stop request) or failed (any other
/// error, its message in `report.error`). Unless finished, stores the curve points still pending and
/// logs "<what> <status>: <error>".
void run_reporting(RunExecution& execution, RunReport& report, const std::string& what, std::ostream& log,
                   const std::function<void()>& work) {
  try {
    work();
    report.status = results::RunStatus::finished;
  } catch (const Interrupted& e) {
    report.status = results::RunStatus::interrupted;
    report.error = e.what();
  } catch (const std::exception& e) {
    report.status = results::RunStatus::failed;
    report.error = failure_message(e, execution.phase());
  }
  if (report.status == results::RunStatus::finished) return;
  try {
    execution.flush();
  } catch (const std::exception&) {
    // The status matters more than curve points that could not be written.
  }
  log << what << " " << results::to_string(report.status) << ": " << report.error << "\n";
}

/// The plugins `config` uses, with the version and library file each was loaded from.
std::vector<results::RunPlugin> plugins_of(const PluginRegistry& registry, const RunConfig& config) {
  std::vector<std::pair<PluginKind, std::string>> used{{PluginKind::dataset, config.dataset.plugin},
                                                       {PluginKind::teacher, config.teacher.plugin}};
  if (config.distill.enabled) {
    used.emplace_back(PluginKind::student, config.student.plugin);
    used.emplace_back(PluginKind::partition, config.partition.plugin);
    for (const StageConfig& stage : config.stages) {
      for (const LossConfig& loss : stage.losses) used.emplace_back(PluginKind::loss, loss.plugin);
    }
  }
  for (const PluginSection& metric : config.evaluate.metrics) used.emplace_back(PluginKind::metric, metric.plugin);
  std::vector<results::RunPlugin> plugins;
  for (const auto& [kind, name] : used) {
    const LoadedPlugin* loaded = registry.find_any(name);
    if (loaded != nullptr) plugins.push_back({to_string(kind), name, loaded->info.version, loaded->library_path});
  }
  return plugins;
}

std::string host_name() {
  char buffer[256] = {0};
  if (gethostname(buffer, sizeof(buffer) - 1) != 0) return "unknown";
  return buffer;
}

}  // namespace

std::filesystem::path teacher_cache_file(const Workspace& workspace, const RunConfig& config) {
  return workspace.cache / "teachers" / (config.teacher_hash + ".pt");
}

std::filesystem::path database_folder(const std::filesystem::path& db, const std::string& name) {
  const std::filesystem::path absolute = std::filesystem::absolute(db);
  const std::string stem = absolute.stem().string();
  return absolute.parent_path() / (stem == "results" ? name : stem + "." + name);
}

Runner::Runner(const PluginRegistry& registry, results::Store& store, Workspace workspace, std::ostream& log)
    : registry_(registry), store_(store), workspace_(std::move(workspace)), log_(log) {}

results::NewRun Runner::new_run(const RunConfig& config) const {
  results::NewRun row;
  row.experiment = config.experiment;
  row.name = config.name;
  row.config_text = config.canonical_toml;
  row.config_hash = config.hash;
  row.seed = config.seed;
  row.git_commit = workspace_.git_commit;
  row.git_dirty = workspace_.git_dirty;
  row.host = host_name();
  row.params = config.params;
  row.coords = config.coords;
  row.sweep_id = config.sweep_id;
  row.sweep_index = config.sweep_index;
  // A device this machine lacks is refused before anything is recorded: no run could use it.
  row.device = resolve_device(workspace_.device.empty() ? config.device : workspace_.device).str();
  return row;
}

RunReport Runner::run(const RunConfig& config) {
  const results::NewRun row = new_run(config);
  return execute(config, row.device, store_.begin_run(row), false);
}

RunReport Runner::claim_and_run(const RunConfig& config, std::int64_t after_id) {
  const results::NewRun row = new_run(config);
  const results::RunClaim claim = store_.claim_run(row, after_id);
  if (claim.outcome == results::RunClaim::Outcome::finished || claim.outcome == results::RunClaim::Outcome::running) {
    RunReport report;
    report.run_id = claim.run_id;
    report.name = config.name;
    report.outcome = claim.outcome;
    report.status = claim.outcome == results::RunClaim::Outcome::finished ? results::RunStatus::finished
                                                                          : results::RunStatus::running;
    return report;
  }
  RunReport report = execute(config, row.device, claim.run_id, claim.outcome == results::RunClaim::Outcome::resumed);
  report.outcome = claim.outcome;
  return report;
}

RunReport Runner::train_student(const RunConfig& config, std::int64_t run_id, std::int64_t student) {
  RunReport report;
  report.name = config.name;
  report.run_id = run_id;
  log_ << "== run " << run_id << ", student " << student << ": " << config.experiment << " / " << config.name
       << " (config " << config.hash << ")\n";
  RunExecution execution(registry_, store_, workspace_, config, run_id, /*resume=*/true, log_);
  run_reporting(execution, report, "student " + std::to_string(student), log_,
                [&] { execution.train_one_student(student); });
  return report;
}

RunReport Runner::execute(const RunConfig& config, const std::string& device, std::int64_t run_id, bool resume) {
  RunReport report;
  report.name = config.name;
  report.run_id = run_id;
  log_ << "== run " << report.run_id << (resume ? " (resumed)" : "") << ": " << config.experiment << " / "
       << config.name << " (config " << config.hash << ", device " << device << ")\n";
  const auto start = Clock::now();
  store_.set_plugins(report.run_id, plugins_of(registry_, config));
  RunExecution execution(registry_, store_, workspace_, config, report.run_id, resume, log_);
  run_reporting(execution, report, "run " + std::to_string(report.run_id), log_, [&] {
    execution.execute();
    execution.flush();
    store_.log_metrics(report.run_id, {{"run.seconds", 0, seconds_since(start), ""}});
    execution.remove_checkpoints();
  });
  store_.finish_run(report.run_id, report.status, report.error);
  return report;
}

}  // namespace msd::host
