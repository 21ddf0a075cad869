// class_interleaved: class c goes to cell (c + offset) mod K, so every cell holds classes spread
// over the whole label range (0, K, 2K, ... in cell 0 when offset = 0).
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "msd/partition.h"
#include "msd/plugin.h"

namespace {

class ClassInterleaved final : public msd::Partition {
 public:
  // A condition partition (PluginInfo::partition's default): its cells list classes.
  static msd::PluginInfo info() {
    return {msd::PluginKind::partition,
            "class_interleaved",
            "1.0.0",
            "K cells of interleaved classes: class c goes to cell (c + offset) mod K",
            {msd::key_int("offset", 0, "rotates the assignment: class c goes to cell (c + offset) mod K", 0)}};
  }

  explicit ClassInterleaved(const msd::Params& params) : offset_(params.get_int("offset")) {}

  std::vector<msd::Cell> split(const msd::PartitionContext& ctx) const override {
    if (ctx.k < 1 || ctx.k > ctx.num_classes) {
      throw std::invalid_argument("class_interleaved: k = " + std::to_string(ctx.k) +
                                  " must be between 1 and num_classes = " + std::to_string(ctx.num_classes));
    }
    std::vector<msd::Cell> cells(static_cast<size_t>(ctx.k));
    // Ascending c keeps every cell's class list sorted, as check_partition requires.
    for (std::int64_t c = 0; c < ctx.num_classes; ++c) {
      cells[static_cast<size_t>((c + offset_) % ctx.k)].classes.push_back(c);
    }
    for (msd::Cell& cell : cells) {
      cell.label = "classes";
      for (size_t i = 0; i < cell.classes.size(); ++i) {
        cell.label += (i ? "," : " ") + std::to_string(cell.classes[i]);
      }
    }
    return cells;
  }

 private:
  std::int64_t offset_;
};

}  // namespace

MSD_PLUGIN_LIBRARY(msd::PluginLibrary{"class_interleaved", {msd::describe<ClassInterleaved>()}})
