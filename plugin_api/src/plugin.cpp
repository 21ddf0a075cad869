#include "msd/plugin.h"

#include <charconv>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "msd/monitor.h"

namespace msd {

Plugin::~Plugin() = default;
Monitor::~Monitor() = default;

const char* to_string(PluginKind kind) {
  switch (kind) {
    case PluginKind::dataset: return "dataset";
    case PluginKind::teacher: return "teacher";
    case PluginKind::student: return "student";
    case PluginKind::partition: return "partition";
    case PluginKind::loss: return "loss";
    case PluginKind::metric: return "metric";
  }
  return "?";
}

std::optional<PluginKind> plugin_kind_from_string(const std::string& name) {
  for (PluginKind k : {PluginKind::dataset, PluginKind::teacher, PluginKind::student,
                       PluginKind::partition, PluginKind::loss, PluginKind::metric}) {
    if (name == to_string(k)) return k;
  }
  return std::nullopt;
}

const char* to_string(KeyType type) {
  switch (type) {
    case KeyType::boolean: return "bool";
    case KeyType::integer: return "integer";
    case KeyType::real: return "float";
    case KeyType::string: return "string";
    case KeyType::real_list: return "float list";
    case KeyType::integer_list: return "integer list";
    case KeyType::string_list: return "string list";
  }
  return "?";
}

KeyType type_of(const Value& value) {
  static constexpr KeyType by_index[] = {KeyType::boolean,   KeyType::integer,      KeyType::real,
                                         KeyType::string,    KeyType::real_list,    KeyType::integer_list,
                                         KeyType::string_list};
  return by_index[value.index()];
}

namespace {
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out + "\"";
}

std::string real_to_toml(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // The shortest decimal that reads back as the same double: 0.1, not 0.10000000000000001; 50, not 5e+01.
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), v);
  std::string s(buffer, result.ptr);
  // Keep reals recognisable as reals so a round trip through TOML preserves the type.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

template <typename T, typename F>
std::string list_to_toml(const std::vector<T>& items, F&& one) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + one(items[i]);
  return out + "]";
}
}  // namespace

std::string to_toml(const Value& value) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return real_to_toml(d); }
    std::string operator()(const std::string& s) const { return quote(s); }
    std::string operator()(const std::vector<double>& v) const { return list_to_toml(v, real_to_toml); }
    std::string operator()(const std::vector<std::int64_t>& v) const {
      return list_to_toml(v, [](std::int64_t i) { return std::to_string(i); });
    }
    std::string operator()(const std::vector<std::string>& v) const { return list_to_toml(v, quote); }
  };
  return std::visit(Visitor{}, value);
}

KeySpec key_int(std::string name, std::int64_t def, std::string doc, std::optional<double> min,
                std::optional<double> max) {
  return KeySpec{std::move(name), KeyType::integer, Value{def}, std::move(doc), min, max, {}};
}
KeySpec key_real(std::string name, double def, std::string doc, std::optional<double> min,
                 std::optional<double> max) {
  return KeySpec{std::move(name), KeyType::real, Value{def}, std::move(doc), min, max, {}};
}
KeySpec key_bool(std::string name, bool def, std::string doc) {
  return KeySpec{std::move(name), KeyType::boolean, Value{def}, std::move(doc), {}, {}, {}};
}
KeySpec key_string(std::string name, std::string def, std::string doc, std::vector<std::string> choices) {
  return KeySpec{std::move(name), KeyType::string, Value{std::move(def)}, std::move(doc), {}, {},
                 std::move(choices)};
}
KeySpec key_required(std::string name, KeyType type, std::string doc) {
  return KeySpec{std::move(name), type, std::nullopt, std::move(doc), {}, {}, {}};
}
KeySpec sampling(KeySpec key) {
  key.sampling_only = true;
  return key;
}

const Value& Params::at(const std::string& key) const {
  auto it = values_.find(key);
  if (it == values_.end()) throw std::logic_error("plugin asked for undeclared config key '" + key + "'");
  return it->second;
}

template <typename T>
static const T& get_as(const Value& v, const std::string& key, const char* wanted) {
  if (const T* p = std::get_if<T>(&v)) return *p;
  throw std::logic_error("config key '" + key + "' holds a " + to_string(type_of(v)) + ", not a " + wanted);
}

bool Params::get_bool(const std::string& key) const { return get_as<bool>(at(key), key, "bool"); }
std::int64_t Params::get_int(const std::string& key) const {
  return get_as<std::int64_t>(at(key), key, "integer");
}
double Params::get_real(const std::string& key) const {
  const Value& v = at(key);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return get_as<double>(v, key, "float");
}
const std::string& Params::get_string(const std::string& key) const {
  return get_as<std::string>(at(key), key, "string");
}
std::vector<double> Params::get_real_list(const std::string& key) const {
  const Value& v = at(key);
  if (const auto* ints = std::get_if<std::vector<std::int64_t>>(&v)) {
    return std::vector<double>(ints->begin(), ints->end());
  }
  return get_as<std::vector<double>>(v, key, "float list");
}
std::vector<std::int64_t> Params::get_int_list(const std::string& key) const {
  return get_as<std::vector<std::int64_t>>(at(key), key, "integer list");
}
std::vector<std::string> Params::get_string_list(const std::string& key) const {
  return get_as<std::vector<std::string>>(at(key), key, "string list");
}

}  // namespace msd
