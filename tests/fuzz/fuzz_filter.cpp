// Fuzz target: the filter of `msd results query`. A filter either fails with FilterError, or its SQL
// runs on a real results database (one run, made once per process): SQLite must accept every filter
// the translator lets through, however deep, long or odd.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "msd/results/filter.h"
#include "msd/results/store.h"

namespace {

/// A results database with one finished run, in a fresh folder; returns its path.
std::string make_database() {
  std::string pattern = (std::filesystem::temp_directory_path() / "msd_fuzz_filter_XXXXXX").string();
  const std::string path = (std::filesystem::path(mkdtemp(pattern.data())) / "results.db").string();
  msd::results::Store writer(path);
  msd::results::NewRun run;
  run.experiment = "fuzz";
  run.name = "base";
  run.config_hash = "0123456789abcdef";
  run.params = {{"partition.k", "2"}, {"teacher.plugin", "\"mlp\""}, {"distill.enabled", "true"}};
  run.coords = {{"partition.k", "2"}};
  const std::int64_t id = writer.begin_run(run);
  writer.log_metrics(id, {{"swd", 0, 0.5, ""}, {"swd", 0, 0.25, "student:0"}});
  writer.set_tag(id, "model", "students");
  writer.finish_run(id, msd::results::RunStatus::finished);
  return path;
}

const msd::results::Store& database() {
  static const msd::results::Store store(make_database(), msd::results::Store::Mode::read_only);
  return store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  msd::results::RunQuery query;
  query.filter.assign(reinterpret_cast<const char*>(data), size);
  query.metrics = {"swd"};
  try {
    msd::results::query_runs(database(), query);
  } catch (const msd::results::FilterError&) {
  }
  return 0;
}
