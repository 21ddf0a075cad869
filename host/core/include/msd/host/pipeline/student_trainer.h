// Training one student through the stages of its run: the losses of each stage built once and set
// up, the student's optimizer, one student step per `update_every` iterations, curves into the store,
// and checkpoints of its whole training state, from which an interrupted student continues exactly.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/types.h>

#include "msd/dataset.h"
#include "msd/denoiser.h"
#include "msd/host/pipeline/checkpoint.h"
#include "msd/host/pipeline/teacher_cache.h"
#include "msd/loss.h"
#include "msd/student.h"
#include "msd/teacher.h"

namespace msd::host {

struct RunConfig;
struct StageConfig;
class PluginRegistry;
class RunMonitor;

/// One student's budget in one stage.
struct StageBudget {
  std::int64_t steps = 0;
  std::int64_t batch = 0;
};

/// The budget of one student in `stage`: as configured (budget.scope = "per_student"), or the total
/// divided among the run's K students by steps or by batch (budget.scope = "total", budget.divide).
StageBudget stage_budget(const RunConfig& config, const StageConfig& stage);

/// What every student of a run trains with.
struct TrainingContext {
  const RunConfig& config;
  const PluginRegistry& registry;  ///< makes the losses
  Dataset& data;
  Denoiser& teacher;               ///< frozen
  const Teacher& teacher_plugin;
  const Student& student_plugin;
  const TeacherPairs* pairs;       ///< the run's teacher pairs; nullptr when no loss uses them
  torch::Device device;
  RunMonitor& monitor;             ///< curves and progress lines
  const RunFolder& folder;         ///< where the student's checkpoints go
  std::ostream& log;
  std::string& phase;              ///< set to what training is doing, for errors that do not say it
};

/// The students one StudentTrainer::train call trains: one student, or the consecutive members of a
/// grouped network (Denoiser::group, experiment.students_per_network), which train as one network and
/// come out as the students they would be trained one by one, up to rounding.
struct StudentGroup {
  std::int64_t first = 0;                 ///< the first member's index
  std::vector<Cell> cells;                ///< each member's cell
  std::shared_ptr<Denoiser> network;      ///< the student's network, or the members' grouped network
  std::vector<at::Generator> generators;  ///< each member's random generator (msd/random.h)

  std::int64_t size() const { return static_cast<std::int64_t>(cells.size()); }
};

class StudentTrainer {
 public:
  /// Keeps a copy of `context`: its fields are references, so the caller need not keep it alive.
  explicit StudentTrainer(const TrainingContext& context) : c_(context) {}

  /// Trains `group` (whose first member is student `progress.student`) through every stage, from its
  /// first stage or, given its checkpoint `resume`, from where that stands. Returns the compute each
  /// member spent (a group's time is shared equally among its members). Saves its checkpoint every
  /// experiment.checkpoint_seconds, and on a stop request before throwing Interrupted; throws naming
  /// the stage, iteration, student and loss when a loss turns NaN or infinite.
  Compute train(StudentGroup& group, Progress& progress, std::optional<StudentCheckpoint> resume);

  /// The difficulty probe (PartitionContext::level_difficulty): trains `group`, one student for every
  /// key, through probe_stage() (models.h) for options.steps iterations at budget.batch_size,
  /// then returns that stage's weighted student loss (of options.losses, or of all) at each of `levels`,
  /// on options.samples real samples noised at exactly that level. Its curves go to scope "probe"
  /// (train.probe.<loss>); it keeps no checkpoint: an interrupted probe starts again.
  std::vector<double> probe(StudentGroup& group, const ProbeOptions& options, const std::vector<double>& levels);

 private:
  struct Stage;
  Compute train_stage(Stage& stage, Progress& progress, std::optional<StudentCheckpoint>& resume);
  /// Whether `stage` runs on one thread (experiment.one_thread_below_gflop); says so in the log.
  bool wants_one_thread(const Stage& stage) const;
  LossSetup loss_setup(const Stage& stage) const;
  std::vector<std::unique_ptr<Loss>> make_losses(const Stage& stage, const std::vector<std::unique_ptr<Loss>>& previous) const;
  double log_iteration(const Stage& stage, std::int64_t iteration, const std::vector<torch::Tensor>& values,
                       const LoggedValues& aux) const;

  const TrainingContext c_;
};

}  // namespace msd::host
