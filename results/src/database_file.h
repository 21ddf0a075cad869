// What a path given as a results database is, found out before SQLite opens it: SQLite's own
// messages ("unable to open database file") give no reason, and opening somebody else's SQLite file
// read-write would add msd's tables to it, set its user_version and switch it to WAL.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace msd::results::detail {

/// Marks every msd results database (PRAGMA application_id): "msdl" in ASCII.
constexpr std::int32_t kApplicationId = 0x6d73646c;

/// Checks that `path` can be a results database opened `for_writing` (or read-only), and returns
/// whether it exists (false: SQLite will create it). Throws std::runtime_error naming `path` and
/// saying what to do for a folder, a device, an unreadable or read-only file, a read-only or missing
/// folder, an empty file, or a file that is not SQLite. Whose SQLite file it is, is checked once
/// SQLite has opened it (check_database_identity): in WAL mode the header on disk may be stale.
bool inspect_database_file(const std::string& path, bool for_writing);

/// Throws std::runtime_error unless the opened file is msd's: its application_id is kApplicationId,
/// or 0 with schema version 1 or 2 and msd's tables (files older than the mark). Refuses negative
/// schema versions, which no msd build writes. `tables` are the names in sqlite_master.
void check_database_identity(const std::string& path, std::int32_t application_id, std::int32_t user_version,
                             const std::vector<std::string>& tables);

/// An artifact path as stored: relative to the database's folder when it lies inside it, so that a
/// results folder can be moved or copied whole; else as given.
std::string stored_artifact_path(const std::filesystem::path& folder, const std::string& path);
/// The stored path read back: relative paths are taken from the database's folder.
std::string resolved_artifact_path(const std::filesystem::path& folder, const std::string& path);

}  // namespace msd::results::detail
