#include "msd/results/filter.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <utility>

#include "msd/text.h"

namespace msd::results {

namespace {

// ---- positions and messages --------------------------------------------------------------------
bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::string lowercase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// The candidate closest to `word`, when it is close enough to be a likely typo.
std::optional<std::string> closest(const std::string& word, const std::vector<std::string>& candidates) {
  return text::closest_match(lowercase(word), candidates, std::max<std::size_t>(1, word.size() / 3));
}

// Where byte `offset` of `filter` is, for people: line and column (in characters, from 1), the
// text of that line, and the blanks that put a caret under the offset (tabs kept, so it lines up).
struct Location {
  int line = 1;
  int column = 1;
  std::string line_text;
  std::string caret_indent;
};

Location locate(const std::string& filter, std::size_t offset) {
  offset = std::min(offset, filter.size());
  Location location;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < offset; ++i) {
    if (filter[i] == '\n') {
      ++location.line;
      location.column = 1;
      location.caret_indent.clear();
      line_start = i + 1;
    } else if (!is_utf8_continuation(filter[i])) {
      ++location.column;
      location.caret_indent += filter[i] == '\t' ? '\t' : ' ';
    }
  }
  location.line_text = filter.substr(line_start, filter.find('\n', line_start) - line_start);
  return location;
}

// The byte of `text` where its character `n` (counted from 0) starts; text.size() past the end.
std::size_t byte_of_character(const std::string& text, std::size_t n) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!is_utf8_continuation(text[i]) && n-- == 0) return i;
  }
  return text.size();
}

std::string filter_message(const std::string& filter, std::size_t offset, const std::string& problem) {
  Location at = locate(filter, offset);
  // A long line is shown as the stretch around the caret, so that a 100 kB filter makes a short message.
  constexpr std::size_t kShown = 60;
  const std::size_t caret = at.caret_indent.size();  // in characters
  if (caret > kShown) {
    at.line_text = "..." + at.line_text.substr(byte_of_character(at.line_text, caret - kShown));
    at.caret_indent = "   " + at.caret_indent.substr(caret - kShown);
  }
  const std::size_t end = byte_of_character(at.line_text, at.caret_indent.size() + kShown);
  if (end < at.line_text.size()) at.line_text = at.line_text.substr(0, end) + "...";
  return "filter:" + std::to_string(at.line) + ":" + std::to_string(at.column) + ": " + problem + "\n  " +
         at.line_text + "\n  " + at.caret_indent + "^";
}

// ---- tokens ------------------------------------------------------------------------------------
enum class TokenKind {
  word,    // a field, a keyword, a number or a bare string: anything up to a space or a delimiter
  string,  // a quoted string; text is the unescaped content
  op,      // = != < <= > >=
  open,    // (
  close,   // )
  comma,
  end,
};

struct Token {
  TokenKind kind = TokenKind::end;
  std::string text;
  std::size_t offset = 0;
};

// Characters that end a word: a field name runs up to one of these or a space, so metric names may
// hold dots, colons, slashes and the like (train.seconds, swd@student:1).
bool ends_word(char c) {
  return std::isspace(static_cast<unsigned char>(c)) ||
         std::string_view("()=!<>,\"'").find(c) != std::string_view::npos;
}

std::vector<Token> tokenize(const std::string& filter) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  const auto fail = [&](std::size_t at, const std::string& problem) {
    throw FilterError(filter, at, problem);
  };
  while (i < filter.size()) {
    const char c = filter[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    Token token;
    token.offset = i;
    if (c == '(' || c == ')' || c == ',') {
      token.kind = c == '(' ? TokenKind::open : c == ')' ? TokenKind::close : TokenKind::comma;
      token.text = std::string(1, c);
      ++i;
    } else if (c == '=' || c == '<' || c == '>' || c == '!') {
      const bool with_equals = i + 1 < filter.size() && filter[i + 1] == '=' && c != '=';
      if (c == '!' && !with_equals) {
        fail(i, "expected '!=' ('!' alone is not an operator; negate with 'not')");
      }
      token.kind = TokenKind::op;
      token.text = filter.substr(i, with_equals ? 2 : 1);
      i += token.text.size();
    } else if (c == '"' || c == '\'') {
      token.kind = TokenKind::string;
      std::size_t j = i + 1;
      for (;; ++j) {
        if (j >= filter.size()) fail(i, std::string("unterminated string: no closing ") + c);
        if (filter[j] == c) break;
        if (filter[j] != '\\') {
          token.text += filter[j];
          continue;
        }
        if (j + 1 >= filter.size()) fail(i, std::string("unterminated string: no closing ") + c);
        switch (filter[++j]) {
          case '\\': token.text += '\\'; break;
          case '"': token.text += '"'; break;
          case '\'': token.text += '\''; break;
          case 'n': token.text += '\n'; break;
          case 't': token.text += '\t'; break;
          default: fail(j - 1, "unknown escape in a string; use \\\\, \\\", \\', \\n or \\t");
        }
      }
      i = j + 1;
    } else {
      token.kind = TokenKind::word;
      std::size_t j = i;
      while (j < filter.size() && !ends_word(filter[j])) ++j;
      token.text = filter.substr(i, j - i);
      i = j;
    }
    tokens.push_back(std::move(token));
  }
  tokens.push_back(Token{TokenKind::end, "", filter.size()});
  return tokens;
}

bool is_keyword(const Token& token, const char* keyword) {
  return token.kind == TokenKind::word && lowercase(token.text) == keyword;
}

bool is_any_keyword(const Token& token) {
  for (const char* keyword : {"and", "or", "not", "in"}) {
    if (is_keyword(token, keyword)) return true;
  }
  return false;
}

// [+-] digits [. digits] | [+-] . digits, then an optional exponent: the numbers the filter takes.
bool is_number(const std::string& text) {
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    return i - start;
  };
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  std::size_t mantissa = digits();
  if (i < text.size() && text[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == text.size();
}

// ---- fields and values -------------------------------------------------------------------------
enum class FieldKind { metric, param, coord, tag, integer_column, text_column, status };

struct Field {
  FieldKind kind = FieldKind::text_column;
  std::string written;  // as in the filter, for messages
  std::string key;      // metric name, or param / coord / tag key
  std::string scope;    // metric scope; "" = whole model
  const char* column = "";  // SQL of a run column
};

struct RunColumn {
  const char* name;
  FieldKind kind;
  const char* sql;
};

constexpr RunColumn kRunColumns[] = {
    {"id", FieldKind::integer_column, "r.id"},
    {"seed", FieldKind::integer_column, "r.seed"},
    {"sweep_index", FieldKind::integer_column, "r.sweep_index"},
    {"status", FieldKind::status, "r.status"},
    {"experiment", FieldKind::text_column, "e.name"},
    {"name", FieldKind::text_column, "r.name"},
    {"sweep", FieldKind::text_column, "r.sweep_id"},
};

constexpr const char* kFieldList =
    "metrics.NAME[@SCOPE], params.KEY, coords.KEY, tags.KEY, id, seed, sweep, sweep_index, status, "
    "experiment, name";

// Splits "NAME@SCOPE" (metric names hold no '@'); an empty part is reported at `offset` + its place.
std::pair<std::string, std::string> split_metric(const std::string& filter, std::size_t offset,
                                                 const std::string& text, const std::string& written) {
  const std::size_t at = text.find('@');
  const std::string name = text.substr(0, at);
  if (name.empty()) throw FilterError(filter, offset, "expected a metric name in '" + written + "'");
  if (at == std::string::npos) return {name, ""};
  const std::string scope = text.substr(at + 1);
  if (scope.empty()) {
    throw FilterError(filter, offset,
                      "expected a scope after '@' in '" + written +
                          "', e.g. @student:1 or @class:3 (leave out '@' for the whole model)");
  }
  return {name, scope};
}

Field resolve_field(const std::string& filter, const Token& token) {
  Field field;
  field.written = token.text;
  const std::string& text = token.text;
  const struct {
    const char* prefix;
    FieldKind kind;
  } prefixed[] = {{"metrics.", FieldKind::metric},
                  {"params.", FieldKind::param},
                  {"coords.", FieldKind::coord},
                  {"tags.", FieldKind::tag}};
  for (const auto& [prefix, kind] : prefixed) {
    const std::string head(prefix);
    if (text.compare(0, head.size(), head) != 0) continue;
    field.kind = kind;
    field.key = text.substr(head.size());
    const std::size_t key_offset = token.offset + head.size();
    if (field.key.empty()) {
      const char* what = kind == FieldKind::metric ? "metric name" : "key";
      throw FilterError(filter, key_offset, std::string("expected a ") + what + " after '" + head + "'");
    }
    if (kind == FieldKind::metric) {
      std::tie(field.key, field.scope) = split_metric(filter, key_offset, field.key, text);
    }
    return field;
  }
  for (const RunColumn& column : kRunColumns) {
    if (text == column.name) {
      field.kind = column.kind;
      field.column = column.sql;
      return field;
    }
  }
  // A typo in the prefix (metric.swd) or in a run column (stauts).
  const std::size_t dot = text.find('.');
  std::string hint;
  if (dot != std::string::npos) {
    if (auto prefix = closest(text.substr(0, dot), {"metrics", "params", "coords", "tags"})) {
      hint = " (did you mean '" + *prefix + text.substr(dot) + "'?)";
    }
  } else {
    std::vector<std::string> names;
    for (const RunColumn& column : kRunColumns) names.emplace_back(column.name);
    if (text == "metrics") hint = " (did you mean 'metrics.NAME'?)";
    if (text == "params" || text == "coords" || text == "tags") hint = " (did you mean '" + text + ".KEY'?)";
    if (hint.empty()) {
      if (auto name = closest(text, names)) hint = " (did you mean '" + *name + "'?)";
    }
  }
  throw FilterError(filter, token.offset,
                    "unknown field '" + text + "'" + hint + "; fields are " + kFieldList);
}

// How a comparison is made in SQL, decided by the field and the value.
enum class Compare { numeric, text, boolean };

struct Value {
  Compare type = Compare::text;
  std::string text;  // bound as a parameter
  std::size_t offset = 0;
};

std::vector<std::string> status_names() {
  std::vector<std::string> names;
  for (RunStatus status :
       {RunStatus::running, RunStatus::finished, RunStatus::failed, RunStatus::interrupted}) {
    names.emplace_back(to_string(status));
  }
  return names;
}

// The value as the field compares it, or a FilterError at the value saying what the field takes.
Value typed_value(const std::string& filter, const Field& field, const Token& token) {
  const bool number = token.kind == TokenKind::word && is_number(token.text);
  const std::string word = token.kind == TokenKind::word ? lowercase(token.text) : "";
  const bool boolean = word == "true" || word == "false";
  Value value;
  value.offset = token.offset;
  value.text = boolean ? lowercase(token.text) : token.text;
  const auto fail = [&](const std::string& problem) { throw FilterError(filter, token.offset, problem); };
  switch (field.kind) {
    case FieldKind::metric:
    case FieldKind::integer_column:
      if (!number) {
        fail("'" + field.written + "' compares with numbers; '" + token.text + "' is not a number");
      }
      value.type = Compare::numeric;
      break;
    case FieldKind::param:
    case FieldKind::coord:
      value.type = number ? Compare::numeric : boolean ? Compare::boolean : Compare::text;
      break;
    case FieldKind::tag:
      value.type = number ? Compare::numeric : Compare::text;
      break;
    case FieldKind::text_column:
      if (boolean) fail("'" + field.written + "' compares with strings; quote it: \"" + token.text + "\"");
      value.type = Compare::text;
      break;
    case FieldKind::status:
      if (!run_status_from_string(token.text)) {
        std::string hint;
        if (auto name = closest(token.text, status_names())) {
          hint = " (did you mean '" + *name + "'?)";
        }
        fail("unknown status '" + token.text + "'" + hint + "; statuses are " + text::join(status_names()));
      }
      value.type = Compare::text;
      break;
  }
  return value;
}

// ---- SQL ---------------------------------------------------------------------------------------
// Bounds that keep any filter inside the stack and SQLite's limits: its parser's stack holds about
// 30 levels of nested parentheses, and a comparison's subquery takes some of them (the filter's fuzz
// target checks the deepest filters allowed against SQLite); SQLITE_MAX_VARIABLE_NUMBER is 32766.
// Far beyond what a person writes, and each refused with a message at its place.
constexpr int kMaxFilterNesting = 16;
// Each comparison of a chain deepens SQLite's expression tree by a level (at most 1000).
constexpr std::size_t kMaxFilterComparisons = 256;
constexpr std::size_t kMaxFilterValues = 10000;

// The final (highest-step) value of metric ?name at scope ?scope of run r. Infinities come back as
// ±9e999 (SQLite's ±Inf) so that they compare; NaN as `nan_as`.
std::string final_metric_sql(const std::string& name, const std::string& scope, const char* nan_as) {
  return std::string(
             "(SELECT CASE m.non_finite WHEN 'inf' THEN 9e999 WHEN '-inf' THEN -9e999 WHEN 'nan' THEN ") +
         nan_as + " ELSE m.value END FROM metrics m WHERE m.run_id = r.id AND m.name = " + name +
         " AND m.scope = " + scope + " ORDER BY m.step DESC LIMIT 1)";
}

// Values in params and sweep_coords are TOML text. A TOML number is text that SQLite reads as a
// number: comparing a TEXT column with CAST(... AS NUMERIC) converts the column's text only when it
// is a well-formed number, so `x.value = CAST(x.value AS NUMERIC)` holds for 4, 0.5 and 1e-3 but not
// for "4", true or 1979-05-27 (which CAST alone would turn into 0, 0 and 1979).
constexpr const char* kNumericValue = "CAST(x.value AS NUMERIC)";
constexpr const char* kIsNumeric = "x.value = CAST(x.value AS NUMERIC)";
// A TOML basic string without its quotes and escapes (msd writes \\, \" and \n; \t for good
// measure), NULL for any other TOML value. char(1) stands in for an escaped backslash meanwhile so
// that "\\n" does not turn into a newline.
constexpr const char* kUnquotedString =
    "CASE WHEN x.value LIKE '\"%\"' THEN replace(replace(replace(replace(replace("
    "substr(x.value, 2, length(x.value) - 2), '\\\\', char(1)), '\\\"', '\"'), '\\n', char(10)), "
    "'\\t', char(9)), char(1), '\\') END";

class Translator {
 public:
  explicit Translator(const std::string& filter) : filter_(filter), tokens_(tokenize(filter)) {}

  CompiledFilter translate() {
    if (peek().kind == TokenKind::end) {
      fail_here("expected a comparison such as metrics.swd < 0.05; the filter is empty");
    }
    CompiledFilter compiled;
    compiled.where = or_expression();
    if (peek().kind == TokenKind::close) fail_here("unmatched ')'");
    if (peek().kind != TokenKind::end) fail_here("expected 'and', 'or' or the end of the filter");
    compiled.params = std::move(params_);
    return compiled;
  }

 private:
  const Token& peek() const { return tokens_[position_]; }
  const Token& next() { return tokens_[position_++]; }
  [[noreturn]] void fail_here(const std::string& problem) const {
    throw FilterError(filter_, peek().offset, problem);
  }

  std::string bind(const std::string& value) {
    if (params_.size() >= kMaxFilterValues) {
      fail_here("the filter holds more than " + std::to_string(kMaxFilterValues) +
                " names and values; split it into several queries");
    }
    params_.push_back(value);
    return "?" + std::to_string(params_.size());
  }

  // or_expression := and_expression ("or" and_expression)*
  std::string or_expression() {
    std::vector<std::string> terms{and_expression()};
    while (is_keyword(peek(), "or")) {
      next();
      terms.push_back(and_expression());
    }
    return chain(terms, " OR ");
  }

  // and_expression := not_expression ("and" not_expression)*
  std::string and_expression() {
    std::vector<std::string> terms{not_expression()};
    while (is_keyword(peek(), "and")) {
      next();
      terms.push_back(not_expression());
    }
    return chain(terms, " AND ");
  }

  // The terms of one chain of 'or' (or 'and') as one flat SQL chain: SQLite's parser reduces it as it
  // goes, so only nesting in the filter itself nests in SQL.
  static std::string chain(const std::vector<std::string>& terms, const char* op) {
    if (terms.size() == 1) return terms.front();
    std::string sql = "(" + terms.front();
    for (std::size_t i = 1; i < terms.size(); ++i) sql += op + terms[i];
    return sql + ")";
  }

  // not_expression := "not" not_expression | "(" or_expression ")" | comparison
  std::string not_expression() {
    const DepthGuard guard(*this);
    if (is_keyword(peek(), "not")) {
      next();
      return "(NOT " + not_expression() + ")";
    }
    if (peek().kind == TokenKind::open) {
      const Token open = next();
      std::string sql = or_expression();
      if (peek().kind != TokenKind::close) {
        fail_here("expected ')' to close the '(' at column " +
                  std::to_string(locate(filter_, open.offset).column));
      }
      next();
      return sql;
    }
    return comparison();
  }

  // Counts the nesting of 'not' and '(' and refuses it past kMaxFilterNesting, at the token that
  // goes too deep: the parser recurses once per level.
  class DepthGuard {
   public:
    explicit DepthGuard(Translator& translator) : translator_(translator) {
      if (++translator_.depth_ > kMaxFilterNesting) {
        translator_.fail_here("the filter nests 'not' and '(' more than " + std::to_string(kMaxFilterNesting) +
                              " levels deep");
      }
    }
    ~DepthGuard() { --translator_.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;

   private:
    Translator& translator_;
  };

  // comparison := FIELD OP value | FIELD ["not"] "in" "(" value ("," value)* ")"
  std::string comparison() {
    if (++comparisons_ > kMaxFilterComparisons) {
      fail_here("the filter makes more than " + std::to_string(kMaxFilterComparisons) +
                " comparisons; split it into several queries, or list values with 'in (...)'");
    }
    if (peek().kind != TokenKind::word || is_any_keyword(peek())) {
      fail_here("expected a field (" + std::string(kFieldList) + "), 'not' or '('");
    }
    const Token field_token = next();
    const Field field = resolve_field(filter_, field_token);

    std::string op;
    bool list = false;
    if (peek().kind == TokenKind::op) {
      op = next().text;
    } else if (is_keyword(peek(), "in")) {
      next();
      op = "IN";
      list = true;
    } else if (is_keyword(peek(), "not") && is_keyword(tokens_[position_ + 1], "in")) {
      position_ += 2;
      op = "NOT IN";
      list = true;
    } else {
      fail_here("expected an operator (=, !=, <, <=, >, >=, in, not in) after '" + field_token.text + "'");
    }

    std::vector<Value> values;
    if (!list) {
      values.push_back(value_after("'" + op + "'", field));
    } else {
      if (peek().kind != TokenKind::open) {
        fail_here("expected '(' after '" + lowercase(op) + "', as in x in (1, 2)");
      }
      next();
      values.push_back(value_after("'('", field));
      while (peek().kind == TokenKind::comma) {
        next();
        values.push_back(value_after("','", field));
      }
      if (peek().kind != TokenKind::close) fail_here("expected ',' or ')' in the list of values");
      next();
    }

    const Compare type = values.front().type;
    for (const Value& value : values) {
      if (value.type != type) {
        throw FilterError(filter_, value.offset,
                          "the values of one list must all be numbers, all strings or all booleans");
      }
    }
    const bool ordering = op != "=" && op != "!=" && !list;
    if (ordering && (type == Compare::boolean || field.kind == FieldKind::status)) {
      throw FilterError(filter_, values.front().offset,
                        "'" + field.written + "' takes only =, !=, in and not in");
    }

    const std::string left = left_side(field, type);
    const auto right = [&](const Value& value) {
      return type == Compare::numeric ? "CAST(" + bind(value.text) + " AS NUMERIC)" : bind(value.text);
    };
    if (!list) return "(" + left + " " + op + " " + right(values.front()) + ")";
    std::string items;
    for (const Value& value : values) items += (items.empty() ? "" : ", ") + right(value);
    return "(" + left + " " + op + " (" + items + "))";
  }

  Value value_after(const std::string& what, const Field& field) {
    const Token& token = peek();
    if ((token.kind != TokenKind::word && token.kind != TokenKind::string) || is_any_keyword(token)) {
      fail_here("expected a value after " + what);
    }
    next();
    return typed_value(filter_, field, token);
  }

  // The SQL of the field's value for run r, NULL when the run has none of the value's type.
  std::string left_side(const Field& field, Compare type) {
    switch (field.kind) {
      case FieldKind::metric:
      {
        const std::string name = bind(field.key);
        const std::string scope = bind(field.scope);
        return final_metric_sql(name, scope, "NULL");
      }
      case FieldKind::param:
      case FieldKind::coord:
      case FieldKind::tag: {
        const char* table = field.kind == FieldKind::param   ? "params"
                            : field.kind == FieldKind::coord ? "sweep_coords"
                                                             : "tags";
        const std::string from =
            std::string(" FROM ") + table + " x WHERE x.run_id = r.id AND x.key = " + bind(field.key);
        if (type == Compare::numeric) {
          return std::string("(SELECT ") + kNumericValue + from + " AND " + kIsNumeric + ")";
        }
        // Tags are plain text, not TOML.
        if (field.kind == FieldKind::tag) return "(SELECT x.value" + from + ")";
        if (type == Compare::boolean) return "(SELECT x.value" + from + " AND x.value IN ('true', 'false'))";
        return std::string("(SELECT ") + kUnquotedString + from + ")";
      }
      default:
        return field.column;
    }
  }

  const std::string& filter_;
  std::vector<Token> tokens_;
  std::size_t position_ = 0;
  int depth_ = 0;
  std::size_t comparisons_ = 0;
  std::vector<std::string> params_;
};

}  // namespace

FilterError::FilterError(const std::string& filter, std::size_t offset, const std::string& problem)
    : std::runtime_error(filter_message(filter, offset, problem)), problem_(problem) {
  const Location location = locate(filter, offset);
  line_ = location.line;
  column_ = location.column;
}

CompiledFilter compile_filter(const std::string& filter) { return Translator(filter).translate(); }

QueryResult query_runs(const Store& store, const RunQuery& query) {
  CompiledFilter compiled = compile_filter(query.filter);
  std::vector<std::string> params = std::move(compiled.params);
  const auto bind = [&](const std::string& value) {
    params.push_back(value);
    return "?" + std::to_string(params.size());
  };
  // sweep_coords is keyed (run_id, key), so group_concat meets a run's coordinates in key order.
  std::string sql =
      "SELECT r.id AS id, e.name AS experiment, r.name AS name, r.status AS status, "
      "r.sweep_index AS sweep_index, "
      "(SELECT group_concat(c.key || '=' || c.value, ', ') FROM sweep_coords c "
      "WHERE c.run_id = r.id) AS coords";
  for (std::size_t i = 0; i < query.metrics.size(); ++i) {
    const std::string& metric = query.metrics[i];
    std::pair<std::string, std::string> name_and_scope;
    try {
      name_and_scope = split_metric(metric, 0, metric, metric);
    } catch (const FilterError& error) {
      throw std::invalid_argument("metric column '" + metric + "': " + error.problem());
    }
    const auto& [name, scope] = name_and_scope;
    const std::string name_param = bind(name);
    const std::string scope_param = bind(scope);
    sql += ", " + final_metric_sql(name_param, scope_param, "'nan'") + " AS metric_" + std::to_string(i + 1);
  }
  sql += " FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE " + compiled.where +
         " ORDER BY r.id";
  QueryResult result = store.query(sql, params);
  // The columns are named here, not in SQL, so that no metric name is ever part of the SQL text.
  for (std::size_t i = 0; i < query.metrics.size(); ++i) result.columns[6 + i] = query.metrics[i];
  return result;
}

}  // namespace msd::results
