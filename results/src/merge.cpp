#include "msd/results/merge.h"

#include "database_file.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <variant>

#include "msd/results/store.h"

namespace msd::results {

namespace {

namespace fs = std::filesystem;

constexpr int kBusyTimeoutMs = 30000;

// One SQLite cell. Rows are compared cell by cell to decide whether OUT already holds a run exactly;
// no column of the schema holds NaN (metrics keep it in non_finite), so == on doubles is exact.
using Value = std::variant<std::monostate, std::int64_t, double, std::string>;
using Row = std::vector<Value>;

Value read_value(const SQLite::Column& column) {
  switch (column.getType()) {
    case SQLITE_NULL: return std::monostate{};
    case SQLITE_INTEGER: return column.getInt64();
    case SQLITE_FLOAT: return column.getDouble();
    default: return column.getString();  // text; the schema has no blob columns
  }
}

void bind_value(SQLite::Statement& statement, int index, const Value& value) {
  if (std::holds_alternative<std::int64_t>(value)) {
    statement.bind(index, std::get<std::int64_t>(value));
  } else if (std::holds_alternative<double>(value)) {
    statement.bind(index, std::get<double>(value));
  } else if (std::holds_alternative<std::string>(value)) {
    statement.bind(index, std::get<std::string>(value));
  } else {
    statement.bind(index);
  }
}

// The columns of a run that travel with it; id and experiment_id are each database's own.
const std::vector<std::string>& run_columns() {
  static const std::vector<std::string> columns = {
      "name", "status", "config_text", "config_hash", "seed", "git_commit", "git_dirty", "host",
      "device", "pid", "started_at", "ended_at", "heartbeat_at", "error", "sweep_id", "sweep_index",
      "uuid", "attempts"};
  return columns;
}

std::size_t uuid_column() {
  static const std::size_t index = static_cast<std::size_t>(
      std::find(run_columns().begin(), run_columns().end(), "uuid") - run_columns().begin());
  return index;
}

/// A table whose rows belong to one run (run_id) and are copied with it.
struct ChildTable {
  const char* name;
  std::vector<std::string> columns;  ///< copied columns, besides run_id
  const char* order;                 ///< the table's unique key: makes two copies comparable row by row
};

const std::array<ChildTable, 6>& child_tables() {
  static const std::array<ChildTable, 6> tables = {{
      {"params", {"key", "value"}, "key"},
      {"sweep_coords", {"key", "value"}, "key"},
      {"tags", {"key", "value"}, "key"},
      {"metrics", {"scope", "name", "step", "value", "non_finite"}, "scope, name, step"},
      {"artifacts", {"kind", "path", "created_at"}, "kind, path"},
      {"run_plugins", {"kind", "name", "version", "library"}, "kind, name"},
  }};
  return tables;
}
constexpr std::size_t kArtifactsTable = 4;
constexpr std::size_t kArtifactPathColumn = 1;

/// "a, b, c", each column written as prefix + column + suffix.
std::string joined(const std::vector<std::string>& columns, const char* suffix = "", const char* prefix = "") {
  std::string text;
  for (const std::string& column : columns) text += (text.empty() ? "" : ", ") + std::string(prefix) + column + suffix;
  return text;
}

std::string placeholders(std::size_t count) {
  std::string text;
  for (std::size_t i = 0; i < count; ++i) text += i == 0 ? "?" : ", ?";
  return text;
}

/// Everything a database holds about one run, ids left out.
struct RunContent {
  std::string experiment;
  std::string experiment_created_at;  ///< used only when OUT does not have the experiment yet
  Row run;                            ///< run_columns()
  std::vector<std::vector<Row>> children;  ///< per child_tables(), ordered by its key

  bool same_as(const RunContent& other) const {
    return experiment == other.experiment && run == other.run && children == other.children;
  }
};

/// Reads run `run_id` of `db`. Relative artifact paths are relative to the database's folder
/// `folder`; they are made absolute so that they stay right in a database elsewhere.
RunContent read_run(SQLite::Database& db, std::int64_t run_id, const fs::path& folder) {
  RunContent content;
  SQLite::Statement run(db, "SELECT e.name, e.created_at, " + joined(run_columns(), "", "runs.") +
                                " FROM runs JOIN experiments e ON e.id = runs.experiment_id WHERE runs.id = ?");
  run.bind(1, run_id);
  if (!run.executeStep()) throw std::runtime_error("run " + std::to_string(run_id) + " vanished while merging");
  content.experiment = run.getColumn(0).getString();
  content.experiment_created_at = run.getColumn(1).getString();
  for (int c = 0; c < static_cast<int>(run_columns().size()); ++c) content.run.push_back(read_value(run.getColumn(c + 2)));

  for (const ChildTable& table : child_tables()) {
    std::vector<Row>& rows = content.children.emplace_back();
    SQLite::Statement query(db, "SELECT " + joined(table.columns) + " FROM " + table.name +
                                    " WHERE run_id = ? ORDER BY " + table.order);
    query.bind(1, run_id);
    while (query.executeStep()) {
      Row& row = rows.emplace_back();
      for (int c = 0; c < query.getColumnCount(); ++c) row.push_back(read_value(query.getColumn(c)));
    }
  }
  for (Row& artifact : content.children[kArtifactsTable]) {
    Value& path = artifact[kArtifactPathColumn];
    if (std::holds_alternative<std::string>(path) && fs::path(std::get<std::string>(path)).is_relative()) {
      path = detail::resolved_artifact_path(folder, std::get<std::string>(path));
    }
  }
  return content;
}

/// `content` as OUT stores it: artifact paths inside OUT's folder relative to it (as Store writes them).
RunContent stored_in(const fs::path& out_folder, RunContent content) {
  for (Row& artifact : content.children[kArtifactsTable]) {
    Value& path = artifact[kArtifactPathColumn];
    if (std::holds_alternative<std::string>(path)) {
      path = detail::stored_artifact_path(out_folder, std::get<std::string>(path));
    }
  }
  return content;
}

std::int64_t experiment_id(SQLite::Database& out, const RunContent& content) {
  SQLite::Statement add(out, "INSERT INTO experiments (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING");
  add.bind(1, content.experiment);
  add.bind(2, content.experiment_created_at);
  add.exec();
  SQLite::Statement find(out, "SELECT id FROM experiments WHERE name = ?");
  find.bind(1, content.experiment);
  find.executeStep();
  return find.getColumn(0).getInt64();
}

void insert_children(SQLite::Database& out, std::int64_t run_id, const RunContent& content) {
  for (std::size_t t = 0; t < child_tables().size(); ++t) {
    const ChildTable& table = child_tables()[t];
    SQLite::Statement insert(out, std::string("INSERT INTO ") + table.name + " (run_id, " + joined(table.columns) +
                                      ") VALUES (?, " + placeholders(table.columns.size()) + ")");
    for (const Row& row : content.children[t]) {
      insert.bind(1, run_id);
      for (std::size_t c = 0; c < row.size(); ++c) bind_value(insert, static_cast<int>(c + 2), row[c]);
      insert.exec();
      insert.reset();
    }
  }
}

void add_run(SQLite::Database& out, const RunContent& content) {
  SQLite::Statement insert(out, "INSERT INTO runs (experiment_id, " + joined(run_columns()) + ") VALUES (?, " +
                                    placeholders(run_columns().size()) + ")");
  insert.bind(1, experiment_id(out, content));
  for (std::size_t c = 0; c < content.run.size(); ++c) bind_value(insert, static_cast<int>(c + 2), content.run[c]);
  insert.exec();
  insert_children(out, out.getLastInsertRowid(), content);
}

/// Makes OUT's run `run_id` equal to `content`, keeping its id (so that `msd results show ID` keeps
/// naming the same run).
void replace_run(SQLite::Database& out, std::int64_t run_id, const RunContent& content) {
  SQLite::Statement update(out, "UPDATE runs SET experiment_id = ?, " + joined(run_columns(), " = ?") + " WHERE id = ?");
  update.bind(1, experiment_id(out, content));
  for (std::size_t c = 0; c < content.run.size(); ++c) bind_value(update, static_cast<int>(c + 2), content.run[c]);
  update.bind(static_cast<int>(content.run.size() + 2), run_id);
  update.exec();
  for (const ChildTable& table : child_tables()) {
    SQLite::Statement remove(out, std::string("DELETE FROM ") + table.name + " WHERE run_id = ?");
    remove.bind(1, run_id);
    remove.exec();
  }
  insert_children(out, run_id, content);
}

std::optional<std::int64_t> run_with_uuid(SQLite::Database& out, const std::string& uuid) {
  SQLite::Statement find(out, "SELECT id FROM runs WHERE uuid = ?");
  find.bind(1, uuid);
  if (!find.executeStep()) return std::nullopt;
  return find.getColumn(0).getInt64();
}

/// Copies every run of `shard_path` into `out` inside one transaction; fills the counts of `merge`.
void merge_shard(SQLite::Database& out, const fs::path& out_folder, const std::string& shard_path, ShardMerge& merge) {
  // Checks existence and schema version with messages that name the file.
  { const Store checked(shard_path, Store::Mode::read_only); }
  SQLite::Database shard(shard_path, SQLite::OPEN_READONLY, kBusyTimeoutMs);
  const fs::path shard_folder = fs::absolute(shard_path).parent_path();
  // One read transaction: a consistent snapshot even if the shard's task is still writing it.
  SQLite::Transaction snapshot(shard);

  out.exec("BEGIN IMMEDIATE");
  try {
    SQLite::Statement runs(shard, "SELECT id FROM runs ORDER BY id");
    while (runs.executeStep()) {
      const std::int64_t shard_id = runs.getColumn(0).getInt64();
      const RunContent content = read_run(shard, shard_id, shard_folder);
      const Value& uuid = content.run[uuid_column()];
      if (!std::holds_alternative<std::string>(uuid) || std::get<std::string>(uuid).empty()) {
        throw std::runtime_error("run " + std::to_string(shard_id) + " has no uuid");
      }
      const std::optional<std::int64_t> existing = run_with_uuid(out, std::get<std::string>(uuid));
      if (!existing) {
        add_run(out, stored_in(out_folder, content));
        ++merge.runs_added;
      } else if (read_run(out, *existing, out_folder).same_as(content)) {
        ++merge.runs_unchanged;
      } else {
        replace_run(out, *existing, stored_in(out_folder, content));
        ++merge.runs_updated;
      }
    }
    out.exec("COMMIT");
  } catch (...) {
    if (sqlite3_get_autocommit(out.getHandle()) == 0) {
      try {
        out.exec("ROLLBACK");
      } catch (const SQLite::Exception&) {
        // The original error is the one worth reporting.
      }
    }
    throw;
  }
}

int schema_version_of(const std::string& path) {
  try {
    SQLite::Database db(path, SQLite::OPEN_READONLY, kBusyTimeoutMs);
    return db.execAndGet("PRAGMA user_version").getInt();
  } catch (const SQLite::Exception& error) {
    throw std::runtime_error("cannot read results database " + path + ": " + error.what());
  }
}

}  // namespace

std::vector<ShardMerge> merge_shards(const std::string& out, const std::vector<std::string>& shards) {
  if (fs::path(out).has_parent_path()) fs::create_directories(fs::path(out).parent_path());
  // Store checks whose file OUT is before it writes anything.
  if (!detail::inspect_database_file(out, /*for_writing=*/true) ||
      schema_version_of(out) < Store::current_schema_version()) {
    // Creates or migrates OUT. Only then is it opened read-write through Store, whose opening marks
    // runs of dead local processes as interrupted: a later merge must not see a merged run as changed.
    const Store created(out);
  } else {
    const Store checked(out, Store::Mode::read_only);  // refuses a newer schema, naming the file
  }
  SQLite::Database db(out, SQLite::OPEN_READWRITE, kBusyTimeoutMs);
  db.exec("PRAGMA foreign_keys = ON");
  const fs::path out_folder = fs::absolute(out).parent_path();

  std::vector<ShardMerge> merges;
  for (const std::string& shard : shards) {
    ShardMerge& merge = merges.emplace_back();
    merge.shard = shard;
    try {
      std::error_code ignored;
      if (fs::equivalent(shard, out, ignored)) throw std::runtime_error("is the output database itself");
      merge_shard(db, out_folder, shard, merge);
    } catch (const std::exception& error) {
      merge.runs_added = merge.runs_updated = merge.runs_unchanged = 0;
      const std::string message = error.what();
      // Store's messages name the file already; SQLite's do not.
      merge.error = message.find(shard) == std::string::npos ? shard + ": " + message : message;
    }
  }
  return merges;
}

std::string format_merge_report(const std::string& out, const std::vector<ShardMerge>& merges) {
  std::ostringstream text;
  std::int64_t added = 0, updated = 0, unchanged = 0, failed = 0;
  for (const ShardMerge& merge : merges) {
    if (!merge.error.empty()) {
      text << merge.shard << ": error: " << merge.error << " (nothing merged from it)\n";
      ++failed;
      continue;
    }
    text << merge.shard << ": " << merge.runs_added << " added, " << merge.runs_updated << " updated, "
         << merge.runs_unchanged << " unchanged\n";
    added += merge.runs_added;
    updated += merge.runs_updated;
    unchanged += merge.runs_unchanged;
  }
  text << out << ": " << added << " runs added, " << updated << " updated, " << unchanged << " unchanged from "
       << merges.size() - failed << (merges.size() - failed == 1 ? " shard" : " shards");
  if (failed > 0) text << "; " << failed << (failed == 1 ? " shard" : " shards") << " failed";
  text << "\n";
  return text.str();
}

}  // namespace msd::results
