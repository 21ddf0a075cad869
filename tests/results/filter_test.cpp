#include "msd/results/filter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace msd::results {
namespace {

using testing::TempDir;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct RunSpec {
  std::string experiment;
  std::string name;
  std::string sweep;
  std::int64_t index = -1;
  std::int64_t seed = 0;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::pair<std::string, std::string>> coords;
  std::vector<MetricRow> metrics;
  std::vector<std::pair<std::string, std::string>> tags;
  RunStatus status = RunStatus::finished;
};

// Four runs, ids 1 to 4:
//   1 kstudy/msd_k4  sweep s1 #0, finished: k = 4, class_consecutive, lr 1e-4, swd 0.5 then 0.04
//   2 kstudy/msd_k2  sweep s1 #1, finished: k = 2, class_random, lr 0.001, swd 0.08
//   3 kstudy/k1      sweep s1 #2, failed:   k = 1, class_consecutive, distill off, swd NaN
//   4 baseline/teacher, no sweep, running:  no partition keys, distill off, swd +inf
class FilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Store store(path);
    add(store, {"kstudy", "msd_k4", "s1", 0, 0,
                {{"partition.k", "4"}, {"partition.plugin", "\"class_consecutive\""},
                 {"partition.label", "\"4\""}, {"distill.enabled", "true"}, {"optim.lr", "0.0001"},
                 {"note", R"("it's \"quoted\"")"}, {"path", R"("C:\\dir\\new")"}},
                {{"partition.k", "4"}, {"seed", "0"}},
                {{"swd", 0, 0.5, ""}, {"swd", 10, 0.04, ""}, {"swd", 10, 0.3, "student:0"},
                 {"swd", 0, 0.2, "class:3"}, {"train.seconds", 0, 12.5, ""}},
                {{"gpu", "a100"}, {"priority", "3"}}});
    add(store, {"kstudy", "msd_k2", "s1", 1, 1,
                {{"partition.k", "2"}, {"partition.plugin", "\"class_random\""},
                 {"distill.enabled", "true"}, {"optim.lr", "0.001"}},
                {{"partition.k", "2"}, {"seed", "1"}},
                {{"swd", 0, 0.08, ""}, {"swd", 0, 0.01, "student:0"}, {"train.seconds", 0, 30.0, ""}},
                {{"priority", "10"}}});
    add(store, {"kstudy", "k1", "s1", 2, 2,
                {{"partition.k", "1"}, {"partition.plugin", "\"class_consecutive\""},
                 {"distill.enabled", "false"}},
                {{"partition.k", "1"}, {"seed", "2"}},
                {{"swd", 0, kNaN, ""}, {"train.seconds", 0, 5.0, ""}},
                {},
                RunStatus::failed});
    add(store, {"baseline", "teacher", "", -1, 3, {{"distill.enabled", "false"}}, {},
                {{"swd", 0, kInf, ""}}, {}, RunStatus::running});
  }

  static void add(Store& store, const RunSpec& spec) {
    NewRun run;
    run.experiment = spec.experiment;
    run.name = spec.name;
    run.config_text = "";
    run.config_hash = spec.name;
    run.seed = spec.seed;
    run.host = "test";
    run.device = "cpu";
    run.sweep_id = spec.sweep;
    run.sweep_index = spec.index;
    run.params = spec.params;
    run.coords = spec.coords;
    const std::int64_t id = store.begin_run(run);
    store.log_metrics(id, spec.metrics);
    for (const auto& [key, value] : spec.tags) store.set_tag(id, key, value);
    if (spec.status != RunStatus::running) store.finish_run(id, spec.status);
  }

  QueryResult query(const std::string& filter, std::vector<std::string> metrics = {}) {
    Store store(path, Store::Mode::read_only);
    return query_runs(store, {filter, std::move(metrics)});
  }

  std::vector<std::int64_t> ids(const std::string& filter) {
    std::vector<std::int64_t> found;
    for (const auto& row : query(filter).rows) found.push_back(std::stoll(row[0].text));
    return found;
  }

  TempDir dir;
  std::string path = dir.file("results.db");
};

using Ids = std::vector<std::int64_t>;

FilterError parse_error(const std::string& filter) {
  try {
    compile_filter(filter);
  } catch (const FilterError& error) {
    return error;
  }
  ADD_FAILURE() << "no FilterError for: " << filter;
  return FilterError(filter, 0, "none");
}

// ---- syntax errors -----------------------------------------------------------------------------
TEST(FilterSyntaxTest, ShowsTheFilterWithACaretUnderTheFailingColumn) {
  const FilterError error = parse_error("metrics.swd < and params.partition.k = 4");
  EXPECT_EQ(error.line(), 1);
  EXPECT_EQ(error.column(), 15);
  EXPECT_EQ(error.problem(), "expected a value after '<'");
  EXPECT_EQ(std::string(error.what()),
            "filter:1:15: expected a value after '<'\n"
            "  metrics.swd < and params.partition.k = 4\n"
            "                ^");
}

TEST(FilterSyntaxTest, ReportsTheColumnOfEachKindOfMistake) {
  const struct {
    const char* filter;
    int column;
    const char* problem_start;
  } cases[] = {
      {"", 1, "expected a comparison"},
      {"metrics.swd < 0.05 and", 23, "expected a field"},
      {"(metrics.swd < 0.05", 20, "expected ')' to close the '(' at column 1"},
      {"id = 1)", 7, "unmatched ')'"},
      {"metrics.swd 0.05", 13, "expected an operator"},
      {"params.x = 'abc", 12, "unterminated string"},
      {R"(params.x = "a\qb")", 14, "unknown escape"},
      {"metrics.swd ! 3", 13, "expected '!='"},
      {"id in (1, 2", 12, "expected ',' or ')'"},
      {"id in 1", 7, "expected '(' after 'in'"},
      {"id in ()", 8, "expected a value after '('"},
      {"metrics.swd < 0.05 params.k = 4", 20, "expected 'and', 'or' or the end"},
      {"metrics.@student:1 < 1", 9, "expected a metric name"},
      {"metrics.swd@ < 1", 9, "expected a scope after '@'"},
      {"params. = 1", 8, "expected a key after 'params.'"},
      {"metrics.swd = abc", 15, "'metrics.swd' compares with numbers"},
      {"seed = \"3\"", 8, "'seed' compares with numbers"},
      {"name = true", 8, "'name' compares with strings"},
      {"params.x in (1, 'a')", 17, "the values of one list must all be"},
      {"params.distill.enabled < true", 26, "'params.distill.enabled' takes only ="},
      {"status > failed", 10, "'status' takes only ="},
  };
  for (const auto& c : cases) {
    const FilterError error = parse_error(c.filter);
    EXPECT_EQ(error.column(), c.column) << c.filter << "\n" << error.what();
    EXPECT_EQ(error.problem().rfind(c.problem_start, 0), 0u) << c.filter << "\n" << error.what();
  }
}

TEST(FilterSyntaxTest, CountsLinesAndCharactersNotBytes) {
  const FilterError second_line = parse_error("metrics.swd < 0.05\n  and foo = 1");
  EXPECT_EQ(second_line.line(), 2);
  EXPECT_EQ(second_line.column(), 7);
  EXPECT_NE(std::string(second_line.what()).find("\n    and foo = 1\n        ^"), std::string::npos)
      << second_line.what();

  // "é" is two bytes but one column.
  const FilterError after_accent = parse_error("name = \"\xC3\xA9\" and bad = 1");
  EXPECT_EQ(after_accent.column(), 16);
}

TEST(FilterSyntaxTest, UnknownFieldsListTheValidOnesAndSuggestTheClosest) {
  const std::string prefix = parse_error("metric.swd < 0.05").what();
  EXPECT_NE(prefix.find("unknown field 'metric.swd' (did you mean 'metrics.swd'?)"), std::string::npos) << prefix;
  EXPECT_NE(prefix.find("metrics.NAME[@SCOPE], params.KEY, coords.KEY, tags.KEY"), std::string::npos) << prefix;

  const std::string column = parse_error("stauts = finished").what();
  EXPECT_NE(column.find("(did you mean 'status'?)"), std::string::npos) << column;

  const std::string bare = parse_error("params = 4").what();
  EXPECT_NE(bare.find("(did you mean 'params.KEY'?)"), std::string::npos) << bare;
}

TEST(FilterSyntaxTest, UnknownStatusListsTheValidOnes) {
  const FilterError error = parse_error("status = 'finishd'");
  EXPECT_EQ(error.column(), 10);
  EXPECT_EQ(error.problem(),
            "unknown status 'finishd' (did you mean 'finished'?); statuses are running, finished, failed, "
            "interrupted");
}

TEST(FilterSyntaxTest, EveryValueIsABoundParameter) {
  const CompiledFilter compiled = compile_filter("params.a.b = \"x y\" or metrics.loss.dm@class:3 >= -1.5e-3");
  EXPECT_EQ(compiled.params, (std::vector<std::string>{"a.b", "x y", "loss.dm", "class:3", "-1.5e-3"}));
  for (const char* user_text : {"a.b", "x y", "loss.dm", "class:3", "1.5e"}) {
    EXPECT_EQ(compiled.where.find(user_text), std::string::npos) << user_text << " in " << compiled.where;
  }
}

// ---- results -----------------------------------------------------------------------------------
TEST_F(FilterTest, MetricsCompareTheFinalWholeModelValue) {
  EXPECT_EQ(ids("metrics.swd < 0.05"), (Ids{1}));            // run 1's step 0 value 0.5 is not final
  EXPECT_EQ(ids("metrics.swd >= 0.05"), (Ids{2, 4}));        // +inf compares, NaN matches nothing
  EXPECT_EQ(ids("metrics.swd > 1e300"), (Ids{4}));
  EXPECT_EQ(ids("metrics.swd@student:0 < 0.1"), (Ids{2}));
  EXPECT_EQ(ids("metrics.swd@class:3 = 0.2"), (Ids{1}));
  EXPECT_EQ(ids("metrics.train.seconds>10"), (Ids{1, 2}));  // dotted name, no spaces needed
  EXPECT_EQ(ids("metrics.train.seconds in (5, 30)"), (Ids{2, 3}));
}

TEST_F(FilterTest, NumericParamsCompareNumerically) {
  EXPECT_EQ(ids("params.partition.k = 4"), (Ids{1}));
  EXPECT_EQ(ids("params.partition.k > 1.5"), (Ids{1, 2}));
  EXPECT_EQ(ids("params.partition.k in (1, 2)"), (Ids{2, 3}));
  EXPECT_EQ(ids("params.optim.lr = 1e-4"), (Ids{1}));  // stored as 0.0001
  EXPECT_EQ(ids("params.optim.lr < 0.0005"), (Ids{1}));
  EXPECT_EQ(ids("params.partition.k >= 10"), (Ids{}));  // although "4" >= "10" as text
}

TEST_F(FilterTest, StringParamsCompareWithTheUnquotedTomlString) {
  EXPECT_EQ(ids("params.partition.plugin = class_random"), (Ids{2}));
  EXPECT_EQ(ids("params.partition.plugin = 'class_random'"), (Ids{2}));
  EXPECT_EQ(ids("params.partition.plugin = \"class_consecutive\""), (Ids{1, 3}));
  EXPECT_EQ(ids("params.partition.plugin != class_random"), (Ids{1, 3}));
  EXPECT_EQ(ids("params.partition.plugin < class_d"), (Ids{1, 3}));
  EXPECT_EQ(ids(R"(params.note = "it's \"quoted\"")"), (Ids{1}));
  EXPECT_EQ(ids(R"(params.path = 'C:\\dir\\new')"), (Ids{1}));  // \\n is a backslash and n
  // A string that looks like a number is a string; a number is not a string.
  EXPECT_EQ(ids("params.partition.label = 4"), (Ids{}));
  EXPECT_EQ(ids("params.partition.label = \"4\""), (Ids{1}));
  EXPECT_EQ(ids("params.partition.k = \"4\""), (Ids{}));
}

TEST_F(FilterTest, BooleanParamsCompareWithTrueAndFalse) {
  EXPECT_EQ(ids("params.distill.enabled = true"), (Ids{1, 2}));
  EXPECT_EQ(ids("params.distill.enabled = FALSE"), (Ids{3, 4}));
  EXPECT_EQ(ids("params.distill.enabled = \"true\""), (Ids{}));
}

TEST_F(FilterTest, CoordsTagsAndRunColumns) {
  EXPECT_EQ(ids("coords.seed = 0"), (Ids{1}));
  EXPECT_EQ(ids("coords.partition.k >= 2"), (Ids{1, 2}));
  EXPECT_EQ(ids("tags.gpu = a100"), (Ids{1}));
  EXPECT_EQ(ids("tags.priority > 5"), (Ids{2}));    // numbers compare numerically: 10 > 5
  EXPECT_EQ(ids("tags.priority > \"5\""), (Ids{}));  // strings as text: "10" < "3" < "5"
  EXPECT_EQ(ids("status = finished"), (Ids{1, 2}));
  EXPECT_EQ(ids("status in (failed, 'running')"), (Ids{3, 4}));
  EXPECT_EQ(ids("experiment = baseline"), (Ids{4}));
  EXPECT_EQ(ids("name = msd_k2"), (Ids{2}));
  EXPECT_EQ(ids("sweep = s1"), (Ids{1, 2, 3}));
  EXPECT_EQ(ids("sweep_index >= 1"), (Ids{2, 3}));
  EXPECT_EQ(ids("id <= 2"), (Ids{1, 2}));
  EXPECT_EQ(ids("seed = 3"), (Ids{4}));
}

TEST_F(FilterTest, NotBindsTighterThanAndWhichBindsTighterThanOr) {
  EXPECT_EQ(ids("id = 1 or id = 2 and id = 3"), (Ids{1}));
  EXPECT_EQ(ids("(id = 1 or id = 2) and id = 2"), (Ids{2}));
  EXPECT_EQ(ids("not id = 1 and id = 2"), (Ids{2}));
  EXPECT_EQ(ids("not id = 1 or id = 1"), (Ids{1, 2, 3, 4}));
  EXPECT_EQ(ids("not (id = 1 or id = 2)"), (Ids{3, 4}));
}

// The deepest and longest filters msd accepts are ones SQLite accepts too (its parser's stack holds
// about 30 levels of parentheses); one step further is refused where it goes too far.
TEST_F(FilterTest, TheDeepestAndLongestFiltersRunAndOneMoreIsRefused) {
  // 15 parentheses around alternating 'or' and 'and' put the innermost comparison at level 16.
  std::string deep = "metrics.swd@student:0 < 1";
  for (int level = 1; level <= 15; ++level) {
    deep = "(params.partition.k = 4 " + std::string(level % 2 ? "or " : "and ") + deep + ")";
  }
  EXPECT_NO_THROW(ids(deep));
  EXPECT_THROW(ids("(" + deep + ")"), FilterError);
  // 'not' counts as a level too, and nests in SQL as deeply as a parenthesis.
  std::string negated = "metrics.swd@student:0 < 1";
  for (int level = 1; level <= 7; ++level) negated = "not (params.partition.k = 4 or " + negated + ")";
  EXPECT_NO_THROW(ids("not " + negated));
  EXPECT_THROW(ids("not not " + negated), FilterError);
  EXPECT_THROW(ids(std::string(17, '(') + "id = 1" + std::string(17, ')')), FilterError);

  std::string chain = "metrics.swd@student:0 < 1";
  for (int i = 1; i < 256; ++i) chain += (i % 2 ? " or " : " and ") + std::string("metrics.swd < ") + std::to_string(i);
  EXPECT_NO_THROW(ids(chain));
  try {
    ids(chain + " or id = 1");
    FAIL() << "257 comparisons must be refused";
  } catch (const FilterError& error) {
    EXPECT_NE(error.problem().find("more than 256 comparisons"), std::string::npos) << error.what();
  }
  std::string values = "id in (0";
  for (int i = 1; i < 10001; ++i) values += ", " + std::to_string(i);
  EXPECT_THROW(ids(values + ")"), FilterError);
}

TEST(FilterSyntaxTest, ALongFilterIsShownAroundTheCaret) {
  const std::string filter = std::string(5000, '(') + "id = 1";
  try {
    compile_filter(filter);
    FAIL() << "expected a FilterError";
  } catch (const FilterError& error) {
    EXPECT_LT(std::string(error.what()).size(), 300u) << error.what();
    EXPECT_EQ(error.column(), 17);
  }
}

TEST_F(FilterTest, KeywordsAreCaseInsensitive) {
  EXPECT_EQ(ids("status = finished AND NOT id = 1"), (Ids{2}));
  EXPECT_EQ(ids("id IN (1, 3) Or id NOT in (1, 2, 3)"), (Ids{1, 3, 4}));
}

TEST_F(FilterTest, RunsWithoutTheFieldMatchNeitherAComparisonNorItsNegation) {
  EXPECT_EQ(ids("params.partition.k != 4"), (Ids{2, 3}));
  EXPECT_EQ(ids("not params.partition.k = 4"), (Ids{2, 3}));
  EXPECT_EQ(ids("params.partition.k not in (1, 2)"), (Ids{1}));
  EXPECT_EQ(ids("not metrics.swd < 0.05"), (Ids{2, 4}));  // NaN is missing too
  EXPECT_EQ(ids("metrics.no_such_metric < 1 or id = 4"), (Ids{4}));
  EXPECT_EQ(ids("sweep_index >= 0"), (Ids{1, 2, 3}));
}

TEST_F(FilterTest, InjectionAttemptsAreValuesThatNoRunHas) {
  EXPECT_EQ(ids(R"(params.x = "'; DROP TABLE runs; --")"), (Ids{}));
  EXPECT_EQ(ids("params.x;DROP/**/TABLE/**/runs;--=1"), (Ids{}));
  const QueryResult result = query("id = 1", {"swd\"; DROP TABLE runs; --"});
  ASSERT_EQ(result.rows.size(), 1u);
  EXPECT_EQ(result.columns.back(), "swd\"; DROP TABLE runs; --");
  EXPECT_EQ(result.rows[0].back().type, QueryValue::Type::null);
  Store store(path, Store::Mode::read_only);
  EXPECT_EQ(store.list_runs().size(), 4u);
}

TEST_F(FilterTest, RowsHoldTheRunTheSweepCoordinatesAndTheRequestedMetrics) {
  const QueryResult result = query("id >= 1", {"swd", "swd@student:0", "train.seconds"});
  EXPECT_EQ(result.columns, (std::vector<std::string>{"id", "experiment", "name", "status", "sweep_index", "coords",
                                                      "swd", "swd@student:0", "train.seconds"}));
  ASSERT_EQ(result.rows.size(), 4u);
  const auto& first = result.rows[0];
  EXPECT_EQ(first[1].text, "kstudy");
  EXPECT_EQ(first[2].text, "msd_k4");
  EXPECT_EQ(first[3].text, "finished");
  EXPECT_EQ(first[4].text, "0");
  EXPECT_EQ(first[5].text, "partition.k=4, seed=0");
  EXPECT_DOUBLE_EQ(first[6].real, 0.04);
  EXPECT_DOUBLE_EQ(first[7].real, 0.3);
  EXPECT_DOUBLE_EQ(first[8].real, 12.5);
  EXPECT_DOUBLE_EQ(result.rows[1][7].real, 0.01);
  EXPECT_EQ(result.rows[2][6].text, "nan");
  EXPECT_EQ(result.rows[2][7].type, QueryValue::Type::null);  // no such metric
  const auto& teacher = result.rows[3];
  EXPECT_EQ(teacher[3].text, "running");
  EXPECT_EQ(teacher[4].type, QueryValue::Type::null);  // not in a sweep
  EXPECT_EQ(teacher[5].type, QueryValue::Type::null);
  EXPECT_TRUE(std::isinf(teacher[6].real));
}

TEST_F(FilterTest, ABadMetricColumnIsAnError) {
  try {
    query("id = 1", {"swd@"});
    ADD_FAILURE() << "no error for the metric column swd@";
  } catch (const std::invalid_argument& error) {
    EXPECT_EQ(std::string(error.what()).rfind("metric column 'swd@': expected a scope after '@'", 0), 0u)
        << error.what();
  }
}

}  // namespace
}  // namespace msd::results
