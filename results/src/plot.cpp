#include "msd/results/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>

#include "gnuplot.h"
#include "msd/results/compare.h"
#include "msd/results/format.h"
#include "msd/results/pictures.h"

namespace msd::results {

namespace {

std::optional<double> as_number(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

bool is_power_of_two(double value) {
  int exponent = 0;
  return value > 0 && std::frexp(value, &exponent) == 0.5;
}

/// A TOML string value without its quotes, for labels; other values as they are.
std::string label_text(const std::string& value) {
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') return value.substr(1, value.size() - 2);
  return value;
}

struct ValuesLess {
  bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), by_value_less);
  }
};

struct Point {
  std::string x;
  MetricSummary summary;
};

/// The metric names the selection's finished runs have at `scope`, for the error message.
std::string metrics_present(const Store& store, const SweepSelection& selection, const std::string& scope) {
  const QueryResult names = store.query(
      "SELECT DISTINCT m.name FROM metrics m JOIN runs r ON r.id = m.run_id "
      "JOIN experiments e ON e.id = r.experiment_id WHERE r.status = 'finished' AND m.scope = ?3 "
      "AND CASE ?1 WHEN 'sweep' THEN r.sweep_id = ?2 ELSE e.name = ?2 END ORDER BY m.name",
      {selection.kind, selection.value, scope});
  std::string list;
  for (const auto& row : names.rows) list += (list.empty() ? "" : ", ") + row[0].text;
  return list.empty() ? "none" : list;
}

}  // namespace

void plot_sweep(const Store& store, const PlotRequest& request, const std::filesystem::path& out) {
  if (request.x.empty()) throw std::runtime_error("plot needs an x param key (--x)");
  if (request.y.empty()) throw std::runtime_error("plot needs a metric name (--y)");
  CompareRequest compare{request.selection, {request.x}, {request.y}, request.scope};
  compare.by.insert(compare.by.end(), request.by.begin(), request.by.end());
  const ComparisonTable table = compare_runs(store, compare);
  const std::string scope_text = request.scope.empty() ? std::string() : " at scope " + request.scope;
  if (table.rows.empty()) throw std::runtime_error(table.description + " has no finished runs to plot");

  bool has_x = false, has_values = false, has_finite = false;
  for (const ComparisonRow& row : table.rows) {
    has_x = has_x || row.by[0] != "-";
    has_values = has_values || row.metrics[0].n + row.metrics[0].non_finite > 0;
    has_finite = has_finite || row.metrics[0].n > 0;
  }
  if (!has_x) {
    throw std::runtime_error("no finished run of " + table.description + " has a param '" + request.x +
                             "' (give a dotted config key, e.g. partition.k)");
  }
  if (!has_values) {
    throw std::runtime_error("no finished run of " + table.description + " has metric '" + request.y + "'" +
                             scope_text + "; metrics there: " +
                             metrics_present(store, resolve_sweep(store, request.selection, "plot"), request.scope));
  }
  if (!has_finite) {
    throw std::runtime_error("metric '" + request.y + "'" + scope_text + " of " + table.description +
                             " has only non-finite values (NaN or infinite): nothing to plot");
  }

  // One line per combination of the further keys; its points in x order (compare_runs' order).
  std::map<std::vector<std::string>, std::vector<Point>, ValuesLess> lines;
  std::vector<std::string> xs;  // distinct x values, in order
  bool numeric = true, powers_of_two = true;
  for (const ComparisonRow& row : table.rows) {
    if (row.metrics[0].n == 0) continue;
    lines[std::vector<std::string>(row.by.begin() + 1, row.by.end())].push_back({row.by[0], row.metrics[0]});
    if (std::find(xs.begin(), xs.end(), row.by[0]) == xs.end()) xs.push_back(row.by[0]);
    const std::optional<double> x = as_number(row.by[0]);
    numeric = numeric && x.has_value();
    powers_of_two = powers_of_two && x && is_power_of_two(*x);
  }
  std::sort(xs.begin(), xs.end(), by_value_less);

  detail::ScratchDir scratch;
  const std::filesystem::path data = scratch / "points.dat";
  std::string plot = "plot ";
  {
    std::ofstream file(data);
    std::size_t block = 0;
    for (const auto& [key, points] : lines) {
      std::size_t n_min = points.front().summary.n, n_max = n_min;
      for (const Point& point : points) {
        const double x = numeric ? *as_number(point.x)
                                 : static_cast<double>(std::find(xs.begin(), xs.end(), point.x) - xs.begin());
        const double std = point.summary.n > 1 ? point.summary.std : 0.0;
        char line[96];
        std::snprintf(line, sizeof line, "%.17g %.17g %.17g\n", x, point.summary.mean, std);
        file << line;
        n_min = std::min(n_min, point.summary.n);
        n_max = std::max(n_max, point.summary.n);
      }
      file << "\n\n";
      std::string title;
      for (std::size_t k = 0; k < key.size(); ++k) {
        title += (k ? ", " : "") + request.by[k] + "=" + label_text(key[k]);
      }
      if (title.empty()) title = request.y;
      title += " (n=" + std::to_string(n_min) + (n_max != n_min ? "-" + std::to_string(n_max) : "") + ")";
      const char* colour = kPalette[block % std::size(kPalette)];
      plot += std::string(block ? ", \\\n     " : "") + detail::gnuplot_string(data.string()) + " index " +
              std::to_string(block) + " using 1:2:3 with " +
              (numeric ? "yerrorlines lw 3 pt 7 ps 1.2" : "yerrorbars lw 3 pt 7 ps 1.8") + " lc rgb '" + colour +
              "' title " + detail::gnuplot_string(title);
      ++block;
    }
    if (!file) throw std::runtime_error("cannot write " + data.string());
  }

  std::string script = detail::png_terminal(request.width, request.height, out);
  const std::string title = request.title.empty()
                                ? request.y + " by " + request.x + ", " + table.description + " (mean ± std over runs)"
                                : request.title;
  script += "set title " + detail::gnuplot_string(title) + "\n";
  script += "set xlabel " + detail::gnuplot_string(request.x) + "\n";
  script += "set ylabel " + detail::gnuplot_string(request.y + (request.scope.empty() ? "" : " (" + request.scope + ")")) + "\n";
  script += "set grid\nset key below\nset bars small\n";  // below: long line titles leave the plot its width
  std::string tics;
  if (numeric && powers_of_two && xs.size() > 1) {
    script += "set logscale x 2\n";
    for (const std::string& x : xs) tics += (tics.empty() ? "" : ", ") + x;
    script += "set xtics (" + tics + ")\nset offsets graph 0.05, graph 0.05, graph 0.08, graph 0.08\n";
  } else if (numeric) {
    script += "set offsets graph 0.05, graph 0.05, graph 0.08, graph 0.08\n";
  } else {
    for (std::size_t i = 0; i < xs.size(); ++i) {
      tics += (i ? ", " : "") + detail::gnuplot_string(label_text(xs[i])) + " " + std::to_string(i);
    }
    script += "set xtics (" + tics + ")\nset xrange [-0.5:" + std::to_string(xs.size() - 0.5) + "]\n" +
              "set offsets 0, 0, graph 0.08, graph 0.08\n";
  }
  script += plot + "\n";
  const std::filesystem::path script_file = scratch / "plot.gp";
  std::ofstream(script_file) << script;
  detail::run_gnuplot(script_file, out);
}

}  // namespace msd::results
