// `msd report`: one self-contained HTML page about a sweep (or an experiment): its runs by status,
// per metric a comparison table over the sweep's coordinate axes and a plot per numeric axis, a
// table of runs, and sample pictures. Plots and pictures are embedded as base64 PNG data URIs and
// the style is inline, so the file opens from disk without a server, network or JavaScript.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include "msd/results/store.h"

namespace msd::results {

struct ReportRequest {
  /// A sweep id, a unique prefix of one (at least 4 characters), or an experiment name.
  std::string selection;
  /// Metrics to compare; empty: every final whole-model metric (step 0, scope "") that all the
  /// finished runs have, in name order, at most max_default_metrics of them. Names with a dot
  /// (run.seconds, train.*, teacher.*: bookkeeping) are left out of the default.
  std::vector<std::string> metrics;
  std::size_t max_default_metrics = 10;  ///< the cap on the default metrics
};

/// Background colour of table headers and line colour of the first plot line (kPalette[0]): what
/// a test looks for in a screenshot of the page.
inline constexpr const char* kReportHeaderBackground = "#cfe2f3";

/// The page. The axes are the keys of the runs' coordinates (Store::coords) that take more than one
/// value, experiment.seed excepted: runs differing only by seed are one group. A plot that cannot be
/// drawn (no gnuplot, say) becomes a message on the page rather than an error. Throws
/// std::runtime_error for an unknown or ambiguous selection.
std::string render_report(const Store& store, const ReportRequest& request);

/// Writes render_report's page to `out`; throws std::runtime_error naming `out` when it cannot.
void write_report(const Store& store, const ReportRequest& request, const std::filesystem::path& out);

/// `text` with & < > " ' replaced by character references, safe in HTML text and quoted attributes.
std::string html_escape(const std::string& text);

/// Standard base64 (RFC 4648, with padding) of `bytes`.
std::string base64_encode(const std::string& bytes);

}  // namespace msd::results
