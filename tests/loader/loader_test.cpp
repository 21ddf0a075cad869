// Plugin discovery and loading: the registry against fixture libraries built next to this test
// (tests/loader/fixtures), never against the real plugins.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "msd/host/plugin_registry.h"
#include "msd/partition.h"

namespace msd::host {
namespace {

namespace fs = std::filesystem;

const fs::path fixture_dir = MSD_LOADER_FIXTURE_DIR;
const fs::path good_dir = fixture_dir / "good";
const fs::path bad_dir = fixture_dir / "bad";
const fs::path good_library = good_dir / "libmsd_fixture_plugins.so";

fs::path bad_library(const std::string& name) { return bad_dir / ("libmsd_fixture_" + name + ".so"); }

Params partition_params(const std::string& label, bool fail) {
  return Params({{"label", Value{label}}, {"fail", Value{fail}}});
}

/// The message of the PluginError `action` throws; fails the test if it throws nothing.
template <typename Action>
std::string error_of(Action&& action) {
  try {
    action();
  } catch (const PluginError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a PluginError";
  return {};
}

void expect_contains(const std::string& message, std::initializer_list<std::string> parts) {
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' missing from: " << message;
  }
}

/// Loading `file` fails with a message naming its absolute path and containing `parts`, and leaves
/// `registry` as it was.
void expect_load_error(PluginRegistry& registry, const fs::path& file,
                       std::initializer_list<std::string> parts) {
  SCOPED_TRACE(file.string());
  const size_t before = registry.all().size();
  const std::string message = error_of([&] { registry.load_library(file); });
  expect_contains(message, {fs::canonical(file).string()});
  expect_contains(message, parts);
  EXPECT_EQ(registry.all().size(), before);
}

/// Sets or clears an environment variable for one test and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    set(value);
  }
  ~ScopedEnv() { set(old_ ? old_->c_str() : nullptr); }

 private:
  void set(const char* value) {
    if (value) {
      setenv(name_, value, 1);
    } else {
      unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override { registry.load_folder(good_dir); }
  PluginRegistry registry;
};

TEST_F(LoaderTest, FindsPluginsByKindAndName) {
  EXPECT_EQ(registry.names(PluginKind::metric), std::vector<std::string>{"fixture_metric"});
  EXPECT_EQ(registry.names(PluginKind::partition), std::vector<std::string>{"fixture_partition"});
  EXPECT_TRUE(registry.names(PluginKind::loss).empty());

  const PluginInfo* metric = registry.find(PluginKind::metric, "fixture_metric");
  ASSERT_NE(metric, nullptr);
  EXPECT_EQ(metric->version, "1.2.0");
  EXPECT_EQ(metric->keys.size(), 4u);
  EXPECT_EQ(registry.find(PluginKind::partition, "fixture_metric"), nullptr);
  EXPECT_EQ(registry.find(PluginKind::metric, "nothing"), nullptr);

  const LoadedPlugin* any = registry.find_any("fixture_partition");
  ASSERT_NE(any, nullptr);
  EXPECT_EQ(any->info.kind, PluginKind::partition);
  EXPECT_EQ(any->library_path, fs::canonical(good_library).string());
  EXPECT_EQ(any->library_name, "fixture_plugins");
  EXPECT_EQ(registry.find_any("nothing"), nullptr);
}

TEST_F(LoaderTest, AllIsSortedByKindThenName) {
  const std::vector<const LoadedPlugin*> all = registry.all();
  ASSERT_EQ(all.size(), 2u);
  // PluginKind order: partition comes before metric.
  EXPECT_EQ(all[0]->info.name, "fixture_partition");
  EXPECT_EQ(all[1]->info.name, "fixture_metric");
}

TEST_F(LoaderTest, MakeConstructsWithParams) {
  auto partition = registry.make<Partition>(PluginKind::partition, "fixture_partition",
                                            partition_params("everything", false));
  ASSERT_NE(partition, nullptr);
  const std::vector<Cell> cells = partition->split(PartitionContext{});
  ASSERT_EQ(cells.size(), 1u);
  EXPECT_EQ(cells[0].label, "everything");

  auto metric = registry.make<Plugin>(PluginKind::metric, "fixture_metric", Params{});
  EXPECT_NE(metric, nullptr);
}

TEST_F(LoaderTest, FactoryErrorNamesPluginAndFile) {
  const std::string message = error_of([&] {
    registry.make<Plugin>(PluginKind::partition, "fixture_partition", partition_params("x", true));
  });
  expect_contains(message, {"fixture_partition", fs::canonical(good_library).string(), "asked to fail"});
}

TEST_F(LoaderTest, ObjectOfAnotherInterfaceIsRefused) {
  const std::string message =
      error_of([&] { registry.make<Partition>(PluginKind::metric, "fixture_metric", Params{}); });
  expect_contains(message, {"fixture_metric", "declared kind metric"});
}

TEST_F(LoaderTest, UnknownNameListsKnownNamesAndSuggests) {
  const std::string typo =
      error_of([&] { registry.make<Plugin>(PluginKind::partition, "fixture_partiton", Params{}); });
  expect_contains(typo, {"no partition plugin named 'fixture_partiton'",
                         "known partition plugins: fixture_partition",
                         "did you mean 'fixture_partition'?"});

  const std::string far = error_of([&] { registry.make<Plugin>(PluginKind::metric, "fid", Params{}); });
  expect_contains(far, {"no metric plugin named 'fid'", "known metric plugins: fixture_metric"});
  EXPECT_EQ(far.find("did you mean"), std::string::npos) << far;

  const std::string none = error_of([&] { registry.make<Plugin>(PluginKind::dataset, "toy", Params{}); });
  expect_contains(none, {"no dataset plugin named 'toy'", "known dataset plugins: none"});
}

TEST_F(LoaderTest, WrongKindSaysWhichKindItIs) {
  const std::string message =
      error_of([&] { registry.make<Plugin>(PluginKind::loss, "fixture_metric", Params{}); });
  expect_contains(message, {"'fixture_metric' is a metric plugin, not a loss plugin"});
}

TEST_F(LoaderTest, LoadingTheSameLibraryAgainIsANoOp) {
  registry.load_library(good_library);
  registry.load_library(good_dir / "." / good_library.filename());  // another spelling, same file
  registry.load_folder(good_dir);
  EXPECT_EQ(registry.all().size(), 2u);
}

TEST_F(LoaderTest, DuplicateNameNamesBothFiles) {
  expect_load_error(registry, bad_library("duplicate"),
                    {"'fixture_metric'", fs::canonical(good_library).string(), "unique across kinds"});
  // The library's other, valid plugin was not registered either.
  EXPECT_EQ(registry.find_any("fixture_loss"), nullptr);
}

TEST(LoaderErrors, FileThatIsNotALibrary) {
  PluginRegistry registry;
  expect_load_error(registry, bad_dir / "bad.so", {"is not a shared library (it has no ELF header)"});
}

// The dynamic loader trusts a library's headers: mapping a truncated copy dies of SIGBUS. The loader
// looks first and refuses it, whatever the cut.
TEST(LoaderErrors, TruncatedLibraryIsRefusedBeforeLoading) {
  const fs::path folder = fs::temp_directory_path() / ("msd_truncated_" + std::to_string(::getpid()));
  fs::create_directories(folder);
  std::ifstream in(good_library, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const std::size_t keep : {std::size_t{10}, std::size_t{64}, std::size_t{1000}, bytes.size() / 2,
                                 bytes.size() - 1}) {
    const fs::path copy = folder / ("libmsd_cut_" + std::to_string(keep) + ".so");
    std::ofstream(copy, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(keep));
    PluginRegistry registry;
    expect_load_error(registry, copy, {copy.string(), "is not a whole shared library", "copy it again"});
  }
  fs::remove_all(folder);
}

TEST(LoaderErrors, LibraryWithoutEntryPoint) {
  PluginRegistry registry;
  expect_load_error(registry, bad_library("no_entry"),
                    {"is not an msd-lab plugin library (no msd_plugin_entry symbol)", "MSD_PLUGIN_LIBRARY"});
  // A refused library is not remembered as loaded: asking again reports the same error.
  expect_load_error(registry, bad_library("no_entry"), {"is not an msd-lab plugin library"});
}

TEST(LoaderErrors, OtherApiVersionIsRefusedBeforeCallingIntoIt) {
  PluginRegistry registry;
  // The fixture's library() aborts: reaching it would crash this test.
  expect_load_error(registry, bad_library("future_api"),
                    {"built for plugin API version 999",
                     "this msd expects " + std::to_string(MSD_PLUGIN_API_VERSION),
                     "rebuild it against this plugin_api"});
}

TEST(LoaderErrors, NullPluginList) {
  PluginRegistry registry;
  expect_load_error(registry, bad_library("null_library"), {"no plugin list", "MSD_PLUGIN_LIBRARY"});
}

TEST(LoaderErrors, InvalidMetadata) {
  PluginRegistry registry;
  expect_load_error(registry, bad_library("empty_name"), {"metric plugin with an empty name"});
  expect_load_error(registry, bad_library("bad_default"),
                    {"plugin 'fixture_bad_default'", "key 'steps'", "declared as integer"});
  expect_load_error(registry, bad_library("default_out_of_range"),
                    {"plugin 'fixture_default_out_of_range'", "key 'rate'", "outside the key's own range"});
  expect_load_error(registry, bad_library("duplicate_key"),
                    {"plugin 'fixture_duplicate_key'", "key 'steps' twice"});
}

TEST(LoaderErrors, MissingFileAndFolder) {
  PluginRegistry registry;
  const fs::path missing = fixture_dir / "missing";
  expect_contains(error_of([&] { registry.load_folder(missing); }),
                  {"plugin folder " + missing.string() + " does not exist"});
  expect_contains(error_of([&] { registry.load_folder(good_library); }),
                  {good_library.string(), "is not a folder"});
  expect_contains(error_of([&] { registry.load_library(missing / "libmsd_x.so"); }),
                  {"cannot load plugin library " + (missing / "libmsd_x.so").string()});
}

TEST(LoaderErrors, FolderWithANonPluginFileFails) {
  PluginRegistry registry;
  // Files load in name order, so bad.so is the first one refused.
  expect_contains(error_of([&] { registry.load_folder(bad_dir); }), {(bad_dir / "bad.so").string()});
}

TEST(SearchPath, BuildFolderThenPluginPathEntries) {
  std::vector<fs::path> expected;
  if (fs::is_directory(MSD_TEST_BUILD_PLUGIN_DIR)) expected.emplace_back(MSD_TEST_BUILD_PLUGIN_DIR);
  {
    ScopedEnv env("MSD_PLUGIN_PATH", nullptr);
    EXPECT_EQ(PluginRegistry::default_search_path(), expected);
  }
  ScopedEnv env("MSD_PLUGIN_PATH", "/opt/a::/opt/b:");
  expected.emplace_back("/opt/a");
  expected.emplace_back("/opt/b");
  EXPECT_EQ(PluginRegistry::default_search_path(), expected);
}

TEST_F(LoaderTest, ListIsAlignedColumns) {
  const std::string list = format_plugin_list(registry);
  const std::string file = fs::canonical(good_library).string();
  const std::string expected = "KIND       NAME               VERSION  FILE\n"
                                     "partition  fixture_partition  0.1.0    " + file + "\n"
                                     "metric     fixture_metric     1.2.0    " + file + "\n";
  EXPECT_EQ(list, expected);
  EXPECT_NE(format_plugin_list(PluginRegistry{}).find("no plugins loaded"), std::string::npos);
}

TEST_F(LoaderTest, DetailsShowEveryKey) {
  const std::string details = format_plugin_details(*registry.find_any("fixture_metric"));
  expect_contains(details, {"name:         fixture_metric\n", "kind:         metric\n",
                            "version:      1.2.0\n",
                            "file:         " + fs::canonical(good_library).string() + "\n",
                            "description:  measures nothing; used by the loader tests\n"});
  expect_contains(details, {"  NAME   TYPE     DEFAULT   ALLOWED                DOC\n",
                            "  count  integer  3         [1, 10]                how many things to count\n",
                            "  scale  float    2                                "
                            "an integer default for a real key\n",
                            "  mode   string   \"fast\"    one of \"fast\", \"slow\"  how to count\n",
                            "  path   string   required                         where the results go\n"});
}

}  // namespace
}  // namespace msd::host
