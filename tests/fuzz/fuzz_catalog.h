// What the experiment-file fuzz targets validate against: a catalog of plugins like the built-in ones,
// declaring keys of every type and bound, without loading any library (a fuzz target must stay
// fast and free of LibTorch). Also the base file that the --set and [sweep] targets start from.
#pragma once

#include <string>
#include <vector>

#include "msd/host/config.h"
#include "support/info_catalog.h"

namespace msd::fuzz {

class FuzzCatalog : public testing::InfoCatalog {
 public:
  FuzzCatalog() {
    add({PluginKind::dataset, "grid", "1", "", {key_int("modes", 8, "", 1, 64), key_real("spread", 0.05, "", 0)}});
    add({PluginKind::teacher, "mlp", "1", "",
         {key_int("hidden", 32, "", 1), key_real("lr", 1e-3, "", 0), sampling(key_int("sampler_steps", 4, "", 1)),
          KeySpec{"channel_mult", KeyType::integer_list, Value{std::vector<std::int64_t>{1, 2}}, "", 1, 8, {}},
          KeySpec{"sigmas", KeyType::real_list, Value{std::vector<double>{0.1}}, "", 0, {}, {}}}});
    add({PluginKind::student, "generator", "1", "", {key_bool("from_teacher", true, "")}});
    add({PluginKind::partition, "classes", "1", "", {key_string("order", "consecutive", "", {"consecutive", "random"})}});
    add({PluginKind::loss, "dm", "1", "", {key_real("fake_lr", 1e-4, "", 0), key_required("tag", KeyType::string, "")}});
    add({PluginKind::loss, "regression", "1", "",
         {KeySpec{"names", KeyType::string_list, Value{std::vector<std::string>{}}, "", {}, {}, {}}}});
    add({PluginKind::metric, "swd", "1", "", {key_int("projections", 64, "", 1, 4096)}});
  }
};

/// A valid experiment for FuzzCatalog, without a [sweep].
inline const char* const kBaseExperiment = R"toml(
[experiment]
name = "fuzz"
seed = 1

[dataset]
plugin = "grid"

[teacher]
plugin = "mlp"

[student]
plugin = "generator"

[partition]
plugin = "classes"
k = 2

[[stage]]
name = "dm"
steps = 10

[[stage.loss]]
plugin = "dm"
tag = "a"

[[stage.loss]]
plugin = "regression"
weight = 0.25

[[evaluate.metric]]
plugin = "swd"
)toml";

/// Parses and resolves; ConfigError is the expected answer to bad input, anything else escapes.
inline void resolve(const host::ExperimentFile& file) {
  static const FuzzCatalog catalog;
  try {
    file.resolve(catalog);
  } catch (const host::ConfigError&) {
  }
}

}  // namespace msd::fuzz
