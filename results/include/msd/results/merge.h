// Merging results databases. The tasks of a cluster job array each write their own database (a
// "shard": SQLite must not be shared over NFS); `msd results merge OUT SHARD...` gathers them into one.
//
// A run is named across databases by its uuid. Merging copies each shard's runs with their
// experiment (matched by name), params, sweep coordinates, tags, metrics and artifacts, under OUT's
// own ids. It is idempotent: merging the same shards again changes nothing, and a run whose shard
// copy has changed since (it was running and has finished, it logged more metrics) replaces OUT's
// copy, keeping OUT's id for it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace msd::results {

/// What merging one shard did.
struct ShardMerge {
  std::string shard;                ///< the shard's path, as given
  std::int64_t runs_added = 0;      ///< runs OUT did not have
  std::int64_t runs_updated = 0;    ///< runs OUT had in another state, replaced by the shard's
  std::int64_t runs_unchanged = 0;  ///< runs OUT already had exactly
  std::string error;                ///< empty when merged; otherwise why nothing of the shard was merged
};

/// Merges each of `shards` into the database at `out` (created, or migrated, when needed), one
/// transaction per shard. Shards are opened read-only and must be at the current schema version. A
/// shard that is missing, corrupt, at another schema version or that cannot be copied leaves OUT
/// as it was before that shard, gets its error (naming the file) in its ShardMerge, and the others
/// are still merged. Throws std::runtime_error naming `out` when OUT itself cannot be opened.
std::vector<ShardMerge> merge_shards(const std::string& out, const std::vector<std::string>& shards);

/// One line per shard ("PATH: 2 added, 1 updated, 0 unchanged" or "PATH: error: ...") and a total.
std::string format_merge_report(const std::string& out, const std::vector<ShardMerge>& merges);

}  // namespace msd::results
