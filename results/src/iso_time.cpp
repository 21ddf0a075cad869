#include "iso_time.h"

#include <cstdio>

namespace msd::results::detail {

namespace {
constexpr const char* kFormat = "%Y-%m-%dT%H:%M:%SZ";
}

std::string iso_utc(std::time_t time) {
  std::tm parts{};
  gmtime_r(&time, &parts);
  char text[32];
  std::strftime(text, sizeof text, kFormat, &parts);
  return text;
}

std::string now_iso_utc() { return iso_utc(std::time(nullptr)); }

std::optional<std::time_t> parse_iso_utc(const std::string& text) {
  std::tm parts{};
  const char* end = strptime(text.c_str(), kFormat, &parts);
  if (end == nullptr || *end != '\0') return std::nullopt;
  // timegm, not mktime: the text is UTC and the local time zone must not shift it.
  return timegm(&parts);
}

}  // namespace msd::results::detail
