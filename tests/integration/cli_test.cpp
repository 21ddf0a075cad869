// The read-only and checking commands of `msd`: validate, plugins, results, and plugin folders
// named by an experiment file.
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "helpers.h"

namespace msd_integration {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

/// 1-based number of the first line of `text` equal to `line`, or 0.
int line_number_of(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  int n = 0;
  for (std::string l; std::getline(in, l);) {
    ++n;
    if (l == line) return n;
  }
  return 0;
}

std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at == std::string::npos) throw std::logic_error("'" + from + "' not in text");
  return text.replace(at, from.size(), to);
}

// 7. ----------------------------------------------------------------------------------------------
TEST(Cli, ValidateReportsUnknownKeysWithLocationAndSuggestion) {
  TempDir tmp;
  const std::string text = replace_once(tiny_msd_config(), "hidden = 32\n", "hiden = 32\n");
  const int line = line_number_of(text, "hiden = 32");
  ASSERT_GT(line, 0);
  const fs::path file = tmp / "typo.toml";
  write_text(file, text);

  const RunResult r = run_msd({"validate", file.string()}, tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("typo.toml:" + std::to_string(line) + ":"));
  EXPECT_THAT(r.output, HasSubstr("hiden"));
  EXPECT_THAT(r.output, HasSubstr("did you mean 'hidden'"));
  EXPECT_THAT(r.output, Not(HasSubstr("OK")));

  // `msd run` refuses the same file before creating a database.
  const RunResult run = run_msd({"run", file.string(), "--db", (tmp / "results.db").string()}, tmp.path());
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_THAT(run.output, HasSubstr("did you mean 'hidden'"));
  EXPECT_FALSE(fs::exists(tmp / "results.db"));
}

TEST(Cli, ValidateListsKnownPluginsForAnUnknownPluginName) {
  TempDir tmp;
  const fs::path file = tmp / "unknown.toml";
  // Names far from every known one, so the known names in the output come from the list, not from
  // a did-you-mean. Both problems are reported in one pass.
  std::string text = replace_once(tiny_msd_config(), "plugin = \"gaussian_grid\"", "plugin = \"no_such_dataset\"");
  text = replace_once(text, "plugin = \"regression\"", "plugin = \"no_such_loss\"");
  write_text(file, text);
  const RunResult r = run_msd({"validate", file.string()}, tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("unknown.toml:" + std::to_string(line_number_of(text, "plugin = \"no_such_dataset\"")) + ":"));
  EXPECT_THAT(r.output, HasSubstr("no_such_dataset"));
  EXPECT_THAT(r.output, HasSubstr("gaussian_grid"));
  EXPECT_THAT(r.output, HasSubstr("no_such_loss"));
  for (const char* loss : {"dm", "regression", "diffusion", "kd_prediction", "kd_relational"}) {
    EXPECT_THAT(r.output, HasSubstr(loss));
  }
}

// Two variants that resolve to one config are one run; msd says so, and names the --set overrides
// as the likely cause when there are any.
TEST(Cli, VariantsThatResolveToOneConfigAreReported) {
  TempDir tmp;
  const fs::path file = tmp / "twins.toml";
  write_text(file, tiny_msd_config() + "\n[[sweep.variant]]\nname = \"two\"\npartition.k = 2\n\n"
                                       "[[sweep.variant]]\nname = \"three\"\npartition.k = 3\n");
  const RunResult distinct = run_msd({"validate", file.string()}, tmp.path());
  EXPECT_EQ(distinct.exit_code, 0) << distinct.output;
  EXPECT_THAT(distinct.output, Not(HasSubstr("same config")));

  const RunResult erased = run_msd({"validate", file.string(), "--set", "partition.k=2"}, tmp.path());
  EXPECT_EQ(erased.exit_code, 0) << erased.output;
  EXPECT_THAT(erased.output, HasSubstr("'three' is the same config as 'two'"));
  EXPECT_THAT(erased.output, HasSubstr("a --set override may have replaced the key that told them apart"));
  // And one run it is: msd run trains and records it once.
  const fs::path db = tmp / "results.db";
  const RunResult ran = run_msd({"run", file.string(), "--db", db.string(), "--set", "partition.k=2"}, tmp.path());
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  const auto runs = read_runs(db);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].record.name, "two");
}

TEST(Cli, ValidateAcceptsValidFilesAndTheRepositoryExperiments) {
  TempDir tmp;
  const fs::path file = tmp / "tiny.toml";
  write_text(file, tiny_msd_config());
  const RunResult r = run_msd({"validate", file.string()}, tmp.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("OK"));
  EXPECT_THAT(r.output, HasSubstr("1 run"));
  EXPECT_THAT(r.output, HasSubstr("base"));

  // A --set override is validated too.
  const RunResult bad_set = run_msd({"validate", file.string(), "--set", "partition.k=0"}, tmp.path());
  EXPECT_EQ(bad_set.exit_code, 2) << bad_set.output;
  EXPECT_THAT(bad_set.output, HasSubstr("partition.k"));

  // The quickstart of the repository: four variants.
  const fs::path quickstart = experiments_dir() / "quickstart.toml";
  ASSERT_TRUE(fs::exists(quickstart)) << quickstart;
  const RunResult q = run_msd({"validate", quickstart.string()}, tmp.path());
  EXPECT_EQ(q.exit_code, 0) << q.output;
  EXPECT_THAT(q.output, HasSubstr("OK, 4 runs"));
  for (const char* name : {"teacher", "msd_k4", "k1_same_per_student", "k1_same_total"}) {
    EXPECT_THAT(q.output, HasSubstr(name));
  }
  // Validation writes nothing.
  EXPECT_FALSE(fs::exists(tmp / "msd-results"));
}

// 8. ----------------------------------------------------------------------------------------------
TEST(Cli, PluginsListAndShow) {
  TempDir tmp;
  const RunResult list = run_msd({"plugins", "list"}, tmp.path());
  ASSERT_EQ(list.exit_code, 0) << list.output;
  for (const char* name : {"gaussian_grid", "edm_mlp", "one_step_generator", "mlp_denoiser", "class_consecutive",
                           "class_random", "noise_uniform", "noise_nonuniform", "dm", "regression", "diffusion",
                           "kd_prediction", "kd_relational", "swd", "mmd", "mode_coverage", "cost"}) {
    // Names are whole words in the table.
    EXPECT_THAT(" " + list.output, HasSubstr(std::string(" ") + name + " ")) << "plugin " << name << " not listed";
  }

  const RunResult show = run_msd({"plugins", "show", "dm"}, tmp.path());
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_THAT(show.output, HasSubstr("dm"));
  EXPECT_THAT(show.output, HasSubstr("fake_lr"));
  EXPECT_THAT(show.output, HasSubstr("grid_levels"));

  const RunResult teacher = run_msd({"plugins", "show", "edm_mlp"}, tmp.path());
  ASSERT_EQ(teacher.exit_code, 0) << teacher.output;
  EXPECT_THAT(teacher.output, HasSubstr("sampler_steps"));
  EXPECT_THAT(teacher.output, HasSubstr("hidden"));

  const RunResult nope = run_msd({"plugins", "show", "nope"}, tmp.path());
  EXPECT_NE(nope.exit_code, 0) << nope.output;
  EXPECT_THAT(nope.output, HasSubstr("nope"));
  EXPECT_THAT(nope.output, HasSubstr("swd"));  // it lists the loaded plugins
}

// 9. ----------------------------------------------------------------------------------------------
/// A finished tiny run in `tmp`/results.db; returns its id.
std::string make_listing_run(const TempDir& tmp, RunView* view) {
  TinyOptions options;
  options.name = "listing";
  options.stage_steps = 10;
  write_text(tmp / "tiny.toml", tiny_msd_config(options));
  const fs::path db = tmp / "results.db";
  const RunResult run = run_msd({"run", (tmp / "tiny.toml").string(), "--db", db.string()}, tmp.path());
  EXPECT_EQ(run.exit_code, 0) << run.output;
  const auto runs = read_runs(db);
  EXPECT_EQ(runs.size(), 1u);
  if (runs.size() != 1) return "";
  if (view != nullptr) *view = runs[0];
  return std::to_string(runs[0].record.id);
}

void expect_listed(const RunResult& list, const RunView& run) {
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr("listing"));
  EXPECT_THAT(list.output, HasSubstr("base"));
  EXPECT_THAT(list.output, HasSubstr("finished"));
  EXPECT_THAT(list.output, HasSubstr(run.record.config_hash.substr(0, 8)));
}

void expect_shown(const RunResult& show, const RunView& run) {
  const std::string id = std::to_string(run.record.id);
  ASSERT_EQ(show.exit_code, 0) << show.output;
  EXPECT_THAT(show.output, HasSubstr("run " + id + ": listing / base"));
  EXPECT_THAT(show.output, HasSubstr("finished"));
  EXPECT_THAT(show.output, HasSubstr(run.record.config_hash));
  EXPECT_THAT(show.output, HasSubstr("swd"));
  EXPECT_THAT(show.output, HasSubstr("mmd"));
  EXPECT_THAT(show.output, HasSubstr("latency_ms_per_sample"));
  EXPECT_THAT(show.output, HasSubstr("class:4"));
  EXPECT_THAT(show.output, HasSubstr("edm_mlp"));  // the resolved config
}

TEST(Cli, ResultsListAndShow) {
  TempDir tmp;
  RunView run;
  const std::string id = make_listing_run(tmp, &run);
  ASSERT_FALSE(id.empty());
  const std::string db = (tmp / "results.db").string();

  // --db is an option of `msd results`, given before its subcommand (see the next test for after).
  expect_listed(run_msd({"results", "--db", db, "list"}, tmp.path()), run);
  const RunResult filtered = run_msd({"results", "--db", db, "list", "--experiment", "other"}, tmp.path());
  ASSERT_EQ(filtered.exit_code, 0) << filtered.output;
  EXPECT_THAT(filtered.output, Not(HasSubstr("listing")));
  expect_listed(run_msd({"results", "--db", db, "list", "--experiment", "listing"}, tmp.path()), run);

  expect_shown(run_msd({"results", "--db", db, "show", id}, tmp.path()), run);

  const RunResult missing = run_msd({"results", "--db", db, "show", "999"}, tmp.path());
  EXPECT_NE(missing.exit_code, 0) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("999"));
  EXPECT_THAT(missing.output, HasSubstr(db));
}

TEST(Cli, ResultsAcceptDbAfterTheSubcommand) {
  TempDir tmp;
  RunView run;
  const std::string id = make_listing_run(tmp, &run);
  ASSERT_FALSE(id.empty());
  const std::string db = (tmp / "results.db").string();
  expect_listed(run_msd({"results", "list", "--db", db}, tmp.path()), run);
  expect_shown(run_msd({"results", "show", id, "--db", db}, tmp.path()), run);
  const RunResult missing = run_msd({"results", "show", "999", "--db", db}, tmp.path());
  EXPECT_NE(missing.exit_code, 0) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr(db));
}

// 12. ---------------------------------------------------------------------------------------------
TEST(Cli, MissingPluginFolderFromTheExperimentFileIsNamed) {
  TempDir tmp;
  std::string text = tiny_msd_config();
  text = replace_once(text, "threads = 1\n", "threads = 1\nplugin_paths = [\"does_not_exist\"]\n");
  const fs::path file = tmp / "plugins.toml";
  write_text(file, text);

  const RunResult validate = run_msd({"validate", file.string()}, tmp.path());
  EXPECT_NE(validate.exit_code, 0) << validate.output;
  EXPECT_THAT(validate.output, HasSubstr((tmp / "does_not_exist").string()));
  EXPECT_THAT(validate.output, HasSubstr("does not exist"));

  const fs::path db = tmp / "results.db";
  const RunResult run = run_msd({"run", file.string(), "--db", db.string()}, tmp.path());
  EXPECT_NE(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr((tmp / "does_not_exist").string()));
  EXPECT_FALSE(fs::exists(db));

  // Relative to the experiment file, not to the current folder: an existing (empty) folder beside
  // the file is accepted even when msd runs elsewhere.
  fs::create_directories(tmp / "does_not_exist");
  TempDir elsewhere;
  const RunResult ok = run_msd({"validate", file.string()}, elsewhere.path());
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("OK"));
}

}  // namespace
}  // namespace msd_integration
