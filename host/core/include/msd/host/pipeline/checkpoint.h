// Where a run's distillation stands, and the run folder's files that keep it. Every file of the run
// folder is named, written and read here, whole or not at all (msd::write_file_atomically):
//   checkpoint.pt                  the run's: the finished students and their compute, after each student
//   checkpoint-student-<k>.pt      student k's mid-stage state: stage, iteration, compute so far, weights,
//                                  optimizer, losses' auxiliary state and random generators; written every
//                                  experiment.checkpoint_seconds and when the run is interrupted. For a
//                                  grouped network whose first member is student k, the group's state.
//   student-<k>.pt                 student k's trained weights
//   student-<k>.compute.pt         student k's compute, written by a student process when it is finished
// The run's process and a student process (--student-jobs) write the same student checkpoint, so a run
// resumes each student where it stopped, with or without student processes, and continues exactly as
// the interrupted attempt would have.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include "msd/results/store.h"

namespace torch::optim {
class Optimizer;
}

namespace msd {
class Denoiser;
class Loss;
}  // namespace msd

namespace msd::host {

/// Compute a student spent, recorded with the run (see "Fair comparisons" in docs/CONFIG.md).
struct Compute {
  std::int64_t iterations = 0;       ///< training iterations, auxiliary-only ones included
  std::int64_t student_updates = 0;  ///< optimizer steps of the student
  std::int64_t samples = 0;          ///< iterations times the batch size
  double seconds = 0.0;              ///< training time

  void add(const Compute& other);
  /// Appends train.iterations, train.student_updates, train.samples and train.seconds at `scope`.
  void log(std::vector<results::MetricRow>& rows, const std::string& scope) const;
};

/// How far a run's students got.
struct Progress {
  std::int64_t student = 0;    ///< students before this one are finished (weights in student-<k>.pt)
  std::int64_t stage = 0;      ///< stages of `student` before this one are finished
  std::int64_t iteration = 0;  ///< the next iteration of `stage`
  std::int64_t updates = 0;    ///< student updates made so far in `stage`
  double stage_seconds = 0.0;  ///< training time spent so far in `stage`
  Compute student_spent;       ///< compute of the finished stages of `student`
  std::vector<Compute> students_spent;  ///< compute of each finished student

  /// Student `student` is finished, having spent `spent`: on to the next one, from its first stage.
  void finish_student(const Compute& spent);
  /// Student `position.student` continues from its checkpoint: its stage, iteration, updates and
  /// compute so far (the finished students stay as they are).
  void resume_at(const Progress& position);
  /// Stage `stage` is finished: the next one starts at its first iteration.
  void finish_stage();
};

/// The objects a student (or the members of a grouped network) trains with in one stage.
struct TrainingState {
  Denoiser& student;                              ///< the student's network, or the group's
  torch::optim::Optimizer& optimizer;
  const std::vector<std::unique_ptr<Loss>>& losses;
  std::vector<at::Generator>& generators;         ///< each member's random generator (msd/random.h)
};

/// A student's checkpoint as read back: where it stood, and the state to restore once the stage it
/// stood in has built its student, optimizer and losses again.
struct StudentCheckpoint {
  std::filesystem::path file;             ///< checkpoint-student-<k>.pt
  Progress position;                      ///< student, stage, iteration, updates, stage_seconds, student_spent
  torch::serialize::InputArchive state;   ///< net, optimizer, loss.<i>, rng

  /// Loads the weights, optimizer, losses' state and random generators into `into`. Throws
  /// std::runtime_error naming the file when the state does not fit them (another group size, say).
  void restore(const TrainingState& into);
};

/// One run's folder: <artifacts>/run-<id>.
class RunFolder {
 public:
  /// `device`: where checkpoints are read to (the run's training device).
  RunFolder(std::filesystem::path folder, torch::Device device);

  const std::filesystem::path& path() const { return folder_; }
  std::filesystem::path student_weights(std::int64_t k) const;  ///< student-<k>.pt
  std::filesystem::path student_log(std::int64_t k) const;      ///< student-<k>.log (student processes)

  std::filesystem::path run_checkpoint() const;                  ///< checkpoint.pt

  /// Writes the finished students of `progress` and their compute to checkpoint.pt.
  void save_finished(const Progress& progress) const;
  /// The finished students that checkpoint.pt records; a new Progress when there is none.
  Progress read_finished() const;

  /// Writes student `position.student`'s checkpoint: its position and the state of `state`.
  void save_student(const Progress& position, const TrainingState& state) const;
  /// Student `k`'s checkpoint, or nothing when it has none.
  std::optional<StudentCheckpoint> read_student(std::int64_t k) const;

  /// A student process's last word: student `k` is finished, its weights saved, having spent `spent`.
  void save_student_done(std::int64_t k, const Compute& spent) const;
  /// What save_student_done wrote for student `k`, or nothing yet.
  std::optional<Compute> student_done(std::int64_t k) const;

  /// Removes the checkpoints of a run of `students` students (a finished run needs none: its
  /// students are saved on their own).
  void remove_checkpoints(std::int64_t students) const;
  /// Removes student `k`'s checkpoint once its weights are saved.
  void remove_student_checkpoint(std::int64_t k) const;

  /// What to do about a checkpoint of the run folder that cannot be read.
  static const char* const kDamaged;

 private:
  std::filesystem::path student_checkpoint(std::int64_t k) const;
  std::filesystem::path student_done_file(std::int64_t k) const;

  std::filesystem::path folder_;
  torch::Device device_;
};

}  // namespace msd::host
