#include "msd/results/compare.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "msd/text.h"
#include "msd/results/format.h"

namespace msd::results {

namespace {

// Every statement below binds the user's text as parameters; none is built from it.
// ?1 is 'sweep' or 'experiment', ?2 the sweep id or experiment name.
constexpr const char* kSelectedRuns =
    " FROM runs r JOIN experiments e ON e.id = r.experiment_id "
    "WHERE r.status = 'finished' AND CASE ?1 WHEN 'sweep' THEN r.sweep_id = ?2 ELSE e.name = ?2 END";

std::optional<double> parse_number(const std::string& text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text.front()))) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::string full_number(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

std::string json_number(double value) { return std::isfinite(value) ? full_number(value) : "null"; }

std::int64_t count(const Store& store, const char* sql, const std::string& value) {
  const QueryResult result = store.query(sql, {value});
  return result.rows.empty() ? 0 : static_cast<std::int64_t>(result.rows[0][0].real);
}

std::string joined(const std::vector<std::string>& items, std::size_t limit = 20) {
  std::string text;
  for (std::size_t i = 0; i < items.size() && i < limit; ++i) text += (i ? ", " : "") + items[i];
  if (items.size() > limit) text += ", ... (" + std::to_string(items.size() - limit) + " more)";
  return text;
}

std::vector<std::string> first_column(const QueryResult& result) {
  std::vector<std::string> values;
  for (const auto& row : result.rows) values.push_back(row[0].text);
  return values;
}

/// Refuses a --by key, metric or scope that no selected run has: a typo would otherwise print a table
/// of "-" and exit 0. The message suggests the closest of `known` and lists them.
void require_known(const std::string& flag, const std::string& value, const std::vector<std::string>& known,
                   const std::string& description, const std::string& what) {
  if (std::find(known.begin(), known.end(), value) != known.end()) return;
  std::string hint;
  if (const auto close = text::closest_match(value, known, std::max<std::size_t>(1, value.size() / 3))) {
    hint = " (did you mean '" + *close + "'?)";
  }
  std::vector<std::string> shown;
  for (const std::string& name : known) shown.push_back(name.empty() ? "'' (whole model)" : name);
  throw std::runtime_error(flag + " " + value + ": no finished run of " + description + " has " + what + " '" +
                           value + "'" + hint + "; they have " + (known.empty() ? std::string("none") : joined(shown)));
}

}  // namespace

SweepSelection resolve_sweep(const Store& store, const std::string& selection, const std::string& command) {
  if (selection.empty()) throw std::runtime_error(command + " needs a sweep id or an experiment name");
  if (count(store, "SELECT count(*) FROM runs WHERE sweep_id = ?1", selection) > 0) {
    return {"sweep", selection};
  }
  if (count(store, "SELECT count(*) FROM experiments WHERE name = ?1", selection) > 0) {
    return {"experiment", selection};
  }
  const std::vector<std::string> matches = first_column(store.query(
      "SELECT DISTINCT sweep_id FROM runs WHERE sweep_id IS NOT NULL AND length(?1) >= 4 "
      "AND substr(sweep_id, 1, length(?1)) = ?1 ORDER BY sweep_id",
      {selection}));
  if (matches.size() == 1) return {"sweep", matches.front()};
  if (matches.size() > 1) {
    throw std::runtime_error("'" + selection + "' is a prefix of " + std::to_string(matches.size()) +
                             " sweep ids: " + joined(matches) + "; give more characters");
  }
  const std::vector<std::string> sweeps = first_column(store.query(
      "SELECT DISTINCT sweep_id FROM runs WHERE sweep_id IS NOT NULL ORDER BY sweep_id"));
  const std::vector<std::string> experiments =
      first_column(store.query("SELECT name FROM experiments ORDER BY name"));
  std::string message = "no sweep id or experiment name matches '" + selection + "' in " + store.path();
  if (selection.size() < 4) message += " (a sweep id prefix needs at least 4 characters)";
  message += "; sweeps: " + (sweeps.empty() ? std::string("none") : joined(sweeps)) +
             "; experiments: " + (experiments.empty() ? std::string("none") : joined(experiments));
  throw std::runtime_error(message);
}

namespace {

struct GroupLess {
  bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), by_value_less);
  }
};

std::string metric_cell(const MetricSummary& m) {
  if (m.n == 0 && m.non_finite == 0) return "-";
  std::string cell = m.n == 0 ? std::string("-")
                              : format_number(m.mean) + " ± " +
                                    (m.n < 2 ? std::string("-") : format_number(m.std));
  cell += " (" + std::to_string(m.n) + ")";
  if (m.non_finite > 0) cell += " +" + std::to_string(m.non_finite) + " non-finite";
  return cell;
}

std::string markdown_cell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

std::string markdown_table(const std::vector<std::string>& header,
                           const std::vector<std::vector<std::string>>& rows) {
  std::string out = "|";
  for (const auto& h : header) out += " " + markdown_cell(h) + " |";
  out += "\n|";
  for (std::size_t i = 0; i < header.size(); ++i) out += " --- |";
  out += "\n";
  for (const auto& row : rows) {
    out += "|";
    for (const auto& cell : row) out += " " + markdown_cell(cell) + " |";
    out += "\n";
  }
  return out;
}

std::string csv_line(const std::vector<std::string>& cells) {
  std::string line;
  for (std::size_t i = 0; i < cells.size(); ++i) line += (i ? "," : "") + csv_field(cells[i]);
  return line + "\n";
}

}  // namespace

namespace {

/// Text in natural order: runs of digits compare by their value, so "k2_s600" < "k2_s1200".
bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  const auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t ie = i, je = j;
      while (ie < a.size() && digit(a[ie])) ++ie;
      while (je < b.size() && digit(b[je])) ++je;
      // Equal values written alike compare equal; leading zeros aside, the longer run is the larger.
      const std::string x = a.substr(i, ie - i), y = b.substr(j, je - j);
      const std::size_t xs = x.find_first_not_of('0'), ys = y.find_first_not_of('0');
      const std::string xv = xs == std::string::npos ? "" : x.substr(xs);
      const std::string yv = ys == std::string::npos ? "" : y.substr(ys);
      if (xv.size() != yv.size()) return xv.size() < yv.size();
      if (xv != yv) return xv < yv;
      i = ie;
      j = je;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  if ((a.size() - i) != (b.size() - j)) return a.size() - i < b.size() - j;
  return a < b;
}

}  // namespace

bool by_value_less(const std::string& a, const std::string& b) {
  const auto x = parse_number(a);
  const auto y = parse_number(b);
  if (x && y) {
    if (*x != *y) return *x < *y;
    return a < b;
  }
  if (x || y) return x.has_value();  // numbers before text
  return natural_less(a, b);
}

std::string variant_of(const std::string& run_name) { return run_name.substr(0, run_name.find('[')); }

namespace {

void check_request(const Store& store, const SweepSelection& selection, const CompareRequest& request,
                   const std::string& description) {
  // ?1, ?2 select the runs as kSelectedRuns does; ?3 is the scope.
  const auto distinct = [&](const char* column, const char* join, bool scoped) {
    std::vector<std::string> params{selection.kind, selection.value};
    if (scoped) params.push_back(request.scope);
    return first_column(store.query(
        std::string("SELECT DISTINCT ") + column + " FROM runs r JOIN experiments e ON e.id = r.experiment_id " + join +
            " WHERE r.status = 'finished' AND CASE ?1 WHEN 'sweep' THEN r.sweep_id = ?2 ELSE e.name = ?2 END ORDER BY 1",
        params));
  };
  std::vector<std::string> keys = distinct("p.key", "JOIN params p ON p.run_id = r.id", false);
  keys.push_back(kVariantKey);
  for (const std::string& key : request.by) require_known("--by", key, keys, description, "param");
  const std::vector<std::string> scopes = distinct("m.scope", "JOIN metrics m ON m.run_id = r.id", false);
  if (!request.scope.empty()) require_known("--scope", request.scope, scopes, description, "scope");
  const std::vector<std::string> names = distinct("m.name", "JOIN metrics m ON m.run_id = r.id AND m.scope = ?3", true);
  for (const std::string& metric : request.metrics) {
    require_known("--metric", metric, names, description,
                  request.scope.empty() ? std::string("metric") : "metric at scope " + request.scope);
  }
}

/// Mean, sample std and count of the finite values; the others counted apart; missing ones skipped.
MetricSummary summarize(const std::vector<std::optional<double>>& values) {
  std::vector<double> finite;
  MetricSummary summary;
  for (const auto& value : values) {
    if (!value) continue;
    if (std::isfinite(*value)) {
      finite.push_back(*value);
    } else {
      ++summary.non_finite;
    }
  }
  summary.n = finite.size();
  summary.mean = std::numeric_limits<double>::quiet_NaN();
  summary.std = std::numeric_limits<double>::quiet_NaN();
  if (!finite.empty()) {
    double sum = 0;
    for (double v : finite) sum += v;
    summary.mean = sum / static_cast<double>(finite.size());
    if (finite.size() > 1) {
      double squares = 0;
      for (double v : finite) squares += (v - summary.mean) * (v - summary.mean);
      summary.std = std::sqrt(squares / static_cast<double>(finite.size() - 1));
    }
  }
  return summary;
}

using Groups = std::map<std::vector<std::string>, std::vector<std::string>, GroupLess>;
using MetricValues = std::map<std::string, std::vector<std::optional<double>>>;

/// Replaces every run's metric values by their differences from the baseline group's run of the same
/// seed (request.against), and leaves out the runs whose seed the baseline lacks.
void pair_with_baseline(const CompareRequest& request, const std::string& description, Groups& groups,
                        const std::map<std::string, std::string>& seeds, MetricValues& values) {
  if (request.against.size() != request.by.size()) {
    throw std::runtime_error("--against: " + std::to_string(request.against.size()) + " values for " +
                             std::to_string(request.by.size()) + " --by keys; give one value per --by key, in order");
  }
  const std::string named = joined(request.against, request.against.size());
  const auto baseline = groups.find(request.against);
  if (baseline == groups.end()) {
    std::vector<std::string> known;
    for (const auto& [key, ids] : groups) known.push_back(joined(key, key.size()));
    require_known("--against", named, known, description, "group");
    throw std::runtime_error("--against: no group has exactly the values " + named);
  }
  std::map<std::string, std::vector<std::optional<double>>> by_seed;  // seed -> the baseline's values
  for (const std::string& id : baseline->second) {
    if (!by_seed.emplace(seeds.at(id), values.at(id)).second) {
      throw std::runtime_error("--against " + named + ": the group has " +
                               "more than one run of seed " + seeds.at(id) +
                               "; pairing by seed needs one (add --by keys until it has one)");
    }
  }
  MetricValues differences;
  for (auto& [key, ids] : groups) {
    std::vector<std::string> paired;
    for (const std::string& id : ids) {
      const auto partner = by_seed.find(seeds.at(id));
      if (partner == by_seed.end()) continue;
      std::vector<std::optional<double>>& diff = differences[id];
      for (std::size_t k = 0; k < values.at(id).size(); ++k) {
        const auto& mine = values.at(id)[k];
        const auto& theirs = partner->second[k];
        diff.push_back(mine && theirs ? std::optional<double>(*mine - *theirs) : std::nullopt);
      }
      paired.push_back(id);
    }
    ids = std::move(paired);
  }
  values = std::move(differences);
}

}  // namespace

ComparisonTable compare_runs(const Store& store, const CompareRequest& request) {
  if (request.by.empty()) throw std::runtime_error("compare needs at least one --by key");
  if (request.metrics.empty()) throw std::runtime_error("compare needs at least one --metric");
  const SweepSelection selection = resolve_sweep(store, request.selection, "compare");

  ComparisonTable table;
  table.description = selection.kind + " " + selection.value;
  table.by = request.by;
  table.metrics = request.metrics;
  table.scope = request.scope;

  table.against = request.against;

  const std::string runs_sql = std::string("SELECT r.id, r.name, r.seed") + kSelectedRuns + " ORDER BY r.id";
  const QueryResult runs = store.query(runs_sql, {selection.kind, selection.value});
  if (!runs.rows.empty()) check_request(store, selection, request, table.description);

  // run id -> by values, metric values
  std::map<std::string, std::vector<std::string>> by_values;
  MetricValues metric_values;
  for (const auto& row : runs.rows) {
    by_values[row[0].text] = std::vector<std::string>(request.by.size(), "-");
    metric_values[row[0].text] = std::vector<std::optional<double>>(request.metrics.size());
  }

  const std::string params_query =
      "SELECT r.id, p.value FROM runs r JOIN experiments e ON e.id = r.experiment_id "
      "JOIN params p ON p.run_id = r.id AND p.key = ?3 "
      "WHERE r.status = 'finished' AND CASE ?1 WHEN 'sweep' THEN r.sweep_id = ?2 ELSE e.name = ?2 END";
  for (std::size_t k = 0; k < request.by.size(); ++k) {
    if (request.by[k] == kVariantKey) {
      for (const auto& row : runs.rows) by_values[row[0].text][k] = variant_of(row[1].text);
      continue;
    }
    const QueryResult values = store.query(params_query, {selection.kind, selection.value, request.by[k]});
    for (const auto& row : values.rows) {
      auto found = by_values.find(row[0].text);
      if (found != by_values.end()) found->second[k] = row[1].text;
    }
  }

  const std::string metrics_query =
      "SELECT r.id, m.value, m.non_finite FROM runs r JOIN experiments e ON e.id = r.experiment_id "
      "JOIN metrics m ON m.run_id = r.id AND m.name = ?3 AND m.scope = ?4 "
      "WHERE r.status = 'finished' AND CASE ?1 WHEN 'sweep' THEN r.sweep_id = ?2 ELSE e.name = ?2 END "
      "AND m.step = (SELECT MAX(step) FROM metrics WHERE run_id = r.id AND name = ?3 AND scope = ?4)";
  for (std::size_t k = 0; k < request.metrics.size(); ++k) {
    const QueryResult values = store.query(
        metrics_query, {selection.kind, selection.value, request.metrics[k], request.scope});
    for (const auto& row : values.rows) {
      auto found = metric_values.find(row[0].text);
      if (found == metric_values.end()) continue;
      double value = std::numeric_limits<double>::quiet_NaN();
      if (row[1].type == QueryValue::Type::real || row[1].type == QueryValue::Type::integer) {
        value = row[1].real;
      } else if (row[2].text == "inf") {
        value = std::numeric_limits<double>::infinity();
      } else if (row[2].text == "-inf") {
        value = -std::numeric_limits<double>::infinity();
      }
      found->second[k] = value;
    }
  }

  Groups groups;                             // by values -> run ids
  std::map<std::string, std::string> seeds;  // run id -> seed
  for (const auto& row : runs.rows) {
    groups[by_values[row[0].text]].push_back(row[0].text);
    seeds[row[0].text] = row[2].text;
  }
  if (!request.against.empty()) {
    pair_with_baseline(request, table.description, groups, seeds, metric_values);
  }

  for (const auto& [key, ids] : groups) {
    ComparisonRow out;
    out.by = key;
    out.runs = ids.size();
    for (std::size_t k = 0; k < request.metrics.size(); ++k) {
      std::vector<std::optional<double>> values;
      for (const auto& id : ids) values.push_back(metric_values[id][k]);
      out.metrics.push_back(summarize(values));
    }
    table.rows.push_back(std::move(out));
  }
  return table;
}

OutputFormat output_format_from_string(const std::string& text) {
  if (text == "table") return OutputFormat::table;
  if (text == "csv") return OutputFormat::csv;
  if (text == "json") return OutputFormat::json;
  if (text == "markdown") return OutputFormat::markdown;
  throw std::invalid_argument("unknown format '" + text + "' (table, csv, json or markdown)");
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string format_comparison(const ComparisonTable& table, OutputFormat format) {
  const bool paired = !table.against.empty();
  const std::string baseline = joined(table.against, table.against.size());
  // What a metric's column holds: its values, or their differences from the baseline's.
  const auto label = [&](const std::string& metric, bool text) {
    if (!paired) return metric;
    return text ? metric + " - " + baseline : metric + "_minus_baseline";
  };
  bool any_non_finite = false;
  for (const auto& row : table.rows) {
    for (const auto& m : row.metrics) any_non_finite = any_non_finite || m.non_finite > 0;
  }
  switch (format) {
    case OutputFormat::table:
    case OutputFormat::markdown: {
      std::vector<std::string> header = table.by;
      header.push_back("runs");
      for (const auto& metric : table.metrics) header.push_back(label(metric, true));
      std::vector<std::vector<std::string>> rows;
      for (const auto& row : table.rows) {
        std::vector<std::string> cells = row.by;
        cells.push_back(std::to_string(row.runs));
        for (const auto& m : row.metrics) cells.push_back(metric_cell(m));
        rows.push_back(std::move(cells));
      }
      const std::string scope = table.scope.empty() ? std::string("(all)") : table.scope;
      std::string note = "final values at scope " + scope + ", mean ± sample std (n)";
      if (paired) {
        note = "final values at scope " + scope + " minus those of " + baseline +
               "'s run of the same seed, mean ± sample std (n pairs); runs counts the paired runs";
      }
      if (any_non_finite) note += "; non-finite values are counted apart and left out of mean and std";
      if (format == OutputFormat::markdown) {
        return markdown_table(header, rows) + "\n" + table.description + ": " + note + "\n";
      }
      TextTable text(header);
      for (auto& row : rows) text.add_row(std::move(row));
      return table.description + ": " + note + "\n" + text.str();
    }
    case OutputFormat::csv: {
      std::vector<std::string> header = table.by;
      header.push_back("runs");
      for (const auto& metric : table.metrics) {
        for (const char* suffix : {"_mean", "_std", "_n", "_non_finite"}) header.push_back(label(metric, false) + suffix);
      }
      std::string out = csv_line(header);
      for (const auto& row : table.rows) {
        std::vector<std::string> cells = row.by;
        cells.push_back(std::to_string(row.runs));
        for (const auto& m : row.metrics) {
          cells.push_back(m.n > 0 ? full_number(m.mean) : "");
          cells.push_back(m.n > 1 ? full_number(m.std) : "");
          cells.push_back(std::to_string(m.n));
          cells.push_back(std::to_string(m.non_finite));
        }
        out += csv_line(cells);
      }
      return out;
    }
    case OutputFormat::json: {
      std::string out = "[";
      for (std::size_t r = 0; r < table.rows.size(); ++r) {
        const auto& row = table.rows[r];
        out += r ? ",\n  {" : "\n  {";
        for (std::size_t k = 0; k < table.by.size(); ++k) {
          out += json_string(table.by[k]) + ": " + json_string(row.by[k]) + ", ";
        }
        out += "\"runs\": " + std::to_string(row.runs);
        for (std::size_t k = 0; k < table.metrics.size(); ++k) {
          const auto& m = row.metrics[k];
          out += ", " + json_string(label(table.metrics[k], false)) + ": {\"mean\": " + json_number(m.mean) +
                 ", \"std\": " + json_number(m.std) + ", \"n\": " + std::to_string(m.n) +
                 ", \"non_finite\": " + std::to_string(m.non_finite) + "}";
        }
        out += "}";
      }
      out += table.rows.empty() ? "]\n" : "\n]\n";
      return out;
    }
  }
  return "";
}

std::string format_query_result(const QueryResult& result, OutputFormat format) {
  switch (format) {
    case OutputFormat::table:
    case OutputFormat::markdown: {
      std::vector<std::vector<std::string>> rows;
      for (const auto& row : result.rows) {
        std::vector<std::string> cells;
        for (const auto& cell : row) {
          cells.push_back(cell.type == QueryValue::Type::real ? format_number(cell.real) : cell.text);
        }
        rows.push_back(std::move(cells));
      }
      if (format == OutputFormat::markdown) return markdown_table(result.columns, rows);
      TextTable text(result.columns);
      for (auto& row : rows) text.add_row(std::move(row));
      return text.str() + "(" + std::to_string(result.rows.size()) +
             (result.rows.size() == 1 ? " row)\n" : " rows)\n");
    }
    case OutputFormat::csv: {
      std::string out = csv_line(result.columns);
      for (const auto& row : result.rows) {
        std::vector<std::string> cells;
        for (const auto& cell : row) cells.push_back(cell.text);
        out += csv_line(cells);
      }
      return out;
    }
    case OutputFormat::json: {
      std::string out = "[";
      for (std::size_t r = 0; r < result.rows.size(); ++r) {
        out += r ? ",\n  {" : "\n  {";
        for (std::size_t c = 0; c < result.columns.size(); ++c) {
          const QueryValue& cell = result.rows[r][c];
          out += (c ? ", " : "") + json_string(result.columns[c]) + ": ";
          switch (cell.type) {
            case QueryValue::Type::null: out += "null"; break;
            case QueryValue::Type::integer: out += cell.text; break;
            case QueryValue::Type::real: out += json_number(cell.real); break;
            default: out += json_string(cell.text);
          }
        }
        out += "}";
      }
      out += result.rows.empty() ? "]\n" : "\n]\n";
      return out;
    }
  }
  return "";
}

}  // namespace msd::results
