// ISO-8601 UTC timestamps ("2026-11-22T17:04:05Z"): the only time format in the store. Fixed width,
// so text order is time order and SQL can compare them as strings.
#pragma once

#include <ctime>
#include <optional>
#include <string>

namespace msd::results::detail {

std::string iso_utc(std::time_t time);
std::string now_iso_utc();
/// Parses exactly the format iso_utc writes; nullopt for anything else.
std::optional<std::time_t> parse_iso_utc(const std::string& text);

}  // namespace msd::results::detail
