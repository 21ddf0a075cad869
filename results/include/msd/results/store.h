// The results store: one SQLite file holding experiments, runs, params, metrics, tags and artifacts.
// Every SQL statement of the project lives in results/. Safe for many processes writing one file:
// WAL mode, a busy timeout, short transactions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace msd::results {

/// Life cycle of a run.
enum class RunStatus { running, finished, failed, interrupted };
const char* to_string(RunStatus status);
std::optional<RunStatus> run_status_from_string(const std::string& text);

/// What is known about a run when it starts.
struct NewRun {
  std::string experiment;     ///< experiment name (created on first use)
  std::string name;           ///< run (variant) name inside the experiment
  std::string config_text;    ///< the full resolved config, TOML
  std::string config_hash;    ///< hash of config_text
  std::int64_t seed = 0;
  std::string git_commit;     ///< empty when unknown
  bool git_dirty = false;
  std::string host;           ///< hostname
  std::string device;         ///< "cpu", "cuda:0"
  std::string sweep_id;       ///< empty when not part of a sweep
  std::int64_t sweep_index = -1;
  std::vector<std::pair<std::string, std::string>> params;  ///< flattened config: dotted key -> TOML value text
  std::vector<std::pair<std::string, std::string>> coords;  ///< sweep coordinates: key -> TOML value text
};

/// A row of the runs table.
struct RunRecord {
  std::int64_t id = 0;
  std::string experiment;
  std::string name;
  std::string config_text;
  std::string config_hash;
  std::int64_t seed = 0;
  std::string git_commit;
  bool git_dirty = false;
  std::string host;
  std::string device;
  std::int64_t pid = 0;
  std::string started_at;     ///< ISO 8601 UTC
  std::string ended_at;       ///< empty while running
  RunStatus status = RunStatus::running;
  std::string error;          ///< failure message, empty otherwise
  std::string sweep_id;
  std::int64_t sweep_index = -1;
  std::string uuid;           ///< names the run in every database it is merged into
  std::int64_t attempts = 1;  ///< how often the run was started or resumed
};

/// What claim_run decided.
struct RunClaim {
  enum class Outcome {
    started,   ///< a new run was inserted: run it
    resumed,   ///< an interrupted run was taken over: resume it from its checkpoint
    finished,  ///< a run of this config already finished: nothing to do
    running    ///< a live process is running this config: nothing to do
  };
  Outcome outcome = Outcome::started;
  std::int64_t run_id = 0;  ///< the run started, resumed, finished or running
};

/// One metric value. Non-finite values (NaN, +inf, -inf) are stored and read back as such.
struct MetricRow {
  std::string name;
  std::int64_t step = 0;   ///< training step, or 0 for a final evaluation
  double value = 0.0;
  std::string scope;       ///< "" = whole model; "student:2", "class:3", "teacher", ...
};

struct Artifact {
  std::string kind;        ///< "checkpoint", "samples", ...
  std::string path;        ///< absolute; stored relative to the database's folder when inside it
};

/// A plugin a run used: recorded so that a result can be traced to the code that made it.
struct RunPlugin {
  std::string kind;     ///< "dataset", "teacher", "student", "partition", "loss", "metric"
  std::string name;     ///< as in the experiment file
  std::string version;  ///< the plugin's own (PluginInfo::version)
  std::string library;  ///< the shared library it was loaded from, absolute
};

/// One cell of a query result.
struct QueryValue {
  enum class Type { null, integer, real, text, blob };
  Type type = Type::null;
  /// The value as text: "" for null, integers in full, reals with 17 significant digits (enough to
  /// read back the same double; "inf", "-inf" for infinities), text as stored, blobs as "<blob N bytes>".
  std::string text;
  double real = 0.0;  ///< the value for integer and real cells
};

/// The result of Store::query: column names and rows.
struct QueryResult {
  std::vector<std::string> columns;
  std::vector<std::vector<QueryValue>> rows;
  bool truncated = false;  ///< QueryLimits::max_rows was reached: more rows were left unread
};

/// What one Store::query may take. A query past max_bytes or max_seconds is stopped with an error
/// (an endless recursive CTE, say); one past max_rows returns the rows so far, marked truncated.
struct QueryLimits {
  std::size_t max_rows = 0;                    ///< 0: every row
  std::size_t max_bytes = std::size_t{1} << 30;  ///< memory held by SQLite and by the rows read
  double max_seconds = 0.0;                    ///< 0: no time limit
};

class Store {
 public:
  /// The schema version this build writes.
  static int current_schema_version();

  enum class Mode { read_write, read_only };
  /// Opens (creating and migrating in read_write mode) the database at `path`. In read_write mode,
  /// runs left `running` by a process that no longer exists are marked `interrupted`.
  /// Throws std::runtime_error naming the file on failure, or when the file's schema is newer than
  /// this build knows.
  explicit Store(const std::string& path, Mode mode = Mode::read_write);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const;
  int schema_version() const;

  // --- writing -------------------------------------------------------------------------------
  /// Inserts the run (status running, this process's pid, now as start) with its params. Returns its id.
  std::int64_t begin_run(const NewRun& run);
  /// Decides atomically, among processes sharing this file, who runs `run.config_hash`; only runs with
  /// an id above `after_id` count (--force passes the largest id at its start). A finished or live
  /// running run means there is nothing to do; else the latest interrupted run is taken over (running
  /// again under this process, attempts + 1); else a new run begins as begin_run would.
  RunClaim claim_run(const NewRun& run, std::int64_t after_id = 0);
  /// Records that the run is still alive (a run whose heartbeat is old may be marked interrupted).
  void heartbeat(std::int64_t run_id);
  /// Appends metric rows in one transaction. A row with the same (run, name, step, scope) replaces the old one.
  void log_metrics(std::int64_t run_id, const std::vector<MetricRow>& rows);
  /// Records an artifact; recording the same (kind, path) of a run again does nothing.
  void add_artifact(std::int64_t run_id, const Artifact& artifact);
  void set_tag(std::int64_t run_id, const std::string& key, const std::string& value);
  /// Records the plugins the run uses, replacing what an earlier attempt recorded.
  void set_plugins(std::int64_t run_id, const std::vector<RunPlugin>& plugins);
  /// Sets the final status, end time and error message.
  void finish_run(std::int64_t run_id, RunStatus status, const std::string& error = "");
  /// Marks runs left `running` by dead processes as interrupted; returns how many.
  int mark_stale_runs();

  // --- reading -------------------------------------------------------------------------------
  std::vector<RunRecord> list_runs(const std::string& experiment = "") const;
  std::optional<RunRecord> find_run(std::int64_t run_id) const;
  /// (config hash, status) of every run of sweep `sweep_id` with an id above `after_id`, in id order.
  std::vector<std::pair<std::string, RunStatus>> sweep_statuses(const std::string& sweep_id,
                                                                std::int64_t after_id) const;
  /// The largest run id, 0 for a database without runs.
  std::int64_t last_run_id() const;
  /// Every run whose config hash is `config_hash`, whatever its status, ordered by id.
  std::vector<RunRecord> runs_with_hash(const std::string& config_hash) const;
  std::vector<std::pair<std::string, std::string>> params(std::int64_t run_id) const;
  /// The run's sweep coordinates (NewRun::coords), ordered by key.
  std::vector<std::pair<std::string, std::string>> coords(std::int64_t run_id) const;
  std::vector<std::pair<std::string, std::string>> tags(std::int64_t run_id) const;
  /// Every metric row of the run, ordered by scope, name, step.
  std::vector<MetricRow> metrics(std::int64_t run_id) const;
  /// For each (name, scope), the row with the highest step.
  std::vector<MetricRow> final_metrics(std::int64_t run_id) const;
  std::vector<Artifact> artifacts(std::int64_t run_id) const;
  /// The plugins the run used, ordered by kind and name.
  std::vector<RunPlugin> plugins(std::int64_t run_id) const;

  /// Runs one statement that does not write (SELECT, WITH ..., read-only PRAGMAs) with `params`
  /// bound to ?1, ?2, ... as text, and returns every row. A statement that would write throws
  /// std::runtime_error (saying the database is opened read-only when it is); so does SQL with
  /// more than one statement, or any SQLite error.
  QueryResult query(const std::string& sql, const std::vector<std::string>& params = {},
                    const QueryLimits& limits = {}) const;

 private:
  struct Impl;
  Impl* impl_;
};

}  // namespace msd::results
