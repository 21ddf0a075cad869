#include "msd/results/store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace msd::results {
namespace {

using testing::TempDir;
using KeyValues = std::vector<std::pair<std::string, std::string>>;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string hostname() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

NewRun sample_run(const std::string& experiment = "mnist", const std::string& name = "baseline") {
  NewRun run;
  run.experiment = experiment;
  run.name = name;
  run.config_text = "[model]\nwidth = 64\n";
  run.config_hash = "0123456789abcdef0123";
  run.seed = 42;
  run.git_commit = "deadbeefcafe";
  run.git_dirty = true;
  run.host = hostname();
  run.device = "cpu";
  run.sweep_id = "sweep-7";
  run.sweep_index = 3;
  run.params = {{"model.width", "64"}, {"lr", "0.001"}, {"data.name", "\"fashion\""}};
  run.coords = {{"lr", "0.001"}, {"model.width", "64"}};
  return run;
}

// Equal, where NaN equals NaN: a stored NaN must come back as NaN.
bool same_value(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

void expect_same_metrics(const std::vector<MetricRow>& actual,
                         const std::vector<MetricRow>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_EQ(actual[i].scope, expected[i].scope) << "row " << i;
    EXPECT_EQ(actual[i].name, expected[i].name) << "row " << i;
    EXPECT_EQ(actual[i].step, expected[i].step) << "row " << i;
    EXPECT_TRUE(same_value(actual[i].value, expected[i].value))
        << "row " << i << ": " << actual[i].value << " vs " << expected[i].value;
  }
}

bool is_iso_utc(const std::string& text) {
  return text.size() == 20 && text[4] == '-' && text[10] == 'T' && text[13] == ':' &&
         text.back() == 'Z';
}

std::int64_t count_rows(const std::string& path, const std::string& table) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  return db.execAndGet("SELECT count(*) FROM " + table).getInt64();
}

// A pid that belonged to a process which has exited and been reaped.
pid_t dead_pid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  int status = 0;
  waitpid(child, &status, 0);
  return child;
}

TEST(RunStatus, RoundTripsThroughText) {
  for (RunStatus status : {RunStatus::running, RunStatus::finished, RunStatus::failed,
                           RunStatus::interrupted}) {
    EXPECT_EQ(run_status_from_string(to_string(status)), status);
  }
  EXPECT_FALSE(run_status_from_string("done").has_value());
}

TEST(Store, RoundTripsEveryTable) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  Store store(path);
  EXPECT_EQ(store.path(), path);

  const NewRun run = sample_run();
  const std::int64_t id = store.begin_run(run);
  const std::vector<MetricRow> logged = {
      {"loss", 0, 2.5, ""},         {"loss", 10, 0.125, ""},      {"fid", 10, kNaN, ""},
      {"fid", 20, kInf, ""},        {"grad_norm", 10, -kInf, ""}, {"loss", 10, 0.25, "student:1"},
      {"accuracy", 10, 0.5, "class:3"},
  };
  store.log_metrics(id, logged);
  store.set_tag(id, "note", "first");
  store.set_tag(id, "note", "second");  // replaces
  store.set_tag(id, "owner", "ana");
  store.add_artifact(id, {"checkpoint", "/tmp/ckpt/step10.pt"});
  store.add_artifact(id, {"samples", "samples/grid.png"});
  store.heartbeat(id);

  const auto running = store.find_run(id);
  ASSERT_TRUE(running.has_value());
  EXPECT_EQ(running->status, RunStatus::running);
  EXPECT_TRUE(running->ended_at.empty());
  store.finish_run(id, RunStatus::failed, "loss diverged");

  // Read back through a second, read-only connection: what is on disk, not what is cached.
  Store reader(path, Store::Mode::read_only);
  const auto found = reader.find_run(id);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, id);
  EXPECT_EQ(found->experiment, run.experiment);
  EXPECT_EQ(found->name, run.name);
  EXPECT_EQ(found->config_text, run.config_text);
  EXPECT_EQ(found->config_hash, run.config_hash);
  EXPECT_EQ(found->seed, run.seed);
  EXPECT_EQ(found->git_commit, run.git_commit);
  EXPECT_EQ(found->git_dirty, run.git_dirty);
  EXPECT_EQ(found->host, run.host);
  EXPECT_EQ(found->device, run.device);
  EXPECT_EQ(found->pid, getpid());
  EXPECT_TRUE(is_iso_utc(found->started_at)) << found->started_at;
  EXPECT_TRUE(is_iso_utc(found->ended_at)) << found->ended_at;
  EXPECT_LE(found->started_at, found->ended_at);
  EXPECT_EQ(found->status, RunStatus::failed);
  EXPECT_EQ(found->error, "loss diverged");
  EXPECT_EQ(found->sweep_id, run.sweep_id);
  EXPECT_EQ(found->sweep_index, run.sweep_index);

  EXPECT_EQ(reader.params(id),
            (KeyValues{{"data.name", "\"fashion\""}, {"lr", "0.001"}, {"model.width", "64"}}));
  EXPECT_EQ(reader.coords(id), (KeyValues{{"lr", "0.001"}, {"model.width", "64"}}));
  EXPECT_EQ(reader.tags(id), (KeyValues{{"note", "second"}, {"owner", "ana"}}));

  // Ordered by scope, name, step.
  expect_same_metrics(reader.metrics(id), {
                                              {"fid", 10, kNaN, ""},
                                              {"fid", 20, kInf, ""},
                                              {"grad_norm", 10, -kInf, ""},
                                              {"loss", 0, 2.5, ""},
                                              {"loss", 10, 0.125, ""},
                                              {"accuracy", 10, 0.5, "class:3"},
                                              {"loss", 10, 0.25, "student:1"},
                                          });

  const auto artifacts = reader.artifacts(id);
  ASSERT_EQ(artifacts.size(), 2u);
  EXPECT_EQ(artifacts[0].kind, "checkpoint");
  EXPECT_EQ(artifacts[0].path, "/tmp/ckpt/step10.pt");
  EXPECT_EQ(artifacts[1].kind, "samples");
  // Stored relative to the database's folder, read back absolute.
  EXPECT_EQ(artifacts[1].path, (std::filesystem::path(path).parent_path() / "samples/grid.png").string());

  EXPECT_FALSE(reader.find_run(id + 1).has_value());
}

TEST(Store, OptionalFieldsStayEmpty) {
  TempDir dir;
  Store store(dir.file("results.db"));
  NewRun run;
  run.experiment = "bare";
  const std::int64_t id = store.begin_run(run);
  const auto found = store.find_run(id);
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(found->git_commit.empty());
  EXPECT_TRUE(found->sweep_id.empty());
  EXPECT_EQ(found->sweep_index, -1);
  EXPECT_EQ(found->host, hostname());  // an unset host means this machine
  EXPECT_TRUE(found->error.empty());
  EXPECT_TRUE(store.params(id).empty());
  EXPECT_TRUE(store.coords(id).empty());
}

TEST(Store, ListsRunsByExperiment) {
  TempDir dir;
  Store store(dir.file("results.db"));
  const std::int64_t a = store.begin_run(sample_run("mnist", "a"));
  const std::int64_t b = store.begin_run(sample_run("cifar", "b"));
  const std::int64_t c = store.begin_run(sample_run("mnist", "c"));

  const auto all = store.list_runs();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, a);
  EXPECT_EQ(all[1].id, b);
  EXPECT_EQ(all[2].id, c);

  const auto mnist = store.list_runs("mnist");
  ASSERT_EQ(mnist.size(), 2u);
  EXPECT_EQ(mnist[0].name, "a");
  EXPECT_EQ(mnist[1].name, "c");
  EXPECT_TRUE(store.list_runs("nothing").empty());
  EXPECT_EQ(count_rows(store.path(), "experiments"), 2);
}

TEST(Store, FindsRunsByConfigHash) {
  TempDir dir;
  Store store(dir.file("results.db"));
  NewRun first = sample_run("mnist", "a");
  first.config_hash = "aaaaaaaaaaaaaaaa";
  NewRun other = sample_run("mnist", "b");
  other.config_hash = "bbbbbbbbbbbbbbbb";
  const std::int64_t a1 = store.begin_run(first);
  store.begin_run(other);
  const std::int64_t a2 = store.begin_run(first);
  store.finish_run(a2, RunStatus::finished);

  const auto found = store.runs_with_hash("aaaaaaaaaaaaaaaa");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].id, a1);
  EXPECT_EQ(found[0].status, RunStatus::running);
  EXPECT_EQ(found[1].id, a2);
  EXPECT_EQ(found[1].status, RunStatus::finished);
  EXPECT_EQ(found[1].sweep_id, "sweep-7");
  EXPECT_EQ(found[1].sweep_index, 3);
  EXPECT_TRUE(store.runs_with_hash("cccccccccccccccc").empty());

  Store reader(store.path(), Store::Mode::read_only);
  EXPECT_EQ(reader.runs_with_hash("bbbbbbbbbbbbbbbb").size(), 1u);
}

TEST(Store, RelogReplacesTheOldRow) {
  TempDir dir;
  Store store(dir.file("results.db"));
  const std::int64_t id = store.begin_run(sample_run());
  store.log_metrics(id, {{"loss", 5, 1.0, ""}, {"loss", 5, 3.0, "student:0"}});
  store.log_metrics(id, {{"loss", 5, 0.5, ""}});
  store.log_metrics(id, {{"loss", 5, kNaN, "student:0"}});
  store.log_metrics(id, {{"loss", 5, 2.0, "student:0"}});  // finite again after non-finite

  expect_same_metrics(store.metrics(id), {{"loss", 5, 0.5, ""}, {"loss", 5, 2.0, "student:0"}});
  EXPECT_EQ(count_rows(store.path(), "metrics"), 2);
}

TEST(Store, FinalMetricsPickTheHighestStep) {
  TempDir dir;
  Store store(dir.file("results.db"));
  const std::int64_t id = store.begin_run(sample_run());
  const std::int64_t other = store.begin_run(sample_run());
  store.log_metrics(id, {{"loss", 10, 3.0, ""},
                         {"loss", 30, 1.0, ""},
                         {"loss", 20, 2.0, ""},
                         {"loss", 40, 9.0, "student:1"},
                         {"loss", 5, 4.0, "student:1"},
                         {"fid", 0, 12.5, ""},
                         {"fid", 100, kInf, "student:0"}});
  store.log_metrics(other, {{"loss", 1000, 0.0, ""}});  // another run's later step is irrelevant

  expect_same_metrics(store.final_metrics(id), {{"fid", 0, 12.5, ""},
                                                {"loss", 30, 1.0, ""},
                                                {"fid", 100, kInf, "student:0"},
                                                {"loss", 40, 9.0, "student:1"}});
}

TEST(Store, MetricsForAnUnknownRunAreRejected) {
  TempDir dir;
  Store store(dir.file("results.db"));
  try {
    store.log_metrics(12345, {{"loss", 1, 1.0, ""}});
    FAIL() << "expected an error";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(store.path()), std::string::npos) << error.what();
  }
  EXPECT_THROW(store.finish_run(12345, RunStatus::finished), std::runtime_error);
  EXPECT_THROW(store.finish_run(12345, RunStatus::running), std::invalid_argument);
}

TEST(Store, MetricValuesViewShowsInfinities) {
  TempDir dir;
  Store store(dir.file("results.db"));
  const std::int64_t id = store.begin_run(sample_run());
  store.log_metrics(id, {{"up", 1, kInf, ""}, {"down", 1, -kInf, ""}, {"nan", 1, kNaN, ""},
                         {"plain", 1, 0.75, ""}});

  SQLite::Database db(store.path(), SQLite::OPEN_READONLY);
  SQLite::Statement query(db,
                          "SELECT name, value, non_finite, experiment, run FROM metric_values "
                          "WHERE run_id = ? ORDER BY name");
  query.bind(1, id);
  std::vector<std::string> names;
  while (query.executeStep()) {
    const std::string name = query.getColumn(0).getString();
    names.push_back(name);
    EXPECT_EQ(query.getColumn(3).getString(), "mnist");
    EXPECT_EQ(query.getColumn(4).getString(), "baseline");
    if (name == "up") {
      EXPECT_EQ(query.getColumn(1).getDouble(), kInf);
    } else if (name == "down") {
      EXPECT_EQ(query.getColumn(1).getDouble(), -kInf);
    } else if (name == "nan") {
      EXPECT_TRUE(query.getColumn(1).isNull());
      EXPECT_EQ(query.getColumn(2).getString(), "nan");
    } else {
      EXPECT_EQ(query.getColumn(1).getDouble(), 0.75);
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"down", "nan", "plain", "up"}));
}

// ---- schema versions ---------------------------------------------------------------------------
int user_version(const std::string& path) {
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  return db.execAndGet("PRAGMA user_version").getInt();
}

TEST(Migrations, FreshFileGetsTheCurrentVersionInWalMode) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  {
    Store store(path);
    EXPECT_EQ(store.schema_version(), Store::current_schema_version());
  }
  EXPECT_GE(Store::current_schema_version(), 1);
  EXPECT_EQ(user_version(path), Store::current_schema_version());
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("PRAGMA journal_mode").getString(), "wal");
}

// Version 3 marks the file as msd's and makes artifact paths inside the database's folder relative,
// so that a results folder can move; paths elsewhere stay absolute.
TEST(Migrations, VersionThreeMarksTheFileAndMakesArtifactPathsRelative) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  const std::string folder = std::filesystem::path(path).parent_path().string();
  {
    Store store(path);
    const std::int64_t id = store.begin_run(sample_run());
    store.add_artifact(id, {"student", "runs/run-1/student-0.pt"});
    store.add_artifact(id, {"teacher", "/elsewhere/cache/teacher.pt"});
  }
  {
    // The file as an msd build of version 2 left it: no mark, absolute paths.
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("DROP TABLE run_plugins; PRAGMA application_id = 0; PRAGMA user_version = 2");
    db.exec("UPDATE artifacts SET path = '" + folder + "/' || path WHERE kind = 'student'");
  }
  Store migrated(path);
  EXPECT_EQ(migrated.schema_version(), Store::current_schema_version());
  SQLite::Database db(path, SQLite::OPEN_READONLY);
  EXPECT_EQ(db.execAndGet("PRAGMA application_id").getInt(), 0x6d73646c);
  EXPECT_EQ(db.execAndGet("SELECT path FROM artifacts WHERE kind = 'student'").getString(), "runs/run-1/student-0.pt");
  EXPECT_EQ(db.execAndGet("SELECT path FROM artifacts WHERE kind = 'teacher'").getString(),
            "/elsewhere/cache/teacher.pt");
  const std::vector<Artifact> artifacts = migrated.artifacts(1);
  ASSERT_EQ(artifacts.size(), 2u);
  EXPECT_EQ(artifacts[0].path, folder + "/runs/run-1/student-0.pt");
}

// What is not msd's is refused before SQLite writes anything: the bytes stay as they were.
TEST(Migrations, FilesThatAreNotMsdsAreLeftUntouched) {
  TempDir dir;
  const auto bytes_of = [](const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const auto refusal = [](const std::string& file) {
    try {
      Store store(file);
    } catch (const std::runtime_error& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  const std::string notes = dir.file("notes.db");
  SQLite::Database(notes, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE).exec("CREATE TABLE notes (x)");
  const std::string other = dir.file("other.db");
  SQLite::Database(other, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE).exec("PRAGMA application_id = 7");
  const std::string empty = dir.file("empty.db");
  std::ofstream(empty).close();
  const std::string text = dir.file("text.db");
  std::ofstream(text) << "not a database\n";
  for (const auto& [file, message] : std::vector<std::pair<std::string, std::string>>{
           {notes, "that msd did not make (tables: notes)"},
           {other, "another application (application_id 7)"},
           {empty, "is an empty file"},
           {text, "is not a SQLite database"},
           {dir.file(""), "is a folder"}}) {
    const std::string before = std::filesystem::is_regular_file(file) ? bytes_of(file) : "";
    const std::string refused = refusal(file);
    EXPECT_NE(refused.find(message), std::string::npos) << refused;
    if (std::filesystem::is_regular_file(file)) EXPECT_EQ(bytes_of(file), before) << file;
    EXPECT_FALSE(std::filesystem::exists(file + "-wal")) << file;
  }
}

TEST(Migrations, NegativeVersionIsRefused) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  { Store store(path); }
  SQLite::Database(path, SQLite::OPEN_READWRITE).exec("PRAGMA user_version = -5");
  EXPECT_THROW(Store store(path), std::runtime_error);
  EXPECT_EQ(user_version(path), -5);
}

// A query past a limit stops: past max_rows with the rows so far, past memory or time with an error.
TEST(Store, QueriesStopAtTheirLimits) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  { Store store(path); }
  const Store store(path, Store::Mode::read_only);
  const std::string endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) ";
  QueryLimits rows;
  rows.max_rows = 5;
  const QueryResult five = store.query(endless + "SELECT x FROM c", {}, rows);
  EXPECT_EQ(five.rows.size(), 5u);
  EXPECT_TRUE(five.truncated);
  EXPECT_FALSE(store.query("SELECT 1", {}, rows).truncated);
  QueryLimits memory;
  memory.max_bytes = 8 << 20;
  EXPECT_THROW(store.query(endless + "SELECT x FROM c ORDER BY -x", {}, memory), std::runtime_error);
  QueryLimits time;
  time.max_seconds = 0.2;
  EXPECT_THROW(store.query(endless + "SELECT count(*) FROM c", {}, time), std::runtime_error);
}

TEST(Migrations, ReopeningIsANoOp) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  std::int64_t id = 0;
  {
    Store store(path);
    id = store.begin_run(sample_run());
    store.finish_run(id, RunStatus::finished);
  }
  Store again(path);
  EXPECT_EQ(again.schema_version(), Store::current_schema_version());
  ASSERT_EQ(again.list_runs().size(), 1u);
  EXPECT_EQ(again.find_run(id)->status, RunStatus::finished);
  Store reader(path, Store::Mode::read_only);
  EXPECT_EQ(reader.schema_version(), Store::current_schema_version());
  EXPECT_EQ(reader.list_runs().size(), 1u);
}

TEST(Migrations, NewerFileIsRefusedWithBothVersions) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  { Store store(path); }
  const int future = Store::current_schema_version() + 5;
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("PRAGMA user_version = " + std::to_string(future));
  }
  for (Store::Mode mode : {Store::Mode::read_write, Store::Mode::read_only}) {
    try {
      Store store(path, mode);
      FAIL() << "expected the newer schema to be refused";
    } catch (const std::runtime_error& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find(path), std::string::npos) << message;
      EXPECT_NE(message.find("version " + std::to_string(future)), std::string::npos) << message;
      EXPECT_NE(message.find("version " + std::to_string(Store::current_schema_version())),
                std::string::npos)
          << message;
    }
  }
  EXPECT_EQ(user_version(path), future);  // left untouched
}

TEST(Migrations, ReadOnlyOnAMissingFileThrowsNamingIt) {
  TempDir dir;
  const std::string path = dir.file("missing.db");
  try {
    Store store(path, Store::Mode::read_only);
    FAIL() << "expected a missing file to be refused";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Migrations, ReadOnlyDoesNotMigrateAnOlderFile) {
  TempDir dir;
  const std::string path = dir.file("old.db");
  {
    // The tables of a version 1 file, which carries no application_id yet.
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    for (const char* table : {"experiments", "runs", "params", "metrics", "artifacts"}) {
      db.exec(std::string("CREATE TABLE ") + table + " (id)");
    }
    db.exec("PRAGMA user_version = 1");
  }
  try {
    Store store(path, Store::Mode::read_only);
    FAIL() << "expected an older schema to be refused in read-only mode";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("read-write"), std::string::npos) << message;
  }
  EXPECT_EQ(user_version(path), 1);
}

TEST(Migrations, ReadOnlyRefusesWrites) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  { Store store(path); }
  Store reader(path, Store::Mode::read_only);
  EXPECT_THROW(reader.begin_run(sample_run()), std::logic_error);
  EXPECT_EQ(count_rows(path, "runs"), 0);
}

// ---- stale runs --------------------------------------------------------------------------------
TEST(StaleRuns, DeadLocalProcessesAndSilentRemoteRunsBecomeInterrupted) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  std::int64_t alive = 0, dead = 0, remote_silent = 0, remote_fresh = 0, done = 0;
  const pid_t gone = dead_pid();
  {
    Store store(path);
    alive = store.begin_run(sample_run());
    dead = store.begin_run(sample_run());
    remote_silent = store.begin_run(sample_run());
    remote_fresh = store.begin_run(sample_run());
    done = store.begin_run(sample_run());
    store.finish_run(done, RunStatus::finished);

    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("UPDATE runs SET pid = " + std::to_string(gone) + " WHERE id IN (" +
            std::to_string(dead) + ", " + std::to_string(done) + ")");
    db.exec("UPDATE runs SET host = 'elsewhere', heartbeat_at = '2000-01-01T00:00:00Z' WHERE id = " +
            std::to_string(remote_silent));
    db.exec("UPDATE runs SET host = 'elsewhere', pid = 1 WHERE id = " +
            std::to_string(remote_fresh));
  }

  // A read-only store marks nothing.
  {
    Store reader(path, Store::Mode::read_only);
    EXPECT_EQ(reader.find_run(dead)->status, RunStatus::running);
  }

  Store store(path);  // marks stale runs on open
  EXPECT_EQ(store.find_run(alive)->status, RunStatus::running);  // this very process
  EXPECT_EQ(store.find_run(remote_fresh)->status, RunStatus::running);
  EXPECT_EQ(store.find_run(done)->status, RunStatus::finished);

  const auto interrupted = store.find_run(dead);
  EXPECT_EQ(interrupted->status, RunStatus::interrupted);
  EXPECT_TRUE(is_iso_utc(interrupted->ended_at)) << interrupted->ended_at;
  EXPECT_EQ(interrupted->error, "process " + std::to_string(gone) + " on " + hostname() +
                                    " ended without finishing the run");

  const auto silent = store.find_run(remote_silent);
  EXPECT_EQ(silent->status, RunStatus::interrupted);
  EXPECT_NE(silent->error.find("elsewhere"), std::string::npos) << silent->error;

  EXPECT_EQ(store.mark_stale_runs(), 0);  // nothing left to mark
}

// ---- many processes, one file ------------------------------------------------------------------
TEST(Claims, DecideWhoRunsAConfig) {
  TempDir dir;
  Store store(dir.file("results.db"));
  NewRun run = sample_run();

  const RunClaim first = store.claim_run(run);
  EXPECT_EQ(first.outcome, RunClaim::Outcome::started);
  // This process is alive, so its running run is taken.
  EXPECT_EQ(store.claim_run(run).outcome, RunClaim::Outcome::running);
  EXPECT_EQ(store.claim_run(run).run_id, first.run_id);

  store.finish_run(first.run_id, RunStatus::interrupted, "stopped");
  NewRun resuming = run;  // another build resumes it
  resuming.git_commit = "0123456789abcdef0123456789abcdef01234567";
  resuming.git_dirty = false;
  const RunClaim resumed = store.claim_run(resuming);
  EXPECT_EQ(resumed.outcome, RunClaim::Outcome::resumed);
  EXPECT_EQ(resumed.run_id, first.run_id);
  const RunRecord record = *store.find_run(first.run_id);
  EXPECT_EQ(record.status, RunStatus::running);
  EXPECT_EQ(record.attempts, 2);
  EXPECT_EQ(record.git_commit, resuming.git_commit);
  EXPECT_FALSE(record.git_dirty);
  EXPECT_TRUE(record.ended_at.empty());
  EXPECT_TRUE(record.error.empty());
  EXPECT_EQ(record.uuid.size(), 32u);

  store.finish_run(first.run_id, RunStatus::finished);
  EXPECT_EQ(store.claim_run(run).outcome, RunClaim::Outcome::finished);
  // --force: runs up to after_id do not count, so the config runs again as a new run.
  const RunClaim forced = store.claim_run(run, first.run_id);
  EXPECT_EQ(forced.outcome, RunClaim::Outcome::started);
  EXPECT_GT(forced.run_id, first.run_id);
  EXPECT_NE(store.find_run(forced.run_id)->uuid, record.uuid);

  // A failed run is not resumed: the config starts afresh.
  run.config_hash = "another";
  const RunClaim failed = store.claim_run(run);
  store.finish_run(failed.run_id, RunStatus::failed, "bad");
  const RunClaim retry = store.claim_run(run);
  EXPECT_EQ(retry.outcome, RunClaim::Outcome::started);
  EXPECT_NE(retry.run_id, failed.run_id);
}

TEST(Claims, RunOfADeadProcessIsResumed) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  Store store(path);
  const RunClaim first = store.claim_run(sample_run());
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("UPDATE runs SET pid = " + std::to_string(dead_pid()));
  }
  const RunClaim again = store.claim_run(sample_run());
  EXPECT_EQ(again.outcome, RunClaim::Outcome::resumed);
  EXPECT_EQ(again.run_id, first.run_id);
}

TEST(Claims, ArtifactIsRecordedOncePerRun) {
  TempDir dir;
  Store store(dir.file("results.db"));
  const std::int64_t id = store.begin_run(sample_run());
  store.add_artifact(id, {"student", "/tmp/student-0.pt"});
  store.add_artifact(id, {"student", "/tmp/student-0.pt"});
  store.add_artifact(id, {"student", "/tmp/student-1.pt"});
  EXPECT_EQ(store.artifacts(id).size(), 2u);
}

// A killed worker whose supervisor died too can stay a zombie (not reaped by a container's init):
// its pid still answers kill(), but its run is as dead as any.
TEST(Claims, RunOfAZombieProcessIsResumed) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  Store store(path);
  const RunClaim first = store.claim_run(sample_run());
  const pid_t zombie = fork();
  ASSERT_GE(zombie, 0);
  if (zombie == 0) _exit(0);
  // Not reaped until the end: wait until it has exited.
  for (int i = 0; i < 200 && std::ifstream("/proc/" + std::to_string(zombie) + "/stat").peek() != EOF; ++i) {
    std::string stat;
    std::getline(std::ifstream("/proc/" + std::to_string(zombie) + "/stat"), stat);
    if (stat.find(") Z") != std::string::npos) break;
    usleep(10000);
  }
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE);
    db.exec("UPDATE runs SET pid = " + std::to_string(zombie));
  }
  const RunClaim again = store.claim_run(sample_run());
  int status = 0;
  waitpid(zombie, &status, 0);
  EXPECT_EQ(again.outcome, RunClaim::Outcome::resumed);
  EXPECT_EQ(again.run_id, first.run_id);
}

// Workers of one sweep claim the same list of configs at the same time: each config runs once.
TEST(Concurrency, ManyProcessesClaimEachConfigOnce) {
  constexpr int kProcesses = 8;
  constexpr int kConfigs = 40;
  TempDir dir;
  const std::string path = dir.file("shared.db");
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      try {
        Store store(path);
        for (int c = 0; c < kConfigs; ++c) {
          NewRun run = sample_run("claims", "c" + std::to_string(c));
          run.config_hash = "hash" + std::to_string(c);
          const RunClaim claim = store.claim_run(run);
          if (claim.outcome == RunClaim::Outcome::started) {
            store.log_metrics(claim.run_id, {{"worker", 0, static_cast<double>(p), ""}});
            store.finish_run(claim.run_id, RunStatus::finished);
          }
        }
      } catch (const std::exception& error) {
        std::fprintf(stderr, "child %d: %s\n", p, error.what());
        _exit(1);
      }
      _exit(0);
    }
    children.push_back(child);
  }
  for (pid_t child : children) {
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }
  Store reader(path, Store::Mode::read_only);
  const auto runs = reader.list_runs("claims");
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(kConfigs));
  for (const RunRecord& run : runs) EXPECT_EQ(run.status, RunStatus::finished);
  EXPECT_EQ(count_rows(path, "metrics"), kConfigs);
}

TEST(Concurrency, ManyProcessesWritingOneFileLoseNothing) {
  constexpr int kProcesses = 8;
  constexpr int kRunsPerProcess = 30;
  constexpr int kMetricsPerRun = 20;
  constexpr int kBatch = 5;
  TempDir dir;
  const std::string path = dir.file("shared.db");

  // The children create the file themselves, so creation and migration race too.
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      // _exit, not exit or return: the child must not run the parent's gtest teardown.
      try {
        Store store(path);
        for (int r = 0; r < kRunsPerProcess; ++r) {
          const std::int64_t id =
              store.begin_run(sample_run("concurrent", "p" + std::to_string(p)));
          for (int first = 0; first < kMetricsPerRun; first += kBatch) {
            std::vector<MetricRow> rows;
            for (int m = first; m < first + kBatch; ++m) {
              rows.push_back({"metric" + std::to_string(m % 4), m, 0.5 * m, ""});
            }
            store.log_metrics(id, rows);
          }
          store.heartbeat(id);
          store.finish_run(id, RunStatus::finished);
        }
      } catch (const std::exception& error) {
        std::fprintf(stderr, "child %d: %s\n", p, error.what());
        _exit(1);
      } catch (...) {
        _exit(2);
      }
      _exit(0);
    }
    children.push_back(child);
  }
  for (pid_t child : children) {
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  }

  Store reader(path, Store::Mode::read_only);
  const auto runs = reader.list_runs("concurrent");
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(kProcesses * kRunsPerProcess));
  std::size_t metric_rows = 0;
  for (const RunRecord& run : runs) {
    EXPECT_EQ(run.status, RunStatus::finished) << "run " << run.id;
    metric_rows += reader.metrics(run.id).size();
  }
  EXPECT_EQ(metric_rows, static_cast<std::size_t>(kProcesses * kRunsPerProcess * kMetricsPerRun));
  EXPECT_EQ(count_rows(path, "metrics"), kProcesses * kRunsPerProcess * kMetricsPerRun);
  EXPECT_EQ(count_rows(path, "params"), kProcesses * kRunsPerProcess * 3);
}

}  // namespace
}  // namespace msd::results
