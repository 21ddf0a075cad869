// `msd results plot`: a metric of a sweep's finished runs against one param, as the mean over the
// runs of each point (seeds, usually) with sample-std error bars, one line per combination of
// further params. The statistics are compare_runs'; gnuplot draws them.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "msd/results/store.h"

namespace msd::results {

struct PlotRequest {
  /// A sweep id, a unique prefix of one (at least 4 characters), or an experiment name.
  std::string selection;
  std::string x;                 ///< param key on the x axis ("partition.k")
  std::string y;                 ///< metric name on the y axis ("swd")
  std::string scope;             ///< metric scope; "" = whole model
  std::vector<std::string> by;   ///< further param keys: one line per combination of their values
  std::string title;             ///< empty: "<y> by <x>, <sweep or experiment>"
  int width = 800;               ///< picture width in pixels
  int height = 500;              ///< picture height in pixels
};

/// Draws the plot as a PNG at `out`. An x whose values are all numbers gets a numeric axis (base-2
/// logarithmic when they are all powers of two); other x values are categories, drawn as labelled
/// points without lines. A point with one run has no error bar; the legend gives the runs per point
/// (n). Line i has colour kPalette[i] (msd/results/pictures.h).
/// Throws std::runtime_error for an unknown selection (as compare_runs does), a selection without
/// finished runs, an x key no run has, a metric no finished run has at that scope (listing those
/// it has), and when gnuplot is missing or fails.
void plot_sweep(const Store& store, const PlotRequest& request, const std::filesystem::path& out);

}  // namespace msd::results
