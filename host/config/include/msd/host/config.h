// Experiment files: parsing (toml++), strict validation against the host's sections and each plugin's
// declared keys, command-line overrides, expansion of variants into concrete runs, and the resolved,
// canonical config text whose hash identifies a run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "msd/host/plugin_catalog.h"
#include "msd/plugin.h"

namespace msd::host {

/// Where a value came from: a file position, or "<command line>" for --set overrides.
struct SourceLocation {
  std::string file;
  int line = 0;    ///< 1-based; 0 when unknown
  int column = 0;  ///< 1-based; 0 when unknown
  std::string str() const;  ///< "file:line:column", or just "file"
};

/// One problem found in an experiment file.
struct ConfigIssue {
  SourceLocation where;
  std::string key;      ///< dotted key path, e.g. "teacher.hidden" or "stage.0.loss.1.weight"
  std::string message;  ///< what is wrong and, where possible, what would be right
  std::string str() const;  ///< "file:line:col: key: message"
};

/// Every problem found, so the user fixes them in one pass. what() lists them, one per line.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<ConfigIssue> issues);
  const std::vector<ConfigIssue>& issues() const { return issues_; }

 private:
  std::vector<ConfigIssue> issues_;
};

/// A plugin section: which plugin, and its validated params (defaults filled in).
struct PluginSection {
  std::string plugin;
  Params params;
};

/// One loss of a stage.
struct LossConfig {
  std::string plugin;
  double weight = 1.0;  ///< multiplies the loss in the student's objective
  Params params;
};

/// One training stage (TSM, DM, ADM, KD, ...): its losses, optimiser and length.
struct StageConfig {
  std::string name;
  std::int64_t steps = 0;          ///< iterations, per student or in total (see BudgetConfig)
  double lr = 1e-4;                ///< student learning rate
  double beta1 = 0.9;              ///< AdamW beta1
  double beta2 = 0.999;            ///< AdamW beta2
  double weight_decay = 0.0;       ///< AdamW weight decay
  double grad_clip = 10.0;         ///< max gradient norm of the student; 0 disables
  std::int64_t warmup = 0;         ///< linear learning-rate warm-up iterations
  std::int64_t update_every = 1;   ///< two-time-scale rule: student steps every R iterations
  std::vector<LossConfig> losses;
};

/// How the training budget is counted (see "Fair comparisons" in docs/ARCHITECTURE.md).
struct BudgetConfig {
  std::string scope = "per_student";  ///< "per_student": each student gets stage.steps; "total": K students share it
  std::string divide = "steps";       ///< with scope "total": divide "steps" or "batch" size by K
  std::int64_t batch_size = 256;      ///< samples per iteration per student (before any division)
};

/// What a run distils and evaluates.
struct DistillConfig {
  bool enabled = true;                 ///< false: the run is the teacher-only baseline
  std::int64_t pairs = 1024;           ///< teacher noise->sample pairs made per run for regression losses
  std::string pairs_split = "shared";  ///< "shared": every student sees all pairs; "partitioned": its cell's
  double outside_cell_p = 0.1;         ///< O2MKD's p: probability of training at a noise level outside the cell
};

struct EvaluateConfig {
  std::int64_t samples = 5000;         ///< samples drawn from the model under test
  std::vector<std::int64_t> sampler_steps;  ///< the NFE curve: teacher.sampler_steps to evaluate again at
  std::vector<PluginSection> metrics;  ///< in file order
};

/// A fully validated, resolved run.
struct RunConfig {
  std::string experiment;              ///< experiment.name
  std::string name;                    ///< variant name ("base" when the file has no variants), plus
                                       ///< "[key=value,...]" when [sweep] has grid, zip or seeds
  std::string description;
  std::int64_t seed = 0;
  std::int64_t threads = 0;            ///< 0: every core
  double one_thread_below_gflop = 1.0;  ///< with threads = 0 on the CPU: smaller student stages run on one thread
  double checkpoint_seconds = 60.0;    ///< between student checkpoints; 0: at interrupts and student ends
  std::int64_t students_per_network = 1;  ///< students trained as one grouped network; 0: all K
  std::string device = "auto";         ///< "auto", "cpu", "cuda"
  std::string precision = "fp32";      ///< "fp32", or "bf16": autocast of forward passes (DMD2 trains in bf16)
  std::string results;                 ///< database path from experiment.results (may be empty)
  PluginSection dataset;
  PluginSection teacher;
  PluginSection student;
  PluginSection partition;
  std::int64_t k = 1;                  ///< partition.k: number of students
  DistillConfig distill;
  BudgetConfig budget;
  std::vector<StageConfig> stages;
  EvaluateConfig evaluate;

  std::string canonical_toml;          ///< every key, defaults filled, stable order: what gets stored
  std::string hash;                    ///< 16 hex digits, FNV-1a 64 of canonical_toml without the keys that
                                       ///< cannot change results (experiment.description, .results, .plugin_paths)
  std::string teacher_hash;            ///< hash of what determines the trained teacher (dataset, teacher, seed)
  std::string pairs_hash;              ///< hash of what determines the teacher's noise->sample pairs: the
                                       ///< teacher's, plus its sampling keys and distill.pairs
  std::vector<std::pair<std::string, std::string>> params;  ///< flattened: dotted key -> TOML value text
  std::vector<std::pair<std::string, std::string>> coords;  ///< the variant's overrides, the grid/zip values,
                                                            ///< the seed and --set overrides: key -> TOML value text
  std::int64_t sweep_index = 0;        ///< 0-based position of this run in the file's expansion
  std::string sweep_id;                ///< hash of the whole expanded plan: equal for equal file and overrides
};

/// A parsed experiment file before validation.
class ExperimentFile {
 public:
  /// Parses `path`. Throws ConfigError with the file, line and column of a TOML syntax error.
  static ExperimentFile load(const std::filesystem::path& path);
  /// Parses text (for tests); `name` is used as the file name in messages.
  static ExperimentFile parse(const std::string& text, const std::string& name);

  ExperimentFile(ExperimentFile&&) noexcept;
  ExperimentFile& operator=(ExperimentFile&&) noexcept;
  ~ExperimentFile();

  /// Applies "--set key=value": key is a dotted path (array elements by index: "stage.0.steps"),
  /// value is parsed as a TOML value, falling back to a bare string. Throws ConfigError on a
  /// malformed assignment. Overrides apply to every variant, after the variant's own overrides.
  void set_override(const std::string& assignment);

  /// Folders named by experiment.plugin_paths, resolved relative to the file's folder.
  std::vector<std::filesystem::path> plugin_paths() const;

  /// Validates the base config and every run of the sweep against the host schema and the plugins' keys;
  /// returns one RunConfig per run: variants in file order (one named "base" when there are none), each
  /// times the [sweep.grid] keys (first key outermost), the [sweep.zip] lists and the seeds (innermost).
  /// Throws ConfigError listing every issue found.
  std::vector<RunConfig> resolve(const PluginCatalog& catalog) const;

  const std::filesystem::path& path() const;

 private:
  ExperimentFile();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The closest candidate to `word` by edit distance, if it is close enough to be a likely typo: within
/// two edits, or a third of the word's length for long words (the rule of every "did you mean" of
/// experiment files).
std::optional<std::string> closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace msd::host
