#include "msd/results/compare.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace msd::results {
namespace {

using testing::TempDir;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kSweep = "a1b2c3d4e5f6";

std::int64_t add_run(Store& store, const std::string& experiment, const std::string& sweep,
                     const std::string& k, std::int64_t seed,
                     const std::vector<std::pair<std::int64_t, double>>& swd,
                     RunStatus status = RunStatus::finished) {
  NewRun run;
  run.experiment = experiment;
  run.name = "k" + k + "-s" + std::to_string(seed);
  run.config_text = "seed = " + std::to_string(seed) + "\n";
  run.config_hash = run.name;
  run.seed = seed;
  run.host = "test";
  run.device = "cpu";
  run.sweep_id = sweep;
  run.sweep_index = seed;
  if (!k.empty()) run.params = {{"partition.k", k}, {"seed", std::to_string(seed)}};
  const std::int64_t id = store.begin_run(run);
  std::vector<MetricRow> rows;
  for (const auto& [step, value] : swd) rows.push_back({"swd", step, value, ""});
  // A per-student value that a whole-model comparison must not pick up.
  rows.push_back({"swd", 0, 500.0, "student:0"});
  store.log_metrics(id, rows);
  if (status != RunStatus::running) store.finish_run(id, status);
  return id;
}

// partition.k in {1, 2, 4} x seeds {0, 1, 2}: swd = k + {0, 0.1, 0.3}, so every group has mean
// k + 0.4/3 and sample std sqrt(((0.4/3)^2 + (0.1/3)^2 + (0.5/3)^2) / 2) = sqrt(0.07 / 3).
// Besides: k = 10 once (final value 10 at step 5, 99 at step 0), a NaN run for k = 2, a failed
// and a running run for k = 1, a run without partition.k, a run of the same experiment outside
// the sweep, and another experiment's sweep sharing the prefix "a1b2".
class CompareTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(path);
    const double extra[] = {0.0, 0.1, 0.3};
    for (const char* k : {"4", "1", "2"}) {
      for (int seed = 0; seed < 3; ++seed) {
        add_run(store, "kstudy", kSweep, k, seed, {{0, std::stod(k) + extra[seed]}});
      }
    }
    add_run(store, "kstudy", kSweep, "10", 0, {{0, 99.0}, {5, 10.0}});
    add_run(store, "kstudy", kSweep, "2", 3, {{0, kNaN}});
    add_run(store, "kstudy", kSweep, "1", 4, {{0, 1000.0}}, RunStatus::failed);
    add_run(store, "kstudy", kSweep, "1", 5, {{0, 1000.0}}, RunStatus::running);
    add_run(store, "kstudy", kSweep, "", 6, {{0, 7.0}});
    add_run(store, "kstudy", "", "4", 7, {{0, 100.0}});
    add_run(store, "other", "a1b2ffff", "1", 0, {{0, 5.0}});
  }

  ComparisonTable compare(const std::string& selection, std::vector<std::string> by = {"partition.k"},
                          std::vector<std::string> metrics = {"swd"}) {
    Store store(path, Store::Mode::read_only);
    return compare_runs(store, {selection, std::move(by), std::move(metrics), ""});
  }

  TempDir dir;
  std::string path = dir.file("results.db");
};

TEST_F(CompareTest, GroupsMeansStdAndCounts) {
  const ComparisonTable table = compare(kSweep);
  EXPECT_EQ(table.description, std::string("sweep ") + kSweep);
  ASSERT_EQ(table.rows.size(), 5u);
  // Numeric order, "10" after "4", and the run without the key ("-") last.
  const std::vector<std::string> order = {"1", "2", "4", "10", "-"};
  for (std::size_t i = 0; i < order.size(); ++i) {
    ASSERT_EQ(table.rows[i].by.size(), 1u);
    EXPECT_EQ(table.rows[i].by[0], order[i]);
  }
  const double expected_std = std::sqrt(0.07 / 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const double k = std::stod(order[i]);
    const MetricSummary& swd = table.rows[i].metrics.at(0);
    EXPECT_EQ(swd.n, 3u) << "k=" << k;
    EXPECT_NEAR(swd.mean, k + 0.4 / 3, 1e-12) << "k=" << k;
    EXPECT_NEAR(swd.std, expected_std, 1e-12) << "k=" << k;
  }
  // Only finished runs: the failed and running k=1 runs (swd 1000) are left out.
  EXPECT_EQ(table.rows[0].runs, 3u);
  // The NaN run is counted apart.
  EXPECT_EQ(table.rows[1].runs, 4u);
  EXPECT_EQ(table.rows[1].metrics[0].non_finite, 1u);
  EXPECT_EQ(table.rows[0].metrics[0].non_finite, 0u);
  // Final value (highest step), and no std for a single run.
  EXPECT_EQ(table.rows[3].metrics[0].n, 1u);
  EXPECT_DOUBLE_EQ(table.rows[3].metrics[0].mean, 10.0);
  EXPECT_TRUE(std::isnan(table.rows[3].metrics[0].std));
  EXPECT_DOUBLE_EQ(table.rows[4].metrics[0].mean, 7.0);
}

TEST_F(CompareTest, ScopeSelectsOtherRows) {
  Store store(path, Store::Mode::read_only);
  const ComparisonTable table = compare_runs(store, {kSweep, {"partition.k"}, {"swd"}, "student:0"});
  ASSERT_FALSE(table.rows.empty());
  EXPECT_DOUBLE_EQ(table.rows[0].metrics[0].mean, 500.0);
  EXPECT_DOUBLE_EQ(table.rows[0].metrics[0].std, 0.0);
}

TEST_F(CompareTest, ByValueOrdering) {
  EXPECT_TRUE(by_value_less("1", "2"));
  EXPECT_TRUE(by_value_less("4", "10"));
  EXPECT_FALSE(by_value_less("10", "4"));
  EXPECT_TRUE(by_value_less("-1.5", "0.25"));
  EXPECT_TRUE(by_value_less("10", "\"abc\""));
  EXPECT_TRUE(by_value_less("\"a\"", "\"b\""));
  EXPECT_FALSE(by_value_less("-", "3"));
  // Text in natural order.
  EXPECT_TRUE(by_value_less("k2_s600", "k2_s1200"));
  EXPECT_TRUE(by_value_less("k2_s1200", "k4_s300"));
  EXPECT_TRUE(by_value_less("n8", "n16_x"));
  EXPECT_TRUE(by_value_less("a", "a1"));
  EXPECT_FALSE(by_value_less("a1", "a1"));
  EXPECT_TRUE(by_value_less("a01", "a1"));  // equal values: as written
  EXPECT_FALSE(by_value_less("a1", "a01"));
}

// --by variant: a variant's seeds (its run names less the brackets) form one row.
TEST(CompareVariants, GroupByTheRunNameWithoutItsCoordinates) {
  TempDir dir;
  const std::string path = dir.file("results.db");
  {
    Store store(path);
    int index = 0;
    for (const char* variant : {"k4_s1200", "k4_s300", "teacher"}) {
      for (int seed = 0; seed < 2; ++seed) {
        NewRun run;
        run.experiment = "study";
        run.name = std::string(variant) + "[seed=" + std::to_string(seed) + "]";
        run.config_text = run.name;
        run.config_hash = run.name;
        run.seed = seed;
        run.sweep_id = kSweep;
        run.sweep_index = index++;
        run.params = {{"seed", std::to_string(seed)}};
        const std::int64_t id = store.begin_run(run);
        store.log_metrics(id, {{"fd", 0, 1.0 + seed, ""}});
        store.finish_run(id, RunStatus::finished);
      }
    }
  }
  Store store(path, Store::Mode::read_only);
  const ComparisonTable table = compare_runs(store, {kSweep, {kVariantKey}, {"fd"}, ""});
  ASSERT_EQ(table.rows.size(), 3u);
  EXPECT_EQ(table.rows[0].by, std::vector<std::string>{"k4_s300"});
  EXPECT_EQ(table.rows[1].by, std::vector<std::string>{"k4_s1200"});
  EXPECT_EQ(table.rows[2].by, std::vector<std::string>{"teacher"});
  for (const ComparisonRow& row : table.rows) {
    EXPECT_EQ(row.metrics[0].n, 2u);
    EXPECT_DOUBLE_EQ(row.metrics[0].mean, 1.5);
  }
  EXPECT_EQ(variant_of("plain"), "plain");
}

// --against: each run minus the baseline group's run of the same seed. swd = k + extra[seed], so
// every difference from k = 1 is exactly k - 1, with no spread, where the unpaired std is 0.153.
TEST_F(CompareTest, AgainstABaselinePairsRunsBySeed) {
  Store store(path, Store::Mode::read_only);
  CompareRequest request{kSweep, {"partition.k"}, {"swd"}, ""};
  request.against = {"1"};
  const ComparisonTable table = compare_runs(store, request);
  ASSERT_EQ(table.rows.size(), 5u);
  for (std::size_t i = 0; i < 3; ++i) {
    const double k = std::stod(table.rows[i].by[0]);
    const MetricSummary& swd = table.rows[i].metrics.at(0);
    EXPECT_EQ(swd.n, 3u) << "k=" << k;
    EXPECT_NEAR(swd.mean, k - 1, 1e-12) << "k=" << k;
    EXPECT_NEAR(swd.std, 0.0, 1e-12) << "k=" << k;
  }
  // k = 2's NaN run has seed 3, which the baseline lacks: left out, not counted as non-finite.
  EXPECT_EQ(table.rows[1].runs, 3u);
  EXPECT_EQ(table.rows[1].metrics[0].non_finite, 0u);
  EXPECT_DOUBLE_EQ(table.rows[3].metrics[0].mean, 9.0);  // k = 10, seed 0: 10 - 1
  EXPECT_EQ(table.rows[4].runs, 0u);                     // no partition.k, seed 6: no partner

  const std::string markdown = format_comparison(table, OutputFormat::markdown);
  EXPECT_NE(markdown.find("| swd - 1 |"), std::string::npos) << markdown;
  EXPECT_NE(markdown.find("minus those of 1's run of the same seed"), std::string::npos) << markdown;
  EXPECT_NE(format_comparison(table, OutputFormat::csv).find("swd_minus_baseline_mean"), std::string::npos);
}

TEST_F(CompareTest, AgainstNeedsOneGroupWithOneRunASeed) {
  Store store(path, Store::Mode::read_only);
  const auto message = [&](std::vector<std::string> by, std::vector<std::string> against) {
    CompareRequest request{kSweep, std::move(by), {"swd"}, ""};
    request.against = std::move(against);
    try {
      compare_runs(store, request);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message({"partition.k"}, {"3"}).find("--against 3: no finished run of sweep"), std::string::npos);
  EXPECT_NE(message({"partition.k"}, {"3"}).find("they have 1, 2, 4, 10, -"), std::string::npos);
  EXPECT_NE(message({"partition.k"}, {"1", "2"}).find("2 values for 1 --by keys"), std::string::npos);
  // Grouped by seed, the group of seed 0 holds the runs of every k.
  EXPECT_NE(message({"seed"}, {"0"}).find("more than one run of seed 0"), std::string::npos);
}

TEST_F(CompareTest, SweepPrefixes) {
  EXPECT_EQ(compare("a1b2c").description, std::string("sweep ") + kSweep);
  EXPECT_EQ(compare("a1b2f").description, "sweep a1b2ffff");
  try {
    compare("a1b2");
    FAIL() << "an ambiguous prefix must fail";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(kSweep), std::string::npos) << message;
    EXPECT_NE(message.find("a1b2ffff"), std::string::npos) << message;
  }
  try {
    compare("zzzz");
    FAIL() << "an unknown prefix must fail";
  } catch (const std::runtime_error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("zzzz"), std::string::npos) << message;
    EXPECT_NE(message.find(kSweep), std::string::npos) << message;
    EXPECT_NE(message.find("kstudy"), std::string::npos) << message;
  }
  // Fewer than 4 characters is never a prefix.
  EXPECT_THROW(compare("a1b"), std::runtime_error);
}

TEST_F(CompareTest, ExperimentNameTakesAllItsFinishedRuns) {
  const ComparisonTable table = compare("kstudy");
  EXPECT_EQ(table.description, "experiment kstudy");
  ASSERT_EQ(table.rows.size(), 5u);
  ASSERT_EQ(table.rows[2].by[0], "4");
  EXPECT_EQ(table.rows[2].metrics[0].n, 4u);  // the run outside the sweep counts too
  EXPECT_NEAR(table.rows[2].metrics[0].mean, (4 + 4.1 + 4.3 + 100) / 4, 1e-12);
}

TEST_F(CompareTest, SeveralKeysAndMetrics) {
  const ComparisonTable table = compare(kSweep, {"partition.k", "seed"}, {"swd", "swd"});
  ASSERT_EQ(table.rows.size(), 12u);  // 9 + k10 + NaN run + the run without keys, ("-", "-")
  EXPECT_EQ(table.rows[0].by, (std::vector<std::string>{"1", "0"}));
  EXPECT_EQ(table.rows[0].metrics.size(), 2u);
  EXPECT_EQ(table.rows[0].metrics[1].n, table.rows[0].metrics[0].n);
}

// A key, metric or scope that no selected run has is a typo: an error with a suggestion, not a
// table of "-".
TEST_F(CompareTest, UnknownKeysAreRefused) {
  const auto error_of = [&](const std::vector<std::string>& by, const std::vector<std::string>& metrics,
                            const std::string& scope) {
    try {
      compare_runs(Store(path, Store::Mode::read_only), {kSweep, by, metrics, scope});
    } catch (const std::runtime_error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  const std::string by = error_of({"partition.kk"}, {"swd"}, "");
  EXPECT_NE(by.find("--by partition.kk"), std::string::npos) << by;
  EXPECT_NE(by.find("did you mean 'partition.k'?"), std::string::npos) << by;
  const std::string metric = error_of({"partition.k"}, {"sdw"}, "");
  EXPECT_NE(metric.find("--metric sdw"), std::string::npos) << metric;
  EXPECT_NE(metric.find("they have swd"), std::string::npos) << metric;
  const std::string scope = error_of({"partition.k"}, {"swd"}, "student:9");
  EXPECT_NE(scope.find("--scope student:9"), std::string::npos) << scope;
  EXPECT_NE(scope.find("(whole model)"), std::string::npos) << scope;
}

TEST_F(CompareTest, NoInjectionThroughArguments) {
  const std::size_t groups = compare(kSweep).rows.size();
  try {
    compare(kSweep, {"x' OR 1=1 --"}, {"swd' OR '1'='1"});
    FAIL() << "an unknown key must be refused";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("'x' OR 1=1 --'"), std::string::npos) << error.what();
  }
  EXPECT_EQ(compare(kSweep).rows.size(), groups);
  EXPECT_THROW(compare("kstudy' OR 1=1 --"), std::runtime_error);
  EXPECT_THROW(compare("' OR ''='"), std::runtime_error);
}

TEST_F(CompareTest, FormatShapes) {
  const ComparisonTable table = compare(kSweep);
  const std::string text = format_comparison(table, OutputFormat::table);
  EXPECT_NE(text.find("1.133 ± 0.1528 (3)"), std::string::npos) << text;
  EXPECT_NE(text.find("(1)"), std::string::npos) << text;
  EXPECT_NE(text.find("+1 non-finite"), std::string::npos) << text;

  const std::string csv = format_comparison(table, OutputFormat::csv);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "partition.k,runs,swd_mean,swd_std,swd_n,swd_non_finite");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 6);
  EXPECT_NE(csv.find("\n10,1,10,,1,0\n"), std::string::npos) << csv;

  const std::string json = format_comparison(table, OutputFormat::json);
  EXPECT_EQ(json.front(), '[');
  EXPECT_EQ(json.substr(json.size() - 2), "]\n");
  EXPECT_EQ(std::count(json.begin(), json.end(), '{'), std::count(json.begin(), json.end(), '}'));
  EXPECT_NE(json.find("\"partition.k\": \"10\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"std\": null"), std::string::npos) << json;
  EXPECT_EQ(json.find("nan"), std::string::npos) << json;

  const std::string markdown = format_comparison(table, OutputFormat::markdown);
  EXPECT_EQ(markdown.substr(0, markdown.find('\n')), "| partition.k | runs | swd |");
  EXPECT_NE(markdown.find("\n| --- | --- | --- |\n"), std::string::npos) << markdown;

  EXPECT_EQ(output_format_from_string("markdown"), OutputFormat::markdown);
  EXPECT_THROW(output_format_from_string("xml"), std::invalid_argument);
}

TEST_F(CompareTest, QuotingHelpers) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
  EXPECT_EQ(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
}

TEST_F(CompareTest, SqlSelectReturnsRows) {
  const Store store(path, Store::Mode::read_only);
  const QueryResult result = store.query(
      "SELECT name, value, step FROM metric_values WHERE scope = '' AND run = 'k10-s0' ORDER BY step");
  EXPECT_EQ(result.columns, (std::vector<std::string>{"name", "value", "step"}));
  ASSERT_EQ(result.rows.size(), 2u);
  EXPECT_EQ(result.rows[1][0].text, "swd");
  EXPECT_EQ(result.rows[1][1].type, QueryValue::Type::real);
  EXPECT_DOUBLE_EQ(result.rows[1][1].real, 10.0);
  EXPECT_EQ(result.rows[1][2].text, "5");

  const QueryResult precise = store.query("SELECT 0.1 AS x, NULL AS y, 'it''s' AS z");
  const std::string csv = format_query_result(precise, OutputFormat::csv);
  EXPECT_EQ(csv, "x,y,z\n0.10000000000000001,,it's\n");
  const std::string table = format_query_result(precise, OutputFormat::table);
  EXPECT_NE(table.find("0.1 "), std::string::npos) << table;
  EXPECT_EQ(format_query_result(precise, OutputFormat::json),
            "[\n  {\"x\": 0.10000000000000001, \"y\": null, \"z\": \"it's\"}\n]\n");
}

TEST_F(CompareTest, SqlWritesFailReadOnly) {
  const Store store(path, Store::Mode::read_only);
  for (const char* sql : {"INSERT INTO experiments (name, created_at) VALUES ('x', 'y')",
                          "DELETE FROM runs", "UPDATE runs SET status = 'failed'", "DROP TABLE tags",
                          "PRAGMA user_version = 9"}) {
    try {
      store.query(sql);
      FAIL() << sql << " must fail";
    } catch (const std::runtime_error& error) {
      EXPECT_NE(std::string(error.what()).find("read-only"), std::string::npos) << error.what();
    }
  }
  // Nor can a second statement ride along.
  EXPECT_THROW(store.query("SELECT 1; DELETE FROM runs"), std::runtime_error);
  EXPECT_EQ(store.query("SELECT count(*) FROM runs").rows.at(0).at(0).text, "16");

  // A missing database is an error naming it.
  const std::string missing = dir.file("nope.db");
  try {
    Store absent(missing, Store::Mode::read_only);
    FAIL() << "a missing database must fail";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace msd::results
