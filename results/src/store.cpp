#include "msd/results/store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cctype>
#include <memory>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <thread>

#include "database_file.h"
#include "iso_time.h"

namespace msd::results {

namespace {

// ---- schema ------------------------------------------------------------------------------------
// migrations[i] takes a file from user_version i to i + 1. Append only: a released migration is
// never edited, because files in the wild already carry its result.
const std::vector<const char*>& migrations() {
  static const std::vector<const char*> list = {
      // 1: the initial schema. Absent optional values are NULL (not '') so that sqlite3 users can
      // write `WHERE ended_at IS NULL`.
      R"sql(
CREATE TABLE experiments (
  id         INTEGER PRIMARY KEY,
  name       TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL
);

CREATE TABLE runs (
  id            INTEGER PRIMARY KEY,
  experiment_id INTEGER NOT NULL REFERENCES experiments(id),
  name          TEXT NOT NULL,
  status        TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
  config_text   TEXT NOT NULL,
  config_hash   TEXT NOT NULL,
  seed          INTEGER NOT NULL,
  git_commit    TEXT,                -- NULL when unknown
  git_dirty     INTEGER NOT NULL CHECK (git_dirty IN (0, 1)),
  host          TEXT NOT NULL,
  device        TEXT NOT NULL,
  pid           INTEGER NOT NULL,
  started_at    TEXT NOT NULL,       -- ISO 8601 UTC, like every time in this file
  ended_at      TEXT,                -- NULL while running
  heartbeat_at  TEXT NOT NULL,
  error         TEXT,                -- NULL unless failed or interrupted
  sweep_id      TEXT,                -- NULL when not part of a sweep
  sweep_index   INTEGER
);
CREATE INDEX runs_by_experiment ON runs(experiment_id);
CREATE INDEX runs_by_status ON runs(status);
CREATE INDEX runs_by_sweep ON runs(sweep_id, sweep_index);
CREATE INDEX runs_by_config_hash ON runs(config_hash);

CREATE TABLE params (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  TEXT NOT NULL,                -- TOML value text
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE sweep_coords (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  TEXT NOT NULL,                -- TOML value text
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE tags (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  key    TEXT NOT NULL,
  value  TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

-- SQLite stores a bound NaN as NULL, so a non-finite value lives in non_finite and value is NULL.
-- The unique key starts with scope so that it also serves "ORDER BY scope, name, step".
CREATE TABLE metrics (
  id         INTEGER PRIMARY KEY,
  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  scope      TEXT NOT NULL DEFAULT '', -- '' = whole model; 'student:2', 'class:3', ...
  name       TEXT NOT NULL,
  step       INTEGER NOT NULL,
  value      REAL,
  non_finite TEXT CHECK (non_finite IN ('nan', 'inf', '-inf')),
  CHECK ((value IS NULL) = (non_finite IS NOT NULL)),
  UNIQUE (run_id, scope, name, step)
);

CREATE TABLE artifacts (
  id         INTEGER PRIMARY KEY,
  run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  kind       TEXT NOT NULL,
  path       TEXT NOT NULL,            -- absolute, or relative to this file's folder
  created_at TEXT NOT NULL
);
CREATE INDEX artifacts_by_run ON artifacts(run_id);

-- For people at the sqlite3 prompt: metrics with their run and experiment, infinities restored
-- (9e999 overflows to Inf). NaN stays NULL; non_finite says which.
CREATE VIEW metric_values AS
SELECT m.run_id,
       e.name AS experiment,
       r.name AS run,
       r.status,
       m.scope,
       m.name,
       m.step,
       CASE m.non_finite WHEN 'inf' THEN 9e999 WHEN '-inf' THEN -9e999 ELSE m.value END AS value,
       m.non_finite
FROM metrics m
JOIN runs r ON r.id = m.run_id
JOIN experiments e ON e.id = r.experiment_id;
)sql",
      // 2: resumable runs and mergeable shards. uuid names a run across databases (results merge);
      // attempts counts how often a run was started or resumed; an artifact is recorded once per run,
      // however often a resumed run records it again.
      R"sql(
ALTER TABLE runs ADD COLUMN uuid TEXT;
UPDATE runs SET uuid = lower(hex(randomblob(16))) WHERE uuid IS NULL;
CREATE UNIQUE INDEX runs_by_uuid ON runs(uuid);
ALTER TABLE runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
DELETE FROM artifacts WHERE id NOT IN (SELECT min(id) FROM artifacts GROUP BY run_id, kind, path);
CREATE UNIQUE INDEX artifacts_once ON artifacts(run_id, kind, path);
)sql",
      // 3: msd's mark on its files (so that another application's SQLite file is never taken for one),
      // and artifact paths relative to the database's folder (Store::Impl::relativize_artifacts), so
      // that a results folder can be moved or copied whole.
      R"sql(
PRAGMA application_id = 1836278892; -- detail::kApplicationId, "msdl"
)sql",
      // 4: the name, version and library of every plugin a run uses.
      R"sql(
CREATE TABLE run_plugins (
  run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  kind    TEXT NOT NULL,
  name    TEXT NOT NULL,
  version TEXT NOT NULL,
  library TEXT NOT NULL,
  PRIMARY KEY (run_id, kind, name)
) WITHOUT ROWID;
)sql",
  };
  return list;
}

constexpr int kRelativeArtifactsVersion = 3;

// ---- small helpers -----------------------------------------------------------------------------
// Longest time a write keeps retrying on SQLITE_BUSY / SQLITE_LOCKED. busy_timeout makes SQLite
// wait by itself in most cases, but some (WAL recovery, a change of journal mode, a snapshot that
// went stale) return BUSY at once.
constexpr auto kRetryFor = std::chrono::seconds(60);
constexpr int kBusyTimeoutMs = 30000;
// A run on another machine is presumed dead when it has not sent a heartbeat for this long.
constexpr std::time_t kHeartbeatStaleSeconds = 24 * 60 * 60;

std::string this_host() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

bool process_alive(std::int64_t pid) {
  // pid 0 and negative pids address process groups in kill(); they never name a run's process.
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  // EPERM means the process exists but belongs to someone else.
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  // A killed process whose parent died too stays a zombie until an init that reaps it does (some
  // containers' init never does): it exists for kill() but runs nothing.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (std::getline(stat, line)) {
    const std::size_t end_of_name = line.rfind(')');
    if (end_of_name != std::string::npos && end_of_name + 2 < line.size() && line[end_of_name + 2] == 'Z') {
      return false;
    }
  }
  return true;
}

std::string text(const SQLite::Column& column) {
  return column.isNull() ? std::string() : column.getString();
}

void bind_text_or_null(SQLite::Statement& statement, int index, const std::string& value) {
  if (value.empty()) {
    statement.bind(index);
  } else {
    statement.bind(index, value);
  }
}

// Reads value and non_finite columns back into a double.
double metric_value(const SQLite::Column& value, const SQLite::Column& non_finite) {
  if (non_finite.isNull()) return value.getDouble();
  const std::string kind = non_finite.getString();
  if (kind == "inf") return std::numeric_limits<double>::infinity();
  if (kind == "-inf") return -std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();
}

const char* non_finite_kind(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return nullptr;
}

RunStatus status_column(const SQLite::Column& column, const std::string& path) {
  const std::string value = column.getString();
  const auto status = run_status_from_string(value);
  if (!status) throw std::runtime_error(path + ": unknown run status '" + value + "'");
  return *status;
}

constexpr const char* kRunColumns =
    "r.id, e.name, r.name, r.config_text, r.config_hash, r.seed, r.git_commit, r.git_dirty, "
    "r.host, r.device, r.pid, r.started_at, r.ended_at, r.status, r.error, r.sweep_id, "
    "r.sweep_index, r.uuid, r.attempts FROM runs r JOIN experiments e ON e.id = r.experiment_id";

RunRecord read_run(SQLite::Statement& query, const std::string& path) {
  RunRecord run;
  run.id = query.getColumn(0).getInt64();
  run.experiment = text(query.getColumn(1));
  run.name = text(query.getColumn(2));
  run.config_text = text(query.getColumn(3));
  run.config_hash = text(query.getColumn(4));
  run.seed = query.getColumn(5).getInt64();
  run.git_commit = text(query.getColumn(6));
  run.git_dirty = query.getColumn(7).getInt() != 0;
  run.host = text(query.getColumn(8));
  run.device = text(query.getColumn(9));
  run.pid = query.getColumn(10).getInt64();
  run.started_at = text(query.getColumn(11));
  run.ended_at = text(query.getColumn(12));
  run.status = status_column(query.getColumn(13), path);
  run.error = text(query.getColumn(14));
  run.sweep_id = text(query.getColumn(15));
  run.sweep_index = query.getColumn(16).isNull() ? -1 : query.getColumn(16).getInt64();
  run.uuid = text(query.getColumn(17));
  run.attempts = query.getColumn(18).getInt64();
  return run;
}

}  // namespace

// ---- RunStatus ---------------------------------------------------------------------------------
const char* to_string(RunStatus status) {
  switch (status) {
    case RunStatus::running: return "running";
    case RunStatus::finished: return "finished";
    case RunStatus::failed: return "failed";
    case RunStatus::interrupted: return "interrupted";
  }
  return "unknown";
}

std::optional<RunStatus> run_status_from_string(const std::string& text) {
  for (RunStatus status : {RunStatus::running, RunStatus::finished, RunStatus::failed,
                           RunStatus::interrupted}) {
    if (text == to_string(status)) return status;
  }
  return std::nullopt;
}

// ---- Store::Impl -------------------------------------------------------------------------------
struct Store::Impl {
  Impl(const std::string& path, Mode mode);

  /// Runs `body`, retrying with backoff while the database is busy or locked. Any SQLite error is
  /// rethrown as std::runtime_error naming the file and `action`.
  void with_retry(const char* action, const std::function<void()>& body);
  /// Runs `body` inside BEGIN IMMEDIATE ... COMMIT, retried as a whole. IMMEDIATE takes the write
  /// lock up front: a deferred transaction that upgrades from read to write can fail with BUSY
  /// without waiting, and that BUSY cannot be retried inside the same transaction.
  void write(const char* action, const std::function<void()>& body);

  int read_version();
  /// Refuses an existing SQLite file that is not msd's (detail::check_database_identity).
  void require_msd_database();
  void migrate();
  /// Migration 3's second half: artifact paths under the database's folder become relative to it.
  void relativize_artifacts();
  std::vector<std::pair<std::string, std::string>> key_values(const char* sql, const char* action,
                                                              std::int64_t run_id);
  void require_run_changed(std::int64_t run_id);
  /// Inserts a new running run (and its experiment, params, coords); call inside write().
  std::int64_t insert_run(const NewRun& run);
  /// 32 hex digits from the OS's random source.
  std::string random_uuid();

  std::string path;
  Mode mode;
  std::filesystem::path folder;  ///< the database's folder: relative artifact paths start here
  std::string host = this_host();
  SQLite::Database db;
  int version = 0;
  std::minstd_rand jitter{static_cast<unsigned>(getpid())};
};

namespace {

int open_flags(Store::Mode mode) {
  return mode == Store::Mode::read_only ? SQLite::OPEN_READONLY : SQLite::OPEN_READWRITE;
}

/// Makes a new database at `path` whole or not at all: it is built under a temporary name (in WAL
/// mode, every migration applied) and linked into place. A process opening `path` meanwhile sees no
/// file or a complete one, never a file without msd's schema, which it would rightly refuse. When
/// another process links its file first, that one is used.
void create_database(const std::string& path) {
  const std::string building = path + ".new-" + std::to_string(getpid());
  try {
    SQLite::Database db(building, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE, kBusyTimeoutMs);
    db.exec("PRAGMA journal_mode = WAL");
    SQLite::Transaction transaction(db);
    for (const char* migration : migrations()) db.exec(migration);
    db.exec("PRAGMA user_version = " + std::to_string(migrations().size()));
    transaction.commit();
  } catch (const SQLite::Exception& error) {
    std::remove(building.c_str());
    throw std::runtime_error("cannot create results database " + path + ": " + error.what());
  }
  const int linked = link(building.c_str(), path.c_str()) == 0 ? 0 : errno;
  std::remove(building.c_str());
  if (linked != 0 && linked != EEXIST) {
    throw std::runtime_error("cannot create results database " + path + ": " + std::strerror(linked));
  }
}

SQLite::Database open_database(const std::string& path, Store::Mode mode) {
  const bool writing = mode == Store::Mode::read_write;
  if (!detail::inspect_database_file(path, writing) && writing) create_database(path);
  try {
    return SQLite::Database(path, open_flags(mode), kBusyTimeoutMs);
  } catch (const SQLite::Exception& error) {
    throw std::runtime_error("cannot open results database " + path + ": " + error.what());
  }
}

std::runtime_error version_error(const std::string& path, int version, const char* relation,
                                 const char* advice) {
  return std::runtime_error(path + " has results schema version " + std::to_string(version) +
                            ", " + relation + " version " +
                            std::to_string(Store::current_schema_version()) +
                            " that this build knows; " + advice);
}

}  // namespace

Store::Impl::Impl(const std::string& path_, Mode mode_)
    : path(path_),
      mode(mode_),
      folder(std::filesystem::absolute(path_).lexically_normal().parent_path()),
      db(open_database(path_, mode_)) {
  require_msd_database();
  // Sorts and temporary tables stay in memory, where query()'s guard sees them, not in /var/tmp.
  with_retry("configuring the connection", [&] { db.exec("PRAGMA temp_store = MEMORY"); });
  if (mode == Mode::read_only) {
    with_retry("reading the schema version", [&] { version = read_version(); });
    if (version > current_schema_version()) {
      throw version_error(path, version, "newer than", "use a newer build");
    }
    if (version < current_schema_version()) {
      throw version_error(path, version, "older than",
                          "open it read-write once to migrate it");
    }
    return;
  }
  with_retry("configuring the connection", [&] {
    // WAL lets readers proceed while one process writes; NORMAL sync is durable across process
    // crashes (only a power loss can drop the last commits), which is what a results log needs.
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA foreign_keys = ON");
  });
  migrate();
}

void Store::Impl::with_retry(const char* action, const std::function<void()>& body) {
  const auto deadline = std::chrono::steady_clock::now() + kRetryFor;
  auto delay = std::chrono::microseconds(1000);
  for (;;) {
    try {
      body();
      return;
    } catch (const SQLite::Exception& error) {
      const int code = error.getErrorCode() & 0xff;
      const bool busy = code == SQLITE_BUSY || code == SQLITE_LOCKED;
      if (!busy || std::chrono::steady_clock::now() >= deadline) {
        throw std::runtime_error(path + ": error while " + action + ": " + error.what());
      }
    }
    // Random jitter keeps processes that collided from colliding again in lockstep.
    std::uniform_int_distribution<long> spread(delay.count() / 2, delay.count());
    std::this_thread::sleep_for(std::chrono::microseconds(spread(jitter)));
    delay = std::min(delay * 2, std::chrono::microseconds(200000));
  }
}

void Store::Impl::write(const char* action, const std::function<void()>& body) {
  if (mode == Mode::read_only) {
    throw std::logic_error(path + " is open read-only; cannot perform " + action);
  }
  with_retry(action, [&] {
    db.exec("BEGIN IMMEDIATE");
    try {
      body();
      db.exec("COMMIT");
    } catch (...) {
      // A failed COMMIT (BUSY) leaves the transaction open; roll back so the retry starts clean.
      if (sqlite3_get_autocommit(db.getHandle()) == 0) {
        try {
          db.exec("ROLLBACK");
        } catch (const SQLite::Exception&) {
          // The original error is the one worth reporting.
        }
      }
      throw;
    }
  });
}

std::string Store::Impl::random_uuid() {
  std::random_device source;
  static const char* digits = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 4; ++i) {
    std::uint32_t word = source();
    for (int j = 0; j < 8; ++j, word >>= 4) id += digits[word & 0xf];
  }
  return id;
}

int Store::Impl::read_version() { return db.execAndGet("PRAGMA user_version").getInt(); }

void Store::Impl::require_msd_database() {
  std::int32_t application_id = 0;
  std::vector<std::string> tables;
  with_retry("reading what the file holds", [&] {
    application_id = db.execAndGet("PRAGMA application_id").getInt();
    version = read_version();
    tables.clear();
    SQLite::Statement query(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    while (query.executeStep()) tables.push_back(query.getColumn(0).getString());
  });
  detail::check_database_identity(path, application_id, version, tables);
}

void Store::Impl::migrate() {
  with_retry("reading the schema version", [&] { version = read_version(); });
  while (version < current_schema_version()) {
    write("migrating the schema", [&] {
      // Another process may have migrated since we looked; the version read under the write
      // lock is the one that counts.
      version = read_version();
      if (version >= current_schema_version()) return;
      db.exec(migrations()[static_cast<std::size_t>(version)]);
      if (version + 1 == kRelativeArtifactsVersion) relativize_artifacts();
      db.exec("PRAGMA user_version = " + std::to_string(version + 1));
      ++version;
    });
  }
  if (version > current_schema_version()) {
    throw version_error(path, version, "newer than", "use a newer build");
  }
}

void Store::Impl::relativize_artifacts() {
  std::vector<std::pair<std::int64_t, std::string>> moved;
  SQLite::Statement query(db, "SELECT id, path FROM artifacts");
  while (query.executeStep()) {
    const std::string stored = query.getColumn(1).getString();
    const std::string relative = detail::stored_artifact_path(folder, stored);
    if (relative != stored) moved.emplace_back(query.getColumn(0).getInt64(), relative);
  }
  SQLite::Statement update(db, "UPDATE artifacts SET path = ? WHERE id = ?");
  for (const auto& [id, relative] : moved) {
    update.bind(1, relative);
    update.bind(2, id);
    update.exec();
    update.reset();
  }
}

std::vector<std::pair<std::string, std::string>> Store::Impl::key_values(const char* sql,
                                                                         const char* action,
                                                                         std::int64_t run_id) {
  std::vector<std::pair<std::string, std::string>> result;
  with_retry(action, [&] {
    result.clear();
    SQLite::Statement query(db, sql);
    query.bind(1, run_id);
    while (query.executeStep()) {
      result.emplace_back(text(query.getColumn(0)), text(query.getColumn(1)));
    }
  });
  return result;
}

void Store::Impl::require_run_changed(std::int64_t run_id) {
  if (db.getChanges() == 0) {
    throw std::runtime_error("no run with id " + std::to_string(run_id) + " in " + path);
  }
}

// ---- Store -------------------------------------------------------------------------------------
int Store::current_schema_version() { return static_cast<int>(migrations().size()); }

Store::Store(const std::string& path, Mode mode) : impl_(new Impl(path, mode)) {
  if (mode == Mode::read_write) {
    try {
      mark_stale_runs();
    } catch (...) {
      delete impl_;
      throw;
    }
  }
}

Store::~Store() { delete impl_; }

const std::string& Store::path() const { return impl_->path; }

int Store::schema_version() const { return impl_->version; }

std::int64_t Store::begin_run(const NewRun& run) {
  if (run.experiment.empty()) {
    throw std::invalid_argument(impl_->path + ": a run needs an experiment name");
  }
  std::int64_t run_id = 0;
  impl_->write("starting a run", [&] { run_id = impl_->insert_run(run); });
  return run_id;
}

RunClaim Store::claim_run(const NewRun& run, std::int64_t after_id) {
  if (run.experiment.empty()) {
    throw std::invalid_argument(impl_->path + ": a run needs an experiment name");
  }
  // Runs of processes that died since this store was opened must not look taken.
  mark_stale_runs();
  RunClaim claim;
  impl_->write("claiming a run", [&] {
    SQLite::Database& db = impl_->db;
    // Under the write lock, so two workers never both decide to run the same config.
    SQLite::Statement previous(db,
                               "SELECT id, status FROM runs WHERE config_hash = ? AND id > ? "
                               "AND status IN ('finished', 'running', 'interrupted') ORDER BY id DESC");
    previous.bind(1, run.config_hash);
    previous.bind(2, after_id);
    std::int64_t interrupted = 0;
    while (previous.executeStep()) {
      const std::string status = previous.getColumn(1).getString();
      if (status == "interrupted") {
        if (interrupted == 0) interrupted = previous.getColumn(0).getInt64();
        continue;
      }
      claim = {status == "finished" ? RunClaim::Outcome::finished : RunClaim::Outcome::running,
               previous.getColumn(0).getInt64()};
      return;
    }
    if (interrupted != 0) {
      // The build that resumes it is the one that finishes it: its commit replaces the first attempt's.
      SQLite::Statement resume(db,
                               "UPDATE runs SET status = 'running', pid = ?, host = ?, device = ?, "
                               "heartbeat_at = ?, ended_at = NULL, error = NULL, attempts = attempts + 1, "
                               "git_commit = ?, git_dirty = ? WHERE id = ?");
      resume.bind(1, static_cast<std::int64_t>(getpid()));
      resume.bind(2, run.host.empty() ? impl_->host : run.host);
      resume.bind(3, run.device);
      resume.bind(4, detail::now_iso_utc());
      bind_text_or_null(resume, 5, run.git_commit);
      resume.bind(6, run.git_dirty ? 1 : 0);
      resume.bind(7, interrupted);
      resume.exec();
      claim = {RunClaim::Outcome::resumed, interrupted};
      return;
    }
    claim = {RunClaim::Outcome::started, impl_->insert_run(run)};
  });
  return claim;
}

std::int64_t Store::Impl::insert_run(const NewRun& run) {
  std::int64_t run_id = 0;
  const std::string now = detail::now_iso_utc();

  SQLite::Statement add_experiment(
      db, "INSERT INTO experiments (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING");
  add_experiment.bind(1, run.experiment);
  add_experiment.bind(2, now);
  add_experiment.exec();

  SQLite::Statement find_experiment(db, "SELECT id FROM experiments WHERE name = ?");
  find_experiment.bind(1, run.experiment);
  find_experiment.executeStep();
  const std::int64_t experiment_id = find_experiment.getColumn(0).getInt64();

  SQLite::Statement insert(
      db,
      "INSERT INTO runs (experiment_id, name, status, config_text, config_hash, seed, git_commit, "
      "git_dirty, host, device, pid, started_at, heartbeat_at, sweep_id, sweep_index, uuid) "
      "VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  insert.bind(1, experiment_id);
  insert.bind(2, run.name);
  insert.bind(3, run.config_text);
  insert.bind(4, run.config_hash);
  insert.bind(5, run.seed);
  bind_text_or_null(insert, 6, run.git_commit);
  insert.bind(7, run.git_dirty ? 1 : 0);
  // mark_stale_runs compares this with gethostname(), so an unset host means this machine.
  insert.bind(8, run.host.empty() ? host : run.host);
  insert.bind(9, run.device);
  insert.bind(10, static_cast<std::int64_t>(getpid()));
  insert.bind(11, now);
  insert.bind(12, now);
  bind_text_or_null(insert, 13, run.sweep_id);
  if (run.sweep_id.empty()) {
    insert.bind(14);
  } else {
    insert.bind(14, run.sweep_index);
  }
  bind_text_or_null(insert, 15, random_uuid());
  insert.exec();
  run_id = db.getLastInsertRowid();

  SQLite::Statement add_param(db, "INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)");
  for (const auto& [key, value] : run.params) {
    add_param.bind(1, run_id);
    add_param.bind(2, key);
    add_param.bind(3, value);
    add_param.exec();
    add_param.reset();
  }
  SQLite::Statement add_coord(db,
                              "INSERT INTO sweep_coords (run_id, key, value) VALUES (?, ?, ?)");
  for (const auto& [key, value] : run.coords) {
    add_coord.bind(1, run_id);
    add_coord.bind(2, key);
    add_coord.bind(3, value);
    add_coord.exec();
    add_coord.reset();
  }
  return run_id;
}

void Store::heartbeat(std::int64_t run_id) {
  impl_->write("recording a heartbeat", [&] {
    SQLite::Statement update(impl_->db, "UPDATE runs SET heartbeat_at = ? WHERE id = ?");
    update.bind(1, detail::now_iso_utc());
    update.bind(2, run_id);
    update.exec();
    impl_->require_run_changed(run_id);
  });
}

void Store::log_metrics(std::int64_t run_id, const std::vector<MetricRow>& rows) {
  if (rows.empty()) return;
  impl_->write("logging metrics", [&] {
    SQLite::Statement upsert(
        impl_->db,
        "INSERT INTO metrics (run_id, scope, name, step, value, non_finite) "
        "VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (run_id, scope, name, step) "
        "DO UPDATE SET value = excluded.value, non_finite = excluded.non_finite");
    for (const MetricRow& row : rows) {
      upsert.bind(1, run_id);
      upsert.bind(2, row.scope);
      upsert.bind(3, row.name);
      upsert.bind(4, row.step);
      if (const char* kind = non_finite_kind(row.value)) {
        upsert.bind(5);
        upsert.bind(6, kind);
      } else {
        upsert.bind(5, row.value);
        upsert.bind(6);
      }
      upsert.exec();
      upsert.reset();
    }
  });
}

void Store::add_artifact(std::int64_t run_id, const Artifact& artifact) {
  impl_->write("adding an artifact", [&] {
    SQLite::Statement insert(impl_->db,
                             "INSERT INTO artifacts (run_id, kind, path, created_at) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (run_id, kind, path) DO NOTHING");
    insert.bind(1, run_id);
    insert.bind(2, artifact.kind);
    insert.bind(3, detail::stored_artifact_path(impl_->folder, artifact.path));
    insert.bind(4, detail::now_iso_utc());
    insert.exec();
  });
}

void Store::set_tag(std::int64_t run_id, const std::string& key, const std::string& value) {
  impl_->write("setting a tag", [&] {
    SQLite::Statement upsert(impl_->db,
                             "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?) "
                             "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value");
    upsert.bind(1, run_id);
    upsert.bind(2, key);
    upsert.bind(3, value);
    upsert.exec();
  });
}

void Store::set_plugins(std::int64_t run_id, const std::vector<RunPlugin>& plugins) {
  impl_->write("recording a run's plugins", [&] {
    SQLite::Statement clear(impl_->db, "DELETE FROM run_plugins WHERE run_id = ?");
    clear.bind(1, run_id);
    clear.exec();
    SQLite::Statement insert(impl_->db,
                             "INSERT OR REPLACE INTO run_plugins (run_id, kind, name, version, library) "
                             "VALUES (?, ?, ?, ?, ?)");
    for (const RunPlugin& plugin : plugins) {
      insert.bind(1, run_id);
      insert.bind(2, plugin.kind);
      insert.bind(3, plugin.name);
      insert.bind(4, plugin.version);
      insert.bind(5, plugin.library);
      insert.exec();
      insert.reset();
    }
  });
}

void Store::finish_run(std::int64_t run_id, RunStatus status, const std::string& error) {
  if (status == RunStatus::running) {
    throw std::invalid_argument(impl_->path + ": finish_run needs a final status, not running");
  }
  impl_->write("finishing a run", [&] {
    const std::string now = detail::now_iso_utc();
    SQLite::Statement update(
        impl_->db,
        "UPDATE runs SET status = ?, ended_at = ?, heartbeat_at = ?, error = ? WHERE id = ?");
    update.bind(1, to_string(status));
    update.bind(2, now);
    update.bind(3, now);
    bind_text_or_null(update, 4, error);
    update.bind(5, run_id);
    update.exec();
    impl_->require_run_changed(run_id);
  });
}

int Store::mark_stale_runs() {
  struct Stale {
    std::int64_t id;
    std::int64_t pid;
    std::string error;
  };
  std::vector<Stale> stale;
  const std::string heartbeat_cutoff =
      detail::iso_utc(std::time(nullptr) - kHeartbeatStaleSeconds);
  impl_->with_retry("looking for stale runs", [&] {
    stale.clear();
    SQLite::Statement query(impl_->db,
                            "SELECT id, host, pid, heartbeat_at FROM runs WHERE status = 'running'");
    while (query.executeStep()) {
      const std::int64_t id = query.getColumn(0).getInt64();
      const std::string host = text(query.getColumn(1));
      const std::int64_t pid = query.getColumn(2).getInt64();
      const std::string heartbeat = text(query.getColumn(3));
      const std::string process = "process " + std::to_string(pid) + " on " + host;
      if (host == impl_->host) {
        if (!process_alive(pid)) {
          stale.push_back({id, pid, process + " ended without finishing the run"});
        }
      } else if (heartbeat < heartbeat_cutoff) {
        // Another machine's processes cannot be probed; silence for a day is the evidence.
        stale.push_back({id, pid, process + " sent no heartbeat since " + heartbeat});
      }
    }
  });
  // The common case writes nothing, so opening a store takes no write lock.
  if (stale.empty()) return 0;

  int marked = 0;
  impl_->write("marking stale runs", [&] {
    marked = 0;
    const std::string now = detail::now_iso_utc();
    // `status = 'running' AND pid = ?` re-checks under the write lock: the run may have finished
    // since we looked.
    SQLite::Statement update(impl_->db,
                             "UPDATE runs SET status = 'interrupted', ended_at = ?, error = ? "
                             "WHERE id = ? AND status = 'running' AND pid = ?");
    for (const Stale& run : stale) {
      update.bind(1, now);
      update.bind(2, run.error);
      update.bind(3, run.id);
      update.bind(4, run.pid);
      marked += update.exec();
      update.reset();
    }
  });
  return marked;
}

std::vector<RunRecord> Store::list_runs(const std::string& experiment) const {
  std::vector<RunRecord> runs;
  impl_->with_retry("listing runs", [&] {
    runs.clear();
    SQLite::Statement query(impl_->db, std::string("SELECT ") + kRunColumns +
                                           " WHERE ?1 = '' OR e.name = ?1 ORDER BY r.id");
    query.bind(1, experiment);
    while (query.executeStep()) runs.push_back(read_run(query, impl_->path));
  });
  return runs;
}

std::optional<RunRecord> Store::find_run(std::int64_t run_id) const {
  std::optional<RunRecord> run;
  impl_->with_retry("reading a run", [&] {
    run.reset();
    SQLite::Statement query(impl_->db, std::string("SELECT ") + kRunColumns + " WHERE r.id = ?");
    query.bind(1, run_id);
    if (query.executeStep()) run = read_run(query, impl_->path);
  });
  return run;
}

std::vector<std::pair<std::string, RunStatus>> Store::sweep_statuses(const std::string& sweep_id,
                                                                     std::int64_t after_id) const {
  std::vector<std::pair<std::string, RunStatus>> statuses;
  impl_->with_retry("reading a sweep's runs", [&] {
    statuses.clear();
    SQLite::Statement query(impl_->db,
                            "SELECT config_hash, status FROM runs WHERE sweep_id = ? AND id > ? ORDER BY id");
    query.bind(1, sweep_id);
    query.bind(2, after_id);
    while (query.executeStep()) {
      statuses.emplace_back(query.getColumn(0).getString(), status_column(query.getColumn(1), impl_->path));
    }
  });
  return statuses;
}

std::int64_t Store::last_run_id() const {
  std::int64_t id = 0;
  impl_->with_retry("reading the last run id", [&] {
    id = impl_->db.execAndGet("SELECT coalesce(max(id), 0) FROM runs").getInt64();
  });
  return id;
}

std::vector<RunRecord> Store::runs_with_hash(const std::string& config_hash) const {
  std::vector<RunRecord> runs;
  impl_->with_retry("finding runs by config hash", [&] {
    runs.clear();
    SQLite::Statement query(impl_->db, std::string("SELECT ") + kRunColumns + " WHERE r.config_hash = ? ORDER BY r.id");
    query.bind(1, config_hash);
    while (query.executeStep()) runs.push_back(read_run(query, impl_->path));
  });
  return runs;
}

std::vector<std::pair<std::string, std::string>> Store::params(std::int64_t run_id) const {
  return impl_->key_values("SELECT key, value FROM params WHERE run_id = ? ORDER BY key",
                           "reading params", run_id);
}

std::vector<std::pair<std::string, std::string>> Store::coords(std::int64_t run_id) const {
  return impl_->key_values("SELECT key, value FROM sweep_coords WHERE run_id = ? ORDER BY key",
                           "reading sweep coordinates", run_id);
}

std::vector<std::pair<std::string, std::string>> Store::tags(std::int64_t run_id) const {
  return impl_->key_values("SELECT key, value FROM tags WHERE run_id = ? ORDER BY key",
                           "reading tags", run_id);
}

namespace {

std::vector<MetricRow> read_metrics(SQLite::Statement& query) {
  std::vector<MetricRow> rows;
  while (query.executeStep()) {
    MetricRow row;
    row.scope = text(query.getColumn(0));
    row.name = text(query.getColumn(1));
    row.step = query.getColumn(2).getInt64();
    row.value = metric_value(query.getColumn(3), query.getColumn(4));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

std::vector<MetricRow> Store::metrics(std::int64_t run_id) const {
  std::vector<MetricRow> rows;
  impl_->with_retry("reading metrics", [&] {
    SQLite::Statement query(impl_->db,
                            "SELECT scope, name, step, value, non_finite FROM metrics "
                            "WHERE run_id = ? ORDER BY scope, name, step");
    query.bind(1, run_id);
    rows = read_metrics(query);
  });
  return rows;
}

std::vector<MetricRow> Store::final_metrics(std::int64_t run_id) const {
  std::vector<MetricRow> rows;
  impl_->with_retry("reading final metrics", [&] {
    SQLite::Statement query(
        impl_->db,
        "SELECT m.scope, m.name, m.step, m.value, m.non_finite FROM metrics m "
        "WHERE m.run_id = ?1 AND m.step = (SELECT MAX(step) FROM metrics "
        "  WHERE run_id = ?1 AND scope = m.scope AND name = m.name) "
        "ORDER BY m.scope, m.name");
    query.bind(1, run_id);
    rows = read_metrics(query);
  });
  return rows;
}

std::vector<Artifact> Store::artifacts(std::int64_t run_id) const {
  std::vector<Artifact> result;
  impl_->with_retry("reading artifacts", [&] {
    result.clear();
    SQLite::Statement query(impl_->db,
                            "SELECT kind, path FROM artifacts WHERE run_id = ? ORDER BY id");
    query.bind(1, run_id);
    while (query.executeStep()) {
      result.push_back({text(query.getColumn(0)), detail::resolved_artifact_path(impl_->folder, text(query.getColumn(1)))});
    }
  });
  return result;
}

std::vector<RunPlugin> Store::plugins(std::int64_t run_id) const {
  std::vector<RunPlugin> result;
  impl_->with_retry("reading a run's plugins", [&] {
    result.clear();
    SQLite::Statement query(impl_->db,
                            "SELECT kind, name, version, library FROM run_plugins WHERE run_id = ? ORDER BY kind, name");
    query.bind(1, run_id);
    while (query.executeStep()) {
      result.push_back({text(query.getColumn(0)), text(query.getColumn(1)), text(query.getColumn(2)),
                        text(query.getColumn(3))});
    }
  });
  return result;
}

namespace {

std::string full_precision(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

bool only_blanks_or_comments(const char* text) {
  while (*text != '\0') {
    if (std::isspace(static_cast<unsigned char>(*text)) || *text == ';') {
      ++text;
    } else if (text[0] == '-' && text[1] == '-') {
      while (*text != '\0' && *text != '\n') ++text;
    } else if (text[0] == '/' && text[1] == '*') {
      const char* end = std::strstr(text + 2, "*/");
      if (end == nullptr) return true;
      text = end + 2;
    } else {
      return false;
    }
  }
  return true;
}

/// Stops a statement that holds too much memory or runs too long: SQLite calls it every kProgressOps
/// virtual-machine operations, and a non-zero return interrupts the statement.
struct QueryGuard {
  static constexpr int kProgressOps = 10000;
  const QueryLimits& limits;
  sqlite3_int64 memory_at_start = sqlite3_memory_used();
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::size_t row_bytes = 0;  ///< what the rows read so far hold
  std::string stopped;        ///< why the statement was interrupted

  static int check(void* self) { return static_cast<QueryGuard*>(self)->over_limit() ? 1 : 0; }

  bool over_limit() {
    const auto memory = static_cast<std::size_t>(std::max<sqlite3_int64>(0, sqlite3_memory_used() - memory_at_start));
    if (memory + row_bytes > limits.max_bytes) {
      stopped = "the query held more than " + std::to_string(limits.max_bytes >> 20) +
                " MiB of memory (an endless recursive CTE?); add a LIMIT or narrow it";
    } else if (limits.max_seconds > 0 &&
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > limits.max_seconds) {
      stopped = "the query ran longer than " + full_precision(limits.max_seconds) +
                " s (an endless recursive CTE?); add a LIMIT or narrow it";
    }
    return !stopped.empty();
  }
};

}  // namespace

QueryResult Store::query(const std::string& sql, const std::vector<std::string>& params,
                         const QueryLimits& limits) const {
  QueryResult result;
  const bool read_only = impl_->mode == Mode::read_only;
  const auto refuse = [&] {
    return std::runtime_error(
        read_only ? impl_->path + " is opened read-only: statements that write are refused"
                  : impl_->path + ": Store::query runs only statements that do not write");
  };
  impl_->with_retry("running a query", [&] {
    result = QueryResult();
    sqlite3* handle = impl_->db.getHandle();
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    const int prepared = sqlite3_prepare_v2(handle, sql.c_str(), static_cast<int>(sql.size()) + 1,
                                            &raw, &tail);
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> statement(raw, sqlite3_finalize);
    if (prepared != SQLITE_OK) {
      if ((prepared & 0xff) == SQLITE_READONLY) throw refuse();
      throw SQLite::Exception(handle, prepared);
    }
    if (raw == nullptr) throw std::runtime_error("empty SQL statement");
    if (tail != nullptr && !only_blanks_or_comments(tail)) {
      throw std::runtime_error("give one SQL statement at a time");
    }
    if (!sqlite3_stmt_readonly(raw)) throw refuse();
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int bound = sqlite3_bind_text(raw, static_cast<int>(i + 1), params[i].c_str(),
                                          static_cast<int>(params[i].size()), SQLITE_TRANSIENT);
      if (bound != SQLITE_OK) throw SQLite::Exception(handle, bound);
    }
    const int columns = sqlite3_column_count(raw);
    for (int c = 0; c < columns; ++c) {
      const char* name = sqlite3_column_name(raw, c);
      result.columns.emplace_back(name == nullptr ? "" : name);
    }
    QueryGuard guard{limits};
    sqlite3_progress_handler(handle, QueryGuard::kProgressOps, &QueryGuard::check, &guard);
    const std::unique_ptr<sqlite3, void (*)(sqlite3*)> unguard(
        handle, [](sqlite3* h) { sqlite3_progress_handler(h, 0, nullptr, nullptr); });
    for (;;) {
      if (limits.max_rows > 0 && result.rows.size() >= limits.max_rows) {
        result.truncated = sqlite3_step(raw) == SQLITE_ROW;
        break;
      }
      const int stepped = sqlite3_step(raw);
      if (stepped == SQLITE_DONE) break;
      if (stepped != SQLITE_ROW) {
        if ((stepped & 0xff) == SQLITE_READONLY) throw refuse();
        if (!guard.stopped.empty()) throw std::runtime_error(guard.stopped);
        throw SQLite::Exception(handle, stepped);
      }
      std::vector<QueryValue> row(static_cast<std::size_t>(columns));
      for (int c = 0; c < columns; ++c) {
        QueryValue& cell = row[static_cast<std::size_t>(c)];
        switch (sqlite3_column_type(raw, c)) {
          case SQLITE_INTEGER:
            cell.type = QueryValue::Type::integer;
            cell.real = static_cast<double>(sqlite3_column_int64(raw, c));
            cell.text = std::to_string(sqlite3_column_int64(raw, c));
            break;
          case SQLITE_FLOAT:
            cell.type = QueryValue::Type::real;
            cell.real = sqlite3_column_double(raw, c);
            cell.text = full_precision(cell.real);
            break;
          case SQLITE_TEXT: {
            cell.type = QueryValue::Type::text;
            const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, c));
            cell.text.assign(text, static_cast<std::size_t>(sqlite3_column_bytes(raw, c)));
            break;
          }
          case SQLITE_BLOB:
            cell.type = QueryValue::Type::blob;
            cell.text = "<blob " + std::to_string(sqlite3_column_bytes(raw, c)) + " bytes>";
            break;
          default:
            break;
        }
        guard.row_bytes += sizeof(QueryValue) + cell.text.size();
      }
      result.rows.push_back(std::move(row));
      if (guard.over_limit()) throw std::runtime_error(guard.stopped);
    }
  });
  return result;
}

}  // namespace msd::results
