// The catalogue of bad inputs: one test per kind of mistake a user, a co-author's file or a full disk
// can make. Each drives the real `msd` and asserts three things:
//   - msd ends by itself with a non-zero status: no signal, no abort, no LibTorch stack trace;
//   - its message says what is wrong and where (file, line, key, plugin, run);
//   - the rows an existing results database held before are unchanged after (a failing run may add
//     its own row, recorded as failed, never as finished).
// Every test works on its own copy of one lab folder (a database with a finished tiny run, its
// cache and run folders), made once for the suite.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

#include <SQLiteCpp/SQLiteCpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace msd_integration {
namespace {

using ::testing::HasSubstr;

// ---- the lab folder ------------------------------------------------------------------------------

/// The tiny experiment (teacher cached after the first run, so each later run takes a second or two).
std::string tiny_file(const std::string& extra = "") {
  TinyOptions options;
  options.name = "catalogue";
  options.stage_steps = 20;
  return tiny_msd_config(options) + extra;
}

/// Every row of every table of `db`, as text, leaving out runs with an id above `last_run` (and
/// experiments above `last_experiment`): what a bad input must not change.
std::string rows_of(const fs::path& db, std::int64_t last_run, std::int64_t last_experiment) {
  SQLite::Database sqlite(db.string(), SQLite::OPEN_READONLY);
  std::ostringstream text;
  const auto dump = [&](const std::string& sql, std::int64_t bound) {
    SQLite::Statement query(sqlite, sql);
    query.bind(1, bound);
    while (query.executeStep()) {
      for (int c = 0; c < query.getColumnCount(); ++c) {
        const SQLite::Column column = query.getColumn(c);
        text << (column.isNull() ? std::string("NULL") : column.getString()) << '|';
      }
      text << '\n';
    }
  };
  dump("SELECT * FROM experiments WHERE id <= ? ORDER BY id", last_experiment);
  // heartbeat_at moves while a run lives; the runs here are finished, so every column must hold.
  dump("SELECT * FROM runs WHERE id <= ? ORDER BY id", last_run);
  for (const char* table : {"params", "sweep_coords", "tags", "metrics", "artifacts"}) {
    dump(std::string("SELECT * FROM ") + table + " WHERE run_id <= ? ORDER BY 1, 2, 3", last_run);
  }
  return text.str();
}

std::int64_t count_of(const fs::path& db, const std::string& sql) {
  SQLite::Database sqlite(db.string(), SQLite::OPEN_READONLY);
  return sqlite.execAndGet(sql).getInt64();
}

/// The lab made once: experiment file, database with one finished run, cache, run folder.
class LabFolder {
 public:
  static const fs::path& path() {
    static LabFolder lab;
    return lab.dir_.path();
  }

 private:
  LabFolder() {
    write_text(dir_ / "tiny.toml", tiny_file());
    const RunResult made = run_msd({"run", "tiny.toml", "--db", "results.db"}, dir_.path());
    if (made.exit_code != 0) throw std::runtime_error("the catalogue's lab run failed:\n" + made.output);
  }
  TempDir dir_;
};

class Catalogue : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::copy(LabFolder::path(), lab(), fs::copy_options::recursive);
    before_ = rows_of(db(), kLabRuns, kLabExperiments);
  }

  void TearDown() override {
    EXPECT_EQ(rows_of(db(), kLabRuns, kLabExperiments), before_) << "the lab database's rows changed";
    EXPECT_EQ(count_of(db(), "SELECT count(*) FROM runs WHERE status = 'finished'"), kLabRuns)
        << "a run was recorded as finished";
  }

  fs::path lab() const { return dir_ / "lab"; }
  fs::path db() const { return lab() / "results.db"; }
  std::string file(const std::string& name) const { return (lab() / name).string(); }

  /// Writes `text` to lab/NAME and returns its path.
  std::string experiment(const std::string& name, const std::string& text) const {
    write_text(lab() / name, text);
    return file(name);
  }

  /// Runs msd in the lab folder and checks that it refused cleanly: a non-zero exit of its own, no
  /// signal, abort or LibTorch trace, and every part of the message.
  RunResult refused(const std::vector<std::string>& args, const std::vector<std::string>& parts,
                    const std::vector<std::string>& wrapper = {}, int timeout = 120) const {
    const RunResult result = run_msd(args, lab(), timeout, wrapper);
    expect_clean(result);
    EXPECT_NE(result.exit_code, 0) << result.output;
    for (const std::string& part : parts) EXPECT_THAT(result.output, HasSubstr(part));
    return result;
  }

  /// Like refused, but for a command that succeeds (exit 0) despite the unusual input.
  RunResult accepted(const std::vector<std::string>& args, const std::vector<std::string>& parts = {}) const {
    const RunResult result = run_msd(args, lab(), 120);
    expect_clean(result);
    EXPECT_EQ(result.exit_code, 0) << result.output;
    for (const std::string& part : parts) EXPECT_THAT(result.output, HasSubstr(part));
    return result;
  }

  static void expect_clean(const RunResult& result) {
    EXPECT_FALSE(result.timed_out) << result.output;
    EXPECT_LT(result.exit_code, 128) << "msd died of a signal:\n" << result.output;
    EXPECT_GE(result.exit_code, 0) << result.output;
    for (const char* crash : {"terminate called", "Exception raised from", "frame #", "Segmentation fault",
                              "core dumped", "Aborted"}) {
      EXPECT_THAT(result.output, ::testing::Not(HasSubstr(crash))) << "a crash or a LibTorch trace";
    }
  }

  /// The status and error of the newest run of the lab database.
  std::pair<std::string, std::string> last_run() const {
    SQLite::Database sqlite(db().string(), SQLite::OPEN_READONLY);
    SQLite::Statement query(sqlite, "SELECT status, coalesce(error, '') FROM runs ORDER BY id DESC LIMIT 1");
    query.executeStep();
    return {query.getColumn(0).getString(), query.getColumn(1).getString()};
  }

  /// `msd run` of the tiny experiment with overrides: it must fail, and record the run as failed
  /// with every part of the message in runs.error.
  void run_fails(const std::vector<std::string>& sets, const std::vector<std::string>& parts,
                 const std::vector<std::string>& wrapper = {}) const {
    std::vector<std::string> args{"run", "tiny.toml", "--db", "results.db"};
    for (const std::string& set : sets) args.insert(args.end(), {"--set", set});
    refused(args, parts, wrapper);
    const auto [status, error] = last_run();
    EXPECT_EQ(status, "failed");
    for (const std::string& part : parts) EXPECT_THAT(error, HasSubstr(part));
  }

  /// Runs msd without root's power to ignore file permissions when the tests run as root; it keeps
  /// uid 0, so it still reaches a build under /root.
  static std::vector<std::string> unprivileged() {
    if (geteuid() != 0) return {};
    return {"/usr/bin/setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"};
  }

  /// A SQLite file made by another program, with its checksum, to check it is left untouched.
  std::string foreign_database(const std::string& name) const {
    SQLite::Database notes(file(name), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    notes.exec("CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('do not touch')");
    return read_text(file(name));
  }

  void expect_untouched(const std::string& name, const std::string& bytes) const {
    EXPECT_EQ(read_text(file(name)), bytes) << name << " changed";
    EXPECT_FALSE(fs::exists(file(name + "-wal"))) << "msd switched " << name << " to WAL";
  }

  static constexpr std::int64_t kLabRuns = 1;
  static constexpr std::int64_t kLabExperiments = 1;
  TempDir dir_;
  std::string before_;
};

std::string repeated(const std::string& text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text;
  return out;
}

// ---- experiment files ------------------------------------------------------------------------------

TEST_F(Catalogue, DottedKeyOfTenThousandSegments) {
  experiment("deep.toml", "[experiment]\nname = \"x\"\n" + std::string("a") + repeated(".a", 10000) + " = 1\n");
  refused({"validate", "deep.toml"}, {"deep.toml:3", "nests more than 32 levels"});
}

TEST_F(Catalogue, ArraysNestedTenThousandDeep) {
  experiment("deep.toml", "x = " + repeated("[", 10000) + repeated("]", 10000) + "\n");
  refused({"validate", "deep.toml"}, {"deep.toml:1", "TOML syntax error", "nested"});
}

TEST_F(Catalogue, InlineTablesNestedTenThousandDeep) {
  experiment("deep.toml", "x = " + repeated("{a=", 10000) + "1" + repeated("}", 10000) + "\n");
  refused({"validate", "deep.toml"}, {"deep.toml:1", "TOML syntax error", "nested"});
}

TEST_F(Catalogue, TableHeadersNestedFortyDeep) {
  experiment("deep.toml", "[" + std::string("t") + repeated(".t", 40) + "]\nx = 1\n");
  refused({"validate", "deep.toml"}, {"deep.toml:1", "nests more than 32 levels"});
}

TEST_F(Catalogue, SetKeyOfTenThousandSegments) {
  refused({"validate", "tiny.toml", "--set", "a" + repeated(".a", 10000) + "=1"},
          {"<command line>", "10001 segments", "at most 32"});
}

TEST_F(Catalogue, SetValueNestedFortyDeep) {
  refused({"validate", "tiny.toml", "--set", "teacher.x=" + repeated("{a=", 40) + "1" + repeated("}", 40)},
          {"<command line>", "nests more than 32 levels"});
}

TEST_F(Catalogue, TomlSyntaxError) {
  experiment("bad.toml", "[experiment]\nname = \"x\"\nseed = = 3\n");
  refused({"validate", "bad.toml"}, {"bad.toml:3", "TOML syntax error"});
}

TEST_F(Catalogue, DuplicateKey) {
  experiment("bad.toml", "[experiment]\nname = \"x\"\nname = \"y\"\n");
  refused({"validate", "bad.toml"}, {"bad.toml:3", "TOML syntax error"});
}

TEST_F(Catalogue, ExperimentFileIsAFolder) {
  fs::create_directory(lab() / "folder.toml");
  refused({"validate", "folder.toml"}, {"folder.toml", "directory"});
}

TEST_F(Catalogue, ExperimentFileIsADevice) {
  refused({"validate", "/dev/zero"}, {"/dev/zero", "is not a regular file"});
}

TEST_F(Catalogue, ExperimentFileOfFiveMegabytes) {
  experiment("huge.toml", repeated("# a comment line that goes on and on and on and on and on and on\n", 80000));
  refused({"validate", "huge.toml"}, {"huge.toml", "an experiment file is a few kB"});
}

TEST_F(Catalogue, EmptyExperimentFile) {
  experiment("empty.toml", "");
  refused({"validate", "empty.toml"}, {"empty.toml", "[experiment]"});
}

TEST_F(Catalogue, BinaryGarbageAsExperimentFile) {
  experiment("garbage.toml", std::string("\x7f" "ELF\x02\x01\x01\0\0\xff\xfe\x80\x81", 15));
  refused({"validate", "garbage.toml"}, {"garbage.toml:1", "TOML syntax error"});
}

TEST_F(Catalogue, NulCharacterInAName) {
  experiment("nul.toml", tiny_file() + "\n[[sweep.variant]]\nname = \"a\\u0000b\"\n");
  refused({"validate", "nul.toml"}, {"nul.toml:", "sweep.variant.0.name", "control characters", "U+0000"});
}

TEST_F(Catalogue, NewlineInAStageName) {
  refused({"validate", "tiny.toml", "--set", "stage.0.name=\"d\\nm\""}, {"stage.0.name", "control characters"});
}

TEST_F(Catalogue, EmptyExperimentName) {
  refused({"validate", "tiny.toml", "--set", "experiment.name=\"\""}, {"experiment.name", "must not be empty"});
}

TEST_F(Catalogue, InfiniteLearningRate) {
  refused({"validate", "tiny.toml", "--set", "stage.0.lr=inf"}, {"stage.0.lr", "must be a finite number, got inf"});
}

TEST_F(Catalogue, NaNLossWeight) {
  refused({"validate", "tiny.toml", "--set", "stage.0.loss.0.weight=nan"},
          {"stage.0.loss.0.weight", "must be a finite number, got nan"});
}

TEST_F(Catalogue, InfinitePluginKey) {
  experiment("inf.toml", tiny_file() + "\n");
  refused({"validate", "inf.toml", "--set", "teacher.sigma_max=inf"},
          {"teacher.sigma_max", "must be a finite number, got inf"});
}

TEST_F(Catalogue, AMillionThreads) {
  refused({"validate", "tiny.toml", "--set", "experiment.threads=1000000"},
          {"experiment.threads", "must be <= 1024, got 1000000"});
}

TEST_F(Catalogue, LargestBatchSize) {
  refused({"validate", "tiny.toml", "--set", "budget.batch_size=9223372036854775807"},
          {"budget.batch_size", "must be <= 16777216"});
}

TEST_F(Catalogue, NegativeSteps) {
  refused({"validate", "tiny.toml", "--set", "stage.0.steps=-1"}, {"stage.0.steps", "must be >= 0"});
}

TEST_F(Catalogue, UpdateEveryZero) {
  refused({"validate", "tiny.toml", "--set", "stage.0.update_every=0"}, {"stage.0.update_every", "must be >= 1"});
}

TEST_F(Catalogue, NoEvaluationSamples) {
  refused({"validate", "tiny.toml", "--set", "evaluate.samples=0"}, {"evaluate.samples", "must be >= 1"});
}

TEST_F(Catalogue, TwoThousandStudents) {
  refused({"validate", "tiny.toml", "--set", "partition.k=2000"}, {"partition.k", "must be <= 1024"});
}

TEST_F(Catalogue, DateWhereANumberBelongs) {
  refused({"validate", "tiny.toml", "--set", "stage.0.lr=1979-05-27"}, {"stage.0.lr", "expected float, got date"});
}

TEST_F(Catalogue, MisspelledKey) {
  refused({"validate", "tiny.toml", "--set", "stage.0.lrr=0.1"}, {"stage.0.lrr", "lr"});
}

TEST_F(Catalogue, UnknownPlugin) {
  refused({"validate", "tiny.toml", "--set", "teacher.plugin=edm_mpl"}, {"teacher.plugin", "edm_mlp"});
}

TEST_F(Catalogue, PluginOfAnotherKind) {
  refused({"validate", "tiny.toml", "--set", "teacher.plugin=dm"}, {"teacher.plugin", "loss plugin"});
}

TEST_F(Catalogue, DuplicateVariantNames) {
  experiment("twice.toml", tiny_file() + "\n[[sweep.variant]]\nname = \"a\"\n[[sweep.variant]]\nname = \"a\"\n");
  refused({"validate", "twice.toml"}, {"twice.toml:", "duplicate variant name 'a'"});
}

TEST_F(Catalogue, OverrideOfSweepItself) {
  experiment("sweep.toml", tiny_file() + "\n[[sweep.variant]]\nname = \"a\"\nsweep.seeds = [1]\n");
  refused({"validate", "sweep.toml"}, {"sweep.toml:", "[sweep] cannot be overridden"});
}

TEST_F(Catalogue, SweepOfAMillionRuns) {
  experiment("million.toml", tiny_file() + "\n[sweep.grid]\n\"stage.0.steps\" = [" + [] {
    std::string values;
    for (int i = 1; i <= 1000; ++i) values += (i > 1 ? ", " : "") + std::to_string(i);
    return values + "]\n\"stage.0.warmup\" = [" + values + "]\n";
  }());
  refused({"validate", "million.toml"}, {"million.toml:", "more than 100000 runs"});
}

TEST_F(Catalogue, MissingPluginFolder) {
  experiment("folders.toml", "[experiment]\nname = \"x\"\nplugin_paths = [\"nowhere\"]\n");
  refused({"validate", "folders.toml"}, {"plugin folder", "nowhere", "does not exist"});
}

TEST_F(Catalogue, SetWithoutEquals) {
  refused({"validate", "tiny.toml", "--set", "teacher.steps"}, {"malformed override", "key=value"});
}

TEST_F(Catalogue, SetIndexPastTheEnd) {
  refused({"validate", "tiny.toml", "--set", "stage.5.steps=1"}, {"stage.5.steps", "past the end"});
}

TEST_F(Catalogue, OnlyAnUnknownVariant) {
  refused({"run", "tiny.toml", "--db", "results.db", "--only", "nope"}, {"--only nope", "no variant"});
}

// ---- databases -----------------------------------------------------------------------------------

TEST_F(Catalogue, DatabaseIsAFolder) {
  fs::create_directory(lab() / "db");
  refused({"results", "list", "--db", "db"}, {"db is a folder", "db/results.db"});
}

TEST_F(Catalogue, DatabaseIsDevNull) {
  refused({"run", "tiny.toml", "--db", "/dev/null"}, {"/dev/null is not a regular file"});
}

TEST_F(Catalogue, UnreadableDatabase) {
  fs::copy_file(db(), lab() / "private.db");
  fs::permissions(lab() / "private.db", fs::perms::none);
  refused({"results", "list", "--db", "private.db"}, {"private.db", "Permission denied"}, unprivileged());
}

TEST_F(Catalogue, DatabaseInAReadOnlyFolder) {
  fs::create_directory(lab() / "shelf");
  const fs::perms read_and_enter = fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                                   fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec;
  fs::permissions(lab() / "shelf", read_and_enter);
  refused({"run", "tiny.toml", "--db", "shelf/results.db"}, {"shelf", "is not writable"}, unprivileged());
}

TEST_F(Catalogue, QueryOfAMissingDatabase) {
  refused({"results", "list", "--db", "nowhere/results.db"}, {"no results database at nowhere/results.db"});
}

TEST_F(Catalogue, ForeignSqliteFileIsLeftUntouchedByQueries) {
  const std::string bytes = foreign_database("notes.db");
  refused({"results", "list", "--db", "notes.db"}, {"notes.db", "that msd did not make", "tables: notes"});
  expect_untouched("notes.db", bytes);
}

TEST_F(Catalogue, ForeignSqliteFileIsLeftUntouchedByRuns) {
  const std::string bytes = foreign_database("notes.db");
  refused({"run", "tiny.toml", "--db", "notes.db"}, {"notes.db", "that msd did not make"});
  expect_untouched("notes.db", bytes);
}

TEST_F(Catalogue, EmptyFileIsNotTakenOver) {
  write_text(file("empty.db"), "");
  refused({"run", "tiny.toml", "--db", "empty.db"}, {"empty.db is an empty file"});
  EXPECT_EQ(fs::file_size(file("empty.db")), 0u);
}

TEST_F(Catalogue, TextFileAsDatabase) {
  write_text(file("notes.txt"), "shopping list\n");
  refused({"results", "list", "--db", "notes.txt"}, {"notes.txt is not a SQLite database"});
  EXPECT_EQ(read_text(file("notes.txt")), "shopping list\n");
}

TEST_F(Catalogue, NegativeSchemaVersion) {
  fs::copy_file(db(), lab() / "negative.db");
  SQLite::Database(file("negative.db"), SQLite::OPEN_READWRITE).exec("PRAGMA user_version = -5");
  refused({"results", "list", "--db", "negative.db"}, {"negative.db has schema version -5"});
}

TEST_F(Catalogue, SchemaFromTheFuture) {
  fs::copy_file(db(), lab() / "future.db");
  SQLite::Database(file("future.db"), SQLite::OPEN_READWRITE).exec("PRAGMA user_version = 99");
  refused({"results", "list", "--db", "future.db"}, {"future.db", "schema version 99", "newer"});
}

TEST_F(Catalogue, DatabaseOfAnotherApplication) {
  {
    SQLite::Database other(file("other.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    other.exec("PRAGMA application_id = 42; CREATE TABLE runs (id)");
  }
  refused({"results", "list", "--db", "other.db"}, {"other.db", "another application (application_id 42)"});
}

TEST_F(Catalogue, DamagedDatabasePages) {
  fs::copy_file(db(), lab() / "damaged.db");
  // Every page but the first (the header, which still says SQLite) overwritten.
  const std::uintmax_t size = fs::file_size(file("damaged.db"));
  {
    std::fstream damaged(file("damaged.db"), std::ios::in | std::ios::out | std::ios::binary);
    damaged.seekp(4096);
    damaged << repeated("\xff\x13\x37\x42", static_cast<int>((size - 4096) / 4));
  }
  refused({"results", "list", "--db", "damaged.db"}, {"damaged.db", "malformed"});
}

TEST_F(Catalogue, MergeOfAForeignShard) {
  const std::string bytes = foreign_database("notes.db");
  refused({"results", "merge", "merged.db", "notes.db"}, {"notes.db", "that msd did not make"});
  expect_untouched("notes.db", bytes);
}

TEST_F(Catalogue, MergeIntoAForeignFile) {
  const std::string bytes = foreign_database("notes.db");
  refused({"results", "merge", "notes.db", "results.db"}, {"notes.db", "that msd did not make"});
  expect_untouched("notes.db", bytes);
}

// ---- results commands ----------------------------------------------------------------------------

TEST_F(Catalogue, RunIdThatOverflows) {
  refused({"results", "show", "99999999999999999999", "--db", "results.db"},
          {"expected a whole number from 1 to", "'99999999999999999999'"});
}

TEST_F(Catalogue, RunIdZero) {
  refused({"results", "show", "0", "--db", "results.db"}, {"expected a whole number from 1"});
}

TEST_F(Catalogue, UnknownRun) {
  refused({"results", "show", "12345", "--db", "results.db"}, {"12345"});
}

TEST_F(Catalogue, CompareByAnUnknownKey) {
  refused({"results", "compare", "catalogue", "--by", "partition.kk", "--metric", "swd", "--db", "results.db"},
          {"--by partition.kk", "did you mean 'partition.k'?"});
}

TEST_F(Catalogue, CompareAnUnknownMetric) {
  refused({"results", "compare", "catalogue", "--by", "partition.k", "--metric", "fid", "--db", "results.db"},
          {"--metric fid", "has metric 'fid'", "swd"});
}

TEST_F(Catalogue, CompareAtAnUnknownScope) {
  refused({"results", "compare", "catalogue", "--by", "partition.k", "--metric", "swd", "--scope", "student:9",
           "--db", "results.db"},
          {"--scope student:9", "student:0"});
}

TEST_F(Catalogue, CompareAnUnknownSweep) {
  refused({"results", "compare", "nosuch", "--by", "partition.k", "--metric", "swd", "--db", "results.db"},
          {"no sweep id or experiment name matches 'nosuch'"});
}

TEST_F(Catalogue, PlotAgainstAnUnknownKey) {
  refused({"results", "plot", "catalogue", "--x", "partition.kk", "--y", "swd", "--out", "p.png", "--db",
           "results.db"},
          {"partition.kk", "did you mean 'partition.k'?"});
}

TEST_F(Catalogue, FilterOfTenThousandParentheses) {
  refused({"results", "query", repeated("(", 10000) + "id = 1" + repeated(")", 10000), "--db", "results.db"},
          {"filter:1:17", "more than 16 levels deep"});
}

TEST_F(Catalogue, FilterOfThirtyThousandNots) {
  refused({"results", "query", repeated("not ", 30000) + "id = 1", "--db", "results.db"},
          {"filter:1:", "more than 16 levels deep"});
}

TEST_F(Catalogue, FilterOfThreeThousandAlternatives) {
  std::string filter = "id = 0";
  for (int i = 1; i < 3000; ++i) filter += " or id = " + std::to_string(i);
  refused({"results", "query", filter, "--db", "results.db"}, {"more than 256 comparisons", "in (...)"});
}

TEST_F(Catalogue, FilterWithAnUnknownField) {
  refused({"results", "query", "metric.swd < 1", "--db", "results.db"}, {"filter:1:1", "did you mean 'metrics.swd'"});
}

TEST_F(Catalogue, SqlThatWrites) {
  refused({"results", "sql", "DELETE FROM runs", "--db", "results.db"}, {"read-only"});
}

TEST_F(Catalogue, SqlOfTwoStatements) {
  refused({"results", "sql", "SELECT 1; SELECT 2", "--db", "results.db"}, {"one SQL statement at a time"});
}

TEST_F(Catalogue, SqlOfEndlessRowsStopsAtTheRowLimit) {
  accepted({"results", "sql", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
            "--db", "results.db", "--format", "csv"},
           {"stopped after 10000 rows"});
}

TEST_F(Catalogue, SqlThatSortsEndlessRowsStopsAtTheMemoryLimit) {
  refused({"results", "sql",
           "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c ORDER BY -x",
           "--db", "results.db"},
          {"held more than 1024 MiB"});
}

TEST_F(Catalogue, SqlThatCountsForeverStopsAtTheTimeLimit) {
  refused({"results", "sql", "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
           "--db", "results.db", "--timeout", "2"},
          {"ran longer than 2 s"});
}

TEST_F(Catalogue, SampleOfAnUnknownRun) {
  refused({"sample", "77", "--out", "s.npy", "--db", "results.db"}, {"no run with id 77"});
}

TEST_F(Catalogue, SampleATrillion) {
  refused({"sample", "1", "--n", "1000000000000", "--out", "s.npy", "--db", "results.db"},
          {"--n", "from 1 to 16777216"});
}

// ---- plugin libraries ----------------------------------------------------------------------------

TEST_F(Catalogue, TruncatedPluginLibrary) {
  fs::create_directory(lab() / "plugins");
  const fs::path original = fs::path(MSD_PLUGIN_DIR) / "libmsd_toy_metrics.so";
  const std::string bytes = read_text(original);
  write_text(lab() / "plugins" / "libmsd_copy.so", bytes.substr(0, bytes.size() / 3));
  refused({"--plugin-path", "plugins", "plugins", "list"}, {"libmsd_copy.so is not a whole shared library"});
}

TEST_F(Catalogue, TextFileNamedAsAPluginLibrary) {
  fs::create_directory(lab() / "plugins");
  write_text(lab() / "plugins" / "libmsd_notes.so", "not a library\n");
  refused({"--plugin-path", "plugins", "validate", "tiny.toml"}, {"libmsd_notes.so is not a shared library"});
}

TEST_F(Catalogue, MissingPluginPath) {
  refused({"--plugin-path", "nowhere", "plugins", "list"}, {"plugin folder", "nowhere does not exist"});
}

// ---- runs ------------------------------------------------------------------------------------------

TEST_F(Catalogue, StudentLossTurnsNaN) {
  run_fails({"stage.0.lr=1e30"}, {"student 0 of 2, dm, iteration", "is nan", "lower stage.0.lr"});
}

TEST_F(Catalogue, TeacherLossTurnsNaN) {
  run_fails({"teacher.lr=1e30", "teacher.steps=40"}, {"teacher, step", "the training loss is nan"});
}

TEST_F(Catalogue, DiskFullWhileTheTeacherIsCached) {
  // A write past 1 MiB fails with EFBIG, as a full disk's does with ENOSPC (SIGXFSZ ignored).
  const std::vector<std::string> one_mib{"/bin/bash", "-c", "trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\""};
  run_fails({"teacher.hidden=512", "teacher.steps=5"}, {"cannot write", "teachers/", "nothing was written"}, one_mib);
  for (const auto& entry : fs::recursive_directory_iterator(lab())) {
    EXPECT_THAT(entry.path().filename().string(), ::testing::Not(HasSubstr(".tmp"))) << entry.path();
  }
}

TEST_F(Catalogue, NetworkTooLargeForMemory) {
  // msd caps a CPU run's data memory at the machine's RAM, so that an allocation past it fails rather
  // than wake the OOM killer; a lower cap set here makes the 17 GB layer fail on any machine.
  const std::vector<std::string> four_gib{"/bin/bash", "-c", "ulimit -d 4194304; exec \"$0\" \"$@\""};
  run_fails({"teacher.hidden=65536"}, {"teacher 'edm_mlp'", "can't allocate memory"}, four_gib);
}

TEST_F(Catalogue, TruncatedTeacherCache) {
  for (const auto& entry : fs::directory_iterator(lab() / "cache" / "teachers")) {
    if (entry.path().extension() == ".pt") fs::resize_file(entry.path(), 3000);
  }
  run_fails({}, {"teachers/", "cannot be read", "the next run trains the teacher again"});
}

TEST_F(Catalogue, TruncatedStudentWeights) {
  fs::resize_file(lab() / "runs" / "run-1" / "student-0.pt", 1000);
  refused({"sample", "1", "--n", "10", "--out", "s.npy", "--db", "results.db"},
          {"student-0.pt cannot be read", "run its experiment again"});
}

TEST_F(Catalogue, TruncatedCheckpointOfAnInterruptedRun) {
  // A run that was interrupted, with a checkpoint cut short: the sweep that resumes it says which file.
  write_text(file("resume.toml"), tiny_file() + "\n[sweep]\nseeds = [7]\n");
  const RunResult first = run_msd({"sweep", "resume.toml", "--db", "results.db"}, lab(), 120);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const std::int64_t run = count_of(db(), "SELECT max(id) FROM runs");
  SQLite::Database(db().string(), SQLite::OPEN_READWRITE)
      .exec("UPDATE runs SET status = 'interrupted' WHERE id = " + std::to_string(run));
  write_text(lab() / "runs" / ("run-" + std::to_string(run)) / "checkpoint.pt", "PK\x03\x04 cut short");
  refused({"sweep", "resume.toml", "--db", "results.db"}, {"checkpoint.pt cannot be read", "delete it"});
  EXPECT_EQ(last_run().first, "failed");
}

TEST_F(Catalogue, CudaOnAMachineWithout) {
  refused({"run", "tiny.toml", "--db", "results.db", "--device", "cuda"},
          {"device cuda", "no CUDA device", "--device cpu"});
  EXPECT_EQ(count_of(db(), "SELECT count(*) FROM runs"), kLabRuns) << "a run that cannot start was recorded";
}

TEST_F(Catalogue, NoSweepWorkers) {
  refused({"sweep", "tiny.toml", "--db", "results.db", "--jobs", "0"},
          {"--jobs: expected a whole number from 1 to 1024, got '0'"});
}

TEST_F(Catalogue, NoStudentProcesses) {
  refused({"run", "tiny.toml", "--db", "results.db", "--student-jobs", "0"}, {"--student-jobs", "from 1 to 1024"});
}

TEST_F(Catalogue, SweepIndexPastTheEnd) {
  refused({"sweep", "tiny.toml", "--db", "results.db", "--index", "5"}, {"--index 5", "has 1 runs"});
}

TEST_F(Catalogue, MoreStudentsThanClasses) {
  run_fails({"partition.k=7"}, {"class_consecutive", "k = 7 exceeds num_classes = 5"});
}

TEST_F(Catalogue, RegressionWithoutTeacherPairs) {
  run_fails({"distill.pairs=0"}, {"distill.pairs = 0", "set distill.pairs > 0"});
}

// ---- the results folder moves -------------------------------------------------------------------

TEST_F(Catalogue, MovedResultsFolderStillSamples) {
  // The lab's files are moved away while the moved copy is sampled, so it cannot read them.
  fs::copy(lab(), dir_ / "moved", fs::copy_options::recursive);
  fs::rename(lab(), dir_ / "away");
  const RunResult sampled = run_msd({"sample", "1", "--n", "10", "--out", "s.npy", "--db", "results.db"},
                                    dir_ / "moved", 120);
  fs::rename(dir_ / "away", lab());
  expect_clean(sampled);
  EXPECT_EQ(sampled.exit_code, 0) << sampled.output;
}

TEST_F(Catalogue, CopiedResultsFolderReadsItsOwnFiles) {
  fs::copy(lab(), dir_ / "copy", fs::copy_options::recursive);
  // The original's student file is damaged: the copy must not read it.
  fs::resize_file(lab() / "runs" / "run-1" / "student-0.pt", 10);
  const RunResult sampled = run_msd({"sample", "1", "--n", "10", "--out", "s.npy", "--db", "results.db"},
                                    dir_ / "copy", 120);
  expect_clean(sampled);
  EXPECT_EQ(sampled.exit_code, 0) << sampled.output;
}

}  // namespace
}  // namespace msd_integration
