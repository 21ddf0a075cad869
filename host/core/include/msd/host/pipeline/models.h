// The models a run produces and evaluates: the teacher and the routed student ensemble. Shared by
// `msd run` (which trains them) and `msd sample` (which loads them from a finished run).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/types.h>

#include "msd/dataset.h"
#include "msd/denoiser.h"
#include "msd/edm.h"
#include "msd/partition.h"
#include "msd/student.h"
#include "msd/teacher.h"

namespace msd::results {
class Store;
}

namespace msd::host {

struct RunConfig;
struct StageConfig;
class PluginRegistry;

/// A network as the sampler sees it (sigma broadcast to the batch).
edm::DenoiseFn as_denoise_fn(Denoiser& net);

/// as_denoise_fn for the run's own sampling (teacher pairs, evaluation): a stop request ends the run
/// at its next network evaluation (throwing Interrupted), not after the thousands a sampling pass makes.
edm::DenoiseFn stoppable_denoise_fn(Denoiser& net);

/// The run's teacher plugin, having adopted `data` (prepared), so that settings it takes from its
/// data (EDM's sigma_data) are known before it builds a network.
std::unique_ptr<Teacher> make_teacher(const PluginRegistry& registry, const RunConfig& config, const Dataset& data);

/// The noise levels at which `teacher`'s sampler evaluates the network, one per evaluation, from one
/// sampling of one sample by a stand-in network that returns zeros.
std::vector<double> sampler_levels(const Teacher& teacher, const std::vector<std::int64_t>& sample_shape);

/// What a difficulty probe measured (PartitionContext::level_difficulty): the stage's weighted loss of a
/// one-student probe at each distinct noise level the sampler evaluates.
struct LevelDifficulty {
  std::vector<double> sigma;  ///< the levels, as sampler_levels gives them, each once
  std::vector<double> loss;   ///< the probe's loss at each

  /// One value per entry of `levels` (an evaluation): the loss at its level. Throws naming a level
  /// that was not measured.
  std::vector<double> per_evaluation(const std::vector<double>& levels) const;
};

/// Records `difficulty` as the run's metrics probe.sigma and probe.loss (step i: the i-th level, scope
/// "probe"), with probe.seconds, what measuring it took.
void record_difficulty(results::Store& store, std::int64_t run_id, const LevelDifficulty& difficulty, double seconds);
/// What record_difficulty recorded for the run; nothing when it recorded nothing.
std::optional<LevelDifficulty> recorded_difficulty(const results::Store& store, std::int64_t run_id);

/// The stage a difficulty probe trains with: the run's first stage with steps > 0. Throws naming the
/// partition when there is none.
const StageConfig& probe_stage(const RunConfig& config);

/// The run's partition's ProbeOptions when it declares PartitionTraits::uses_probe; else nothing.
/// Throws naming a probe_losses entry that is not a loss of probe_stage().
std::optional<ProbeOptions> partition_probe(const PluginRegistry& registry, const RunConfig& config);

/// The run's partition: ctx.k cells from its partition plugin, checked to be disjoint, covering and
/// usable by its student type (one-step students cannot split the noise axis). Throws naming the plugin.
/// A partition that uses a probe splits by `difficulty`; without it, by a stand-in weighing every level
/// alike, which checks the configuration before the teacher exists to measure it.
std::vector<Cell> partition_cells(const PluginRegistry& registry, const RunConfig& config, Dataset& data,
                                  const Teacher& teacher, StudentType student_type,
                                  const LevelDifficulty* difficulty = nullptr);

/// A run's students before training: their plugin and the partition's cells, one student per cell.
/// `msd run` trains them, `msd sample` loads their weights into them.
struct StudentPlan {
  std::unique_ptr<Student> plugin;
  std::vector<Cell> cells;

  /// Student `k`'s network as built before training, initialised from the torch generators as the
  /// caller seeded them (the run seeds each student's own phase).
  std::shared_ptr<Denoiser> build(std::int64_t k, const Denoiser& teacher, Dataset& data,
                                  const Teacher& teacher_plugin) const;
  /// A student of the same plugin for `cell`, as student `index` (the difficulty probe's).
  std::shared_ptr<Denoiser> build_for(const Cell& cell, std::int64_t index, const Denoiser& teacher, Dataset& data,
                                      const Teacher& teacher_plugin) const;
};

/// The run's student plugin and the cells of its partition (partition_cells).
StudentPlan plan_students(const PluginRegistry& registry, const RunConfig& config, Dataset& data,
                          const Teacher& teacher, const LevelDifficulty* difficulty = nullptr);

/// One trained student and the cell of the routing key space it serves.
struct StudentSlot {
  Cell cell;
  std::shared_ptr<Denoiser> net;
};

/// K students behind a router. One-step ensembles route by class; multi-step ensembles route each
/// network evaluation by its noise level (and class, for hybrid partitions).
class StudentEnsemble {
 public:
  /// `num_classes` (0: unknown) lets a cell that lists every class serve a whole batch without routing.
  /// `as_group`: evaluate the students as one grouped network (Denoiser::group), in one pass, when
  /// their architecture has a grouped form and every cell takes every noise level (a condition
  /// partition); the runs that trained their students grouped sample this way.
  StudentEnsemble(StudentType type, double generator_sigma, std::vector<StudentSlot> students,
                  std::int64_t num_classes = 0, bool as_group = false);

  /// D(x; sigma, labels) where each sample goes to the student whose cell holds (label, sigma).
  torch::Tensor routed_denoise(const torch::Tensor& x, double sigma, const torch::Tensor& labels) const;
  /// Samples from standard-normal `noise`: one evaluation for one-step students, the teacher's sampler
  /// for multi-step ones.
  torch::Tensor sample(const Teacher& teacher, const torch::Tensor& noise, const torch::Tensor& labels) const;
  /// Network evaluations per sample.
  std::int64_t nfe(const Teacher& teacher) const;

  StudentType type() const { return type_; }
  const std::vector<StudentSlot>& students() const { return students_; }
  std::int64_t params_per_sample() const;  ///< the largest student (one sample passes one at a time)
  std::int64_t params_total() const;

 private:
  StudentType type_;
  double generator_sigma_;
  std::vector<StudentSlot> students_;
  /// One pass of the grouped network: each student's samples in its block, padded to the largest.
  torch::Tensor grouped_denoise(const torch::Tensor& x, double sigma, const torch::Tensor& labels) const;

  std::vector<bool> every_class_;  ///< per student: its cell holds every class
  std::shared_ptr<Denoiser> grouped_;  ///< the students as one network, when sampled as a group
};

/// Draws n samples of a model in chunks of at most `chunk`, with labels given, on `device`.
/// Returns CPU tensors.
torch::Tensor sample_in_chunks(const std::function<torch::Tensor(const torch::Tensor& noise,
                                                                 const torch::Tensor& labels)>& sampler,
                               const std::vector<std::int64_t>& sample_shape, const torch::Tensor& labels,
                               const torch::Device& device, std::int64_t chunk = 2048);

/// Writes `archive` to `file` whole or not at all (msd::write_file_atomically): a reader, a crash or a
/// full disk never leaves half a file. Throws std::runtime_error naming the file when it cannot be written.
void save_archive(torch::serialize::OutputArchive& archive, const std::filesystem::path& file);

/// Reads `file` into an archive on `device` and hands it to `read`. A missing, truncated or damaged
/// file, or one that does not hold what `read` looks for, becomes std::runtime_error naming the file,
/// saying what is wrong and ending with `remedy` (what the user should do), not a LibTorch trace.
void read_archive(const std::filesystem::path& file, const torch::Device& device, const std::string& remedy,
                  const std::function<void(torch::serialize::InputArchive&)>& read);

/// Saves and loads a network's weights (LibTorch archive); load_weights reads as read_archive does.
void save_weights(torch::nn::Module& net, const std::filesystem::path& file);
void load_weights(torch::nn::Module& net, const std::filesystem::path& file, const std::string& remedy);

/// 16 hex digits (FNV-1a 64) of every parameter's and buffer's name and float32 bytes, in the module's
/// order: equal only for bit-identical weights. Runs record their teacher's, so that runs meant to share
/// one teacher (a seed retrained on another machine, say) can be checked to have.
std::string weights_digest(const torch::nn::Module& net);

/// Writes a NumPy .npy file (float32 or int64, C order) that numpy.load reads, whole or not at all.
void write_npy(const torch::Tensor& tensor, const std::filesystem::path& file);

/// "auto" -> cuda if available else cpu; "cuda" without a GPU is an error saying so.
torch::Device resolve_device(const std::string& requested);

/// While alive, the forward passes of this thread on `device` run under bf16 autocast when `precision`
/// is "bf16" (matrix products and convolutions in bf16, reductions and normalisations in fp32, as
/// PyTorch's autocast lists them); "fp32" leaves everything as it is. The cast cache is off, because
/// the guarded code steps optimizers in between and cached casts of the old weights would be reused.
/// Restores the previous autocast state when destroyed.
class MixedPrecision {
 public:
  MixedPrecision(const torch::Device& device, const std::string& precision);
  ~MixedPrecision();
  MixedPrecision(const MixedPrecision&) = delete;
  MixedPrecision& operator=(const MixedPrecision&) = delete;

 private:
  bool active_ = false;
  bool cuda_ = false;
  bool was_enabled_ = false;
  bool was_caching_ = true;
  torch::ScalarType was_dtype_ = torch::kFloat32;
};

/// Seeds torch's default generators for one phase of a run, so that each phase's numbers depend only
/// on (seed, phase) and not on what ran before (a cached teacher must not shift the students' noise).
void seed_phase(std::int64_t seed, const std::string& phase);

}  // namespace msd::host
