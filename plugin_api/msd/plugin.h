// The plugin contract: metadata every plugin declares and the one entry point every plugin library
// exports. This header has no LibTorch dependency so that the loader, the config validator and the
// `msd plugins` commands compile fast.
//
// A plugin library exports exactly one C-linkage symbol, `msd_plugin_entry`, written for you by
// MSD_PLUGIN_LIBRARY (bottom of this file). The host reads `api_version` from the plain C struct it
// returns before touching anything C++, then asks for the list of plugins.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

/// Bumped whenever anything in plugin_api/ changes in a way that breaks already-built plugins
/// (docs/PLUGINS.md, "Versions of the contract", says what each version changed).
#define MSD_PLUGIN_API_VERSION 5

namespace msd {

/// What a plugin is for. The host only constructs a plugin as the kind it declared.
enum class PluginKind { dataset, teacher, student, partition, loss, metric };

/// "dataset", "teacher", ...
const char* to_string(PluginKind kind);
/// Inverse of to_string; nullopt for an unknown name.
std::optional<PluginKind> plugin_kind_from_string(const std::string& name);

/// The type of one configuration key.
enum class KeyType { boolean, integer, real, string, real_list, integer_list, string_list };

/// "bool", "integer", "float", "string", "float list", ...
const char* to_string(KeyType type);

/// A configuration value, as written in an experiment file after validation.
using Value = std::variant<bool, std::int64_t, double, std::string, std::vector<double>,
                           std::vector<std::int64_t>, std::vector<std::string>>;

/// The type a Value holds.
KeyType type_of(const Value& value);
/// TOML spelling of a value (strings quoted, lists bracketed); used for resolved configs and params.
std::string to_toml(const Value& value);

/// One configuration key a plugin (or a host section) accepts.
struct KeySpec {
  std::string name;                    ///< key name inside the plugin's section, e.g. "hidden"
  KeyType type = KeyType::real;        ///< the type a value must have (integers are accepted for reals)
  std::optional<Value> default_value;  ///< nullopt: the key is required
  std::string doc;                     ///< one line: what it means, with its unit
  std::optional<double> min;           ///< inclusive lower bound for numbers (each element of lists)
  std::optional<double> max;           ///< inclusive upper bound for numbers (each element of lists)
  std::vector<std::string> choices;    ///< allowed values for strings; empty: any string
  bool sampling_only = false;          ///< changes how a trained teacher samples, not the training:
                                       ///< the teacher cache ignores it, so sweeping it reuses one teacher
};

/// Shorthands for declaring keys; they read as a table in a plugin's source.
KeySpec key_int(std::string name, std::int64_t def, std::string doc, std::optional<double> min = {},
                std::optional<double> max = {});
KeySpec key_real(std::string name, double def, std::string doc, std::optional<double> min = {},
                 std::optional<double> max = {});
KeySpec key_bool(std::string name, bool def, std::string doc);
KeySpec key_string(std::string name, std::string def, std::string doc,
                   std::vector<std::string> choices = {});
KeySpec key_required(std::string name, KeyType type, std::string doc);
/// Marks a teacher key as sampling-only (KeySpec::sampling_only), e.g. sampling(key_int("sampler_steps", ...)).
KeySpec sampling(KeySpec key);

/// Validated configuration values of one plugin: every declared key is present (defaults filled in by
/// the host), with the declared type. A getter for an undeclared key or the wrong type throws
/// std::logic_error: that is a bug in the plugin, not in the user's file.
class Params {
 public:
  Params() = default;
  explicit Params(std::map<std::string, Value> values) : values_(std::move(values)) {}

  bool has(const std::string& key) const { return values_.count(key) != 0; }
  bool get_bool(const std::string& key) const;
  std::int64_t get_int(const std::string& key) const;
  /// Integers are widened: a user may write `lr = 1` for a real key.
  double get_real(const std::string& key) const;
  const std::string& get_string(const std::string& key) const;
  std::vector<double> get_real_list(const std::string& key) const;
  std::vector<std::int64_t> get_int_list(const std::string& key) const;
  std::vector<std::string> get_string_list(const std::string& key) const;

  const std::map<std::string, Value>& values() const { return values_; }
  void set(const std::string& key, Value value) { values_[key] = std::move(value); }

 private:
  const Value& at(const std::string& key) const;
  std::map<std::string, Value> values_;
};

/// What a partition splits.
enum class RoutingKey {
  condition,            ///< class labels (MSD): cells list classes and take every noise level
  noise_level,          ///< noise levels (O2MKD): cells bound sigma and take every class
  condition_and_noise,  ///< both at once (a hybrid): each cell lists classes and bounds sigma
};

/// What the host knows about a loss plugin without constructing one (PluginInfo::loss).
struct LossTraits {
  bool uses_teacher_pairs = false;        ///< calls StepContext::paired(): the host makes the pairs once per run
  std::vector<std::string> resumes_from;  ///< loss plugins of the previous stage whose saved state it starts from
                                          ///< (Loss::load gets their Loss::save), as DMD2's ADM starts from DM
  bool trains_groups = false;             ///< trains the members of a grouped student network at once
                                          ///< (LossSetup::members; see "Grouped students" in msd/loss.h)
};

/// What the host knows about a partition plugin without constructing one (PluginInfo::partition).
struct PartitionTraits {
  RoutingKey key = RoutingKey::condition;  ///< what its cells bound
  bool uses_class_features = false;        ///< split() reads PartitionContext::class_features
  bool uses_probe = false;                 ///< split() reads PartitionContext::level_difficulty, which the host
                                           ///< measures with a one-student probe after the teacher is trained
};

/// A value a metric returns that the summary `msd run` prints shows as a column.
struct SummaryColumn {
  std::string metric;  ///< MetricValue::name, read at the whole-model scope
  std::string title;   ///< the column's title, short
};

/// What the host knows about a metric plugin without constructing one (PluginInfo::metric).
struct MetricTraits {
  std::vector<SummaryColumn> summary;  ///< its values worth a column of the run summary, in order
};

/// Base of every plugin object; the kind interfaces (Dataset, Teacher, ...) derive from it.
class Plugin {
 public:
  virtual ~Plugin();
};

/// Everything the host learns about a plugin before constructing it.
struct PluginInfo {
  PluginKind kind = PluginKind::dataset;  ///< what it is
  std::string name;                       ///< unique among all loaded plugins, used in TOML `plugin = "..."`
  std::string version;                    ///< the plugin's own version, recorded with every run
  std::string description;                ///< one line for `msd plugins list`
  std::vector<KeySpec> keys;              ///< keys accepted in its TOML section
  LossTraits loss;                        ///< for loss plugins
  PartitionTraits partition;              ///< for partition plugins
  MetricTraits metric;                    ///< for metric plugins
};

/// Makes a plugin object from validated params. Throws std::exception with a message on bad values
/// that validation could not catch (for example a combination of keys).
using PluginFactory = std::function<std::unique_ptr<Plugin>(const Params&)>;

/// One plugin inside a library.
struct PluginDescriptor {
  PluginInfo info;
  PluginFactory create;
};

/// All plugins a library provides.
struct PluginLibrary {
  std::string name;                        ///< library name for messages, e.g. "toy_mlp"
  std::vector<PluginDescriptor> plugins;   ///< a library may hold several plugins
};

}  // namespace msd

extern "C" {
/// The C struct returned by the entry point. Only `api_version` may be read before it is checked.
struct msd_plugin_entry_v1 {
  int api_version;                                   ///< MSD_PLUGIN_API_VERSION the library was built with
  const char* compiler_id;                           ///< compiler and standard library, informative
  const msd::PluginLibrary* (*library)();            ///< the plugins; call only after checking api_version
};
}

/// Name of the exported symbol the loader looks for.
#define MSD_PLUGIN_ENTRY_SYMBOL "msd_plugin_entry"

#if defined(__GNUC__)
#define MSD_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define MSD_PLUGIN_EXPORT
#endif

#define MSD_PLUGIN_STRINGIFY2(x) #x
#define MSD_PLUGIN_STRINGIFY(x) MSD_PLUGIN_STRINGIFY2(x)

/// Defines the library's entry point. The argument is an expression of type msd::PluginLibrary,
/// evaluated once, the first time the host asks:
///
///   MSD_PLUGIN_LIBRARY(msd::PluginLibrary{"toy_mlp", {msd::describe<EdmMlpTeacher>(), ...}})
#define MSD_PLUGIN_LIBRARY(...)                                                               \
  static const msd::PluginLibrary* msd_plugin_library_instance() {                           \
    static const msd::PluginLibrary library = (__VA_ARGS__);                                 \
    return &library;                                                                          \
  }                                                                                           \
  extern "C" MSD_PLUGIN_EXPORT const msd_plugin_entry_v1* msd_plugin_entry() {               \
    static const msd_plugin_entry_v1 entry{MSD_PLUGIN_API_VERSION,                            \
                                           "gcc " MSD_PLUGIN_STRINGIFY(__GNUC__),              \
                                           &msd_plugin_library_instance};                     \
    return &entry;                                                                            \
  }

namespace msd {
/// Describes plugin class T, which must provide `static PluginInfo info()` and a constructor
/// `explicit T(const Params&)`.
template <typename T>
PluginDescriptor describe() {
  return PluginDescriptor{T::info(), [](const Params& params) -> std::unique_ptr<Plugin> {
                            return std::make_unique<T>(params);
                          }};
}
}  // namespace msd
