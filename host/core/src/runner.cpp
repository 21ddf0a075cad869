#include "msd/host/runner.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <ostream>
#include <thread>

#include <torch/torch.h>

#include "msd/dataset.h"
#include "msd/host/pipeline/checkpoint.h"
#include "msd/host/child_process.h"
#include "msd/host/pipeline/evaluation.h"
#include "msd/host/pipeline/flops.h"
#include "msd/host/pipeline/models.h"
#include "msd/host/progress.h"
#include "msd/host/run_monitor.h"
#include "msd/host/stop.h"
#include "msd/host/pipeline/student_trainer.h"
#include "msd/host/pipeline/teacher_cache.h"
#include "msd/student.h"
#include "msd/teacher.h"

namespace msd::host {

namespace {

using Clock = std::chrono::steady_clock;

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

/// Whether a loss of any stage regresses on teacher pairs (LossTraits::uses_teacher_pairs).
bool stages_use_pairs(const PluginRegistry& registry, const RunConfig& config) {
  for (const StageConfig& stage : config.stages) {
    for (const LossConfig& l : stage.losses) {
      if (registry.find(PluginKind::loss, l.plugin)->loss.uses_teacher_pairs) return true;
    }
  }
  return false;
}

/// One run, or one student of it in a student process, in the order it is built: the dataset and the
/// teacher (TeacherCache), the students' plan and teacher pairs, the students (StudentTrainer, here or
/// in student processes; their files in a RunFolder), the evaluation of the model (evaluate). Only the
/// run's own process records the run's rows; a student process records its student's curves.
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
        folder_(workspace.artifacts / ("run-" + std::to_string(run_id)), device_),
        cache_(workspace.cache, log) {
    if (device_.is_cpu()) limit_memory_to_this_machine();
  }

  /// The run: its teacher evaluated, or its students distilled and evaluated.
  void execute() {
    if (config_.distill.enabled && group_size(0) > 1) check_losses_train_groups();  // before any work
    if (!resume_) set_aside_stale_folder();
    store_.set_tag(run_id_, "threads", std::to_string(set_threads()));
    prepare();
    record_teacher();
    const edm::DenoiseFn teacher_fn = stoppable_denoise_fn(*teacher_.net);
    const auto teacher_sample = [&](const Teacher& sampler) {
      return [&teacher_fn, &sampler](const torch::Tensor& noise, const torch::Tensor& labels) {
        return sampler.sample(teacher_fn, noise, labels);
      };
    };
    if (!config_.distill.enabled) {
      const std::int64_t params = count_parameters(*teacher_.net);
      for_each_sampler(true, [&](const Teacher& sampler, const std::string& scope) {
        evaluate_model({"teacher", teacher_sample(sampler), sampler.nfe(), params, params, 0, {}, 0, scope});
      });
      return;
    }
    const StudentEnsemble ensemble = distill();
    for_each_sampler(ensemble.type() == StudentType::multi_step, [&](const Teacher& sampler, const std::string& scope) {
      evaluate_model({"students",
                      [&](const torch::Tensor& noise, const torch::Tensor& labels) {
                        return ensemble.sample(sampler, noise, labels);
                      },
                      ensemble.nfe(sampler), ensemble.params_per_sample(), ensemble.params_total(),
                      static_cast<std::int64_t>(ensemble.students().size()), teacher_sample(sampler), sampler.nfe(),
                      scope});
    });
  }

  /// The work of one student process of --student-jobs (see Runner::train_student): the students
  /// trained as one network from student k on, from the same seed phases, as the run's own process
  /// would train them.
  void train_one_student(std::int64_t k) {
    set_threads();
    prepare();
    const StudentPlan plan = plan_students_and_pairs();
    if (k < 0 || k >= static_cast<std::int64_t>(plan.cells.size())) {
      throw std::invalid_argument("student " + std::to_string(k) + ": run " + std::to_string(run_id_) + " has " +
                                  std::to_string(plan.cells.size()) + " students");
    }
    if (group_size(k) > 1) check_losses_train_groups();  // as the run's process did before starting it
    StudentGroup group = build_group(plan, k);
    Progress progress;
    progress.student = k;
    const Compute spent = trainer(plan).train(group, progress, folder_.read_student(k));
    const std::vector<std::shared_ptr<Denoiser>> students = members_of(group);
    for (size_t m = 0; m < students.size(); ++m) save_weights(*students[m], folder_.student_weights(k + m));
    // Curves first: the done files tell the run's process that the students are finished. The first
    // member's is written last, so that it stands for all of them.
    monitor_.flush();
    for (auto m = static_cast<std::int64_t>(students.size()) - 1; m >= 0; --m) folder_.save_student_done(k + m, spent);
    folder_.remove_student_checkpoint(k);
  }

  void flush() { monitor_.flush(); }

  /// What the run was doing: told to errors that do not say it themselves (LibTorch's, say).
  const std::string& phase() const { return phase_; }

  /// A finished run needs no checkpoints: its students are saved on their own.
  void remove_checkpoints() { folder_.remove_checkpoints(config_.k); }

 private:
  /// Sets torch's threads: experiment.threads, else this run's share of the cores. Returns them.
  std::int64_t set_threads() {
    const std::int64_t threads = config_.threads > 0 ? config_.threads : cores();
    torch::set_num_threads(static_cast<int>(threads));
    return threads;
  }

  /// The cores this run may use: its share under sweep workers or student processes, else all.
  std::int64_t cores() const {
    return workspace_.cores > 0 ? workspace_.cores
                                : static_cast<std::int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  }

  /// A new run's folder is empty. One that holds files was left by a run of the same id in a database
  /// since deleted or replaced; its checkpoints and students must not be taken for this run's, and
  /// nothing in it is deleted: it is renamed run-<id>.stale-<n>.
  void set_aside_stale_folder() {
    const std::filesystem::path& folder = folder_.path();
    if (!std::filesystem::exists(folder) || std::filesystem::is_empty(folder)) return;
    std::filesystem::path aside;
    for (int n = 1; aside.empty() || std::filesystem::exists(aside); ++n) {
      aside = folder.string() + ".stale-" + std::to_string(n);
    }
    std::filesystem::rename(folder, aside);
    log_ << "warning: " << folder.string() << " held files of an earlier run " << run_id_
         << " that this database does not know (was the database deleted?); moved them to " << aside.string()
         << "\n";
  }

  /// The dataset and the teacher: what every run and every student process starts with.
  void prepare() {
    phase_ = "dataset '" + config_.dataset.plugin + "'";
    data_ = registry_.make<Dataset>(PluginKind::dataset, config_.dataset.plugin, config_.dataset.params);
    seed_phase(config_.seed, "dataset");
    data_->prepare({workspace_.cache, device_, &monitor_, static_cast<std::uint64_t>(config_.seed)});
    phase_ = "teacher '" + config_.teacher.plugin + "'";
    teacher_plugin_ = make_teacher(registry_, config_, *data_);
    if (config_.distill.enabled) {
      // Before the teacher trains, so that a partition the students cannot use fails at once.
      phase_ = "partition '" + config_.partition.plugin + "'";
      plan_ = plan_students(registry_, config_, *data_, *teacher_plugin_);
      phase_ = "teacher '" + config_.teacher.plugin + "'";
    }
    teacher_ = cache_.teacher(config_, *teacher_plugin_, *data_, device_, monitor_);
  }

  void record_teacher() {
    std::vector<results::MetricRow> rows;
    if (!teacher_.cached) {
      rows.push_back({"teacher.cached", 0, 0.0, ""});
      rows.push_back({"teacher.train_seconds", 0, teacher_.train_seconds, ""});
    } else if (!resume_) {
      // A resumed run keeps what its first attempt recorded (it may have trained this teacher).
      rows.push_back({"teacher.cached", 0, 1.0, ""});
    }
    rows.push_back({"teacher.params", 0, static_cast<double>(count_parameters(*teacher_.net)), ""});
    const NetworkFlops flops = count_network_flops(*teacher_.net, data_->sample_shape(), device_);
    rows.push_back({"teacher.flops_forward", 0, flops.forward, ""});
    // Teachers that declare their training shape (every EDM teacher) get their achieved FLOP rate.
    const Params& keys = config_.teacher.params;
    if (!teacher_.cached && teacher_.train_seconds > 0 && keys.has("steps") && keys.has("batch_size")) {
      const double samples = static_cast<double>(keys.get_int("steps")) * static_cast<double>(keys.get_int("batch_size"));
      rows.push_back({"teacher.flops_per_second", 0, flops.training * samples / teacher_.train_seconds, ""});
    }
    store_.log_metrics(run_id_, rows);
    store_.set_tag(run_id_, "teacher.digest", weights_digest(*teacher_.net));
    store_.add_artifact(run_id_, {"teacher", teacher_.file.string()});
  }

  /// The students' plugin and cells, and the teacher pairs when a loss uses them: what the run's
  /// process and each student process compute alike before any student trains.
  StudentPlan plan_students_and_pairs() {
    StudentPlan plan = std::move(*plan_);
    plan_.reset();
    phase_ = "teacher pairs";
    if (stages_use_pairs(registry_, config_)) {
      pairs_ = cache_.pairs(config_, *teacher_plugin_, *teacher_.net, *data_, device_);
    }
    if (const std::optional<ProbeOptions> probe = partition_probe(registry_, config_)) {
      const LevelDifficulty difficulty = level_difficulty(plan, *probe);
      phase_ = "partition '" + config_.partition.plugin + "'";
      plan.cells = partition_cells(registry_, config_, *data_, *teacher_plugin_, plan.plugin->type(), &difficulty);
    }
    return plan;
  }

  /// How hard each level the sampler evaluates is to distil, for a partition that uses a probe: as an
  /// earlier attempt of the run (or its own process, for a student process) recorded it, else measured
  /// now by a probe student from its own seed phase, and recorded.
  LevelDifficulty level_difficulty(const StudentPlan& plan, const ProbeOptions& options) {
    if (std::optional<LevelDifficulty> recorded = recorded_difficulty(store_, run_id_)) return *recorded;
    phase_ = "difficulty probe";
    const auto start = Clock::now();
    LevelDifficulty difficulty;
    for (const double level : sampler_levels(*teacher_plugin_, data_->sample_shape())) {
      if (level > 0.0 && std::find(difficulty.sigma.begin(), difficulty.sigma.end(), level) == difficulty.sigma.end()) {
        difficulty.sigma.push_back(level);
      }
    }
    seed_phase(config_.seed, "probe");
    StudentGroup probe;
    probe.cells = {Cell{}};
    probe.network = plan.build_for(probe.cells.front(), 0, *teacher_.net, *data_, *teacher_plugin_);
    probe.generators.push_back(generator_from_here());
    difficulty.loss = trainer(plan).probe(probe, options, difficulty.sigma);
    monitor_.flush();
    record_difficulty(store_, run_id_, difficulty, seconds_since(start));
    return difficulty;
  }

  void record_pairs() {
    if (!pairs_) return;
    std::vector<results::MetricRow> rows{{"teacher_pairs.count", 0, static_cast<double>(pairs_->pairs.labels.size(0)), ""}};
    // A resumed run that finds them cached keeps what its first attempt recorded (it may have made them).
    if (!(resume_ && pairs_->cached)) {
      rows.push_back({"teacher_pairs.cached", 0, pairs_->cached ? 1.0 : 0.0, ""});
      rows.push_back({"teacher_pairs.seconds", 0, pairs_->seconds, ""});
    }
    store_.log_metrics(run_id_, rows);
  }

  /// Student k's network as its training starts, from the student's own seed phase, so that the
  /// same student comes out whichever process trains it.
  std::shared_ptr<Denoiser> build_student(const StudentPlan& plan, std::int64_t k) {
    phase_ = "student " + std::to_string(k) + " ('" + config_.student.plugin + "')";
    seed_phase(config_.seed, "student/" + std::to_string(k));
    return plan.build(k, *teacher_.net, *data_, *teacher_plugin_);
  }

  /// How many students train as one network from student `first` on (experiment.students_per_network).
  std::int64_t group_size(std::int64_t first) const {
    const std::int64_t per = config_.students_per_network == 0 ? config_.k : config_.students_per_network;
    return std::min(per, config_.k - first);
  }

  /// The students trained as one network from student `first` on, each built from its own seed phase
  /// and given a generator cloned from the default one right after (msd/random.h), so that a member
  /// of a group draws what it would trained alone.
  StudentGroup build_group(const StudentPlan& plan, std::int64_t first) {
    const std::int64_t size = group_size(first);
    StudentGroup group;
    group.first = first;
    std::vector<std::shared_ptr<Denoiser>> students;
    for (std::int64_t k = first; k < first + size; ++k) {
      students.push_back(build_student(plan, k));
      group.cells.push_back(plan.cells[static_cast<size_t>(k)]);
      group.generators.push_back(generator_from_here());
    }
    if (size == 1) {
      group.network = students.front();
      return group;
    }
    std::vector<const Denoiser*> members;
    for (const auto& student : students) members.push_back(student.get());
    group.network = students.front()->group(members);
    if (!group.network) {
      throw std::invalid_argument("experiment.students_per_network = " + std::to_string(config_.students_per_network) +
                                  ": the networks of student plugin '" + config_.student.plugin +
                                  "' have no grouped form (Denoiser::group); set it to 1");
    }
    return group;
  }

  /// A student's own generator (msd/random.h): the default one of the run's device, as it stands now.
  at::Generator generator_from_here() const {
    return at::globalContext().defaultGenerator(device_.is_cuda() ? device_ : torch::kCPU).clone();
  }

  void check_losses_train_groups() const {
    for (size_t s = 0; s < config_.stages.size(); ++s) {
      for (const LossConfig& l : config_.stages[s].losses) {
        if (registry_.find(PluginKind::loss, l.plugin)->loss.trains_groups) continue;
        throw std::invalid_argument("experiment.students_per_network = " +
                                    std::to_string(config_.students_per_network) + ": the loss '" + l.plugin +
                                    "' of stage '" + config_.stages[s].name +
                                    "' cannot train a grouped network (LossTraits::trains_groups); set it to 1");
      }
    }
  }

  /// The trained students of `group` as ordinary networks.
  static std::vector<std::shared_ptr<Denoiser>> members_of(const StudentGroup& group) {
    if (group.size() == 1) return {group.network};
    std::vector<std::shared_ptr<Denoiser>> students;
    for (std::int64_t m = 0; m < group.size(); ++m) students.push_back(group.network->member(m));
    return students;
  }

  StudentTrainer trainer(const StudentPlan& plan) {
    return StudentTrainer({config_, registry_, *data_, *teacher_.net, *teacher_plugin_, *plan.plugin,
                           pairs_ ? &pairs_->pairs : nullptr, device_, monitor_, folder_, log_, phase_});
  }

  /// Distils the students, here or in student processes, from where an interrupted attempt left them,
  /// and records each one's compute and parameters.
  StudentEnsemble distill() {
    const StudentPlan plan = plan_students_and_pairs();
    record_pairs();
    for (size_t k = 0; k < plan.cells.size(); ++k) store_.set_tag(run_id_, "cell." + std::to_string(k), plan.cells[k].label);
    Progress progress = resume_ ? read_finished_students() : Progress{};
    const auto start = Clock::now();
    take_finished_students(progress);
    if (workspace_.student_jobs > 1 && config_.k - progress.student > group_size(progress.student)) {
      train_in_student_processes(progress);
    }
    StudentTrainer train = trainer(plan);
    std::vector<StudentSlot> slots;
    std::vector<results::MetricRow> rows;
    Compute total;
    const auto record = [&](std::int64_t k, const std::shared_ptr<Denoiser>& net, const Compute& spent) {
      net->eval();
      const std::string scope = "student:" + std::to_string(k);
      spent.log(rows, scope);
      rows.push_back({"params", 0, static_cast<double>(count_parameters(*net)), scope});
      rows.push_back({"flops_forward", 0, count_network_flops(*net, data_->sample_shape(), device_).forward, scope});
      total.add(spent);
      store_.add_artifact(run_id_, {"student", folder_.student_weights(k).string()});
      slots.push_back({plan.cells[static_cast<size_t>(k)], net});
    };
    for (std::int64_t k = 0; k < config_.k;) {
      take_finished_students(progress);  // student processes of an earlier attempt may have finished any
      if (k < progress.student) {
        std::shared_ptr<Denoiser> net = build_student(plan, k);
        record(k, net, load_student(*net, k, progress));
        ++k;
        continue;
      }
      StudentGroup group = build_group(plan, k);
      const Compute spent = train_students(train, group, progress);
      const std::vector<std::shared_ptr<Denoiser>> students = members_of(group);
      for (size_t m = 0; m < students.size(); ++m) record(k + static_cast<std::int64_t>(m), students[m], spent);
      k += group.size();
    }
    total.log(rows, "");
    rows.push_back({"train.wall_seconds", 0, seconds_since(start), ""});
    store_.log_metrics(run_id_, rows);
    return StudentEnsemble(plan.plugin->type(), plan.plugin->generator_sigma(), std::move(slots), data_->num_classes(),
                           config_.students_per_network != 1);
  }

  /// A student an earlier attempt or a student process finished: its weights, and the compute it spent.
  Compute load_student(Denoiser& net, std::int64_t k, const Progress& progress) {
    const std::filesystem::path file = folder_.student_weights(k);
    load_weights(net, file, RunFolder::kDamaged);
    net.to(device_);
    log_ << "student " << k << ": trained earlier, loaded from " << file.string() << "\n";
    return progress.students_spent.at(static_cast<size_t>(k));
  }

  /// Trains `group` here, from its checkpoint when it has one, saves its students and records them as
  /// finished. Returns the compute each spent.
  Compute train_students(StudentTrainer& train, StudentGroup& group, Progress& progress) {
    const Compute spent = train.train(group, progress, folder_.read_student(group.first));
    const std::vector<std::shared_ptr<Denoiser>> students = members_of(group);
    for (size_t m = 0; m < students.size(); ++m) {
      save_weights(*students[m], folder_.student_weights(group.first + static_cast<std::int64_t>(m)));
      progress.finish_student(spent);
    }
    monitor_.flush();  // a resumed run does not train these students again: their curves must be stored now
    folder_.save_finished(progress);
    folder_.remove_student_checkpoint(group.first);
    return spent;
  }

  /// The finished students of the interrupted attempt; none when it left none.
  Progress read_finished_students() {
    const Progress progress = folder_.read_finished();
    if (progress.student == 0) {
      log_ << "resuming: no student finished in the interrupted attempt\n";
    } else {
      log_ << "resuming from " << folder_.run_checkpoint().string() << ": " << progress.student << " of " << config_.k
           << " students finished\n";
    }
    return progress;
  }

  /// Counts the students that student processes finished (weights and done file) as finished, from
  /// `progress.student` on, in order.
  void take_finished_students(Progress& progress) {
    while (progress.student < config_.k) {
      const std::optional<Compute> spent = folder_.student_done(progress.student);
      if (!spent) return;
      progress.finish_student(*spent);
    }
  }

  /// Trains the unfinished students from `progress.student` on in `msd train-student` processes,
  /// workspace.student_jobs at a time, each with its share of the threads and its output in
  /// <run folder>/student-<k>.log, and takes them as finished. Each student starts from its own seed
  /// phase, so the students are those this process would have trained. Throws Interrupted on a stop
  /// request (passed on to the processes, which checkpoint), and an error naming the log when a
  /// process fails (the others are stopped and keep their checkpoints for a resume).
  void train_in_student_processes(Progress& progress) {
    if (workspace_.student_command.empty()) {
      throw std::logic_error("--student-jobs: the runner was given no student command");
    }
    std::vector<std::int64_t> students;  // the first of each group of students trained as one network
    for (std::int64_t k = progress.student; k < config_.k; k += group_size(k)) {
      if (!folder_.student_done(k)) students.push_back(k);
    }
    const auto jobs = std::min<std::int64_t>(workspace_.student_jobs, static_cast<std::int64_t>(students.size()));
    const std::int64_t threads = std::max<std::int64_t>(1, cores() / jobs);
    std::filesystem::create_directories(folder_.path());
    log_ << "training " << students.size() << (group_size(students.front()) > 1 ? " groups of students" : " students")
         << " in " << jobs << " processes at once (logs: "
         << (folder_.path() / "student-*.log").string() << ")\n";
    std::vector<ChildJob> children;
    for (const std::int64_t k : students) {
      std::vector<std::string> command = workspace_.student_command;
      for (const std::string& arg : {std::string("--run"), std::to_string(run_id_), std::string("--student"),
                                     std::to_string(k), std::string("--threads"), std::to_string(threads)}) {
        command.push_back(arg);
      }
      children.push_back({command, folder_.student_log(k)});
    }
    std::string failure;
    LiveBlock block(log_);
    supervise_children(children, student_supervision(students, children, static_cast<std::size_t>(jobs), block, failure));
    block.clear();
    if (!failure.empty()) throw std::runtime_error(failure);
    check_stop();
    take_finished_students(progress);
    if (progress.student < config_.k) {
      throw std::logic_error("student processes exited 0 but student " + std::to_string(progress.student) +
                             " left no record of finishing in " + folder_.path().string());
    }
    monitor_.flush();
    folder_.save_finished(progress);
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
    const auto name = [this, &students](std::size_t job) {
      const std::int64_t k = students[job], size = group_size(k);
      return size == 1 ? "student " + std::to_string(k)
                       : "students " + std::to_string(k) + "-" + std::to_string(k + size - 1);
    };
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

  /// Calls `evaluate` with the run's teacher plugin (scope ""), then, when the model samples with the
  /// teacher's sampler (`multi_step`), with a copy of it at each of evaluate.sampler_steps other than
  /// its own (scope "nfe:<NFE>"): the NFE curve.
  void for_each_sampler(bool multi_step, const std::function<void(const Teacher&, const std::string&)>& evaluate) {
    evaluate(*teacher_plugin_, "");
    if (!multi_step && !config_.evaluate.sampler_steps.empty()) {
      log_ << "evaluate.sampler_steps: one-step students do not sample with the teacher's sampler; no NFE curve\n";
      return;
    }
    for (const std::int64_t steps : config_.evaluate.sampler_steps) {
      RunConfig at = config_;
      at.teacher.params.set("sampler_steps", Value{steps});
      const std::unique_ptr<Teacher> sampler = make_teacher(registry_, at, *data_);
      if (sampler->nfe() == teacher_plugin_->nfe()) continue;  // the run's own: recorded at scope ""
      evaluate(*sampler, "nfe:" + std::to_string(sampler->nfe()));
    }
  }

  void evaluate_model(const EvaluatedModel& model) {
    evaluate(config_, registry_, *data_, device_, model, {store_, run_id_, folder_.path(), log_, phase_});
  }

  std::string phase_;  ///< see phase()
  bool resume_;        ///< continuing an interrupted attempt of the same run
  const PluginRegistry& registry_;
  results::Store& store_;
  const Workspace& workspace_;
  const RunConfig& config_;
  std::int64_t run_id_;
  std::ostream& log_;
  ProgressReporter progress_;
  RunMonitor monitor_;
  torch::Device device_;
  RunFolder folder_;
  TeacherCache cache_;
  std::unique_ptr<Dataset> data_;
  std::unique_ptr<Teacher> teacher_plugin_;
  CachedTeacher teacher_;
  std::optional<StudentPlan> plan_;  // made by prepare() for a distilling run, taken by plan_students_and_pairs()
  std::optional<CachedPairs> pairs_;
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
