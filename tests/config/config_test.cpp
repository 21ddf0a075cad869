// Experiment configuration: parsing, strict validation, overrides, variants, canonical text and hash.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "msd/host/config.h"
#include "msd/host/schema.h"
#include "msd/text.h"
#include "support/info_catalog.h"

namespace msd::host {
namespace {

/// A catalog with a few plugins of each kind, standing in for the loaded plugin libraries.
class FakeCatalog : public msd::testing::InfoCatalog {
 public:
  FakeCatalog() {
    add({PluginKind::dataset, "toy2d", "1", "2-D mixture",
         {key_int("modes", 8, "mixture components", 1), key_real("spread", 0.05, "component std", 0)}});
    add({PluginKind::dataset, "fashion_mnist", "1", "images", {}});
    add({PluginKind::teacher, "edm_mlp", "1", "EDM MLP",
         {key_int("hidden", 256, "width", 1), key_int("layers", 4, "depth", 1),
          sampling(key_int("sampler_steps", 18, "Heun steps", 1)),
          KeySpec{"sigmas", KeyType::real_list, Value{std::vector<double>{0.002, 80.0}}, "noise range", 0.0, {}, {}}}});
    add({PluginKind::teacher, "edm_unet", "1", "EDM UNet", {}});
    add({PluginKind::student, "mlp_student", "1", "MLP student", {key_real("width_scale", 1.0, "width ratio", 0)}});
    add({PluginKind::partition, "classes", "1", "class split",
         {key_string("mode", "consecutive", "assignment", {"consecutive", "random"})}});
    add({PluginKind::loss, "dm", "1", "distribution matching", {key_real("fake_lr", 1e-4, "fake score lr", 0)}});
    add({PluginKind::loss, "regression", "1", "paired regression", {}});
    add({PluginKind::metric, "fd", "1", "Frechet distance", {key_string("features", "mlp", "feature network")}});
  }
};

const char* const kBase = R"([experiment]
name = "toy"
seed = 3

[dataset]
plugin = "toy2d"

[teacher]
plugin = "edm_mlp"
hidden = 64

[student]
plugin = "mlp_student"

[partition]
plugin = "classes"
k = 4

[[stage]]
name = "dm"
steps = 100

[[stage.loss]]
plugin = "dm"

[[stage.loss]]
plugin = "regression"
weight = 0.25

[evaluate]
samples = 1000

[[evaluate.metric]]
plugin = "fd"
)";

/// 1-based line of the first occurrence of `needle`.
int line_of(const std::string& text, const std::string& needle) {
  const std::size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos) << needle;
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n'));
}

/// Replaces the first occurrence of `from` in `text`.
std::string edit(std::string text, const std::string& from, const std::string& to) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

std::vector<RunConfig> resolve(const std::string& text, const std::vector<std::string>& sets = {}) {
  static const FakeCatalog catalog;
  ExperimentFile file = ExperimentFile::parse(text, "exp.toml");
  for (const std::string& set : sets) file.set_override(set);
  return file.resolve(catalog);
}

/// The issues resolving `text` reports; fails the test when it resolves cleanly.
std::vector<ConfigIssue> issues_of(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    resolve(text, sets);
  } catch (const ConfigError& error) {
    return error.issues();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

/// The single issue resolving `text` reports.
ConfigIssue issue_of(const std::string& text, const std::vector<std::string>& sets = {}) {
  const std::vector<ConfigIssue> issues = issues_of(text, sets);
  EXPECT_EQ(issues.size(), 1u) << ConfigError(issues).what();
  return issues.empty() ? ConfigIssue{} : issues.front();
}

std::string param(const RunConfig& run, const std::string& key) {
  for (const auto& [name, value] : run.params) {
    if (name == key) return value;
  }
  ADD_FAILURE() << "no param " << key;
  return "";
}

TEST(ConfigResolve, ValidFileGetsTypedValuesAndDefaults) {
  const std::vector<RunConfig> runs = resolve(kBase);
  ASSERT_EQ(runs.size(), 1u);
  const RunConfig& run = runs[0];
  EXPECT_EQ(run.name, "base");
  EXPECT_EQ(run.experiment, "toy");
  EXPECT_EQ(run.seed, 3);
  EXPECT_EQ(run.device, "auto");
  EXPECT_EQ(run.threads, 0);
  EXPECT_EQ(run.teacher.plugin, "edm_mlp");
  EXPECT_EQ(run.teacher.params.get_int("hidden"), 64);
  EXPECT_EQ(run.teacher.params.get_int("layers"), 4);
  EXPECT_EQ(run.teacher.params.get_real_list("sigmas"), (std::vector<double>{0.002, 80.0}));
  EXPECT_FALSE(run.teacher.params.has("plugin"));
  EXPECT_EQ(run.k, 4);
  EXPECT_FALSE(run.partition.params.has("k"));
  EXPECT_EQ(run.partition.params.get_string("mode"), "consecutive");
  EXPECT_TRUE(run.distill.enabled);
  EXPECT_EQ(run.distill.pairs, 1024);
  EXPECT_EQ(run.distill.pairs_split, "shared");
  EXPECT_DOUBLE_EQ(run.distill.outside_cell_p, 0.1);
  EXPECT_EQ(run.budget.scope, "per_student");
  EXPECT_EQ(run.budget.divide, "steps");
  EXPECT_EQ(run.budget.batch_size, 256);
  ASSERT_EQ(run.stages.size(), 1u);
  const StageConfig& stage = run.stages[0];
  EXPECT_EQ(stage.name, "dm");
  EXPECT_EQ(stage.steps, 100);
  EXPECT_DOUBLE_EQ(stage.lr, 1e-4);
  EXPECT_DOUBLE_EQ(stage.beta2, 0.999);
  EXPECT_DOUBLE_EQ(stage.grad_clip, 10.0);
  EXPECT_EQ(stage.update_every, 1);
  ASSERT_EQ(stage.losses.size(), 2u);
  EXPECT_EQ(stage.losses[0].plugin, "dm");
  EXPECT_DOUBLE_EQ(stage.losses[0].weight, 1.0);
  EXPECT_DOUBLE_EQ(stage.losses[0].params.get_real("fake_lr"), 1e-4);
  EXPECT_FALSE(stage.losses[0].params.has("weight"));
  EXPECT_DOUBLE_EQ(stage.losses[1].weight, 0.25);
  EXPECT_EQ(run.evaluate.samples, 1000);
  ASSERT_EQ(run.evaluate.metrics.size(), 1u);
  EXPECT_EQ(run.evaluate.metrics[0].params.get_string("features"), "mlp");
  EXPECT_TRUE(run.coords.empty());
  EXPECT_EQ(run.hash.size(), 16u);
}

TEST(ConfigResolve, ParamsFlattenEveryKey) {
  const RunConfig run = resolve(kBase)[0];
  EXPECT_EQ(param(run, "experiment.name"), "\"toy\"");
  EXPECT_EQ(param(run, "experiment.plugin_paths"), "[]");
  EXPECT_EQ(param(run, "teacher.layers"), "4");
  EXPECT_EQ(param(run, "partition.k"), "4");
  EXPECT_EQ(param(run, "stage.0.name"), "\"dm\"");
  EXPECT_EQ(param(run, "stage.0.loss.1.weight"), "0.25");
  EXPECT_EQ(param(run, "evaluate.metric.0.plugin"), "\"fd\"");
  EXPECT_EQ(param(run, "budget.batch_size"), "256");
}

TEST(ConfigResolve, IntegerAcceptedForRealKey) {
  const RunConfig run = resolve(edit(kBase, "steps = 100", "steps = 100\nlr = 1"))[0];
  EXPECT_DOUBLE_EQ(run.stages[0].lr, 1.0);
  EXPECT_EQ(param(run, "stage.0.lr"), "1.0");
}

TEST(ConfigResolve, TeacherOnlyBaselineNeedsNoStudentPartitionOrStage) {
  const std::string text = R"([experiment]
name = "teacher only"
[dataset]
plugin = "toy2d"
[teacher]
plugin = "edm_mlp"
[distill]
enabled = false
)";
  const RunConfig run = resolve(text)[0];
  EXPECT_FALSE(run.distill.enabled);
  EXPECT_TRUE(run.stages.empty());
  EXPECT_EQ(run.evaluate.samples, 5000);
  EXPECT_TRUE(run.evaluate.metrics.empty());
}

TEST(ConfigErrors, UnknownKeySuggestsClosestAtItsLine) {
  const std::string text = edit(kBase, "hidden = 64", "hiden = 64");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "teacher.hiden");
  EXPECT_EQ(issue.message, "unknown key 'hiden' in [teacher] (plugin edm_mlp); did you mean 'hidden'?");
  EXPECT_EQ(issue.where.file, "exp.toml");
  EXPECT_EQ(issue.where.line, line_of(text, "hiden"));
  EXPECT_EQ(issue.where.column, 1);  // the key itself, not its value
  EXPECT_EQ(issue.str(), "exp.toml:" + std::to_string(issue.where.line) + ":1: teacher.hiden: " + issue.message);
}

TEST(ConfigErrors, UnknownKeyWithoutCloseMatchListsValidKeys) {
  const ConfigIssue issue = issue_of(edit(kBase, "samples = 1000", "zzzzzz = 1"));
  EXPECT_EQ(issue.key, "evaluate.zzzzzz");
  EXPECT_NE(issue.message.find("valid keys: samples, sampler_steps, metric"), std::string::npos) << issue.message;
}

TEST(ConfigErrors, UnknownSection) {
  const std::string text = std::string(kBase) + "\n[distil]\nenabled = false\n";
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "distil");
  EXPECT_EQ(issue.message, "unknown section [distil]; did you mean [distill]?");
  EXPECT_EQ(issue.where.line, line_of(text, "[distil]"));
}

TEST(ConfigErrors, KeyOutsideAnySectionSaysWhereItBelongs) {
  const ConfigIssue issue = issue_of("seed = 1\n" + std::string(kBase));
  EXPECT_EQ(issue.key, "seed");
  EXPECT_EQ(issue.message, "key 'seed' is outside any section; it belongs in [experiment]");
}

TEST(ConfigErrors, WrongType) {
  const std::string text = edit(kBase, "seed = 3", "seed = \"three\"");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "experiment.seed");
  EXPECT_EQ(issue.message, "expected integer, got string \"three\"");
  EXPECT_EQ(issue.where.line, 3);
}

TEST(ConfigErrors, RealNeverAcceptedForInteger) {
  const ConfigIssue issue = issue_of(edit(kBase, "steps = 100", "steps = 100.0"));
  EXPECT_EQ(issue.key, "stage.0.steps");
  EXPECT_EQ(issue.message, "expected integer, got float 100.0");
}

TEST(ConfigErrors, ListCheckedElementwise) {
  const std::string text = edit(kBase, "hidden = 64", "sigmas = [0.1, \"x\", -1]");
  const std::vector<ConfigIssue> issues = issues_of(text);
  ASSERT_EQ(issues.size(), 2u) << ConfigError(issues).what();
  EXPECT_EQ(issues[0].message, "element 1: expected float, got string \"x\"");
  EXPECT_EQ(issues[1].message, "element 2: must be >= 0, got -1");
  EXPECT_EQ(issues[1].key, "teacher.sigmas");
  EXPECT_EQ(issues[1].where.column, 21);
  // An empty list is a list, and integers widen to reals inside lists too.
  EXPECT_TRUE(resolve(edit(kBase, "hidden = 64", "sigmas = []"))[0].teacher.params.get_real_list("sigmas").empty());
  EXPECT_EQ(resolve(edit(kBase, "hidden = 64", "sigmas = [1, 2]"))[0].teacher.params.get_real_list("sigmas"),
            (std::vector<double>{1.0, 2.0}));
}

TEST(ConfigErrors, OutOfRange) {
  const std::string text = edit(kBase, "k = 4", "k = 0");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "partition.k");
  EXPECT_EQ(issue.message, "must be >= 1, got 0");
  EXPECT_EQ(issue.where.line, line_of(text, "k = 0"));
  EXPECT_EQ(issue_of(edit(kBase, "k = 4", "k = 2000")).message, "must be <= 1024, got 2000");
}

TEST(ConfigErrors, StringNotAmongChoices) {
  const ConfigIssue issue = issue_of(edit(kBase, "seed = 3", "device = \"gpu\""));
  EXPECT_EQ(issue.key, "experiment.device");
  EXPECT_EQ(issue.message, "must be one of \"auto\", \"cpu\", \"cuda\"; got \"gpu\" (did you mean \"cpu\"?)");
}

TEST(ConfigErrors, PrecisionIsFp32OrBf16) {
  const ConfigIssue issue = issue_of(edit(kBase, "seed = 3", "precision = \"fp16\""));
  EXPECT_EQ(issue.key, "experiment.precision");
  EXPECT_EQ(issue.message, "must be one of \"fp32\", \"bf16\"; got \"fp16\" (did you mean \"fp32\"?)");
  EXPECT_EQ(resolve(kBase)[0].precision, "fp32");
  EXPECT_EQ(resolve(edit(kBase, "seed = 3", "seed = 3\nprecision = \"bf16\""))[0].precision, "bf16");
}

TEST(ConfigErrors, MissingRequiredKeyAtSectionHeader) {
  const std::string text = edit(kBase, "steps = 100\n", "");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "stage.0.steps");
  EXPECT_NE(issue.message.find("missing required key 'steps' in [[stage]] (integer:"), std::string::npos)
      << issue.message;
  EXPECT_EQ(issue.where.line, line_of(text, "[[stage]]"));
  EXPECT_EQ(issue.where.column, 1);
}

TEST(ConfigErrors, MissingSectionAtFile) {
  const std::string text = edit(kBase, "[teacher]\nplugin = \"edm_mlp\"\nhidden = 64\n", "");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "teacher");
  EXPECT_EQ(issue.where.str(), "exp.toml");
  EXPECT_NE(issue.message.find("missing section [teacher]"), std::string::npos) << issue.message;
}

TEST(ConfigErrors, DistillationNeedsStages) {
  std::string text = kBase;
  text = text.substr(0, text.find("[[stage]]")) + text.substr(text.find("[evaluate]"));
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "stage");
  EXPECT_NE(issue.message.find("distill.enabled = false"), std::string::npos) << issue.message;
}

TEST(ConfigErrors, StageNeedsALoss) {
  std::string text = kBase;
  text = text.substr(0, text.find("[[stage.loss]]")) + text.substr(text.find("[evaluate]"));
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "stage.0.loss");
  EXPECT_EQ(issue.where.line, line_of(text, "[[stage]]"));
}

TEST(ConfigErrors, UnknownPluginListsKnownNames) {
  const std::string text = edit(kBase, "\"edm_mlp\"", "\"edm_mpl\"");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "teacher.plugin");
  EXPECT_EQ(issue.message,
            "unknown teacher plugin 'edm_mpl' (did you mean 'edm_mlp'?); known teacher plugins: edm_mlp, edm_unet");
  EXPECT_EQ(issue.where.line, line_of(text, "edm_mpl"));
}

// An NFE curve runs the teacher's sampler at other teacher.sampler_steps: a teacher without the key has none.
TEST(ConfigErrors, NfeCurveNeedsATeacherWithSamplerSteps) {
  const std::string text =
      edit(edit(kBase, "plugin = \"edm_mlp\"\nhidden = 64", "plugin = \"edm_unet\""), "samples = 1000",
           "samples = 1000\nsampler_steps = [4]");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "evaluate.sampler_steps");
  EXPECT_THAT(issue.message, ::testing::HasSubstr("'edm_unet' has no key sampler_steps"));
  EXPECT_EQ(issue.where.line, line_of(text, "sampler_steps = [4]"));
  EXPECT_EQ(issue_of(edit(kBase, "samples = 1000", "samples = 1000\nsampler_steps = [0]")).key,
            "evaluate.sampler_steps");
}

TEST(ConfigErrors, PluginOfWrongKind) {
  const ConfigIssue issue = issue_of(edit(kBase, "\"edm_mlp\"", "\"toy2d\""));
  EXPECT_EQ(issue.key, "teacher.plugin");
  EXPECT_EQ(issue.message,
            "'toy2d' is a dataset plugin, not a teacher plugin; known teacher plugins: edm_mlp, edm_unet");
}

TEST(ConfigErrors, TomlSyntaxErrorHasLine) {
  try {
    ExperimentFile::parse("[experiment]\nname = \"x\"\nseed = = 3\n", "bad.toml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    ASSERT_EQ(error.issues().size(), 1u);
    EXPECT_EQ(error.issues()[0].where.file, "bad.toml");
    EXPECT_EQ(error.issues()[0].where.line, 3);
    EXPECT_NE(error.issues()[0].message.find("TOML syntax error"), std::string::npos);
  }
}

TEST(ConfigErrors, AllIssuesReportedTogetherInFileOrder) {
  std::string text = edit(kBase, "seed = 3", "seed = -1");
  text = edit(text, "hidden = 64", "hiden = 64");
  text = edit(text, "samples = 1000", "samples = true");
  try {
    resolve(text);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    ASSERT_EQ(error.issues().size(), 3u) << error.what();
    EXPECT_EQ(error.issues()[0].key, "experiment.seed");
    EXPECT_EQ(error.issues()[1].key, "teacher.hiden");
    EXPECT_EQ(error.issues()[2].key, "evaluate.samples");
    const std::string what = error.what();
    EXPECT_EQ(std::count(what.begin(), what.end(), '\n'), 2);
  }
}

TEST(ConfigErrors, PluginReservingAHostKeyIsReported) {
  class Clashing : public FakeCatalog {
   public:
    Clashing() { clash_ = {PluginKind::partition, "clash", "1", "", {key_int("k", 2, "")}}; }
    const PluginInfo* find(PluginKind kind, const std::string& name) const override {
      return name == "clash" && kind == PluginKind::partition ? &clash_ : FakeCatalog::find(kind, name);
    }
   private:
    PluginInfo clash_;
  } catalog;
  ExperimentFile file = ExperimentFile::parse(edit(kBase, "\"classes\"", "\"clash\""), "exp.toml");
  try {
    file.resolve(catalog);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    ASSERT_EQ(error.issues().size(), 1u) << error.what();
    EXPECT_EQ(error.issues()[0].key, "partition.k");
    EXPECT_NE(error.issues()[0].message.find("reserves"), std::string::npos);
  }
}

TEST(ConfigOverrides, SetPluginKeyAndArrayElement) {
  const RunConfig run = resolve(kBase, {"teacher.hidden=128", "stage.0.steps = 7"})[0];
  EXPECT_EQ(run.teacher.params.get_int("hidden"), 128);
  EXPECT_EQ(run.stages[0].steps, 7);
  const std::vector<std::pair<std::string, std::string>> coords{{"teacher.hidden", "128"}, {"stage.0.steps", "7"}};
  EXPECT_EQ(run.coords, coords);
}

TEST(ConfigOverrides, SetValuesAreTomlOrBareStrings) {
  const RunConfig run =
      resolve(kBase, {"experiment.device=cpu", "teacher.sigmas=[1, 2.5]", "stage.0.lr=1e-3", "distill.enabled=false"})[0];
  EXPECT_EQ(run.device, "cpu");
  EXPECT_EQ(run.teacher.params.get_real_list("sigmas"), (std::vector<double>{1.0, 2.5}));
  EXPECT_DOUBLE_EQ(run.stages[0].lr, 1e-3);
  EXPECT_FALSE(run.distill.enabled);
  const std::vector<std::pair<std::string, std::string>> coords{{"experiment.device", "\"cpu\""},
                                                                 {"teacher.sigmas", "[1.0, 2.5]"},
                                                                 {"stage.0.lr", "0.001"},
                                                                 {"distill.enabled", "false"}};
  EXPECT_EQ(run.coords, coords);
}

TEST(ConfigOverrides, InvalidSetIsReportedAtCommandLine) {
  const ConfigIssue issue = issue_of(kBase, {"partition.k=0"});
  EXPECT_EQ(issue.key, "partition.k");
  EXPECT_EQ(issue.where.str(), "<command line>");
  EXPECT_EQ(issue.str(), "<command line>: partition.k: must be >= 1, got 0");
  EXPECT_EQ(issue_of(kBase, {"teacher.hiden=3"}).where.file, "<command line>");
  EXPECT_EQ(issue_of(kBase, {"stage.3.steps=3"}).message,
            "index 3 is past the end of 'stage', which has 1 entries (index 1 appends one)");
}

TEST(ConfigOverrides, MalformedSet) {
  ExperimentFile file = ExperimentFile::parse(kBase, "exp.toml");
  for (const std::string bad : {"partition.k", "=4", " = 4", "stage..steps=1", ".k=1"}) {
    try {
      file.set_override(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const ConfigError& error) {
      ASSERT_EQ(error.issues().size(), 1u);
      EXPECT_EQ(error.issues()[0].where.file, "<command line>");
      EXPECT_NE(error.issues()[0].message.find("malformed override"), std::string::npos);
    }
  }
}

const char* const kSweep = R"(
[sweep]
[[sweep.variant]]
name = "k1"
partition.k = 1
"budget.scope" = "total"

[[sweep.variant]]
name = "short"
stage.0.steps = 50
[sweep.variant.teacher]
hidden = 32
)";

TEST(ConfigVariants, ExpandWithNamesCoordsAndOverrides) {
  const std::vector<RunConfig> runs = resolve(std::string(kBase) + kSweep, {"evaluate.samples=10"});
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].name, "k1");
  EXPECT_EQ(runs[0].k, 1);
  EXPECT_EQ(runs[0].budget.scope, "total");
  EXPECT_EQ(runs[0].stages[0].steps, 100);
  EXPECT_EQ(runs[1].name, "short");
  EXPECT_EQ(runs[1].k, 4);
  EXPECT_EQ(runs[1].stages[0].steps, 50);
  EXPECT_EQ(runs[1].teacher.params.get_int("hidden"), 32);
  EXPECT_NE(runs[0].hash, runs[1].hash);
  EXPECT_EQ(runs[0].canonical_toml.find("sweep"), std::string::npos);

  const std::vector<std::pair<std::string, std::string>> k1{
      {"partition.k", "1"}, {"budget.scope", "\"total\""}, {"evaluate.samples", "10"}};
  EXPECT_EQ(runs[0].coords, k1);
  const std::vector<std::pair<std::string, std::string>> shortened{
      {"stage.0.steps", "50"}, {"teacher.hidden", "32"}, {"evaluate.samples", "10"}};
  EXPECT_EQ(runs[1].coords, shortened);
}

TEST(ConfigVariants, SetOverridesApplyAfterTheVariant) {
  const std::vector<RunConfig> runs = resolve(std::string(kBase) + kSweep, {"experiment.seed=9", "partition.k=2"});
  EXPECT_EQ(runs[0].seed, 9);
  EXPECT_EQ(runs[0].k, 2);
  EXPECT_EQ(runs[1].k, 2);
  const std::vector<std::pair<std::string, std::string>> k1{
      {"partition.k", "2"}, {"budget.scope", "\"total\""}, {"experiment.seed", "9"}};
  EXPECT_EQ(runs[0].coords, k1);
}

TEST(ConfigVariants, BadOverrideReportsTheVariantsLine) {
  const std::string text = std::string(kBase) + edit(kSweep, "stage.0.steps = 50", "stage.0.steps = -1");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "stage.0.steps");
  EXPECT_EQ(issue.message, "must be >= 0, got -1");
  EXPECT_EQ(issue.where.line, line_of(text, "stage.0.steps = -1"));

  const std::string typo = std::string(kBase) + edit(kSweep, "partition.k = 1", "partiton.k = 1");
  const ConfigIssue unknown = issue_of(typo);
  EXPECT_EQ(unknown.message, "unknown section [partiton]; did you mean [partition]?");
  EXPECT_EQ(unknown.where.line, line_of(typo, "partiton.k"));
}

TEST(ConfigVariants, VariantNamesAreRequiredAndUnique) {
  const std::string text = std::string(kBase) + edit(kSweep, "name = \"short\"", "name = \"k1\"");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "sweep.variant.1.name");
  EXPECT_NE(issue.message.find("duplicate variant name 'k1'"), std::string::npos) << issue.message;
  EXPECT_EQ(issue.where.line, line_of(text, "name = \"k1\"\nstage"));

  const ConfigIssue missing = issue_of(std::string(kBase) + edit(kSweep, "name = \"short\"\n", ""));
  EXPECT_EQ(missing.key, "sweep.variant.1.name");
}

TEST(ConfigVariants, UnknownSweepKeyIsAnError) {
  const ConfigIssue issue = issue_of(std::string(kBase) + "[sweep]\nvariants = []\n");
  EXPECT_EQ(issue.key, "sweep.variants");
  EXPECT_EQ(issue.message, "unknown key 'variants' in [sweep]; did you mean 'variant'?");
}

TEST(ConfigCanonical, HashIgnoresDescriptionResultsAndPluginPaths) {
  const RunConfig base = resolve(kBase)[0];
  const RunConfig described = resolve(edit(
      kBase, "seed = 3", "seed = 3\ndescription = \"notes\"\nresults = \"elsewhere.db\"\nplugin_paths = [\"p\"]"))[0];
  EXPECT_EQ(described.hash, base.hash);
  EXPECT_EQ(described.teacher_hash, base.teacher_hash);
  EXPECT_NE(described.canonical_toml, base.canonical_toml);  // still stored
  EXPECT_NE(described.canonical_toml.find("description = \"notes\""), std::string::npos);
  EXPECT_NE(described.canonical_toml.find("results = \"elsewhere.db\""), std::string::npos);
  EXPECT_EQ(resolve(kBase, {"experiment.description=other"})[0].hash, base.hash);
  // How often a run checkpoints does not change what it computes.
  const RunConfig checkpointed = resolve(kBase, {"experiment.checkpoint_seconds=5"})[0];
  EXPECT_EQ(checkpointed.hash, base.hash);
  EXPECT_EQ(checkpointed.checkpoint_seconds, 5.0);
  EXPECT_NE(resolve(kBase, {"experiment.threads=2"})[0].hash, base.hash);
}

const char* const kGrid = R"(
[sweep]
seeds = [0, 1]

[sweep.grid]
"partition.k" = [1, 2]
teacher.hidden = [32, 64, 128]

[sweep.zip]
"stage.0.steps" = [10, 20]
"stage.0.lr" = [1, 2]
)";

TEST(ConfigSweep, GridZipAndSeedsExpandInOrder) {
  const std::vector<RunConfig> runs = resolve(std::string(kBase) + kGrid);
  ASSERT_EQ(runs.size(), 2u * 3u * 2u * 2u);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(runs[i].sweep_index, static_cast<std::int64_t>(i));
    EXPECT_EQ(runs[i].sweep_id, runs[0].sweep_id);
    const std::size_t seed = i % 2, zip = (i / 2) % 2, hidden = (i / 4) % 3, k = i / 12;
    EXPECT_EQ(runs[i].seed, static_cast<std::int64_t>(seed)) << i;
    EXPECT_EQ(runs[i].stages[0].steps, zip == 0 ? 10 : 20) << i;
    EXPECT_EQ(runs[i].stages[0].lr, zip == 0 ? 1.0 : 2.0) << i;
    const std::vector<std::int64_t> widths{32, 64, 128};
    EXPECT_EQ(runs[i].teacher.params.get_int("hidden"), widths[hidden]) << i;
    EXPECT_EQ(runs[i].k, k == 0 ? 1 : 2) << i;
  }
  EXPECT_EQ(runs[0].name, "base[partition.k=1,teacher.hidden=32,stage.0.steps=10,stage.0.lr=1.0,seed=0]");
  EXPECT_EQ(runs[23].name, "base[partition.k=2,teacher.hidden=128,stage.0.steps=20,stage.0.lr=2.0,seed=1]");
  const std::vector<std::pair<std::string, std::string>> coords{
      {"partition.k", "2"}, {"teacher.hidden", "128"}, {"stage.0.steps", "20"}, {"stage.0.lr", "2.0"},
      {"experiment.seed", "1"}, {"evaluate.samples", "7"}};
  EXPECT_EQ(resolve(std::string(kBase) + kGrid, {"evaluate.samples=7"})[23].coords, coords);

  std::set<std::string> names, hashes;
  for (const RunConfig& run : runs) {
    names.insert(run.name);
    hashes.insert(run.hash);
  }
  EXPECT_EQ(names.size(), runs.size());
  EXPECT_EQ(hashes.size(), runs.size());
}

TEST(ConfigSweep, VariantsAreTheOutermostAxis) {
  const std::string text = std::string(kBase) + R"(
[sweep]
seeds = [5, 6]
[[sweep.variant]]
name = "a"
partition.k = 1
[[sweep.variant]]
name = "b"
partition.k = 2
)";
  const std::vector<RunConfig> runs = resolve(text);
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[0].name, "a[seed=5]");
  EXPECT_EQ(runs[1].name, "a[seed=6]");
  EXPECT_EQ(runs[2].name, "b[seed=5]");
  EXPECT_EQ(runs[3].name, "b[seed=6]");
  EXPECT_EQ(runs[3].k, 2);
  EXPECT_EQ(runs[3].seed, 6);
  const std::vector<std::pair<std::string, std::string>> coords{{"partition.k", "2"}, {"experiment.seed", "6"}};
  EXPECT_EQ(runs[3].coords, coords);
  EXPECT_EQ(runs[3].sweep_index, 3);
}

TEST(ConfigSweep, ZipListsMustHaveEqualLengths) {
  const std::string text = std::string(kBase) + edit(kGrid, "\"stage.0.lr\" = [1, 2]", "\"stage.0.lr\" = [1, 2, 3]");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "sweep.zip");
  EXPECT_NE(issue.message.find("stage.0.steps has 2, stage.0.lr has 3"), std::string::npos) << issue.message;
}

TEST(ConfigSweep, BadGridValueReportsItsLine) {
  const std::string text = std::string(kBase) + edit(kGrid, "\"partition.k\" = [1, 2]", "\"partition.k\" = [1, 0]");
  const ConfigIssue issue = issue_of(text);
  EXPECT_EQ(issue.key, "partition.k");
  EXPECT_EQ(issue.message, "must be >= 1, got 0");
  EXPECT_EQ(issue.where.line, line_of(text, "\"partition.k\" = [1, 0]"));

  const std::string typed = std::string(kBase) + edit(kGrid, "teacher.hidden = [32, 64, 128]", "teacher.hidden = [32, \"x\"]");
  const ConfigIssue wrong_type = issue_of(typed);
  EXPECT_EQ(wrong_type.key, "teacher.hidden");
  EXPECT_EQ(wrong_type.where.line, line_of(typed, "teacher.hidden = [32"));

  const std::string unknown = std::string(kBase) + edit(kGrid, "teacher.hidden", "teacher.hiden");
  const ConfigIssue typo = issue_of(unknown);
  EXPECT_EQ(typo.key, "teacher.hiden");
  EXPECT_EQ(typo.where.line, line_of(unknown, "teacher.hiden"));

  const std::string scalar = std::string(kBase) + edit(kGrid, "seeds = [0, 1]", "seeds = 3");
  EXPECT_EQ(issue_of(scalar).key, "sweep.seeds");
  const std::string empty = std::string(kBase) + edit(kGrid, "\"partition.k\" = [1, 2]", "\"partition.k\" = []");
  EXPECT_EQ(issue_of(empty).where.line, line_of(empty, "\"partition.k\" = []"));
}

TEST(ConfigSweep, SweepIdIsStableAndFollowsThePlan) {
  const std::string text = std::string(kBase) + kGrid;
  const std::string id = resolve(text)[0].sweep_id;
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(resolve(text)[0].sweep_id, id);
  EXPECT_NE(resolve(edit(text, "seeds = [0, 1]", "seeds = [0, 2]"))[0].sweep_id, id);
  EXPECT_NE(resolve(edit(text, "samples = 1000", "samples = 999"))[0].sweep_id, id);
  EXPECT_NE(resolve(text, {"evaluate.samples=7"})[0].sweep_id, id);
  EXPECT_EQ(resolve(kBase)[0].sweep_index, 0);
  EXPECT_EQ(resolve(kBase)[0].name, "base");
}

TEST(ConfigVariants, AppendAStageByIndex) {
  const std::string text = std::string(kBase) + R"(
[[sweep.variant]]
name = "two stages"
stage.1 = { name = "tsm", steps = 10, loss = [{ plugin = "regression" }] }
)";
  const RunConfig run = resolve(text)[0];
  ASSERT_EQ(run.stages.size(), 2u);
  EXPECT_EQ(run.stages[1].name, "tsm");
  EXPECT_EQ(run.stages[1].losses.at(0).plugin, "regression");
  EXPECT_EQ(param(run, "stage.1.loss.0.weight"), "1.0");
}

TEST(ConfigCanonical, StableAndDefaultsDoNotChangeTheHash) {
  const RunConfig base = resolve(kBase)[0];
  EXPECT_EQ(resolve(kBase)[0].canonical_toml, base.canonical_toml);
  EXPECT_EQ(resolve(kBase)[0].hash, base.hash);
  // The hash covers the canonical text less the keys that cannot change results.
  std::string hashed;
  std::size_t start = 0;
  while (start < base.canonical_toml.size()) {
    const std::size_t end = base.canonical_toml.find('\n', start);
    const std::string line = base.canonical_toml.substr(start, end - start + 1);
    start = end + 1;
    if (line.rfind("description = ", 0) == 0 || line.rfind("results = ", 0) == 0 ||
        line.rfind("plugin_paths = ", 0) == 0 || line.rfind("checkpoint_seconds = ", 0) == 0 ||
        line == "students_per_network = 1\n" || line == "sampler_steps = []\n" ||
        line == "one_thread_below_gflop = 1.0\n") {
      continue;
    }
    hashed += line;
  }
  EXPECT_NE(hashed, base.canonical_toml);
  EXPECT_EQ(base.hash, text::hash_text(hashed));
  // Grouped students are hashed only when grouped, so that runs made before the key keep their hash.
  EXPECT_NE(base.canonical_toml.find("students_per_network = 1\n"), std::string::npos);
  EXPECT_NE(resolve(edit(kBase, "[experiment]\n", "[experiment]\nstudents_per_network = 2\n"))[0].hash, base.hash);
  // So is the one-thread rule, only when not the default.
  EXPECT_NE(base.canonical_toml.find("one_thread_below_gflop = 1.0\n"), std::string::npos);
  EXPECT_NE(resolve(edit(kBase, "[experiment]\n", "[experiment]\none_thread_below_gflop = 0.0\n"))[0].hash, base.hash);
  // So is an NFE curve, only when it has points.
  EXPECT_NE(base.canonical_toml.find("sampler_steps = []\n"), std::string::npos);
  const RunConfig curve = resolve(edit(kBase, "samples = 1000", "samples = 1000\nsampler_steps = [4, 8]"))[0];
  EXPECT_EQ(curve.evaluate.sampler_steps, (std::vector<std::int64_t>{4, 8}));
  EXPECT_NE(curve.hash, base.hash);
  EXPECT_EQ(curve.teacher_hash, base.teacher_hash);

  // Writing a default explicitly (in any section, a real as an integer, keys in another order): same config.
  EXPECT_EQ(resolve(edit(kBase, "hidden = 64", "layers = 4\nhidden = 64"))[0].hash, base.hash);
  EXPECT_EQ(resolve(edit(kBase, "plugin = \"dm\"", "plugin = \"dm\"\nfake_lr = 0.0001"))[0].hash, base.hash);
  EXPECT_EQ(resolve(edit(kBase, "steps = 100", "grad_clip = 10\nsteps = 100"))[0].hash, base.hash);
  EXPECT_EQ(resolve(edit(kBase, "[evaluate]", "[budget]\nbatch_size = 256\n\n[evaluate]"))[0].hash, base.hash);

  EXPECT_NE(resolve(edit(kBase, "hidden = 64", "hidden = 65"))[0].hash, base.hash);
}

TEST(ConfigCanonical, TeacherHashDependsOnDatasetTeacherSeedAndPrecisionOnly) {
  const RunConfig base = resolve(kBase)[0];
  const RunConfig other_stage = resolve(edit(kBase, "steps = 100", "steps = 200"))[0];
  EXPECT_NE(other_stage.hash, base.hash);
  EXPECT_EQ(other_stage.teacher_hash, base.teacher_hash);
  EXPECT_EQ(resolve(edit(kBase, "k = 4", "k = 2"))[0].teacher_hash, base.teacher_hash);
  EXPECT_NE(resolve(edit(kBase, "hidden = 64", "hidden = 65"))[0].teacher_hash, base.teacher_hash);
  EXPECT_NE(resolve(edit(kBase, "seed = 3", "seed = 4"))[0].teacher_hash, base.teacher_hash);
  EXPECT_NE(resolve(edit(kBase, "plugin = \"toy2d\"", "plugin = \"toy2d\"\nmodes = 3"))[0].teacher_hash,
            base.teacher_hash);
  // A teacher trained in bf16 is another teacher.
  const RunConfig bf16 = resolve(edit(kBase, "seed = 3", "seed = 3\nprecision = \"bf16\""))[0];
  EXPECT_NE(bf16.hash, base.hash);
  EXPECT_NE(bf16.teacher_hash, base.teacher_hash);
  // A sampling-only key changes the run, not the trained teacher: a sweep over it reuses one teacher.
  const RunConfig fewer_steps = resolve(edit(kBase, "hidden = 64", "hidden = 64\nsampler_steps = 4"))[0];
  EXPECT_NE(fewer_steps.hash, base.hash);
  EXPECT_EQ(fewer_steps.teacher_hash, base.teacher_hash);
}

TEST(ConfigCanonical, PairsHashDependsOnTheTeacherItsSamplerAndThePairCount) {
  const RunConfig base = resolve(kBase)[0];
  EXPECT_NE(base.pairs_hash, base.teacher_hash);
  // What is distilled from the pairs does not change them.
  EXPECT_EQ(resolve(edit(kBase, "steps = 100", "steps = 200"))[0].pairs_hash, base.pairs_hash);
  EXPECT_EQ(resolve(edit(kBase, "k = 4", "k = 2"))[0].pairs_hash, base.pairs_hash);
  // The teacher, the seed, the sampler and the count do.
  EXPECT_NE(resolve(edit(kBase, "hidden = 64", "hidden = 65"))[0].pairs_hash, base.pairs_hash);
  EXPECT_NE(resolve(edit(kBase, "seed = 3", "seed = 4"))[0].pairs_hash, base.pairs_hash);
  EXPECT_NE(resolve(edit(kBase, "hidden = 64", "hidden = 64\nsampler_steps = 4"))[0].pairs_hash, base.pairs_hash);
  EXPECT_NE(resolve(edit(kBase, "[evaluate]", "[distill]\npairs = 7\n\n[evaluate]"))[0].pairs_hash, base.pairs_hash);
}

TEST(ConfigCanonical, VariantNameIsNotHashedExperimentNameIs) {
  const std::string text = std::string(kBase) + R"(
[[sweep.variant]]
name = "a"
partition.k = 2
[[sweep.variant]]
name = "b"
"partition.k" = 2
)";
  const std::vector<RunConfig> runs = resolve(text);
  EXPECT_EQ(runs[0].hash, runs[1].hash);
  EXPECT_NE(resolve(edit(kBase, "name = \"toy\"", "name = \"toy2\""))[0].hash, resolve(kBase)[0].hash);
}

TEST(ConfigCanonical, TextHasEverySectionInOrderAndRoundTrips) {
  const RunConfig run = resolve(kBase)[0];
  const std::string& text = run.canonical_toml;
  std::size_t at = 0;
  for (const char* header : {"[experiment]\n", "[dataset]\n", "[teacher]\n", "[student]\n", "[partition]\n",
                             "[distill]\n", "[budget]\n", "[[stage]]\n", "[[stage.loss]]\n", "[[stage.loss]]\n",
                             "[evaluate]\n", "[[evaluate.metric]]\n"}) {
    const std::size_t found = text.find(header, at);
    ASSERT_NE(found, std::string::npos) << header << " after " << at << " in\n" << text;
    at = found + 1;
  }
  EXPECT_NE(text.find("[teacher]\nhidden = 64\nlayers = 4\nplugin = \"edm_mlp\"\nsampler_steps = 18\nsigmas = [0.002, 80.0]\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(resolve(text)[0].hash, run.hash);
}

TEST(ConfigFile, LoadResolvesPluginPathsAgainstItsFolder) {
  const std::filesystem::path folder = std::filesystem::temp_directory_path() / "msd_config_test";
  std::filesystem::create_directories(folder);
  const std::filesystem::path path = folder / "exp.toml";
  std::ofstream(path) << edit(kBase, "seed = 3", "plugin_paths = [\"plugins\", \"/opt/msd\"]");
  ExperimentFile file = ExperimentFile::load(path);
  EXPECT_EQ(file.path(), path);
  const std::vector<std::filesystem::path> paths = file.plugin_paths();
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[0], folder / "plugins");
  EXPECT_EQ(paths[1], std::filesystem::path("/opt/msd"));
  std::filesystem::remove_all(folder);

  try {
    ExperimentFile::load(folder / "missing.toml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("missing.toml: cannot read the experiment file"), std::string::npos)
        << error.what();
  }
}

TEST(ConfigFile, BadPluginPathsAreReportedBeforeLoading) {
  ExperimentFile file = ExperimentFile::parse(edit(kBase, "seed = 3", "plugin_paths = \"plugins\""), "exp.toml");
  EXPECT_THROW(file.plugin_paths(), ConfigError);
}

TEST(ConfigText, HashTextIsFnv1a64) {
  EXPECT_EQ(text::hash_text(""), "cbf29ce484222325");
  EXPECT_EQ(text::hash_text("a"), "af63dc4c8601ec8c");
}

TEST(ConfigText, ClosestMatch) {
  EXPECT_EQ(closest_match("hiden", {"layers", "hidden"}), std::optional<std::string>("hidden"));
  EXPECT_EQ(closest_match("xyzzy", {"layers", "hidden"}), std::nullopt);
  // Ties go to the earlier candidate.
  EXPECT_EQ(closest_match("ab", {"ax", "ay"}), std::optional<std::string>("ax"));
  // Longer words tolerate more edits: max(2, len/3).
  EXPECT_EQ(closest_match("outsidecelp", {"outside_cell_p"}), std::optional<std::string>("outside_cell_p"));
}

TEST(ConfigSchema, SectionsInCanonicalOrder) {
  std::vector<std::string> names;
  for (const SectionSchema& section : host_schema()) names.push_back(section.name);
  const std::vector<std::string> expected{"experiment", "dataset", "teacher", "student", "partition",
                                          "distill", "budget", "stage", "stage.loss", "evaluate",
                                          "evaluate.metric", "sweep", "sweep.variant"};
  EXPECT_EQ(names, expected);
  const SectionSchema* loss = find_section_schema("stage.loss");
  ASSERT_NE(loss, nullptr);
  EXPECT_TRUE(loss->array);
  EXPECT_EQ(loss->plugin_kind, PluginKind::loss);
  EXPECT_EQ(find_section_schema("nope"), nullptr);
}

TEST(ConfigErrors, DuplicateStageNamesAndLossesAreRejected) {
  const std::string text = std::string(kBase) +
                           "\n[[stage]]\nname = \"dm\"\nsteps = 5\n[[stage.loss]]\nplugin = \"dm\"\n[[stage.loss]]\nplugin = \"dm\"\n";
  try {
    resolve(text);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string all = e.what();
    EXPECT_NE(all.find("two stages are named 'dm'"), std::string::npos) << all;
    EXPECT_NE(all.find("loss 'dm' appears twice in stage 'dm'"), std::string::npos) << all;
  }
}

std::string repeated(const std::string& text, int times) {
  std::string out;
  for (int i = 0; i < times; ++i) out += text;
  return out;
}

// Every way of nesting deep is refused at its line before the recursive code (or toml++) sees it.
TEST(Limits, NestingIsBounded) {
  const auto first_issue = [](const std::string& text, const std::vector<std::string>& sets = {}) {
    const std::vector<ConfigIssue> issues = issues_of(text, sets);
    return issues.empty() ? std::string() : issues.front().str();
  };
  EXPECT_THAT(first_issue(std::string(kBase) + "a" + repeated(".a", 100000) + " = 1\n"),
              ::testing::HasSubstr("nests more than 32 levels"));
  EXPECT_THAT(first_issue(std::string(kBase) + "[" + std::string("t") + repeated(".t", 40) + "]\n"),
              ::testing::HasSubstr("nests more than 32 levels"));
  // 32 segments are fine as far as nesting goes (the key is unknown, which is another issue).
  EXPECT_THAT(first_issue(std::string(kBase) + "[t" + repeated(".t", 31) + "]\n"),
              ::testing::Not(::testing::HasSubstr("nests")));
  // Dots inside strings and comments are no key segments.
  EXPECT_NO_THROW(resolve(std::string(kBase) + "# " + repeated(".", 100) + "\n", {"experiment.description=\"" +
                                                                                     repeated(".", 100) + "\""}));
  EXPECT_THAT(first_issue(kBase, {"teacher.x=" + repeated("{a=", 40) + "1" + repeated("}", 40)}),
              ::testing::HasSubstr("nests more than 32 levels"));
  EXPECT_THAT(first_issue(kBase, {"a" + repeated(".a", 40) + "=1"}), ::testing::HasSubstr("41 segments"));
}

TEST(Limits, FloatsMustBeFinite) {
  for (const char* value : {"inf", "-inf", "nan", "+inf"}) {
    const std::vector<ConfigIssue> issues = issues_of(kBase, {std::string("stage.0.loss.1.weight=") + value});
    ASSERT_EQ(issues.size(), 1u) << value;
    EXPECT_EQ(issues[0].key, "stage.0.loss.1.weight");
    EXPECT_THAT(issues[0].message, ::testing::HasSubstr("must be a finite number"));
  }
  EXPECT_THAT(issues_of(kBase, {"dataset.spread=inf"}).front().message, ::testing::HasSubstr("finite"));
}

TEST(Limits, StringsHoldNoControlCharactersAndRequiredOnesAreNotEmpty) {
  const std::vector<ConfigIssue> nul = issues_of(edit(kBase, "name = \"toy\"", "name = \"t\\u0000y\""));
  ASSERT_EQ(nul.size(), 1u);
  EXPECT_EQ(nul[0].where.line, 2);
  EXPECT_THAT(nul[0].message, ::testing::HasSubstr("U+0000"));
  EXPECT_THAT(issues_of(kBase, {"stage.0.name=\"a\\nb\""}).front().message, ::testing::HasSubstr("U+000A"));
  EXPECT_THAT(issues_of(kBase, {"experiment.name=\"\""}).front().message, ::testing::HasSubstr("must not be empty"));
  // Tabs are allowed, and so is an empty optional string.
  EXPECT_NO_THROW(resolve(kBase, {"experiment.description=\"a\\tb\"", "experiment.results=\"\""}));
}

TEST(Limits, SweepsOfTooManyRunsAreRefused) {
  std::string values;
  for (int i = 1; i <= 400; ++i) values += (i > 1 ? ", " : "") + std::to_string(i);
  const std::vector<ConfigIssue> issues = issues_of(std::string(kBase) + "\n[sweep.grid]\n\"stage.0.steps\" = [" +
                                                    values + "]\n\"evaluate.samples\" = [" + values + "]\n");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_THAT(issues[0].message, ::testing::HasSubstr("more than 100000 runs"));
}

}  // namespace
}  // namespace msd::host
