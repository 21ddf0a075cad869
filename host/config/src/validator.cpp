#include "validator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "canonical.h"
#include "msd/host/schema.h"
#include "msd/text.h"

namespace msd::host::config_detail {
namespace {

using Values = std::map<std::string, Value>;
using Kind = ConfigNode::Kind;

constexpr PluginKind kAllKinds[] = {PluginKind::dataset, PluginKind::teacher, PluginKind::student,
                                    PluginKind::partition, PluginKind::loss, PluginKind::metric};

std::string number(double value) {
  std::ostringstream os;
  os.precision(15);
  os << value;
  return os.str();
}

const SectionSchema& schema_of(const std::string& name) { return *find_section_schema(name); }

std::string header(const SectionSchema& schema) {
  return schema.array ? "[[" + schema.name + "]]" : "[" + schema.name + "]";
}

std::string label(const SectionSchema& schema, const std::string& plugin) {
  return header(schema) + (plugin.empty() ? "" : " (plugin " + plugin + ")");
}

/// Keys of a section that hold sub-sections (`loss` in [[stage]]), which the key check leaves alone.
std::vector<std::string> children_of(const SectionSchema& parent) {
  std::vector<std::string> children;
  const std::string prefix = parent.name + ".";
  for (const SectionSchema& section : host_schema()) {
    if (section.name.compare(0, prefix.size(), prefix) == 0) children.push_back(section.name.substr(prefix.size()));
  }
  return children;
}

/// Stores defaults as the user's values are stored, so `1` and `1.0` in a declaration hash alike.
Value normalized(KeyType type, const Value& value) {
  if (type == KeyType::real) {
    if (const auto* i = std::get_if<std::int64_t>(&value)) return static_cast<double>(*i);
  }
  if (type == KeyType::real_list) {
    if (const auto* list = std::get_if<std::vector<std::int64_t>>(&value)) {
      return std::vector<double>(list->begin(), list->end());
    }
  }
  return value;
}

template <typename T>
T value_or(const Values& values, const std::string& key, T fallback) {
  auto it = values.find(key);
  if (it == values.end()) return fallback;
  const T* value = std::get_if<T>(&it->second);
  return value ? *value : fallback;
}

bool check_range(const KeySpec& spec, double value, const ConfigNode& node, const std::string& key,
                 const std::string& prefix, std::vector<ConfigIssue>& issues) {
  // Written as negations so that NaN fails a bound instead of slipping past it.
  if (spec.min && !(value >= *spec.min)) {
    issues.push_back({node.where, key, prefix + "must be >= " + number(*spec.min) + ", got " + node.text()});
    return false;
  }
  if (spec.max && !(value <= *spec.max)) {
    issues.push_back({node.where, key, prefix + "must be <= " + number(*spec.max) + ", got " + node.text()});
    return false;
  }
  return true;
}

/// What is wrong with a string value whatever its key: a control character (a NUL would cut the name
/// short in C APIs and terminals; a newline would break every table), or emptiness where the key is
/// required (a required name left empty names nothing).
std::optional<std::string> string_problem(const KeySpec& spec, const std::string& value) {
  for (const char c : value) {
    const auto code = static_cast<unsigned char>(c);
    if ((code < 0x20 && c != '\t') || code == 0x7f) {
      char escaped[16];
      std::snprintf(escaped, sizeof escaped, "U+%04X", static_cast<unsigned>(code));
      return std::string("must not contain control characters; it holds ") + escaped;
    }
  }
  if (!spec.default_value && value.empty()) return std::string("must not be empty");
  return std::nullopt;
}

std::optional<Value> check_scalar(KeyType type, const KeySpec& spec, const ConfigNode& node, const std::string& key,
                                  const std::string& prefix, std::vector<ConfigIssue>& issues) {
  switch (type) {
    case KeyType::boolean:
      if (node.kind == Kind::boolean) return node.scalar;
      break;
    case KeyType::integer:
      if (node.kind == Kind::integer) {
        const auto value = std::get<std::int64_t>(node.scalar);
        if (!check_range(spec, static_cast<double>(value), node, key, prefix, issues)) return std::nullopt;
        return node.scalar;
      }
      break;
    case KeyType::real:
      if (node.kind == Kind::integer || node.kind == Kind::real) {
        const double value = node.kind == Kind::integer ? static_cast<double>(std::get<std::int64_t>(node.scalar))
                                                         : std::get<double>(node.scalar);
        // nan and inf are TOML floats, but no key means them: they would only turn into NaN losses.
        if (!std::isfinite(value)) {
          issues.push_back({node.where, key, prefix + "must be a finite number, got " + node.text()});
          return std::nullopt;
        }
        if (!check_range(spec, value, node, key, prefix, issues)) return std::nullopt;
        return Value{value};
      }
      break;
    case KeyType::string:
      if (node.kind == Kind::string) {
        const auto& value = std::get<std::string>(node.scalar);
        if (const std::optional<std::string> problem = string_problem(spec, value)) {
          issues.push_back({node.where, key, prefix + *problem});
          return std::nullopt;
        }
        if (!spec.choices.empty() && std::find(spec.choices.begin(), spec.choices.end(), value) == spec.choices.end()) {
          std::string message = prefix + "must be one of " + text::join(spec.choices, ", ", "\"") + "; got " + node.text();
          if (auto close = closest_match(value, spec.choices)) message += " (did you mean \"" + *close + "\"?)";
          issues.push_back({node.where, key, message});
          return std::nullopt;
        }
        return node.scalar;
      }
      break;
    default:
      break;
  }
  issues.push_back({node.where, key, prefix + "expected " + to_string(type) + ", got " + node.type_name() + " " + node.text()});
  return std::nullopt;
}

}  // namespace

std::optional<Value> check_value(const KeySpec& spec, const ConfigNode& node, const std::string& key,
                                 std::vector<ConfigIssue>& issues) {
  KeyType element;
  switch (spec.type) {
    case KeyType::real_list: element = KeyType::real; break;
    case KeyType::integer_list: element = KeyType::integer; break;
    case KeyType::string_list: element = KeyType::string; break;
    default: return check_scalar(spec.type, spec, node, key, "", issues);
  }
  if (!node.is_array()) {
    issues.push_back({node.where, key, std::string("expected ") + to_string(spec.type) + ", got " +
                                           node.type_name() + " " + node.text()});
    return std::nullopt;
  }
  std::vector<Value> checked;
  for (std::size_t i = 0; i < node.items.size(); ++i) {
    auto value = check_scalar(element, spec, node.items[i], key, "element " + std::to_string(i) + ": ", issues);
    if (value) checked.push_back(std::move(*value));
  }
  if (checked.size() != node.items.size()) return std::nullopt;
  const auto collect = [&](auto typed) -> Value {
    for (const Value& value : checked) typed.push_back(std::get<typename decltype(typed)::value_type>(value));
    return typed;
  };
  switch (element) {
    case KeyType::real: return collect(std::vector<double>{});
    case KeyType::integer: return collect(std::vector<std::int64_t>{});
    default: return collect(std::vector<std::string>{});
  }
}

namespace {

/// One validation pass over one effective config; collects issues instead of stopping at the first.
class Validation {
 public:
  Validation(const PluginCatalog& catalog, const std::string& file, std::vector<ConfigIssue>& issues)
      : catalog_(catalog), file_(file), issues_(issues) {
    empty_.where = SourceLocation{file, 0, 0};
  }

  std::optional<RunConfig> run(const ConfigNode& root);

 private:
  struct CheckedPlugin {
    PluginSection section;
    Values values;  ///< host keys too, for the canonical text
    std::set<std::string> sampling_only;  ///< keys the plugin marks KeySpec::sampling_only
  };

  void issue(const SourceLocation& where, const std::string& key, const std::string& message) {
    issues_.push_back(ConfigIssue{where, key, message});
  }
  bool required(const SectionSchema& schema) const {
    return schema.presence == Presence::required ||
           (schema.presence == Presence::required_to_distill && distill_enabled_);
  }
  std::string missing_message(const SectionSchema& schema) const;
  void check_top_level(const ConfigNode& root);
  const ConfigNode* section(const ConfigNode& parent, const SectionSchema& schema, const std::string& path,
                            const SourceLocation& missing_at);
  std::vector<const ConfigNode*> entries(const ConfigNode& parent, const SectionSchema& schema, const std::string& path,
                                         const SourceLocation& missing_at);
  Values keys(const ConfigNode& node, const SectionSchema& schema, const std::vector<KeySpec>& specs,
              const std::string& label, const std::string& path, bool judge_unknown);
  const PluginInfo* find_plugin(PluginKind kind, const std::string& name, const ConfigNode& node,
                                const std::string& key);
  CheckedPlugin plugin(const ConfigNode& node, const SectionSchema& schema, const std::string& path);
  std::optional<CheckedPlugin> top_plugin(const ConfigNode& root, const std::string& name);
  /// An optional host section and its values (its defaults when absent).
  std::pair<const ConfigNode*, Values> host_section(const ConfigNode& root, const std::string& name);
  /// Every [[stage]] and its [[stage.loss]] entries into `run`; returns their canonical sections.
  std::vector<CanonicalSection> read_stages(const ConfigNode& root, RunConfig& run);
  void read_losses(const ConfigNode& stage_node, const std::string& path, StageConfig& stage,
                   std::vector<CanonicalSection>& sections);
  /// Every [[evaluate.metric]] into `run`; returns their canonical sections.
  std::vector<CanonicalSection> read_metrics(const ConfigNode* evaluate_node, RunConfig& run);
  /// The host keys of [experiment], [distill], [budget] and [evaluate] into `run`.
  void apply_host_values(RunConfig& run, const Values& experiment, const Values& distill, const Values& budget,
                         const Values& evaluate) const;

  const PluginCatalog& catalog_;
  const std::string& file_;
  std::vector<ConfigIssue>& issues_;
  ConfigNode empty_;  ///< stands in for an absent optional section, so its defaults are filled alike
  bool distill_enabled_ = true;
};

std::string Validation::missing_message(const SectionSchema& schema) const {
  std::string message = schema.array ? "missing " + header(schema) + ": at least one is needed"
                                     : "missing section " + header(schema);
  if (schema.presence == Presence::required_to_distill) {
    return message + " when distill.enabled is true (set distill.enabled = false for the teacher-only baseline)";
  }
  return message + " (" + schema.doc + ")";
}

void Validation::check_top_level(const ConfigNode& root) {
  std::vector<std::string> sections;
  for (const SectionSchema& schema : host_schema()) {
    // [sweep] is taken out of the file before its runs are validated.
    if (schema.name.find('.') == std::string::npos && schema.name != "sweep") sections.push_back(schema.name);
  }
  for (const ConfigEntry& entry : root.entries) {
    if (std::find(sections.begin(), sections.end(), entry.key) != sections.end()) continue;
    const bool looks_like_section =
        entry.value.is_table() || (entry.value.is_array() && !entry.value.items.empty() &&
                                   entry.value.items.front().is_table());
    if (looks_like_section) {
      const std::string written = entry.value.is_array() ? "[[" + entry.key + "]]" : "[" + entry.key + "]";
      std::string message = "unknown section " + written;
      if (auto close = closest_match(entry.key, sections)) {
        message += "; did you mean [" + *close + "]?";
      } else {
        message += "; sections are " + text::join(sections);
      }
      issue(entry.value.where, entry.key, message);
      continue;
    }
    std::string message = "key '" + entry.key + "' is outside any section";
    const auto owner = std::find_if(host_schema().begin(), host_schema().end(), [&](const SectionSchema& schema) {
      return std::any_of(schema.keys.begin(), schema.keys.end(),
                         [&](const KeySpec& spec) { return spec.name == entry.key; });
    });
    message += owner != host_schema().end() ? "; it belongs in " + header(*owner)
                                            : "; keys belong inside a section, e.g. [teacher] (teacher.key on the command line)";
    issue(entry.value.where, entry.key, message);
  }
}

const ConfigNode* Validation::section(const ConfigNode& parent, const SectionSchema& schema, const std::string& path,
                                      const SourceLocation& missing_at) {
  const std::string key = schema.name.substr(schema.name.rfind('.') + 1);
  const ConfigNode* node = parent.find(key);
  if (node == nullptr) {
    if (required(schema)) issue(missing_at, path, missing_message(schema));
    return nullptr;
  }
  if (schema.array && !node->is_array()) {
    issue(node->where, path, header(schema) + " is an array of tables: write each entry under its own " +
                                 header(schema) + " header (got " + node->type_name() + " " + node->text() + ")");
    return nullptr;
  }
  if (!schema.array && !node->is_table()) {
    issue(node->where, path, header(schema) + " must be a table, got " + node->type_name() + " " + node->text());
    return nullptr;
  }
  return node;
}

std::vector<const ConfigNode*> Validation::entries(const ConfigNode& parent, const SectionSchema& schema,
                                                   const std::string& path, const SourceLocation& missing_at) {
  std::vector<const ConfigNode*> tables;
  const ConfigNode* array = section(parent, schema, path, missing_at);
  if (array == nullptr) return tables;
  if (array->items.empty() && required(schema)) issue(array->where, path, missing_message(schema));
  for (std::size_t i = 0; i < array->items.size(); ++i) {
    const ConfigNode& item = array->items[i];
    if (item.is_table()) {
      tables.push_back(&item);
    } else {
      issue(item.where, path + "." + std::to_string(i),
            "each " + header(schema) + " entry must be a table, got " + item.type_name() + " " + item.text());
      tables.push_back(nullptr);  // keeps indices aligned with the file
    }
  }
  return tables;
}

Values Validation::keys(const ConfigNode& node, const SectionSchema& schema, const std::vector<KeySpec>& specs,
                        const std::string& label, const std::string& path, bool judge_unknown) {
  const std::vector<std::string> children = children_of(schema);
  Values values;
  for (const ConfigEntry& entry : node.entries) {
    if (std::find(children.begin(), children.end(), entry.key) != children.end()) continue;
    const std::string key = path + "." + entry.key;
    const auto spec = std::find_if(specs.begin(), specs.end(), [&](const KeySpec& s) { return s.name == entry.key; });
    if (spec == specs.end()) {
      if (!judge_unknown) continue;
      std::vector<std::string> valid;
      for (const KeySpec& s : specs) valid.push_back(s.name);
      valid.insert(valid.end(), children.begin(), children.end());
      std::string message = "unknown key '" + entry.key + "' in " + label;
      if (auto close = closest_match(entry.key, valid)) {
        message += "; did you mean '" + *close + "'?";
      } else {
        message += "; valid keys: " + text::join(valid);
      }
      issue(entry.where(), key, message);
      continue;
    }
    if (auto value = check_value(*spec, entry.value, key, issues_)) values.emplace(entry.key, std::move(*value));
  }
  for (const KeySpec& spec : specs) {
    if (node.find(spec.name) != nullptr) continue;  // present: checked above
    if (spec.default_value) {
      values.emplace(spec.name, normalized(spec.type, *spec.default_value));
    } else {
      issue(node.where, path + "." + spec.name,
            "missing required key '" + spec.name + "' in " + label + " (" + to_string(spec.type) + ": " + spec.doc + ")");
    }
  }
  return values;
}

const PluginInfo* Validation::find_plugin(PluginKind kind, const std::string& name, const ConfigNode& node,
                                          const std::string& key) {
  if (const PluginInfo* info = catalog_.find(kind, name)) return info;
  const std::string kind_name = to_string(kind);
  const std::vector<std::string> known = catalog_.names(kind);
  std::string message;
  for (PluginKind other : kAllKinds) {
    if (other != kind && catalog_.find(other, name) != nullptr) {
      message = "'" + name + "' is a " + to_string(other) + " plugin, not a " + kind_name + " plugin";
      break;
    }
  }
  if (message.empty()) {
    message = "unknown " + kind_name + " plugin '" + name + "'";
    if (auto close = closest_match(name, known)) message += " (did you mean '" + *close + "'?)";
  }
  if (known.empty()) {
    message += "; no " + kind_name + " plugins are loaded (check experiment.plugin_paths and MSD_PLUGIN_PATH)";
  } else {
    message += "; known " + kind_name + " plugins: " + text::join(known);
  }
  issue(node.where, key, message);
  return nullptr;
}

Validation::CheckedPlugin Validation::plugin(const ConfigNode& node, const SectionSchema& schema,
                                             const std::string& path) {
  std::string name;
  const PluginInfo* info = nullptr;
  if (const ConfigNode* name_node = node.find("plugin"); name_node != nullptr && name_node->kind == Kind::string) {
    name = std::get<std::string>(name_node->scalar);
    info = find_plugin(*schema.plugin_kind, name, *name_node, path + ".plugin");
  }
  const auto is_host_key = [&](const std::string& key) {
    return std::any_of(schema.keys.begin(), schema.keys.end(), [&](const KeySpec& spec) { return spec.name == key; });
  };
  std::vector<KeySpec> specs = schema.keys;
  std::vector<std::string> plugin_keys;
  std::set<std::string> sampling_only;
  if (info != nullptr) {
    for (const KeySpec& spec : info->keys) {
      if (is_host_key(spec.name)) {
        issue(node.where, path + "." + spec.name,
              "plugin '" + name + "' declares key '" + spec.name + "', which the host reserves in " +
                  header(schema) + "; the plugin must rename it");
        continue;
      }
      specs.push_back(spec);
      plugin_keys.push_back(spec.name);
      if (spec.sampling_only) sampling_only.insert(spec.name);
    }
  }
  // Without the plugin's declaration its keys cannot be judged; the unknown plugin is reported instead.
  Values values = keys(node, schema, specs, label(schema, name), path, info != nullptr);
  Params params;
  for (const std::string& key : plugin_keys) {
    if (auto it = values.find(key); it != values.end()) params.set(key, it->second);
  }
  return CheckedPlugin{PluginSection{name, std::move(params)}, std::move(values), std::move(sampling_only)};
}

std::optional<Validation::CheckedPlugin> Validation::top_plugin(const ConfigNode& root, const std::string& name) {
  const SectionSchema& schema = schema_of(name);
  const ConfigNode* node = section(root, schema, name, empty_.where);
  if (node == nullptr) return std::nullopt;
  return plugin(*node, schema, name);
}

std::optional<RunConfig> Validation::run(const ConfigNode& root) {
  const std::size_t issues_before = issues_.size();
  check_top_level(root);

  // Read first: whether student, partition and stages are needed depends on it.
  const Values distill = host_section(root, "distill").second;
  distill_enabled_ = value_or(distill, "enabled", true);

  std::optional<Values> experiment;
  if (const ConfigNode* node = section(root, schema_of("experiment"), "experiment", empty_.where)) {
    experiment = keys(*node, schema_of("experiment"), schema_of("experiment").keys, "[experiment]", "experiment", true);
  }
  const std::optional<CheckedPlugin> dataset = top_plugin(root, "dataset");
  const std::optional<CheckedPlugin> teacher = top_plugin(root, "teacher");
  const std::optional<CheckedPlugin> student = top_plugin(root, "student");
  const std::optional<CheckedPlugin> partition = top_plugin(root, "partition");
  const Values budget = host_section(root, "budget").second;
  RunConfig run;
  const std::vector<CanonicalSection> stage_sections = read_stages(root, run);
  const auto [evaluate_node, evaluate] = host_section(root, "evaluate");
  const std::vector<CanonicalSection> metric_sections = read_metrics(evaluate_node, run);
  if (issues_.size() != issues_before) return std::nullopt;

  apply_host_values(run, *experiment, distill, budget, evaluate);
  if (!run.evaluate.sampler_steps.empty() && teacher->values.count("sampler_steps") == 0) {
    const ConfigNode* key = evaluate_node != nullptr ? evaluate_node->find("sampler_steps") : nullptr;
    issue(key != nullptr ? key->where : empty_.where, "evaluate.sampler_steps",
          "the teacher plugin '" + teacher->section.plugin +
              "' has no key sampler_steps, so its sampler cannot be run at other steps; remove evaluate.sampler_steps");
    return std::nullopt;
  }
  run.dataset = dataset->section;
  run.teacher = teacher->section;
  if (student) run.student = student->section;
  if (partition) {
    run.partition = partition->section;
    run.k = value_or(partition->values, "k", run.k);
  }

  std::vector<CanonicalSection> canonical;
  canonical.push_back({"experiment", false, "experiment", *experiment});
  canonical.push_back({"dataset", false, "dataset", dataset->values});
  canonical.push_back({"teacher", false, "teacher", teacher->values, teacher->sampling_only});
  if (student) canonical.push_back({"student", false, "student", student->values});
  if (partition) canonical.push_back({"partition", false, "partition", partition->values});
  canonical.push_back({"distill", false, "distill", distill});
  canonical.push_back({"budget", false, "budget", budget});
  canonical.insert(canonical.end(), stage_sections.begin(), stage_sections.end());
  canonical.push_back({"evaluate", false, "evaluate", evaluate});
  canonical.insert(canonical.end(), metric_sections.begin(), metric_sections.end());
  write_canonical(canonical, run);
  return run;
}

std::pair<const ConfigNode*, Values> Validation::host_section(const ConfigNode& root, const std::string& name) {
  // Optional host sections: an absent one is its defaults.
  const SectionSchema& schema = schema_of(name);
  const ConfigNode* node = section(root, schema, name, empty_.where);
  return {node, keys(node ? *node : empty_, schema, schema.keys, header(schema), name, true)};
}

std::vector<CanonicalSection> Validation::read_stages(const ConfigNode& root, RunConfig& run) {
  std::vector<CanonicalSection> sections;
  const SectionSchema& stage_schema = schema_of("stage");
  const std::vector<const ConfigNode*> stage_nodes = entries(root, stage_schema, "stage", empty_.where);
  for (std::size_t i = 0; i < stage_nodes.size(); ++i) {
    if (stage_nodes[i] == nullptr) continue;
    const ConfigNode& node = *stage_nodes[i];
    const std::string path = "stage." + std::to_string(i);
    const Values values = keys(node, stage_schema, stage_schema.keys, "[[stage]]", path, true);
    StageConfig stage;
    stage.name = value_or<std::string>(values, "name", "");
    // Stage and loss names key the training curves ("train.<stage>.<loss>"): they must not collide.
    for (const StageConfig& earlier : run.stages) {
      if (!stage.name.empty() && earlier.name == stage.name) {
        issue(node.where, path + ".name", "two stages are named '" + stage.name + "'; give each stage its own name");
      }
    }
    stage.steps = value_or<std::int64_t>(values, "steps", 0);
    stage.lr = value_or(values, "lr", stage.lr);
    stage.beta1 = value_or(values, "beta1", stage.beta1);
    stage.beta2 = value_or(values, "beta2", stage.beta2);
    stage.weight_decay = value_or(values, "weight_decay", stage.weight_decay);
    stage.grad_clip = value_or(values, "grad_clip", stage.grad_clip);
    stage.warmup = value_or(values, "warmup", stage.warmup);
    stage.update_every = value_or(values, "update_every", stage.update_every);
    sections.push_back({"stage", true, path, values});
    read_losses(node, path, stage, sections);
    run.stages.push_back(std::move(stage));
  }
  return sections;
}

void Validation::read_losses(const ConfigNode& stage_node, const std::string& path, StageConfig& stage,
                             std::vector<CanonicalSection>& sections) {
  const SectionSchema& loss_schema = schema_of("stage.loss");
  const std::vector<const ConfigNode*> loss_nodes = entries(stage_node, loss_schema, path + ".loss", stage_node.where);
  for (std::size_t j = 0; j < loss_nodes.size(); ++j) {
    if (loss_nodes[j] == nullptr) continue;
    const std::string loss_path = path + ".loss." + std::to_string(j);
    CheckedPlugin loss = plugin(*loss_nodes[j], loss_schema, loss_path);
    for (const LossConfig& earlier : stage.losses) {
      if (!loss.section.plugin.empty() && earlier.plugin == loss.section.plugin) {
        issue(loss_nodes[j]->where, loss_path + ".plugin",
              "loss '" + loss.section.plugin + "' appears twice in stage '" + stage.name +
                  "'; combine them into one entry with the summed weight");
      }
    }
    stage.losses.push_back(
        LossConfig{loss.section.plugin, value_or(loss.values, "weight", 1.0), std::move(loss.section.params)});
    sections.push_back({"stage.loss", true, loss_path, std::move(loss.values)});
  }
}

std::vector<CanonicalSection> Validation::read_metrics(const ConfigNode* evaluate_node, RunConfig& run) {
  std::vector<CanonicalSection> sections;
  if (evaluate_node == nullptr) return sections;
  const SectionSchema& metric_schema = schema_of("evaluate.metric");
  const std::vector<const ConfigNode*> metric_nodes =
      entries(*evaluate_node, metric_schema, "evaluate.metric", evaluate_node->where);
  for (std::size_t i = 0; i < metric_nodes.size(); ++i) {
    if (metric_nodes[i] == nullptr) continue;
    const std::string path = "evaluate.metric." + std::to_string(i);
    CheckedPlugin metric = plugin(*metric_nodes[i], metric_schema, path);
    run.evaluate.metrics.push_back(std::move(metric.section));
    sections.push_back({"evaluate.metric", true, path, std::move(metric.values)});
  }
  return sections;
}

void Validation::apply_host_values(RunConfig& run, const Values& experiment, const Values& distill,
                                   const Values& budget, const Values& evaluate) const {
  run.experiment = value_or<std::string>(experiment, "name", "");
  run.description = value_or<std::string>(experiment, "description", "");
  run.seed = value_or(experiment, "seed", run.seed);
  run.threads = value_or(experiment, "threads", run.threads);
  run.one_thread_below_gflop = value_or(experiment, "one_thread_below_gflop", run.one_thread_below_gflop);
  run.checkpoint_seconds = value_or(experiment, "checkpoint_seconds", run.checkpoint_seconds);
  run.students_per_network = value_or(experiment, "students_per_network", run.students_per_network);
  run.device = value_or(experiment, "device", run.device);
  run.precision = value_or(experiment, "precision", run.precision);
  run.results = value_or(experiment, "results", run.results);
  run.distill.enabled = distill_enabled_;
  run.distill.pairs = value_or(distill, "pairs", run.distill.pairs);
  run.distill.pairs_split = value_or(distill, "pairs_split", run.distill.pairs_split);
  run.distill.outside_cell_p = value_or(distill, "outside_cell_p", run.distill.outside_cell_p);
  run.budget.scope = value_or(budget, "scope", run.budget.scope);
  run.budget.divide = value_or(budget, "divide", run.budget.divide);
  run.budget.batch_size = value_or(budget, "batch_size", run.budget.batch_size);
  run.evaluate.samples = value_or(evaluate, "samples", run.evaluate.samples);
  run.evaluate.sampler_steps = value_or(evaluate, "sampler_steps", run.evaluate.sampler_steps);
}

}  // namespace

RunResolver::RunResolver(const PluginCatalog& catalog, std::string file) : catalog_(catalog), file_(std::move(file)) {}

std::optional<RunConfig> RunResolver::resolve(const ConfigNode& root, std::vector<ConfigIssue>& issues) const {
  return Validation(catalog_, file_, issues).run(root);
}

}  // namespace msd::host::config_detail
