#include "database_file.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace msd::results::detail {

namespace fs = std::filesystem;

namespace {

constexpr char kSqliteMagic[] = "SQLite format 3";  // the first 16 bytes, its NUL included
// Schema version 3 put msd's mark in its files; older msd files are known by these tables.
constexpr std::int32_t kFirstMarkedVersion = 3;
constexpr const char* kMsdTables[] = {"experiments", "runs", "params", "metrics", "artifacts"};

std::runtime_error refused(const std::string& path, const std::string& why) {
  return std::runtime_error("results database " + path + " " + why);
}

std::string reason() { return std::strerror(errno); }

/// The folder SQLite writes in: the file's own (new files, and -wal and -shm beside every file).
void require_writable_folder(const std::string& path) {
  const fs::path folder = fs::absolute(path).parent_path();
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    throw refused(path, "cannot be created: its folder " + folder.string() + " does not exist");
  }
  if (access(folder.c_str(), W_OK | X_OK) != 0) {
    throw refused(path, "cannot be written: its folder " + folder.string() + " is not writable (" + reason() +
                            "), and SQLite keeps a -wal and a -shm file beside the database; copy the database "
                            "to a writable folder, or read it with `msd results sql`");
  }
}

}  // namespace

bool inspect_database_file(const std::string& path, bool for_writing) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) {
    if (!for_writing) throw refused(path, "does not exist");
    require_writable_folder(path);
    return false;
  }
  if (fs::is_directory(status)) {
    throw refused(path, "is a folder; give the database file inside it, e.g. " + (fs::path(path) / "results.db").string());
  }
  if (!fs::is_regular_file(status)) throw refused(path, "is not a regular file (a device, pipe or socket)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw refused(path, "cannot be read: " + reason());
  char header[sizeof kSqliteMagic] = {};
  in.read(header, sizeof header);
  const auto got = static_cast<std::size_t>(in.gcount());
  if (got == 0) {
    throw refused(path, "is an empty file, not an msd results database; msd creates its databases itself, so "
                        "give a path that does not exist yet, or delete the empty file");
  }
  if (got < sizeof header || std::memcmp(header, kSqliteMagic, sizeof kSqliteMagic) != 0) {
    throw refused(path, "is not a SQLite database, so not an msd results database; msd leaves it untouched");
  }
  if (for_writing) {
    if (access(path.c_str(), W_OK) != 0) {
      throw refused(path, "cannot be written (" + reason() + "); read it with `msd results sql`, or make it writable");
    }
    require_writable_folder(path);
  }
  return true;
}

void check_database_identity(const std::string& path, std::int32_t application_id, std::int32_t user_version,
                             const std::vector<std::string>& tables) {
  if (application_id != 0 && application_id != kApplicationId) {
    throw refused(path, "is the SQLite database of another application (application_id " +
                            std::to_string(application_id) + "), not an msd results database; msd leaves it untouched");
  }
  if (user_version < 0) {
    throw refused(path, "has schema version " + std::to_string(user_version) +
                            ", which no msd build writes: the file is damaged or not msd's; msd leaves it untouched");
  }
  if (application_id == kApplicationId) return;
  const bool has_msd_tables = std::all_of(
      std::begin(kMsdTables), std::end(kMsdTables),
      [&](const char* table) { return std::find(tables.begin(), tables.end(), table) != tables.end(); });
  if (user_version >= 1 && user_version < kFirstMarkedVersion && has_msd_tables) return;
  std::string listed;
  for (std::size_t i = 0; i < tables.size() && i < 10; ++i) listed += (i ? ", " : "") + tables[i];
  throw refused(path, "is a SQLite database that msd did not make (" +
                          (tables.empty() ? std::string("no tables") : "tables: " + listed) +
                          "); msd leaves it untouched: give another --db");
}

std::string stored_artifact_path(const fs::path& folder, const std::string& path) {
  const fs::path given = fs::path(path).lexically_normal();
  if (given.is_relative()) return given.string();
  const fs::path relative = given.lexically_relative(folder.lexically_normal());
  const bool inside = !relative.empty() && *relative.begin() != "..";
  return inside ? relative.string() : given.string();
}

std::string resolved_artifact_path(const fs::path& folder, const std::string& path) {
  const fs::path stored(path);
  return stored.is_relative() ? (folder / stored).lexically_normal().string() : path;
}

}  // namespace msd::results::detail
