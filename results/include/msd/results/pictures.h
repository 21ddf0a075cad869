// Pictures of a run's samples, free of LibTorch: they take plain buffers. 2-D points become a
// scatter plot coloured by class (drawn by gnuplot); images become a grid with one row per class
// (written with libpng). `msd run` draws them beside samples.npy and records them as artifacts.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "msd/results/store.h"

namespace msd::results {

/// The colours of classes in scatter plots and of lines in sweep plots, in order, repeating
/// after the last (matplotlib's "tab10").
inline constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

struct ScatterOptions {
  int width = 640;            ///< picture width in pixels
  int height = 640;           ///< picture height in pixels
  std::string title;          ///< drawn above the plot; none when empty
  double point_size = 0.35;   ///< gnuplot point size of each sample
};

/// Writes a PNG scatter plot of `n` 2-D points (`points` holds x0, y0, x1, y1, ...), one colour
/// per label (`labels` holds n class indices >= 0), with equal scales on both axes. Throws
/// std::runtime_error when gnuplot is missing or fails, or for a negative label.
void write_scatter_png(const float* points, const std::int64_t* labels, std::int64_t n,
                       const std::filesystem::path& out, const ScatterOptions& options = {});

/// `n` images stored [n, channels, height, width] contiguously, values in [-1, 1].
struct ImageBatch {
  const float* values = nullptr;
  const std::int64_t* labels = nullptr;  ///< n class indices >= 0
  std::int64_t n = 0;
  std::int64_t channels = 1;             ///< 1 (grey) or 3 (RGB)
  std::int64_t height = 0;
  std::int64_t width = 0;
};

struct ImageGridOptions {
  std::int64_t per_class = 10;    ///< images per row: the first ones of each class, in order
  std::int64_t max_classes = 20;  ///< rows: the smallest class indices present, at most this many
  int padding = 2;                ///< background pixels between and around the images
  int scale = 2;                  ///< each image pixel is drawn as scale x scale pixels
  std::uint8_t background = 128;  ///< grey level of the padding and of a row's empty cells
};

/// Writes the images as one PNG (8-bit grey for 1 channel, RGB for 3) with one row per class
/// present, ordered by class. A value v maps to round((v + 1) / 2 * 255), clamped to [0, 255];
/// NaN maps to 0. Throws std::invalid_argument for a bad shape, channel count or label, and
/// std::runtime_error when the file cannot be written.
void write_image_grid_png(const ImageBatch& images, const std::filesystem::path& out,
                          const ImageGridOptions& options = {});

/// A decoded picture: 8-bit RGB, rows top to bottom.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> rgb;  ///< width * height * 3 bytes

  /// The pixel at column x, row y as 0xRRGGBB.
  std::uint32_t pixel(int x, int y) const;
};

/// Reads any PNG (grey, palette, alpha, 16-bit are converted; alpha is dropped). Throws
/// std::runtime_error naming the file when it cannot be read or is not a PNG.
RgbImage read_png_rgb(const std::filesystem::path& file);

/// Evaluation samples of a run: `shape` is [n, ...sample shape], `values` holds them contiguously.
struct SampleSet {
  const float* values = nullptr;
  const std::int64_t* labels = nullptr;  ///< shape[0] class indices
  std::vector<std::int64_t> shape;
};

/// Draws the picture that suits the samples' shape into `folder`: [n, 2] -> samples_scatter.png
/// (artifact kind "scatter"), [n, 1 or 3, H, W] -> samples_grid.png (kind "image_grid"); any other
/// shape draws nothing. Returns the artifacts written, with absolute paths. Throws what the
/// writers throw.
std::vector<Artifact> draw_sample_pictures(const SampleSet& samples, const std::filesystem::path& folder);

}  // namespace msd::results
