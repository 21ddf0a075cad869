#include "msd/host/pipeline/student_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <map>
#include <numeric>
#include <ostream>
#include <sstream>

#include <torch/torch.h>

#include "msd/edm.h"
#include "msd/host/config.h"
#include "msd/host/pipeline/flops.h"
#include "msd/host/pipeline/models.h"
#include "msd/host/plugin_registry.h"
#include "msd/host/run_monitor.h"
#include "msd/host/stop.h"
#include "msd/optim.h"

namespace msd::host {

namespace {

/// `t` on `device`. From the CPU to a GPU it goes through pinned memory without waiting: a plain copy
/// from pageable memory would wait for every kernel queued before it, every iteration.
torch::Tensor to_device(const torch::Tensor& t, const torch::Device& device) {
  if (!device.is_cuda() || !t.device().is_cpu()) return t.to(device);
  return t.pin_memory().to(device, /*non_blocking=*/true);
}

/// Runs `draw` with torch's default CPU generator in the state of `generator` (a member's), and keeps
/// the state it leaves: Dataset::sample draws from the default generator, and a member's samples must
/// come from its own. A CUDA member's generator cannot lend its state to the CPU: its samples come
/// from the default generator as they are.
template <typename Draw>
auto with_member_generator(at::Generator& generator, Draw draw) {
  if (generator.device().type() != c10::DeviceType::CPU) return draw();
  at::Generator global = at::detail::getDefaultCPUGenerator();  // not locked: sampling locks it
  const torch::Tensor own = global.get_state();
  global.set_state(generator.get_state());
  auto result = draw();
  generator.set_state(global.get_state());
  global.set_state(own);
  return result;
}

/// The per-iteration view of one student's training (or one group's) that losses read (see
/// msd/loss.h). Each batch is drawn on first use and shared by every loss of the iteration; a group's
/// batches are its members' blocks, each drawn from the member's generator.
class StepContextImpl final : public StepContext {
 public:
  struct Fixed {
    Dataset* data;
    Denoiser* teacher;
    Denoiser* student;
    std::vector<const Cell*> cells;          // one per member
    std::vector<at::Generator>* generators;  // one per member
    std::vector<Random> random;              // one per member, drawing from `generators`
    StudentType type;
    double generator_sigma;
    double outside_cell_p;
    edm::NoisePrior prior;                   // the teacher's training noise levels
    std::int64_t batch;                      // per member
    torch::Device device;
    std::vector<const TeacherPairs*> pairs;  // each member's pairs, or none
    std::optional<double> sigma = std::nullopt;  // every sample noised at this level (the difficulty probe)
  };

  StepContextImpl(const Fixed& fixed, std::int64_t iteration, bool updates, bool logs)
      : f_(fixed), iteration_(iteration), updates_(updates), logs_(logs) {}

  std::int64_t iteration() const override { return iteration_; }
  bool updates_student() const override { return updates_; }
  bool logs() const override { return logs_; }
  const Random& random(std::int64_t member) const override { return f_.random.at(static_cast<size_t>(member)); }

  const NoisedBatch& noised_real() override {
    if (!noised_) {
      std::vector<NoisedBatch> blocks;
      for (size_t m = 0; m < f_.cells.size(); ++m) blocks.push_back(noised_block(m));
      noised_ = blocks.size() == 1 ? blocks.front() : concatenate(blocks);
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
      std::vector<std::int64_t> shape = f_.data->sample_shape();
      shape.insert(shape.begin(), f_.batch);
      std::vector<torch::Tensor> labels, noise;
      for (size_t m = 0; m < f_.cells.size(); ++m) {
        labels.push_back(class_labels(m));
        noise.push_back(f_.random[m].normal(shape));
      }
      g.labels = joined(labels);
      g.noise = joined(noise);
      torch::AutoGradMode grad(updates_);
      const double s = f_.generator_sigma;
      g.x = f_.student->denoise(g.noise * s, torch::full({g.noise.size(0)}, s, g.noise.options()), g.labels);
      generated_ = std::move(g);
    }
    return *generated_;
  }

  PairedBatch paired() override {
    std::vector<torch::Tensor> noise, labels, target;
    for (size_t m = 0; m < f_.cells.size(); ++m) {
      const TeacherPairs* pairs = f_.pairs.empty() ? nullptr : f_.pairs[m];
      if (pairs == nullptr || pairs->empty()) {
        throw std::logic_error("a loss asked for teacher pairs but none were made for this student");
      }
      torch::Tensor index = f_.random[m].integers(0, pairs->labels.size(0), {f_.batch});
      noise.push_back(pairs->noise.index_select(0, index));
      labels.push_back(pairs->labels.index_select(0, index));
      target.push_back(pairs->target.index_select(0, index));
    }
    return {joined(noise), joined(labels), joined(target)};
  }

 private:
  static torch::Tensor joined(const std::vector<torch::Tensor>& blocks) {
    return blocks.size() == 1 ? blocks.front() : torch::cat(blocks);
  }

  static NoisedBatch concatenate(const std::vector<NoisedBatch>& blocks) {
    const auto field = [&](torch::Tensor NoisedBatch::*member) {
      std::vector<torch::Tensor> parts;
      for (const NoisedBatch& b : blocks) parts.push_back(b.*member);
      return torch::cat(parts);
    };
    return {field(&NoisedBatch::x0), field(&NoisedBatch::labels), field(&NoisedBatch::sigma),
            field(&NoisedBatch::noise), field(&NoisedBatch::xt)};
  }

  /// Member m's real data, noised.
  NoisedBatch noised_block(size_t m) {
    Batch b = with_member_generator((*f_.generators)[m], [&] { return f_.data->sample(f_.batch, f_.cells[m]->classes); });
    NoisedBatch n;
    n.x0 = to_device(b.x, f_.device);
    n.labels = to_device(b.labels, f_.device);
    n.sigma = draw_sigma(m);
    n.noise = f_.random[m].normal_like(n.x0);
    std::vector<std::int64_t> shape(static_cast<size_t>(n.x0.dim()), 1);
    shape[0] = n.x0.size(0);
    n.xt = n.x0 + n.noise * n.sigma.view(shape);
    return n;
  }

  /// Member m's class labels: uniform over its cell's classes (all classes when it lists none).
  torch::Tensor class_labels(size_t m) const {
    const auto& classes = f_.cells[m]->classes;
    const Random& random = f_.random[m];
    if (classes.empty()) return random.integers(0, f_.data->num_classes(), {f_.batch});
    torch::Tensor allowed = torch::tensor(classes, torch::kInt64).to(f_.device);
    return allowed.index_select(0, random.integers(0, allowed.numel(), {f_.batch}));
  }

  /// O2MKD: with probability 1 - p a level inside member m's cell, else any level of the teacher's
  /// training prior (both drawn from that prior).
  torch::Tensor draw_sigma(size_t m) const {
    if (f_.sigma) return torch::full({f_.batch}, *f_.sigma, torch::TensorOptions().device(f_.device));
    const Cell& c = *f_.cells[m];
    return edm::sample_cell_sigma(f_.batch, f_.prior, c.sigma_lo, c.sigma_hi, f_.outside_cell_p, f_.random[m]);
  }

  const Fixed& f_;
  std::int64_t iteration_;
  bool updates_;
  bool logs_;
  std::optional<NoisedBatch> noised_;
  std::optional<DenoiserOutput> student_out_, teacher_out_;
  std::optional<GeneratedBatch> generated_;
};

/// Copies a loss's auxiliary state into another loss (stage to stage, see LossTraits::resumes_from).
void hand_on(const Loss& from, Loss& to) {
  torch::serialize::OutputArchive out;
  from.save(out);
  std::stringstream buffer;
  out.save_to(buffer);
  torch::serialize::InputArchive in;
  in.load_from(buffer);
  to.load(in);
}

/// One step of the student on `ctx`: the weighted sum of the losses' student_loss(), backpropagated
/// once, clipped (per member of a group) and applied, at the warmed-up learning rate. Returns each
/// loss's value (0-dim, or [K] for a group of K), detached, when `log_now`.
std::vector<torch::Tensor> step_student(const StageConfig& stage, StepContextImpl& ctx,
                                        std::vector<std::unique_ptr<Loss>>& losses, msd::AdamW& optimizer,
                                        const std::vector<torch::Tensor>& trained, std::int64_t members,
                                        std::int64_t updates, bool log_now, const torch::Device& device) {
  std::vector<torch::Tensor> values(losses.size());
  const double warm = stage.warmup > 0 ? std::min(1.0, static_cast<double>(updates + 1) / stage.warmup) : 1.0;
  for (auto& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(stage.lr * warm);
  }
  torch::Tensor objective = torch::zeros({}, torch::TensorOptions().device(device));
  for (size_t i = 0; i < losses.size(); ++i) {
    torch::Tensor value = losses[i]->student_loss(ctx);
    // A group's members each get the gradient of their own loss from the sum.
    objective = objective + stage.losses[i].weight * (value.dim() == 0 ? value : value.sum());
    if (log_now) values[i] = value.detach();
  }
  optimizer.zero_grad();
  objective.backward();
  if (stage.grad_clip > 0) msd::clip_grad_norm(trained, stage.grad_clip, members);
  optimizer.step();
  return values;
}

/// Counts the FLOPs of one whole two-time-scale cycle of a stage (update_every iterations: one student
/// update and the auxiliary updates around it), the first that starts at or after `first`: the stage's
/// representative work, counted exactly without slowing the rest of the stage.
class CycleFlops {
 public:
  CycleFlops(std::int64_t first, std::int64_t cycle, std::int64_t steps)
      : start_((first + cycle - 1) / cycle * cycle), cycle_(cycle), counts_(start_ + cycle <= steps) {}
  void before(std::int64_t iteration) {
    if (counts_ && iteration == start_) counter_.emplace();
  }
  void after(std::int64_t iteration) {
    if (counter_ && iteration + 1 == start_ + cycle_) {
      per_iteration_ = counter_->flops() / static_cast<double>(cycle_);
      counter_.reset();
    }
  }
  /// FLOPs per iteration, once the cycle has run.
  std::optional<double> per_iteration() const { return per_iteration_; }

 private:
  std::int64_t start_, cycle_;
  bool counts_;
  std::optional<FlopCounter> counter_;
  std::optional<double> per_iteration_;
};

/// One LibTorch thread while alive, when asked for; the run's thread count again after. Small student
/// stages on the CPU spend much of their time in OpenMP's fork, join and spin-waits: on the toy MLP's
/// DM stage, one thread is 1.3x faster than two (docs/BENCHMARKS.md, "Threads").
class OneThread {
 public:
  explicit OneThread(bool wanted) : previous_(torch::get_num_threads()), wanted_(wanted) {
    if (wanted_) torch::set_num_threads(1);
  }
  ~OneThread() {
    if (wanted_) torch::set_num_threads(previous_);
  }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int previous_;
  bool wanted_;
};

/// What every iteration's StepContext of `group` reads: the run's objects, and each member's cell,
/// generator and teacher pairs.
StepContextImpl::Fixed step_inputs(const TrainingContext& c, StudentGroup& group, const std::vector<TeacherPairs>& pairs,
                                   std::int64_t batch) {
  StepContextImpl::Fixed fixed{&c.data, &c.teacher, group.network.get(), {}, &group.generators, {},
                               c.student_plugin.type(), c.student_plugin.generator_sigma(),
                               c.config.distill.outside_cell_p, c.teacher_plugin.noise_prior(), batch, c.device, {}};
  for (size_t m = 0; m < group.cells.size(); ++m) {
    fixed.cells.push_back(&group.cells[m]);
    fixed.random.emplace_back(c.device, group.generators[m]);
    if (!pairs.empty()) fixed.pairs.push_back(&pairs[m]);
  }
  return fixed;
}

}  // namespace

/// One stage of one student (or group), as train_stage runs it.
struct StudentTrainer::Stage {
  std::int64_t index;
  const StageConfig& config;
  StageBudget budget;       ///< each member's
  StudentGroup& group;
  const std::vector<TeacherPairs>& pairs;  ///< each member's pairs (none when no loss uses them)
  std::string what;         ///< "student 2 of 4, dm" or "students 0-3 of 4, dm": progress lines and errors
  std::vector<std::unique_ptr<Loss>>& losses;  ///< in: the previous stage's; out: this stage's
  bool probe = false;       ///< the difficulty probe's: curves in scope "probe", no checkpoints

  /// "student:2": the scope of member m's curves.
  std::string scope(std::int64_t m) const { return probe ? "probe" : "student:" + std::to_string(group.first + m); }
};

StageBudget stage_budget(const RunConfig& config, const StageConfig& stage) {
  StageBudget budget{stage.steps, config.budget.batch_size};
  if (config.budget.scope == "total" && budget.steps > 0) {
    if (config.budget.divide == "steps") {
      budget.steps = std::max<std::int64_t>(1, budget.steps / config.k);
    } else {
      budget.batch = std::max<std::int64_t>(1, budget.batch / config.k);
    }
  }
  return budget;
}

namespace {

/// "student 2 of 4" or "students 0-3 of 4".
std::string group_name(const StudentGroup& group, std::int64_t k) {
  const std::string of = " of " + std::to_string(k);
  if (group.size() == 1) return "student " + std::to_string(group.first) + of;
  return "students " + std::to_string(group.first) + "-" + std::to_string(group.first + group.size() - 1) + of;
}

/// Element `m` of a logged value: the value itself when 0-dim, else member m's.
double member_value(const torch::Tensor& value, std::int64_t m) {
  return value.dim() == 0 ? value.item<double>() : value[m].item<double>();
}

}  // namespace

Compute StudentTrainer::train(StudentGroup& group, Progress& progress, std::optional<StudentCheckpoint> resume) {
  if (resume) {
    progress.resume_at(resume->position);
    c_.log << "resuming from " << resume->file.string() << ": " << group_name(group, c_.config.k) << ", stage "
           << progress.stage << ", iteration " << progress.iteration << "\n";
  }
  group.network->to(c_.device);
  group.network->train();
  const bool split = c_.config.distill.pairs_split != "shared";
  std::vector<TeacherPairs> pairs;
  for (const Cell& cell : group.cells) {
    if (c_.pairs != nullptr) pairs.push_back(split ? c_.pairs->of_classes(cell.classes) : *c_.pairs);
  }
  Compute spent = progress.student_spent;
  std::vector<std::unique_ptr<Loss>> losses;
  for (std::int64_t s = progress.stage; s < static_cast<std::int64_t>(c_.config.stages.size()); ++s) {
    progress.stage = s;
    progress.student_spent = spent;
    const StageConfig& config = c_.config.stages[static_cast<size_t>(s)];
    Stage stage{s, config, stage_budget(c_.config, config), group, pairs,
                group_name(group, c_.config.k) + ", " + config.name, losses};
    spent.add(train_stage(stage, progress, resume));
    progress.finish_stage();
  }
  return spent;
}

bool StudentTrainer::wants_one_thread(const Stage& stage) const {
  const double below = c_.config.one_thread_below_gflop;
  if (!c_.device.is_cpu() || c_.config.threads != 0 || below <= 0 || torch::get_num_threads() == 1) return false;
  Denoiser& network = *stage.group.network;
  // A grouped network takes K equal blocks: count one member's network and multiply.
  const std::shared_ptr<Denoiser> one = network.group_size() > 1 ? network.member(0) : nullptr;
  const double per_sample = count_network_flops(one ? *one : network, c_.data.sample_shape(), c_.device).training;
  const double gflop = per_sample * static_cast<double>(stage.budget.batch * stage.group.size()) / 1e9;
  if (gflop >= below) return false;
  std::ostringstream why;
  why << std::setprecision(2) << gflop << " GFLOP per iteration, below experiment.one_thread_below_gflop = " << below;
  c_.log << stage.what << ": one thread (" << why.str() << ")\n";
  return true;
}

Compute StudentTrainer::train_stage(Stage& stage, Progress& progress, std::optional<StudentCheckpoint>& resume) {
  const StageConfig& config = stage.config;
  const auto [steps, batch] = stage.budget;
  const std::int64_t members = stage.group.size();
  Denoiser& student = *stage.group.network;
  c_.phase = stage.what;
  const OneThread one_thread(steps > 0 && wants_one_thread(stage));
  const int threads = torch::get_num_threads();
  std::vector<std::unique_ptr<Loss>> losses = make_losses(stage, stage.losses);
  std::vector<torch::Tensor> trained = student.parameters();
  for (auto& loss : losses) {
    for (const torch::Tensor& p : loss->extra_parameters()) trained.push_back(p);
  }
  msd::AdamW optimizer(trained, torch::optim::AdamWOptions(config.lr)
                                    .betas({config.beta1, config.beta2})
                                    .weight_decay(config.weight_decay));
  const TrainingState state{student, optimizer, losses, stage.group.generators};
  if (resume) {
    resume->restore(state);
    resume.reset();
    c_.log << stage.what << ": resumed at iteration " << progress.iteration << " of " << steps << "\n";
  }
  const StepContextImpl::Fixed fixed = step_inputs(c_, stage.group, stage.pairs, batch);
  // Curves and progress are taken on student-update iterations (about 100 points per stage), so
  // every logged point has the student's losses, whatever the two-time-scale ratio.
  const std::int64_t log_every = std::max<std::int64_t>(1, (steps + config.update_every - 1) / config.update_every / 100);
  const auto start = std::chrono::steady_clock::now();
  auto last_checkpoint = start;
  std::int64_t updates = progress.updates;
  // Saves the state after `done` iterations (the next to run is `done`).
  const auto checkpoint = [&](std::int64_t done) {
    if (stage.probe) return;  // a short probe starts again rather than take a student's checkpoint file
    Progress position = progress;
    position.iteration = done;
    position.updates = updates;
    position.stage_seconds += seconds_since(start);
    c_.monitor.flush();  // curve points up to here are in the store before the state that follows them
    c_.folder.save_student(position, state);
    last_checkpoint = std::chrono::steady_clock::now();
  };
  const MixedPrecision precision(c_.device, c_.config.precision);
  CycleFlops flops(progress.iteration, config.update_every, steps);
  for (std::int64_t it = progress.iteration; it < steps; ++it) {
    flops.before(it);
    const bool updates_student = it % config.update_every == 0;
    const bool log_now = updates_student && (updates % log_every == 0 || it + config.update_every >= steps);
    StepContextImpl ctx(fixed, it, updates_student, log_now);
    std::vector<torch::Tensor> values(losses.size());
    if (updates_student) {
      values = step_student(config, ctx, losses, optimizer, trained, members, updates++, log_now, c_.device);
    }
    LoggedValues aux;
    for (auto& loss : losses) {
      for (auto& [name, value] : loss->update_auxiliary(ctx)) aux[name] = value;
    }
    flops.after(it);
    try {
      if (log_now) {
        c_.monitor.progress(stage.what, it + 1, steps, log_iteration(stage, it, values, aux));
      } else {
        check_stop();
      }
    } catch (const Interrupted&) {
      checkpoint(it + 1);
      throw;
    }
    if (c_.config.checkpoint_seconds > 0 && seconds_since(last_checkpoint) >= c_.config.checkpoint_seconds &&
        it + 1 < steps) {
      checkpoint(it + 1);
    }
  }
  c_.monitor.finish_line();
  stage.losses = std::move(losses);
  // A group's time is shared equally among its members; each ran every iteration on its own batch.
  const double seconds = (progress.stage_seconds + seconds_since(start)) / static_cast<double>(members);
  const Compute spent{steps, updates, steps * batch, seconds};
  const bool counted = flops.per_iteration() && spent.seconds > 0;
  const double each =
      counted ? *flops.per_iteration() * static_cast<double>(steps) / static_cast<double>(members) : 0.0;
  for (std::int64_t m = 0; m < members && steps > 0; ++m) {
    c_.monitor.metric("train." + config.name + ".threads", 0, threads, stage.scope(m));
    if (!counted) continue;
    c_.monitor.metric("train." + config.name + ".flops", 0, each, stage.scope(m));
    c_.monitor.metric("train." + config.name + ".flops_per_second", 0, each / spent.seconds, stage.scope(m));
  }
  return spent;
}

std::vector<double> StudentTrainer::probe(StudentGroup& group, const ProbeOptions& options,
                                          const std::vector<double>& levels) {
  const StageConfig& trained = probe_stage(c_.config);
  StageConfig config = trained;
  config.name = "probe";
  config.steps = options.steps;
  group.network->to(c_.device);
  group.network->train();
  std::vector<TeacherPairs> pairs;
  if (c_.pairs != nullptr) pairs.push_back(*c_.pairs);
  std::vector<std::unique_ptr<Loss>> losses;
  const StageBudget budget{options.steps, c_.config.budget.batch_size};
  Stage stage{0, config, budget, group, pairs, "probe, " + trained.name, losses, true};
  Progress progress;
  std::optional<StudentCheckpoint> none;
  train_stage(stage, progress, none);

  group.network->eval();
  StepContextImpl::Fixed fixed = step_inputs(c_, group, pairs, options.samples);
  const MixedPrecision precision(c_.device, c_.config.precision);
  const std::vector<std::string>& named = options.losses;
  std::vector<size_t> measured;  // the losses whose weighted sum is the difficulty
  for (size_t i = 0; i < losses.size(); ++i) {
    if (named.empty() || std::find(named.begin(), named.end(), config.losses[i].plugin) != named.end()) {
      measured.push_back(i);
    }
  }
  torch::NoGradGuard no_grad;
  std::vector<double> values;
  for (const double level : levels) {
    check_stop();
    fixed.sigma = level;
    StepContextImpl ctx(fixed, 0, /*updates=*/false, /*logs=*/false);
    double total = 0.0;
    for (const size_t i : measured) total += config.losses[i].weight * losses[i]->student_loss(ctx).item<double>();
    if (!std::isfinite(total)) {
      const auto index = &trained - c_.config.stages.data();
      throw std::runtime_error("the difficulty probe's loss at sigma = " + number_text(level) + " is " +
                               number_text(total) + "; lower stage." + std::to_string(index) +
                               ".lr or partition.probe_steps");
    }
    values.push_back(total);
  }
  return values;
}

LossSetup StudentTrainer::loss_setup(const Stage& stage) const {
  LossSetup setup;
  setup.teacher = &c_.teacher;
  setup.student = stage.group.network.get();
  setup.student_type = c_.student_plugin.type();
  setup.generator_sigma = c_.student_plugin.generator_sigma();
  setup.student_index = stage.group.first;
  setup.cell = stage.group.cells.front();
  setup.members = stage.group.cells;
  setup.data = &c_.data;
  setup.stage = stage.config.name;
  setup.stage_steps = stage.budget.steps;
  setup.batch_size = stage.budget.batch;
  setup.sample_shape = c_.data.sample_shape();
  setup.num_classes = c_.data.num_classes();
  setup.sigma_data = c_.teacher_plugin.sigma_data();
  setup.sampler = c_.teacher_plugin.sampler();
  setup.device = c_.device;
  setup.monitor = &c_.monitor;
  return setup;
}

std::vector<std::unique_ptr<Loss>> StudentTrainer::make_losses(const Stage& stage,
                                                               const std::vector<std::unique_ptr<Loss>>& previous) const {
  const std::vector<LossConfig>* previous_configs =
      stage.index > 0 ? &c_.config.stages[static_cast<size_t>(stage.index - 1)].losses : nullptr;
  const LossSetup setup = loss_setup(stage);
  std::vector<std::unique_ptr<Loss>> losses;
  for (const LossConfig& l : stage.config.losses) {
    losses.push_back(c_.registry.make<Loss>(PluginKind::loss, l.plugin, l.params));
    losses.back()->setup(setup);
    const std::vector<std::string>& from = c_.registry.find(PluginKind::loss, l.plugin)->loss.resumes_from;
    for (size_t j = 0; previous_configs != nullptr && j < previous.size(); ++j) {
      if (std::find(from.begin(), from.end(), (*previous_configs)[j].plugin) != from.end()) {
        hand_on(*previous[j], *losses.back());
        c_.log << stage.config.name << "." << l.plugin << ": starts from the state of " << (*previous_configs)[j].plugin
               << "\n";
        break;
      }
    }
  }
  return losses;
}

double StudentTrainer::log_iteration(const Stage& stage, std::int64_t iteration, const std::vector<torch::Tensor>& values,
                                     const LoggedValues& aux) const {
  const StageConfig& config = stage.config;
  const std::int64_t members = stage.group.size();
  const auto fail = [&](std::int64_t m, const std::string& loss, double value) {
    const std::string who = members == 1 ? "" : " (student " + std::to_string(stage.group.first + m) + ")";
    throw std::runtime_error(stage.what + ", iteration " + std::to_string(iteration) + ": " + loss + who + " is " +
                             number_text(value) + ", so the weights it trains are lost; lower stage." +
                             std::to_string(stage.index) + ".lr (" + number_text(config.lr) +
                             ") or the loss weights of stage '" + config.name + "'");
  };
  // Read and checked before any is recorded: a failed iteration leaves no point of its curves.
  std::vector<std::vector<std::pair<std::string, double>>> points(static_cast<size_t>(members));
  std::vector<double> shown(static_cast<size_t>(members), 0.0);
  for (std::int64_t m = 0; m < members; ++m) {
    auto& point = points[static_cast<size_t>(m)];
    for (size_t i = 0; i < values.size(); ++i) {
      const double v = member_value(values[i], m);
      if (!std::isfinite(v)) fail(m, "the loss '" + config.losses[i].plugin + "'", v);
      point.emplace_back(config.losses[i].plugin, v);
      shown[static_cast<size_t>(m)] += config.losses[i].weight * v;
    }
    for (const auto& [name, value] : aux) {
      const double v = member_value(value, m);
      if (!std::isfinite(v)) fail(m, "the auxiliary value '" + name + "'", v);
      point.emplace_back(name, v);
    }
  }
  for (std::int64_t m = 0; m < members; ++m) {
    for (const auto& [name, v] : points[static_cast<size_t>(m)]) {
      c_.monitor.metric("train." + config.name + "." + name, iteration, v, stage.scope(m));
    }
  }
  return std::accumulate(shown.begin(), shown.end(), 0.0) / static_cast<double>(members);
}

}  // namespace msd::host
