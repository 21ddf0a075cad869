// msd::results::merge_shards: gathering the databases that the tasks of a job array wrote.
#include "msd/results/merge.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "msd/results/store.h"
#include "temp_dir.h"

namespace msd::results {
namespace {

using testing::TempDir;

constexpr double kInf = std::numeric_limits<double>::infinity();

NewRun new_run(const std::string& experiment, const std::string& name, std::int64_t sweep_index) {
  NewRun run;
  run.experiment = experiment;
  run.name = name;
  run.config_text = "[partition]\nk = " + std::to_string(sweep_index + 1) + "\n";
  run.config_hash = "hash-" + name;
  run.seed = sweep_index;
  run.device = "cpu";
  run.sweep_id = "sweep-1";
  run.sweep_index = sweep_index;
  run.params = {{"partition.k", std::to_string(sweep_index + 1)}, {"experiment.seed", "0"}};
  run.coords = {{"partition.k", std::to_string(sweep_index + 1)}};
  return run;
}

/// Writes a shard with one finished run per name, each with params, coords, a tag, metrics and an
/// artifact. Returns the runs' ids in the shard.
std::vector<std::int64_t> write_shard(const std::string& path, const std::string& experiment,
                                      const std::vector<std::string>& names, std::int64_t first_index = 0) {
  Store store(path);
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::int64_t index = first_index + static_cast<std::int64_t>(i);
    const std::int64_t id = store.begin_run(new_run(experiment, names[i], index));
    store.log_metrics(id, {{"loss", 10, 0.5 + static_cast<double>(index), "student:0"},
                           {"swd", 0, 0.25 * static_cast<double>(index + 1), ""}});
    store.set_tag(id, "node", "node-" + std::to_string(index));
    store.add_artifact(id, {"checkpoint", "/results/runs/" + names[i] + "/student_0.pt"});
    store.finish_run(id, RunStatus::finished);
    ids.push_back(id);
  }
  return ids;
}

/// The whole content of a database without its ids, one line per row, runs named by uuid: two
/// databases with the same lines hold the same runs.
std::string content(const std::string& path) {
  const Store store(path, Store::Mode::read_only);
  const char* queries[] = {
      "SELECT name FROM experiments ORDER BY name",
      "SELECT r.uuid, e.name, r.name, r.status, r.config_text, r.config_hash, r.seed, r.git_commit, "
      "r.git_dirty, r.host, r.device, r.pid, r.started_at, r.ended_at, r.heartbeat_at, r.error, "
      "r.sweep_id, r.sweep_index, r.attempts FROM runs r JOIN experiments e ON e.id = r.experiment_id "
      "ORDER BY r.uuid",
      "SELECT r.uuid, p.key, p.value FROM params p JOIN runs r ON r.id = p.run_id ORDER BY 1, 2",
      "SELECT r.uuid, c.key, c.value FROM sweep_coords c JOIN runs r ON r.id = c.run_id ORDER BY 1, 2",
      "SELECT r.uuid, t.key, t.value FROM tags t JOIN runs r ON r.id = t.run_id ORDER BY 1, 2",
      "SELECT r.uuid, m.scope, m.name, m.step, m.value, m.non_finite FROM metrics m "
      "JOIN runs r ON r.id = m.run_id ORDER BY 1, 2, 3, 4",
      "SELECT r.uuid, a.kind, a.path, a.created_at FROM artifacts a JOIN runs r ON r.id = a.run_id "
      "ORDER BY 1, 2, 3",
  };
  std::string text;
  for (const char* sql : queries) {
    for (const auto& row : store.query(sql).rows) {
      for (const QueryValue& cell : row) text += cell.text + "|";
      text += "\n";
    }
    text += "--\n";
  }
  return text;
}

std::int64_t count(const std::string& path, const std::string& table) {
  const Store store(path, Store::Mode::read_only);
  return static_cast<std::int64_t>(store.query("SELECT count(*) FROM " + table).rows.at(0).at(0).real);
}

std::string merge_errors(const std::vector<ShardMerge>& merges) {
  std::string errors;
  for (const ShardMerge& merge : merges) errors += merge.error;
  return errors;
}

TEST(Merge, MergingTwiceChangesNothing) {
  TempDir tmp;
  const std::string a = tmp.file("shard-0.db"), b = tmp.file("shard-1.db"), out = tmp.file("out/results.db");
  write_shard(a, "tiny", {"k1", "k2"});
  write_shard(b, "tiny", {"k3"}, 2);

  const std::vector<ShardMerge> first = merge_shards(out, {a, b});
  ASSERT_EQ(first.size(), 2u);
  ASSERT_EQ(merge_errors(first), "");
  EXPECT_EQ(first[0].runs_added, 2);
  EXPECT_EQ(first[1].runs_added, 1);
  const std::string once = content(out);
  EXPECT_EQ(count(out, "runs"), 3);
  EXPECT_EQ(count(out, "metrics"), 6);
  EXPECT_EQ(count(out, "params"), 6);
  EXPECT_EQ(count(out, "sweep_coords"), 3);
  EXPECT_EQ(count(out, "tags"), 3);
  EXPECT_EQ(count(out, "artifacts"), 3);

  const std::vector<ShardMerge> second = merge_shards(out, {a, b});
  ASSERT_EQ(merge_errors(second), "");
  EXPECT_EQ(second[0].runs_added + second[0].runs_updated, 0);
  EXPECT_EQ(second[1].runs_added + second[1].runs_updated, 0);
  EXPECT_EQ(second[0].runs_unchanged + second[1].runs_unchanged, 3);
  EXPECT_EQ(content(out), once);
  EXPECT_EQ(count(out, "runs"), 3);
  EXPECT_EQ(count(out, "metrics"), 6);

  const std::string report = format_merge_report(out, second);
  EXPECT_NE(report.find("0 runs added, 0 updated, 3 unchanged from 2 shards"), std::string::npos) << report;
}

TEST(Merge, ReplacesARunWhoseShardCopyChanged) {
  TempDir tmp;
  const std::string shard = tmp.file("shard.db"), out = tmp.file("out.db");
  std::int64_t id = 0;
  {
    Store store(shard);
    id = store.begin_run(new_run("tiny", "k1", 0));
    store.log_metrics(id, {{"loss", 1, 2.0, ""}});
  }
  ASSERT_EQ(merge_errors(merge_shards(out, {shard})), "");
  const std::vector<RunRecord> before = Store(out, Store::Mode::read_only).list_runs();
  ASSERT_EQ(before.size(), 1u);
  EXPECT_EQ(before[0].status, RunStatus::running);

  {
    Store store(shard);
    store.log_metrics(id, {{"loss", 2, 1.0, ""}, {"swd", 0, 0.1, ""}});
    store.finish_run(id, RunStatus::finished);
  }
  const std::vector<ShardMerge> merges = merge_shards(out, {shard});
  ASSERT_EQ(merge_errors(merges), "");
  EXPECT_EQ(merges[0].runs_updated, 1);
  EXPECT_EQ(merges[0].runs_added, 0);

  const Store merged(out, Store::Mode::read_only);
  const std::vector<RunRecord> after = merged.list_runs();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].id, before[0].id) << "a replaced run keeps OUT's id";
  EXPECT_EQ(after[0].uuid, before[0].uuid);
  EXPECT_EQ(after[0].status, RunStatus::finished);
  EXPECT_EQ(merged.metrics(after[0].id).size(), 3u);
  EXPECT_EQ(content(out), content(shard));
}

TEST(Merge, ShardsOfTheSameExperimentShareItsRow) {
  TempDir tmp;
  const std::string a = tmp.file("a.db"), b = tmp.file("b.db"), c = tmp.file("c.db"), out = tmp.file("out.db");
  write_shard(a, "tiny", {"k1"});
  write_shard(b, "tiny", {"k2"}, 1);
  write_shard(c, "other", {"k1"});
  ASSERT_EQ(merge_errors(merge_shards(out, {a, b, c})), "");
  const Store merged(out, Store::Mode::read_only);
  EXPECT_EQ(count(out, "experiments"), 2);
  EXPECT_EQ(merged.list_runs("tiny").size(), 2u);
  EXPECT_EQ(merged.list_runs("other").size(), 1u);
}

TEST(Merge, RemapsIdsToTheOutputsOwn) {
  TempDir tmp;
  const std::string a = tmp.file("a.db"), b = tmp.file("b.db"), out = tmp.file("out.db");
  // Both shards number their run 1; OUT already has a run 1 of its own.
  ASSERT_EQ(write_shard(a, "tiny", {"k1"}), std::vector<std::int64_t>{1});
  ASSERT_EQ(write_shard(b, "tiny", {"k2"}, 1), std::vector<std::int64_t>{1});
  {
    Store store(out);
    const std::int64_t own = store.begin_run(new_run("local", "mine", 0));
    store.log_metrics(own, {{"swd", 0, 9.0, ""}});
    store.finish_run(own, RunStatus::finished);
  }
  ASSERT_EQ(merge_errors(merge_shards(out, {a, b})), "");

  const Store merged(out, Store::Mode::read_only);
  const std::vector<RunRecord> runs = merged.list_runs();
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].name, "mine");
  EXPECT_EQ(merged.final_metrics(1).at(0).value, 9.0) << "OUT's own run keeps its rows";
  for (std::size_t i = 1; i < 3; ++i) {
    const RunRecord& run = runs[i];
    EXPECT_EQ(run.id, static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(run.name, i == 1 ? "k1" : "k2");
    const std::vector<MetricRow> metrics = merged.metrics(run.id);
    ASSERT_EQ(metrics.size(), 2u);
    EXPECT_EQ(metrics[0].name, "swd");  // scope "" sorts first
    EXPECT_EQ(metrics[0].value, 0.25 * static_cast<double>(i));
    EXPECT_EQ(merged.params(run.id).size(), 2u);
    EXPECT_EQ(merged.coords(run.id).size(), 1u);
    EXPECT_EQ(merged.tags(run.id).at(0).second, "node-" + std::to_string(i - 1));
    EXPECT_EQ(merged.artifacts(run.id).size(), 1u);
  }
}

TEST(Merge, NonFiniteMetricsSurvive) {
  TempDir tmp;
  const std::string shard = tmp.file("shard.db"), out = tmp.file("out.db");
  {
    Store store(shard);
    const std::int64_t id = store.begin_run(new_run("tiny", "k1", 0));
    store.log_metrics(id, {{"a", 0, std::nan(""), ""}, {"b", 0, kInf, ""}, {"c", 0, -kInf, ""}, {"d", 0, 1.5, ""}});
    store.finish_run(id, RunStatus::failed, "diverged");
  }
  ASSERT_EQ(merge_errors(merge_shards(out, {shard})), "");
  ASSERT_EQ(merge_errors(merge_shards(out, {shard})), "");
  const Store merged(out, Store::Mode::read_only);
  const std::vector<MetricRow> metrics = merged.metrics(1);
  ASSERT_EQ(metrics.size(), 4u);
  EXPECT_TRUE(std::isnan(metrics[0].value));
  EXPECT_EQ(metrics[1].value, kInf);
  EXPECT_EQ(metrics[2].value, -kInf);
  EXPECT_EQ(metrics[3].value, 1.5);
  EXPECT_EQ(merged.find_run(1)->error, "diverged");
}

TEST(Merge, ABadShardIsNamedAndLeavesTheOutputAsItWas) {
  TempDir tmp;
  const std::string good = tmp.file("good.db"), out = tmp.file("out.db");
  const std::string missing = tmp.file("missing.db"), corrupt = tmp.file("corrupt.db");
  const std::string old_schema = tmp.file("old.db"), half_bad = tmp.file("half_bad.db");
  write_shard(good, "tiny", {"k1"});
  std::ofstream(corrupt) << "this is not an SQLite database, only text long enough to have a header\n";
  write_shard(old_schema, "tiny", {"k9"}, 9);
  SQLite::Database(old_schema, SQLite::OPEN_READWRITE).exec("PRAGMA user_version = 1");
  // Its first run is fine, its second has lost its uuid: nothing of this shard may land in OUT.
  write_shard(half_bad, "tiny", {"k5", "k6"}, 5);
  SQLite::Database(half_bad, SQLite::OPEN_READWRITE).exec("UPDATE runs SET uuid = NULL WHERE id = 2");

  const std::vector<ShardMerge> merges = merge_shards(out, {missing, good, corrupt, old_schema, half_bad});
  ASSERT_EQ(merges.size(), 5u);
  EXPECT_NE(merges[0].error.find(missing), std::string::npos) << merges[0].error;
  EXPECT_NE(merges[0].error.find("does not exist"), std::string::npos) << merges[0].error;
  EXPECT_EQ(merges[1].error, "");
  EXPECT_EQ(merges[1].runs_added, 1);
  EXPECT_NE(merges[2].error.find(corrupt), std::string::npos) << merges[2].error;
  EXPECT_NE(merges[3].error.find(old_schema), std::string::npos) << merges[3].error;
  EXPECT_NE(merges[3].error.find("schema version 1"), std::string::npos) << merges[3].error;
  EXPECT_NE(merges[4].error.find(half_bad), std::string::npos) << merges[4].error;
  EXPECT_NE(merges[4].error.find("run 2 has no uuid"), std::string::npos) << merges[4].error;
  EXPECT_EQ(merges[4].runs_added, 0);

  EXPECT_EQ(content(out), content(good)) << "only the good shard's rows are in OUT";
  const std::string report = format_merge_report(out, merges);
  EXPECT_NE(report.find("1 runs added, 0 updated, 0 unchanged from 1 shard; 4 shards failed"), std::string::npos)
      << report;
}

}  // namespace
}  // namespace msd::results
