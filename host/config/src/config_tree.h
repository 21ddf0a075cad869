// The experiment file as a tree of nodes that remember where they were written. toml++ drops source
// positions when a node is copied, but every variant is a copy of the file with overrides merged in,
// and each value must still point at its own line (or at the command line) when it is wrong.
#pragma once

#include <string>
#include <vector>

#include "msd/host/config.h"

namespace msd::host::config_detail {

/// Where --set values come from.
inline const char* const kCommandLine = "<command line>";

/// The deepest an experiment file may nest tables, arrays and dotted-key segments. A real file
/// needs about five (stage.0.loss.1.weight); the bound keeps the recursive tree code, and toml++
/// itself (which crashes on a key of 100 000 segments), far from the end of the stack.
constexpr int kMaxNesting = 32;

struct ConfigEntry;

/// One TOML node: a table, an array, or a scalar.
struct ConfigNode {
  enum class Kind { table, array, boolean, integer, real, string, other };

  Kind kind = Kind::table;
  SourceLocation where;
  Value scalar;                      ///< boolean, integer, real or string
  std::string other_type;            ///< for `other` (dates and times): the TOML type name
  std::string other_text;            ///< for `other`: the value as written
  std::vector<ConfigEntry> entries;  ///< table: in file order
  std::vector<ConfigNode> items;     ///< array

  bool is_table() const { return kind == Kind::table; }
  bool is_array() const { return kind == Kind::array; }
  /// nullptr when the table has no such key.
  const ConfigNode* find(const std::string& key) const;
  ConfigNode* find(const std::string& key);
  /// Removes a key of a table if present.
  void erase(const std::string& key);
  /// "table", "array", "bool", "integer", "float", "string", "date", ...: for messages.
  std::string type_name() const;
  /// The node as TOML text (inline tables for tables), for messages and sweep coordinates.
  std::string text() const;
};

struct ConfigEntry {
  std::string key;
  ConfigNode value;
  SourceLocation key_where;  ///< where the key itself was written; line 0 when made by an override
  /// Where to point a message about this key: the key if known, else its value.
  const SourceLocation& where() const { return key_where.line > 0 ? key_where : value.where; }
};

/// Parses a TOML document. Throws ConfigError at the syntax error's line and column, or where the
/// document nests deeper than kMaxNesting.
ConfigNode parse_document(const std::string& text, const std::string& file);

/// Parses the value of a --set assignment as TOML, or takes it as a bare string when it is not TOML
/// (so `--set device=cpu` works without shell-quoted quotes). Located at the command line.
ConfigNode parse_command_line_value(const std::string& text);

/// One override: a dotted path from the root ("stage.0.steps") and the value to put there.
struct Override {
  std::string path;
  ConfigNode value;
};

/// Appends one override per leaf of `node` under `prefix`: tables and arrays of tables are walked
/// (array elements by index); scalars and arrays of scalars are leaves.
void flatten(const std::string& prefix, const ConfigNode& node, std::vector<Override>& out);

/// Puts the override's value at its path in `root`, creating the tables (or, before a numeric
/// segment, arrays) missing on the way; index N of an array of N entries appends one. Reports an
/// issue at the override's location when the path cannot be followed.
void apply(const Override& override_, ConfigNode& root, std::vector<ConfigIssue>& issues);

}  // namespace msd::host::config_detail
