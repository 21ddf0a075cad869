#include "msd/partition.h"

#include <algorithm>
#include <stdexcept>

namespace msd {

Partition::~Partition() = default;

bool Cell::contains_class(std::int64_t c) const {
  return classes.empty() || std::binary_search(classes.begin(), classes.end(), c);
}

void check_partition(const std::vector<Cell>& cells, RoutingKey key, std::int64_t num_classes) {
  if (cells.empty()) throw std::invalid_argument("partition produced no cells");
  if (key == RoutingKey::condition) {
    std::vector<int> owner(static_cast<size_t>(num_classes), -1);
    for (size_t k = 0; k < cells.size(); ++k) {
      if (cells[k].classes.empty()) {
        if (cells.size() == 1) return;  // one cell with every class
        throw std::invalid_argument("cell " + std::to_string(k) + " has no classes");
      }
      if (!std::is_sorted(cells[k].classes.begin(), cells[k].classes.end())) {
        throw std::invalid_argument("cell " + std::to_string(k) + " lists its classes unsorted");
      }
      for (std::int64_t c : cells[k].classes) {
        if (c < 0 || c >= num_classes) {
          throw std::invalid_argument("cell " + std::to_string(k) + " names class " + std::to_string(c) +
                                      " outside 0.." + std::to_string(num_classes - 1));
        }
        if (owner[c] >= 0) {
          throw std::invalid_argument("class " + std::to_string(c) + " is in cells " +
                                      std::to_string(owner[c]) + " and " + std::to_string(k));
        }
        owner[c] = static_cast<int>(k);
      }
    }
    for (std::int64_t c = 0; c < num_classes; ++c) {
      if (owner[c] < 0) throw std::invalid_argument("class " + std::to_string(c) + " is in no cell");
    }
    return;
  }
  std::vector<Cell> sorted = cells;
  std::sort(sorted.begin(), sorted.end(), [](const Cell& a, const Cell& b) { return a.sigma_lo < b.sigma_lo; });
  if (sorted.front().sigma_lo > 0.0) throw std::invalid_argument("noise cells do not start at sigma = 0");
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (!(sorted[i].sigma_hi > sorted[i].sigma_lo)) {
      throw std::invalid_argument("noise cell '" + sorted[i].label + "' is empty");
    }
    if (i + 1 < sorted.size() && sorted[i].sigma_hi != sorted[i + 1].sigma_lo) {
      throw std::invalid_argument("noise cells '" + sorted[i].label + "' and '" + sorted[i + 1].label +
                                  "' leave a gap or overlap");
    }
  }
  if (sorted.back().sigma_hi != std::numeric_limits<double>::infinity()) {
    throw std::invalid_argument("noise cells do not extend to sigma = infinity");
  }
}

}  // namespace msd
