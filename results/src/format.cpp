#include "msd/results/format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "iso_time.h"

namespace msd::results {

namespace {

// Width on a terminal, counting UTF-8 characters rather than bytes.
std::size_t display_width(const std::string& text) {
  return static_cast<std::size_t>(std::count_if(
      text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool looks_numeric(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text.front()))) return false;
  // strtod also accepts "nan", "inf" and "-inf", which format_number writes.
  char* end = nullptr;
  std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

std::string printf_string(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

// Seconds from `started_at` to `ended_at`, or to now while the run has no end; nullopt when a
// time cannot be parsed.
std::optional<std::int64_t> run_seconds(const RunRecord& run) {
  const auto start = detail::parse_iso_utc(run.started_at);
  const auto end = run.ended_at.empty() ? std::optional<std::time_t>(std::time(nullptr))
                                        : detail::parse_iso_utc(run.ended_at);
  if (!start || !end) return std::nullopt;
  return static_cast<std::int64_t>(*end - *start);
}

std::string run_duration(const RunRecord& run) {
  const auto seconds = run_seconds(run);
  return seconds ? format_duration(*seconds) : std::string();
}

std::string joined(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string text;
  for (const auto& [key, value] : pairs) {
    if (!text.empty()) text += ", ";
    text += key + "=" + value;
  }
  return text;
}

// "label     value" lines of the run details header.
void field(std::ostringstream& out, const std::string& label, const std::string& value) {
  constexpr std::size_t kLabelWidth = 10;
  out << label << std::string(kLabelWidth - std::min(kLabelWidth - 1, label.size()), ' ') << value
      << '\n';
}

}  // namespace

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";  // also turns -0 into 0
  // Whole numbers (counts, steps) and values from 1e4 up read better written out than as 1.235e+04.
  const double magnitude = std::fabs(value);
  if (magnitude < 1e9 && (value == std::trunc(value) || magnitude >= 1e4)) {
    return printf_string("%.0f", value);
  }
  return printf_string("%.4g", value);
}

std::string format_duration(std::int64_t seconds) {
  if (seconds < 0) seconds = 0;
  char text[32];
  if (seconds < 60) {
    std::snprintf(text, sizeof text, "%llds", static_cast<long long>(seconds));
  } else if (seconds < 3600) {
    std::snprintf(text, sizeof text, "%lldm%02llds", static_cast<long long>(seconds / 60),
                  static_cast<long long>(seconds % 60));
  } else if (seconds < 86400) {
    std::snprintf(text, sizeof text, "%lldh%02lldm", static_cast<long long>(seconds / 3600),
                  static_cast<long long>(seconds % 3600 / 60));
  } else {
    std::snprintf(text, sizeof text, "%lldd%02lldh", static_cast<long long>(seconds / 86400),
                  static_cast<long long>(seconds % 86400 / 3600));
  }
  return text;
}

// ---- TextTable ---------------------------------------------------------------------------------
TextTable::TextTable(std::vector<std::string> header) : header_(std::move(header)) {}

void TextTable::add_row(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

std::string TextTable::str() const {
  std::size_t columns = header_.size();
  for (const auto& row : rows_) columns = std::max(columns, row.size());

  std::vector<std::size_t> width(columns, 0);
  std::vector<bool> numeric(columns, true);
  std::vector<bool> has_value(columns, false);
  for (std::size_t c = 0; c < header_.size(); ++c) width[c] = display_width(header_[c]);
  for (const auto& row : rows_) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      width[c] = std::max(width[c], display_width(row[c]));
      if (row[c].empty()) continue;
      has_value[c] = true;
      numeric[c] = numeric[c] && looks_numeric(row[c]);
    }
  }

  std::string out;
  const auto add_line = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t c = 0; c < columns; ++c) {
      const std::string& cell = c < cells.size() ? cells[c] : std::string();
      const std::string padding(width[c] - display_width(cell), ' ');
      if (c > 0) line += "  ";
      line += numeric[c] && has_value[c] ? padding + cell : cell + padding;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + '\n';
  };
  add_line(header_);
  std::vector<std::string> rule;
  for (std::size_t c = 0; c < columns; ++c) rule.emplace_back(width[c], '-');
  add_line(rule);
  for (const auto& row : rows_) add_line(row);
  return out;
}

// ---- runs --------------------------------------------------------------------------------------
std::string format_run_list(const std::vector<RunRecord>& runs) {
  TextTable table({"id", "experiment", "name", "status", "seed", "started", "duration", "config"});
  for (const RunRecord& run : runs) {
    table.add_row({std::to_string(run.id), run.experiment, run.name, to_string(run.status),
                   std::to_string(run.seed), run.started_at, run_duration(run),
                   run.config_hash.substr(0, 8)});
  }
  return table.str();
}

std::string format_run_details(const Store& store, std::int64_t run_id) {
  const auto found = store.find_run(run_id);
  if (!found) {
    throw std::runtime_error("no run with id " + std::to_string(run_id) + " in " + store.path());
  }
  const RunRecord& run = *found;

  std::ostringstream out;
  out << "run " << run.id << ": " << run.experiment << " / " << run.name << '\n';
  field(out, "status", to_string(run.status));
  field(out, "started", run.started_at);
  if (run.ended_at.empty()) {
    field(out, "ended", "not yet (" + run_duration(run) + " so far)");
  } else {
    field(out, "ended", run.ended_at + " (" + run_duration(run) + ")");
  }
  field(out, "host", run.host + " (pid " + std::to_string(run.pid) + ")");
  field(out, "device", run.device);
  field(out, "git", (run.git_commit.empty() ? std::string("unknown") : run.git_commit) +
                        (run.git_dirty ? " (dirty)" : ""));
  field(out, "config", run.config_hash);
  field(out, "seed", std::to_string(run.seed));
  if (!run.sweep_id.empty()) {
    const std::string coords = joined(store.coords(run.id));
    field(out, "sweep", run.sweep_id + " #" + std::to_string(run.sweep_index) +
                            (coords.empty() ? "" : ": " + coords));
  }
  const auto tags = store.tags(run.id);
  if (!tags.empty()) field(out, "tags", joined(tags));
  if (!run.error.empty()) field(out, "error", run.error);

  if (!run.config_text.empty()) {
    out << "\nresolved config:\n";
    std::istringstream lines(run.config_text);
    for (std::string line; std::getline(lines, line);) {
      out << (line.empty() ? "" : "  ") << line << '\n';
    }
  }

  // final_metrics is ordered by scope, and "" sorts first, so whole-model metrics lead.
  const auto metrics = store.final_metrics(run.id);
  if (metrics.empty()) {
    out << "\nfinal metrics: none\n";
  } else {
    out << "\nfinal metrics:\n";
    TextTable table({"scope", "metric", "step", "value"});
    for (const MetricRow& row : metrics) {
      table.add_row({row.scope.empty() ? "(all)" : row.scope, row.name, std::to_string(row.step),
                     format_number(row.value)});
    }
    out << table.str();
  }

  const auto plugins = store.plugins(run.id);
  if (!plugins.empty()) {
    out << "\nplugins:\n";
    TextTable table({"kind", "name", "version", "library"});
    for (const RunPlugin& plugin : plugins) table.add_row({plugin.kind, plugin.name, plugin.version, plugin.library});
    out << table.str();
  }

  const auto artifacts = store.artifacts(run.id);
  if (artifacts.empty()) {
    out << "\nartifacts: none\n";
  } else {
    out << "\nartifacts:\n";
    TextTable table({"kind", "path"});
    for (const Artifact& artifact : artifacts) table.add_row({artifact.kind, artifact.path});
    out << table.str();
  }
  return out.str();
}

}  // namespace msd::results
