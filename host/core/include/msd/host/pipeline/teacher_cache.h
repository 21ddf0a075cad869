// The teachers and teacher pairs of a cache folder. Each is keyed by the hash of everything that
// determines it (RunConfig::teacher_hash, RunConfig::pairs_hash), so every run that needs the same one
// trains or makes it once and the others load it; a provenance file beside it holds the config that
// made it. A lock per file makes concurrent runs wait for the one that is making it.
//   <cache>/teachers/<teacher hash>.pt (+ .toml)
//   <cache>/teacher_pairs/<pairs hash>.pt (+ .toml)
#pragma once

#include <filesystem>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "msd/dataset.h"
#include "msd/denoiser.h"
#include "msd/teacher.h"

namespace msd::host {

struct RunConfig;
class RunMonitor;

/// Teacher noise -> sample pairs, for the losses that regress on them (LossTraits::uses_teacher_pairs).
struct TeacherPairs {
  torch::Tensor noise, labels, target;

  bool empty() const { return !labels.defined() || labels.numel() == 0; }
  /// The pairs whose label is one of `classes` (all of them when `classes` is empty).
  TeacherPairs of_classes(const std::vector<std::int64_t>& classes) const;
  TeacherPairs to(const torch::Device& device) const;
};

/// A teacher as the cache gave it.
struct CachedTeacher {
  std::shared_ptr<Denoiser> net;  ///< on the run's device, in eval mode, its parameters frozen
  std::filesystem::path file;     ///< where its weights are cached
  bool cached = false;            ///< loaded (true) or trained here (false)
  double train_seconds = 0.0;     ///< training time when trained here
};

/// Teacher pairs as the cache gave them.
struct CachedPairs {
  TeacherPairs pairs;         ///< on the run's device
  bool cached = false;        ///< loaded (true) or made here (false)
  double seconds = 0.0;       ///< time to load or make them
};

class TeacherCache {
 public:
  /// `folder`: the cache folder (msd --cache); `log` hears what was reused and what was made.
  TeacherCache(std::filesystem::path folder, std::ostream& log);

  std::filesystem::path teacher_file(const RunConfig& config) const;
  std::filesystem::path pairs_file(const RunConfig& config) const;

  /// The run's teacher: built from the run's "teacher" seed phase (its initial weights are part of what
  /// the hash promises), then loaded from the cache, or trained by `plugin` on `data` and cached.
  CachedTeacher teacher(const RunConfig& config, Teacher& plugin, Dataset& data, const torch::Device& device,
                        RunMonitor& monitor) const;

  /// distill.pairs noise -> sample pairs of `teacher` (the teacher plugin's sampler, labels cycling through
  /// the classes), from their own seed phase so that a run computes the same numbers whether it made them
  /// or loaded them. Throws when distill.pairs is 0.
  CachedPairs pairs(const RunConfig& config, const Teacher& plugin, Denoiser& teacher, Dataset& data,
                    const torch::Device& device) const;

 private:
  std::filesystem::path folder_;
  std::ostream& log_;
};

/// A trained teacher from `file` (the cache's, or a finished run's artifact): built by `plugin` for
/// `data`, loaded (read_archive's errors, ending with `remedy`), on `device`, in eval mode, frozen.
std::shared_ptr<Denoiser> load_teacher(Teacher& plugin, Dataset& data, const std::filesystem::path& file,
                                       const torch::Device& device, const std::string& remedy);

}  // namespace msd::host
