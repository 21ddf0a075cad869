#include "msd/results/report.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>

#include "gnuplot.h"
#include "msd/results/compare.h"
#include "msd/results/format.h"
#include "msd/results/plot.h"

namespace msd::results {

namespace {

constexpr const char* kSeedKey = "experiment.seed";


std::vector<std::string> first_column(const QueryResult& result) {
  std::vector<std::string> values;
  for (const auto& row : result.rows) values.push_back(row[0].text);
  return values;
}

std::string joined(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text.empty() ? "none" : text;
}

struct RunInfo {
  RunRecord record;
  std::map<std::string, std::string> params;
  std::vector<std::pair<std::string, std::string>> coords;
  std::vector<MetricRow> final_metrics;
  std::vector<Artifact> pictures;          // scatter and image_grid artifacts whose file is here
  std::size_t missing_pictures = 0;        // those whose file is not (a database copied without its runs)
};

std::vector<RunInfo> load_runs(const Store& store, const SweepSelection& selection) {
  const std::vector<std::string> ids = first_column(store.query(
      "SELECT r.id FROM runs r JOIN experiments e ON e.id = r.experiment_id "
      "WHERE CASE ?1 WHEN 'sweep' THEN r.sweep_id = ?2 ELSE e.name = ?2 END ORDER BY r.id",
      {selection.kind, selection.value}));
  std::vector<RunInfo> runs;
  for (const std::string& text : ids) {
    const std::int64_t id = std::stoll(text);
    RunInfo run;
    run.record = *store.find_run(id);
    for (auto& [key, value] : store.params(id)) run.params[key] = value;
    run.coords = store.coords(id);
    run.final_metrics = store.final_metrics(id);
    for (const Artifact& artifact : store.artifacts(id)) {
      if (artifact.kind != "scatter" && artifact.kind != "image_grid") continue;
      if (std::filesystem::exists(artifact.path)) {
        run.pictures.push_back(artifact);
      } else {
        ++run.missing_pictures;
      }
    }
    runs.push_back(std::move(run));
  }
  return runs;
}

/// Says how many recorded pictures are not on this machine, so that a variant without samples is
/// explained (a database committed or copied without its run folders keeps its artifact rows).
std::string missing_pictures_note(const std::vector<RunInfo>& runs) {
  std::size_t missing = 0;
  std::size_t runs_missing = 0;
  std::string example;
  for (const RunInfo& run : runs) {
    if (run.missing_pictures == 0) continue;
    missing += run.missing_pictures;
    ++runs_missing;
    if (example.empty()) example = "run " + std::to_string(run.record.id) + " (" + run.record.name + ")";
  }
  if (missing == 0) return "";
  return "<p class=\"warning\">" + std::to_string(missing) + " recorded picture(s) of " + std::to_string(runs_missing) +
         " run(s) are not on this machine (the database was moved without its run folders), the first of "
         "them " + html_escape(example) + "; runs whose pictures are here stand in for their variants above.</p>\n";
}

std::string param_value(const RunInfo& run, const std::string& key) {
  const auto found = run.params.find(key);
  return found == run.params.end() ? "-" : found->second;
}

/// Coordinate keys (seed excepted) that take more than one value over the runs.
std::vector<std::string> sweep_axes(const std::vector<RunInfo>& runs) {
  std::set<std::string> keys;
  for (const RunInfo& run : runs) {
    for (const auto& [key, value] : run.coords) {
      if (key != kSeedKey) keys.insert(key);
    }
  }
  std::vector<std::string> axes;
  for (const std::string& key : keys) {
    std::set<std::string> values;
    for (const RunInfo& run : runs) values.insert(param_value(run, key));
    if (values.size() > 1) axes.push_back(key);
  }
  return axes;
}

bool is_finished(const RunInfo& run) { return run.record.status == RunStatus::finished; }

std::vector<std::string> default_metrics(const std::vector<RunInfo>& runs, std::size_t cap) {
  std::optional<std::set<std::string>> shared;
  for (const RunInfo& run : runs) {
    if (!is_finished(run)) continue;
    std::set<std::string> names;
    for (const MetricRow& row : run.final_metrics) {
      // Dotted names are bookkeeping (run.seconds, train.*, teacher.*), not scores of the model.
      if (row.scope.empty() && row.step == 0 && row.name.find('.') == std::string::npos) names.insert(row.name);
    }
    if (!shared) {
      shared = names;
    } else {
      std::set<std::string> both;
      std::set_intersection(shared->begin(), shared->end(), names.begin(), names.end(),
                            std::inserter(both, both.begin()));
      shared = both;
    }
  }
  std::vector<std::string> metrics;
  if (shared) metrics.assign(shared->begin(), shared->end());
  if (metrics.size() > cap) metrics.resize(cap);
  return metrics;
}

bool numeric_axis(const std::vector<RunInfo>& runs, const std::string& key) {
  for (const RunInfo& run : runs) {
    if (!is_finished(run)) continue;
    const std::string value = param_value(run, key);
    char* end = nullptr;
    const double number = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(number)) return false;
  }
  return true;
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::string png_image(const std::string& png_bytes, const std::string& alt) {
  return "<img alt=\"" + html_escape(alt) + "\" src=\"data:image/png;base64," + base64_encode(png_bytes) + "\">";
}

std::string cell(const std::string& text, bool number = false) {
  return std::string(number ? "<td class=\"num\">" : "<td>") + html_escape(text) + "</td>";
}

std::string header_row(const std::vector<std::string>& names) {
  std::string row = "<tr>";
  for (const std::string& name : names) row += "<th>" + html_escape(name) + "</th>";
  return row + "</tr>\n";
}

std::string coordinates_text(const RunInfo& run) {
  std::string text;
  for (const auto& [key, value] : run.coords) text += (text.empty() ? "" : ", ") + key + "=" + value;
  return text.empty() ? "-" : text;
}

std::string metric_value(const RunInfo& run, const std::string& name) {
  for (const MetricRow& row : run.final_metrics) {
    if (row.name == name && row.scope.empty()) return format_number(row.value);
  }
  return "-";
}

std::string comparison_html(const ComparisonTable& table) {
  std::vector<std::string> header = table.by;
  for (const char* name : {"runs", "mean ± std", "n"}) header.push_back(name);
  std::string html = "<table>\n" + header_row(header);
  for (const ComparisonRow& row : table.rows) {
    const MetricSummary& m = row.metrics[0];
    html += "<tr>";
    for (const std::string& value : row.by) html += cell(value);
    std::string summary = m.n == 0 ? "-" : format_number(m.mean) + " ± " + (m.n < 2 ? "-" : format_number(m.std));
    if (m.non_finite > 0) summary += " (+" + std::to_string(m.non_finite) + " non-finite)";
    html += cell(std::to_string(row.runs), true) + cell(summary, true) + cell(std::to_string(m.n), true) + "</tr>\n";
  }
  return html + "</table>\n";
}

constexpr const char* kStyle = R"(
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 24px; margin-bottom: 8px; }
h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ccc; }
h3 { font-size: 16px; }
table { border-collapse: collapse; margin: 8px 0 16px 0; }
th { background: HEADER; text-align: left; }
th, td { border: 1px solid #bbb; padding: 4px 10px; font-size: 14px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta th { width: 160px; }
.warning { color: #a00; }
figure { display: inline-block; margin: 8px 16px 16px 0; vertical-align: top; }
figcaption { font-size: 13px; color: #444; max-width: 640px; }
img { max-width: 100%; }
)";

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64_encode(const std::string& bytes) {
  static constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::size_t left = std::min<std::size_t>(3, bytes.size() - i);
    std::uint32_t group = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      group = (group << 8) | (k < left ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    }
    for (std::size_t k = 0; k < 4; ++k) {
      out += k <= left ? kDigits[(group >> (18 - 6 * k)) & 63] : '=';
    }
  }
  return out;
}

std::string render_report(const Store& store, const ReportRequest& request) {
  const SweepSelection selection = resolve_sweep(store, request.selection, "report");
  const std::vector<RunInfo> runs = load_runs(store, selection);
  const std::vector<std::string> axes = sweep_axes(runs);
  const std::vector<std::string> metrics =
      request.metrics.empty() ? default_metrics(runs, request.max_default_metrics) : request.metrics;

  std::map<std::string, int> by_status;
  std::set<std::string> experiments;
  for (const RunInfo& run : runs) {
    ++by_status[to_string(run.record.status)];
    experiments.insert(run.record.experiment);
  }
  std::string status_text;
  for (RunStatus status : {RunStatus::finished, RunStatus::failed, RunStatus::interrupted, RunStatus::running}) {
    const auto count = by_status.find(to_string(status));
    if (count == by_status.end()) continue;
    status_text += (status_text.empty() ? "" : ", ") + std::to_string(count->second) + " " + count->first;
  }
  const std::string name = selection.kind + " " + selection.value;
  std::string style = kStyle;
  style.replace(style.find("HEADER"), 6, kReportHeaderBackground);

  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" +
                     html_escape("msd-lab report: " + name) + "</title>\n<style>" + style + "</style>\n</head>\n<body>\n";
  html += "<h1>" + html_escape("msd-lab report: " + joined({experiments.begin(), experiments.end()})) + "</h1>\n";
  html += "<table class=\"meta\">\n";
  html += "<tr><th>database</th>" + cell(std::filesystem::absolute(store.path()).string()) + "</tr>\n";
  // An experiment selection is the experiment row below; a sweep gets its own row.
  if (selection.kind == "sweep") html += "<tr><th>sweep</th>" + cell(selection.value) + "</tr>\n";
  html += "<tr><th>experiment</th>" + cell(joined({experiments.begin(), experiments.end()})) + "</tr>\n";
  html += "<tr><th>runs</th>" + cell(std::to_string(runs.size()) + " (" + status_text + ")") + "</tr>\n";
  html += "<tr><th>axes</th>" + cell(axes.empty() ? "none (runs differ by seed only)" : joined(axes)) + "</tr>\n";
  html += "</table>\n";

  // Comparisons group by variant (a study's rows, each over its seeds) and the axes; without either
  // every finished run is one group.
  std::set<std::string> variants;
  for (const RunInfo& run : runs) variants.insert(variant_of(run.record.name));
  std::vector<std::string> group_keys = axes;
  if (variants.size() > 1) group_keys.insert(group_keys.begin(), kVariantKey);
  if (group_keys.empty()) group_keys = {"experiment.name"};
  const bool any_finished = std::any_of(runs.begin(), runs.end(), is_finished);
  detail::ScratchDir scratch;
  for (const std::string& metric : metrics) {
    html += "<h2>" + html_escape(metric) + "</h2>\n";
    if (!any_finished) {
      html += "<p>No finished runs.</p>\n";
      continue;
    }
    html += comparison_html(compare_runs(store, {selection.value, group_keys, {metric}, ""}));
    html += "<p>Final whole-model values of the finished runs: mean ± sample std over the runs of each "
            "group (n runs with a finite value).</p>\n";
    for (const std::string& axis : axes) {
      if (!numeric_axis(runs, axis)) continue;
      PlotRequest plot{selection.value, axis, metric, "", {}};
      for (const std::string& other : axes) {
        if (other != axis) plot.by.push_back(other);
      }
      const std::filesystem::path file = scratch / "plot.png";
      try {
        plot_sweep(store, plot, file);
        html += "<figure>" + png_image(read_file(file), metric + " by " + axis) + "<figcaption>" +
                html_escape(metric + " against " + axis + "; error bars: sample std; n in the legend") +
                "</figcaption></figure>\n";
      } catch (const std::exception& e) {
        html += "<p class=\"warning\">" + html_escape("plot of " + metric + " by " + axis + " not drawn: " + e.what()) +
                "</p>\n";
      }
    }
  }

  html += "<h2>Runs</h2>\n<table>\n";
  std::vector<std::string> header = {"id", "name", "coordinates", "status"};
  header.insert(header.end(), metrics.begin(), metrics.end());
  html += header_row(header);
  for (const RunInfo& run : runs) {
    html += "<tr>" + cell(std::to_string(run.record.id), true) + cell(run.record.name) + cell(coordinates_text(run)) +
            cell(to_string(run.record.status));
    for (const std::string& metric : metrics) html += cell(metric_value(run, metric), true);
    html += "</tr>\n";
  }
  html += "</table>\n";

  // One run's pictures per variant and axis values: the first run of the group that has any.
  html += "<h2>Samples</h2>\n";
  std::set<std::vector<std::string>> shown;
  for (const RunInfo& run : runs) {
    if (run.pictures.empty()) continue;
    std::vector<std::string> group{variant_of(run.record.name)};
    for (const std::string& axis : axes) group.push_back(param_value(run, axis));
    if (!shown.insert(group).second) continue;
    std::string label;
    for (std::size_t k = 0; k < axes.size(); ++k) label += (k ? ", " : "") + axes[k] + "=" + group[k + 1];
    label = (label.empty() ? "" : label + ": ") + "run " + std::to_string(run.record.id) + " (" + run.record.name + ")";
    for (const Artifact& picture : run.pictures) {
      html += "<figure>";
      try {
        html += png_image(read_file(picture.path), picture.kind + " of run " + std::to_string(run.record.id));
      } catch (const std::exception& e) {
        html += "<p class=\"warning\">" + html_escape(e.what()) + "</p>";
      }
      html += "<figcaption>" + html_escape(label + ", " + picture.kind) + "</figcaption></figure>\n";
    }
  }
  if (shown.empty()) html += "<p>No run has sample pictures.</p>\n";
  html += missing_pictures_note(runs);
  return html + "</body>\n</html>\n";
}

void write_report(const Store& store, const ReportRequest& request, const std::filesystem::path& out) {
  const std::string html = render_report(store, request);
  std::ofstream file(out, std::ios::binary);
  file << html;
  file.close();
  if (!file) throw std::runtime_error("cannot write the report to " + out.string());
}

}  // namespace msd::results
