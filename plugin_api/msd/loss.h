// Loss plugins: one training objective of a stage. A loss may own auxiliary networks and their
// optimizers (a fake-score network, a discriminator, feature adapters); the host owns the student's.
//
// Each training iteration the host first, on iterations that update the student (every R-th under
// the two-time-scale rule), sums weight * student_loss() over the stage's losses, backpropagates once
// and steps the student; then it calls update_auxiliary() of every loss, which trains auxiliary
// networks on the same iteration's (detached) batch. This is DMD2's order.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "msd/denoiser.h"
#include "msd/edm.h"
#include "msd/monitor.h"
#include "msd/partition.h"
#include "msd/plugin.h"
#include "msd/random.h"
#include "msd/student.h"

namespace msd {

/// Real data of the cell's classes, noised at a level drawn for this cell.
struct NoisedBatch {
  torch::Tensor x0;      ///< clean samples [B, ...]
  torch::Tensor labels;  ///< [B] int64
  torch::Tensor sigma;   ///< [B]: from the cell's range with probability 1 - p, from EDM's prior otherwise
  torch::Tensor noise;   ///< standard normal, like x0
  torch::Tensor xt;      ///< x0 + sigma * noise
};

/// One-step student samples for the cell's classes.
struct GeneratedBatch {
  torch::Tensor noise;   ///< standard normal input
  torch::Tensor labels;  ///< [B] int64, from the cell's classes
  torch::Tensor x;       ///< G(noise, labels); carries the graph on student-update iterations only
};

/// Teacher pairs: the teacher's sample from a given noise and label (regression targets).
struct PairedBatch {
  torch::Tensor noise;   ///< standard normal input
  torch::Tensor labels;  ///< [B] int64
  torch::Tensor target;  ///< the teacher's sample from (noise, label)
};

class Dataset;

/// Fixed facts about the student a loss trains and the stage it trains in, given once before training.
struct LossSetup {
  Denoiser* teacher = nullptr;    ///< frozen; never update it
  Denoiser* student = nullptr;    ///< the network being trained
  StudentType student_type = StudentType::one_step;
  double generator_sigma = 80.0;  ///< one-step students: G(z, c) = D(generator_sigma z; generator_sigma, c)
  std::int64_t student_index = 0;
  Cell cell;                      ///< the keys this student is responsible for
  /// The cells of the students this loss trains at once, in the order of the members of a grouped
  /// student network; just `cell` for a student trained alone. More than one only for losses whose
  /// LossTraits::trains_groups is true. `student_index` and `cell` are then the first member's.
  std::vector<Cell> members;
  /// How many students this loss trains at once: members.size(), or 1 when members is empty.
  std::int64_t group_size() const { return members.empty() ? 1 : static_cast<std::int64_t>(members.size()); }
  Dataset* data = nullptr;        ///< the run's dataset: real samples, class names, class features
  std::string stage;              ///< the stage's name
  std::int64_t stage_steps = 0;   ///< iterations of this stage for this student (after [budget] division)
  std::int64_t batch_size = 0;    ///< samples per iteration for this student (after [budget] division)
  std::vector<std::int64_t> sample_shape;
  std::int64_t num_classes = 0;
  double sigma_data = 0.5;        ///< the teacher's preconditioning constant
  edm::SamplerOptions sampler;    ///< the teacher's sampler (its sigma range bounds noise grids)
  torch::Device device{torch::kCPU};
  Monitor* monitor = nullptr;
};

/// Per-iteration view the host gives a loss. Every accessor is computed at most once per iteration and
/// shared by all losses of the stage, so DM and regression see the same generator batch.
class StepContext {
 public:
  virtual ~StepContext();
  virtual std::int64_t iteration() const = 0;       ///< 0-based, within the stage
  virtual bool updates_student() const = 0;         ///< student_loss() will be called this iteration
  virtual const NoisedBatch& noised_real() = 0;
  /// The student's prediction on noised_real() (with graph when updates_student()).
  virtual const DenoiserOutput& student_on_noised() = 0;
  /// The teacher's prediction on noised_real() (no graph).
  virtual const DenoiserOutput& teacher_on_noised() = 0;
  /// One-step students only.
  virtual const GeneratedBatch& generated() = 0;
  /// A random minibatch of the run's teacher pairs (shared by all students, or this student's part).
  virtual PairedBatch paired() = 0;
  /// Whether the host records this iteration's values (about 100 iterations a stage). On the others
  /// update_auxiliary() may return nothing: reading a value off a GPU waits for all queued work.
  virtual bool logs() const = 0;
  /// Where member `member` of the student group draws its random numbers (0 for a student alone).
  virtual const Random& random(std::int64_t member) const = 0;
};

/// Values update_auxiliary() logs, by name: 0-dim, or [K] for the K members of a grouped student.
using LoggedValues = std::map<std::string, torch::Tensor>;

/// A draw for the whole (grouped) batch: draw(ctx.random(k)) for each of `members`, concatenated on
/// dimension 0. With one member, draw(ctx.random(0)) itself.
torch::Tensor draw_per_member(const StepContext& ctx, std::int64_t members,
                              const std::function<torch::Tensor(const Random&)>& draw);

/// The mean of each member's block of `values` (dimension 0 split in `members` equal blocks): [members];
/// with one member, values.mean() (0-dim).
torch::Tensor mean_per_member(const torch::Tensor& values, std::int64_t members);

class Loss : public Plugin {
 public:
  ~Loss() override;
  /// Called once before training; build auxiliary networks here. Whether the loss calls
  /// StepContext::paired(), and which loss of the previous stage it starts from, is declared in
  /// PluginInfo::loss (LossTraits), so that the host knows without constructing it.
  virtual void setup(const LossSetup& setup) { (void)setup; }
  /// Every iteration, after the student's step: train auxiliary networks (fake score, discriminator).
  /// Returns values to log; the host reads them only when ctx.logs().
  virtual LoggedValues update_auxiliary(StepContext& ctx) {
    (void)ctx;
    return {};
  }
  /// The (unweighted) loss of the student on this iteration: 0-dim, or [K] for a grouped student.
  virtual torch::Tensor student_loss(StepContext& ctx) = 0;
  /// Parameters the student's optimizer should train with the student (feature adapters).
  virtual std::vector<torch::Tensor> extra_parameters() { return {}; }
  /// Checkpoint of the auxiliary state (networks and optimizers). The host saves it with the
  /// student's checkpoints (an interrupted run resumes from it) and, between stages, hands it on: when
  /// a loss named in this plugin's LossTraits::resumes_from was in the student's previous stage, the
  /// host calls load() with that loss's save() right after setup() (DMD2's ADM stage resumes the DM
  /// stage's fake-score network and its optimizer this way). load() is called after setup().
  virtual void save(torch::serialize::OutputArchive& archive) const { (void)archive; }
  virtual void load(torch::serialize::InputArchive& archive) { (void)archive; }
};

}  // namespace msd
