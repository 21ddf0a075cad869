#include "msd/partition.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace msd {

Partition::~Partition() = default;

bool Cell::contains_class(std::int64_t c) const {
  return classes.empty() || std::binary_search(classes.begin(), classes.end(), c);
}

namespace {

std::string name_of(const std::vector<Cell>& cells, std::size_t k) {
  return "cell " + std::to_string(k) + (cells[k].label.empty() ? "" : " ('" + cells[k].label + "')");
}

bool whole_noise_axis(const Cell& cell) {
  return cell.sigma_lo <= 0.0 && cell.sigma_hi == std::numeric_limits<double>::infinity();
}

/// Each cell on its own: sorted classes in range, a non-empty sigma range, and only the keys `key` routes by.
void check_cells(const std::vector<Cell>& cells, RoutingKey key, std::int64_t num_classes) {
  for (std::size_t k = 0; k < cells.size(); ++k) {
    const Cell& cell = cells[k];
    if (!std::is_sorted(cell.classes.begin(), cell.classes.end())) {
      throw std::invalid_argument(name_of(cells, k) + " lists its classes unsorted");
    }
    for (const std::int64_t c : cell.classes) {
      if (c < 0 || c >= num_classes) {
        throw std::invalid_argument(name_of(cells, k) + " names class " + std::to_string(c) + " outside 0.." +
                                    std::to_string(num_classes - 1));
      }
    }
    if (!(cell.sigma_hi > cell.sigma_lo) || cell.sigma_lo < 0.0) {
      throw std::invalid_argument(name_of(cells, k) + " has an empty or negative noise range");
    }
    if (key == RoutingKey::condition && !whole_noise_axis(cell)) {
      throw std::invalid_argument(name_of(cells, k) + " bounds the noise level, but the partition routes by condition");
    }
    if (key == RoutingKey::noise_level && !cell.classes.empty()) {
      throw std::invalid_argument(name_of(cells, k) + " lists classes, but the partition routes by noise level");
    }
  }
}

/// The cells that hold class `c` must tile sigma in [0, inf): one student for every noise level.
void check_tiling(const std::vector<Cell>& cells, std::int64_t c, const std::string& who) {
  std::vector<std::size_t> holding;
  for (std::size_t k = 0; k < cells.size(); ++k) {
    if (cells[k].contains_class(c)) holding.push_back(k);
  }
  if (holding.empty()) throw std::invalid_argument(who + " is in no cell");
  std::sort(holding.begin(), holding.end(),
            [&](std::size_t a, std::size_t b) { return cells[a].sigma_lo < cells[b].sigma_lo; });
  if (cells[holding.front()].sigma_lo > 0.0) {
    throw std::invalid_argument("the cells of " + who + " do not start at sigma = 0");
  }
  for (std::size_t i = 0; i + 1 < holding.size(); ++i) {
    if (cells[holding[i]].sigma_hi != cells[holding[i + 1]].sigma_lo) {
      throw std::invalid_argument(who + " is in " + name_of(cells, holding[i]) + " and " +
                                  name_of(cells, holding[i + 1]) + ", whose noise ranges leave a gap or overlap");
    }
  }
  if (cells[holding.back()].sigma_hi != std::numeric_limits<double>::infinity()) {
    throw std::invalid_argument("the cells of " + who + " do not extend to sigma = infinity");
  }
}

}  // namespace

void check_partition(const std::vector<Cell>& cells, RoutingKey key, std::int64_t num_classes) {
  if (cells.empty()) throw std::invalid_argument("partition produced no cells");
  check_cells(cells, key, num_classes);
  if (key == RoutingKey::noise_level || num_classes <= 0) {
    check_tiling(cells, 0, "every class");  // no cell lists classes: class 0 stands for all
    return;
  }
  for (std::int64_t c = 0; c < num_classes; ++c) check_tiling(cells, c, "class " + std::to_string(c));
}

}  // namespace msd
