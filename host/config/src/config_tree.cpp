#include "config_tree.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <string_view>

#include <toml++/toml.h>

namespace msd::host::config_detail {

const ConfigNode* ConfigNode::find(const std::string& key) const {
  for (const ConfigEntry& entry : entries) {
    if (entry.key == key) return &entry.value;
  }
  return nullptr;
}

ConfigNode* ConfigNode::find(const std::string& key) {
  return const_cast<ConfigNode*>(static_cast<const ConfigNode*>(this)->find(key));
}

void ConfigNode::erase(const std::string& key) {
  entries.erase(std::remove_if(entries.begin(), entries.end(),
                               [&](const ConfigEntry& entry) { return entry.key == key; }),
                entries.end());
}

std::string ConfigNode::type_name() const {
  switch (kind) {
    case Kind::table: return "table";
    case Kind::array: return "array";
    case Kind::other: return other_type;
    default: return to_string(type_of(scalar));
  }
}

std::string ConfigNode::text() const {
  switch (kind) {
    case Kind::table: {
      std::string out = "{";
      for (std::size_t i = 0; i < entries.size(); ++i) {
        out += (i ? ", " : " ") + entries[i].key + " = " + entries[i].value.text();
      }
      return out + (entries.empty() ? "}" : " }");
    }
    case Kind::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i].text();
      return out + "]";
    }
    case Kind::other: return other_text;
    default: return to_toml(scalar);
  }
}

namespace {

SourceLocation location_of(const toml::node& node, const std::string& file) {
  const toml::source_position& begin = node.source().begin;
  return SourceLocation{file, static_cast<int>(begin.line), static_cast<int>(begin.column)};
}

ConfigError too_deep(const SourceLocation& where, const std::string& what) {
  return ConfigError({ConfigIssue{where, "",
                                  what + " nests more than " + std::to_string(kMaxNesting) +
                                      " levels deep; experiment files need a handful (stage.0.loss.1.weight)"}});
}

ConfigNode convert(const toml::node& node, const std::string& file, int depth = 0) {
  ConfigNode out;
  out.where = location_of(node, file);
  if (depth > kMaxNesting) throw too_deep(out.where, "this value");
  switch (node.type()) {
    case toml::node_type::table:
      out.kind = ConfigNode::Kind::table;
      for (auto&& [key, value] : *node.as_table()) {
        SourceLocation key_where{file, static_cast<int>(key.source().begin.line),
                                 static_cast<int>(key.source().begin.column)};
        out.entries.push_back(ConfigEntry{std::string(key.str()), convert(value, file, depth + 1), key_where});
      }
      // toml++ keeps keys sorted; file order makes issues and variant coordinates read like the file.
      std::stable_sort(out.entries.begin(), out.entries.end(), [](const ConfigEntry& a, const ConfigEntry& b) {
        return std::make_pair(a.value.where.line, a.value.where.column) <
               std::make_pair(b.value.where.line, b.value.where.column);
      });
      break;
    case toml::node_type::array:
      out.kind = ConfigNode::Kind::array;
      for (const toml::node& item : *node.as_array()) out.items.push_back(convert(item, file, depth + 1));
      break;
    case toml::node_type::boolean:
      out.kind = ConfigNode::Kind::boolean;
      out.scalar = node.as_boolean()->get();
      break;
    case toml::node_type::integer:
      out.kind = ConfigNode::Kind::integer;
      out.scalar = node.as_integer()->get();
      break;
    case toml::node_type::floating_point:
      out.kind = ConfigNode::Kind::real;
      out.scalar = node.as_floating_point()->get();
      break;
    case toml::node_type::string:
      out.kind = ConfigNode::Kind::string;
      out.scalar = node.as_string()->get();
      break;
    default: {
      // Dates and times: kept so that the validator can say what was written instead.
      out.kind = ConfigNode::Kind::other;
      std::ostringstream type_name, text;
      type_name << node.type();
      node.visit([&](auto&& value) { text << value; });
      out.other_type = type_name.str();
      out.other_text = text.str();
      break;
    }
  }
  return out;
}

void relocate(ConfigNode& node, const SourceLocation& where) {
  node.where = where;
  for (ConfigEntry& entry : node.entries) relocate(entry.value, where);
  for (ConfigNode& item : node.items) relocate(item, where);
}

bool is_index(const std::string& segment) {
  return !segment.empty() && segment.size() <= 9 &&
         std::all_of(segment.begin(), segment.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> segments;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    segments.push_back(path.substr(start, dot - start));
    if (dot == std::string::npos) return segments;
    start = dot + 1;
  }
}

ConfigNode empty_container(bool array, const SourceLocation& where) {
  ConfigNode node;
  node.kind = array ? ConfigNode::Kind::array : ConfigNode::Kind::table;
  node.where = where;
  return node;
}

}  // namespace

/// Index of the first character after the string that starts at text[i] (a quote), counting the
/// newlines it holds into `line`. An unterminated string runs to the end (toml++ reports it).
std::size_t skip_string(const std::string& text, std::size_t i, int& line) {
  const char quote = text[i];
  const bool multi_line = text.compare(i, 3, std::string(3, quote)) == 0;
  i += multi_line ? 3 : 1;
  while (i < text.size()) {
    if (quote == '"' && text[i] == '\\') {
      if (i + 1 < text.size() && text[i + 1] == '\n') ++line;
      i += 2;
      continue;
    }
    if (multi_line ? text.compare(i, 3, std::string(3, quote)) == 0 : text[i] == quote) {
      return i + (multi_line ? 3 : 1);
    }
    if (text[i] == '\n') {
      if (!multi_line) return i;
      ++line;
    }
    ++i;
  }
  return i;
}

/// Throws ConfigError at the first dotted key of more than kMaxNesting segments. It runs before
/// toml++ sees the text, because toml++ recurses once per segment. Outside strings and comments a
/// dot only joins key segments or sits inside a number, so counting the dots in each run of key
/// characters, blanks and quoted segments finds every long key.
void check_key_segments(const std::string& text, const std::string& file) {
  int line = 1;
  int dots = 0;
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '"' || c == '\'') {
      i = skip_string(text, i, line);
      continue;
    }
    if (c == '#') {
      i = std::min(text.find('\n', i), text.size());
      continue;
    }
    if (c == '.' && ++dots > kMaxNesting) throw too_deep(SourceLocation{file, line, 0}, "a dotted key");
    const bool in_key = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == ' ' ||
                        c == '\t' || c == '.';
    if (!in_key) dots = 0;
    if (c == '\n') ++line;
    ++i;
  }
}

ConfigNode parse_document(const std::string& text, const std::string& file) {
  check_key_segments(text, file);
  try {
    return convert(toml::parse(std::string_view(text), std::string_view(file)), file);
  } catch (const toml::parse_error& error) {
    const toml::source_position& begin = error.source().begin;
    throw ConfigError({ConfigIssue{
        SourceLocation{file, static_cast<int>(begin.line), static_cast<int>(begin.column)}, "",
        "TOML syntax error: " + std::string(error.description())}});
  }
}

ConfigNode parse_command_line_value(const std::string& text) {
  const SourceLocation where{kCommandLine, 0, 0};
  ConfigNode node;
  try {
    check_key_segments(text, kCommandLine);
    const toml::table table = toml::parse("v = " + text, std::string_view(kCommandLine));
    node = convert(*table.get("v"), kCommandLine);
    relocate(node, where);
  } catch (const toml::parse_error&) {
    node.kind = ConfigNode::Kind::string;
    node.scalar = text;
    node.where = where;
  }
  return node;
}

void flatten(const std::string& prefix, const ConfigNode& node, std::vector<Override>& out) {
  const auto child = [&](const std::string& key) { return prefix.empty() ? key : prefix + "." + key; };
  if (node.is_table()) {
    for (const ConfigEntry& entry : node.entries) flatten(child(entry.key), entry.value, out);
    return;
  }
  const bool array_of_tables =
      node.is_array() && !node.items.empty() &&
      std::all_of(node.items.begin(), node.items.end(), [](const ConfigNode& item) { return item.is_table(); });
  if (array_of_tables) {
    for (std::size_t i = 0; i < node.items.size(); ++i) flatten(child(std::to_string(i)), node.items[i], out);
    return;
  }
  out.push_back(Override{prefix, node});
}

void apply(const Override& override_, ConfigNode& root, std::vector<ConfigIssue>& issues) {
  const std::vector<std::string> segments = split_path(override_.path);
  const SourceLocation& where = override_.value.where;
  if (segments.size() > static_cast<std::size_t>(kMaxNesting)) {
    issues.push_back({where, override_.path.substr(0, 60) + "...",
                      "the key has " + std::to_string(segments.size()) + " segments; at most " +
                          std::to_string(kMaxNesting) + " are allowed"});
    return;
  }
  ConfigNode* at = &root;
  std::string walked;  // the part of the path already followed, for messages
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string& segment = segments[i];
    const bool last = i + 1 == segments.size();
    const bool next_is_index = !last && is_index(segments[i + 1]);
    ConfigNode* next = nullptr;
    if (at->is_table()) {
      next = at->find(segment);
      if (next == nullptr) {
        at->entries.push_back(ConfigEntry{segment, empty_container(next_is_index, where), {}});
        next = &at->entries.back().value;
      }
    } else if (at->is_array()) {
      if (!is_index(segment)) {
        issues.push_back({where, override_.path,
                          "'" + walked + "' is an array; name its entries by index, e.g. '" + walked + ".0." +
                              override_.path.substr(walked.size() + 1) + "'"});
        return;
      }
      const std::size_t index = std::stoul(segment);
      if (index > at->items.size()) {
        issues.push_back({where, override_.path,
                          "index " + segment + " is past the end of '" + walked + "', which has " +
                              std::to_string(at->items.size()) + " entries (index " +
                              std::to_string(at->items.size()) + " appends one)"});
        return;
      }
      if (index == at->items.size()) at->items.push_back(empty_container(next_is_index, where));
      next = &at->items[index];
    } else {
      issues.push_back({where, override_.path,
                        "cannot set a key inside '" + walked + "': it is a " + at->type_name() +
                            ", not a table"});
      return;
    }
    if (last) {
      *next = override_.value;
      return;
    }
    walked += (walked.empty() ? "" : ".") + segment;
    at = next;
  }
}

}  // namespace msd::host::config_detail
