#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "config_tree.h"
#include "msd/host/config.h"
#include "msd/host/schema.h"
#include "msd/text.h"
#include "sweep.h"
#include "validator.h"

namespace msd::host {

using config_detail::ConfigNode;
using config_detail::kCommandLine;
using config_detail::Override;

struct ExperimentFile::Impl {
  std::filesystem::path path;
  std::string file;                  ///< how messages name the file
  ConfigNode root;                   ///< the file as written, [sweep] included
  std::vector<Override> command_line;  ///< --set overrides, flattened, in command-line order
};

namespace {

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

std::string first_segment(const std::string& path) { return path.substr(0, path.find('.')); }

/// More than this is no experiment file (a handful of kB), and more runs than this no sweep that
/// finishes: both are refused before any work.
constexpr std::uintmax_t kMaxExperimentFileBytes = 4 << 20;
constexpr std::uint64_t kMaxRuns = 100000;

/// The runs a sweep plan makes (variants x the points of every axis), or kMaxRuns + 1 when more.
std::uint64_t run_count(const config_detail::SweepPlan& plan) {
  std::uint64_t runs = std::max<std::uint64_t>(1, plan.variants.size());
  for (const config_detail::Axis& axis : plan.axes) {
    if (axis.empty()) continue;
    if (runs > kMaxRuns / axis.size()) return kMaxRuns + 1;
    runs *= axis.size();
  }
  return runs;
}

/// A variant's coordinates: each overridden key once (the last override wins, as when applied), valued
/// as resolved (so `lr = 1` reads 1.0 like the param) when it names a key.
std::vector<std::pair<std::string, std::string>> coordinates(
    const std::vector<Override>& overrides, const std::vector<std::pair<std::string, std::string>>& params) {
  std::vector<std::pair<std::string, std::string>> coords;
  for (const Override& override_ : overrides) {
    const auto is_key = [&](const auto& entry) { return entry.first == override_.path; };
    const auto param = std::find_if(params.begin(), params.end(), is_key);
    std::string text = param != params.end() ? param->second : override_.value.text();
    const auto coord = std::find_if(coords.begin(), coords.end(), is_key);
    if (coord != coords.end()) {
      coord->second = std::move(text);
    } else {
      coords.emplace_back(override_.path, std::move(text));
    }
  }
  return coords;
}

/// Each issue once (every variant repeats the base file's, and every value of a [sweep.grid] list the
/// same unknown key, one column apart), in the order of the file, command line last.
std::vector<ConfigIssue> tidy(const std::vector<ConfigIssue>& issues) {
  std::vector<ConfigIssue> unique;
  std::set<std::tuple<std::string, int, std::string, std::string>> seen;
  for (const ConfigIssue& issue : issues) {
    if (seen.emplace(issue.where.file, issue.where.line, issue.key, issue.message).second) unique.push_back(issue);
  }
  std::stable_sort(unique.begin(), unique.end(), [](const ConfigIssue& a, const ConfigIssue& b) {
    return std::make_tuple(a.where.file == kCommandLine, a.where.line, a.where.column) <
           std::make_tuple(b.where.file == kCommandLine, b.where.line, b.where.column);
  });
  return unique;
}

}  // namespace

ExperimentFile::ExperimentFile() : impl_(std::make_unique<Impl>()) {}
ExperimentFile::ExperimentFile(ExperimentFile&&) noexcept = default;
ExperimentFile& ExperimentFile::operator=(ExperimentFile&&) noexcept = default;
ExperimentFile::~ExperimentFile() = default;

ExperimentFile ExperimentFile::load(const std::filesystem::path& path) {
  const auto refuse = [&](const std::string& why) {
    return ConfigError({ConfigIssue{SourceLocation{path.string()}, "", why}});
  };
  std::error_code ec;
  // A device or a pipe (/dev/zero, a FIFO) would be read forever.
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    throw refuse("is not a regular file; give the path of an experiment .toml file");
  }
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxExperimentFileBytes) {
    throw refuse("is " + std::to_string(size) + " bytes; an experiment file is a few kB (at most " +
                 std::to_string(kMaxExperimentFileBytes) + " bytes are read)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw ConfigError({ConfigIssue{SourceLocation{path.string()}, "",
                                   std::string("cannot read the experiment file: ") + std::strerror(errno)}});
  }
  std::ostringstream text;
  text << in.rdbuf();
  ExperimentFile file = parse(text.str(), path.string());
  file.impl_->path = path;
  return file;
}

ExperimentFile ExperimentFile::parse(const std::string& text, const std::string& name) {
  ExperimentFile file;
  file.impl_->path = name;
  file.impl_->file = name;
  file.impl_->root = config_detail::parse_document(text, name);
  return file;
}

void ExperimentFile::set_override(const std::string& assignment) {
  const SourceLocation where{kCommandLine};
  const std::size_t equals = assignment.find('=');
  if (equals == std::string::npos) {
    throw ConfigError({ConfigIssue{where, "", "malformed override '" + assignment +
                                                  "': expected key=value, e.g. --set partition.k=4"}});
  }
  const std::string key = trim(assignment.substr(0, equals));
  const bool empty_segment = key.empty() || key.front() == '.' || key.back() == '.' ||
                             key.find("..") != std::string::npos;
  if (empty_segment) {
    throw ConfigError({ConfigIssue{where, key, "malformed override '" + assignment +
                                                   "': the key must be a dotted path such as stage.0.steps"}});
  }
  config_detail::flatten(key, config_detail::parse_command_line_value(trim(assignment.substr(equals + 1))),
                         impl_->command_line);
}

std::vector<std::filesystem::path> ExperimentFile::plugin_paths() const {
  ConfigNode tree = impl_->root;
  std::vector<ConfigIssue> deferred;  // resolve() reports these along with everything else
  for (const Override& override_ : impl_->command_line) config_detail::apply(override_, tree, deferred);

  const ConfigNode* experiment = tree.find("experiment");
  const ConfigNode* node = experiment != nullptr && experiment->is_table() ? experiment->find("plugin_paths") : nullptr;
  if (node == nullptr) return {};
  const std::vector<KeySpec>& keys = find_section_schema("experiment")->keys;
  const KeySpec& spec = *std::find_if(keys.begin(), keys.end(), [](const KeySpec& s) { return s.name == "plugin_paths"; });
  // The plugins must be loaded before the rest can be validated, so this key cannot wait for resolve().
  std::vector<ConfigIssue> issues;
  const std::optional<Value> value = config_detail::check_value(spec, *node, "experiment.plugin_paths", issues);
  if (!value) throw ConfigError(issues);

  std::vector<std::filesystem::path> folders;
  for (const std::string& folder : std::get<std::vector<std::string>>(*value)) {
    const std::filesystem::path given(folder);
    folders.push_back(given.is_relative() ? impl_->path.parent_path() / given : given);
  }
  return folders;
}

std::vector<RunConfig> ExperimentFile::resolve(const PluginCatalog& catalog) const {
  std::vector<ConfigIssue> issues;
  ConfigNode base = impl_->root;
  base.erase("sweep");  // it says which runs to make; it is no part of any run's config
  config_detail::SweepPlan plan;
  if (const ConfigNode* sweep = impl_->root.find("sweep")) plan = config_detail::read_sweep(*sweep, issues);
  if (plan.variants.empty()) plan.variants.push_back(config_detail::Variant{"base", {}});
  if (run_count(plan) > kMaxRuns) {
    throw ConfigError({ConfigIssue{impl_->root.find("sweep")->where, "sweep",
                                   "[sweep] makes more than " + std::to_string(kMaxRuns) +
                                       " runs (variants x grid x zip x seeds); split it into several files"}});
  }

  // Every combination of one point per axis, the first axis outermost.
  std::vector<std::vector<const config_detail::AxisPoint*>> combinations{{}};
  for (const config_detail::Axis& axis : plan.axes) {
    std::vector<std::vector<const config_detail::AxisPoint*>> next;
    for (const auto& combination : combinations) {
      for (const config_detail::AxisPoint& point : axis) {
        next.push_back(combination);
        next.back().push_back(&point);
      }
    }
    combinations = std::move(next);
  }

  const config_detail::RunResolver resolver(catalog, impl_->file);
  std::vector<RunConfig> runs;
  std::int64_t index = 0;
  for (const config_detail::Variant& variant : plan.variants) {
    for (const auto& combination : combinations) {
      std::vector<Override> overrides = variant.overrides;
      for (const config_detail::AxisPoint* point : combination) {
        overrides.insert(overrides.end(), point->overrides.begin(), point->overrides.end());
      }
      overrides.insert(overrides.end(), impl_->command_line.begin(), impl_->command_line.end());
      ConfigNode tree = base;
      for (const Override& override_ : overrides) {
        if (first_segment(override_.path) == "sweep") {
          issues.push_back({override_.value.where, override_.path,
                            "[sweep] cannot be overridden: overrides change a run's config, and [sweep] says which "
                            "runs to make; edit the file instead"});
          continue;
        }
        config_detail::apply(override_, tree, issues);
      }
      const std::int64_t position = index++;
      std::optional<RunConfig> run = resolver.resolve(tree, issues);
      if (!run) continue;
      run->coords = coordinates(overrides, run->params);
      run->name = variant.name;
      if (!plan.axes.empty()) {
        std::string label;
        for (const config_detail::AxisPoint* point : combination) {
          for (const Override& override_ : point->overrides) {  // a table value gives one per leaf
            const auto coord = std::find_if(run->coords.begin(), run->coords.end(),
                                            [&](const auto& entry) { return entry.first == override_.path; });
            const auto renamed = std::find_if(point->labels.begin(), point->labels.end(),
                                              [&](const auto& entry) { return entry.second == override_.path; });
            const std::string& name = renamed != point->labels.end() ? renamed->first : override_.path;
            label += (label.empty() ? "" : ",") + name + "=" + (coord != run->coords.end() ? coord->second
                                                                                           : override_.value.text());
          }
        }
        run->name += "[" + label + "]";
      }
      run->sweep_index = position;
      runs.push_back(std::move(*run));
    }
  }
  if (!issues.empty()) throw ConfigError(tidy(issues));

  std::string plan_text;
  for (const RunConfig& run : runs) plan_text += run.name + " " + run.hash + "\n";
  const std::string sweep_id = text::hash_text(plan_text);
  for (RunConfig& run : runs) run.sweep_id = sweep_id;
  return runs;
}

const std::filesystem::path& ExperimentFile::path() const { return impl_->path; }

}  // namespace msd::host
