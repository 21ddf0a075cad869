#include "msd/results/pictures.h"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>
#include <string>

#include "gnuplot.h"

namespace msd::results {

namespace {

std::uint8_t to_byte(float value) {
  if (std::isnan(value)) return 0;
  const float level = std::round((value + 1.0f) * 0.5f * 255.0f);
  return static_cast<std::uint8_t>(std::clamp(level, 0.0f, 255.0f));
}

/// Writes 8-bit rows (grey or RGB) as a PNG; libpng reports errors through longjmp.
void write_png(const std::filesystem::path& out, int width, int height, int channels,
               const std::vector<std::uint8_t>& pixels) {
  FILE* file = std::fopen(out.c_str(), "wb");
  if (file == nullptr) throw std::runtime_error("cannot write " + out.string() + ": " + std::strerror(errno));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png == nullptr ? nullptr : png_create_info_struct(png);
  if (png == nullptr || info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    throw std::runtime_error("libpng failed writing " + out.string());
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, width, height, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const std::size_t stride = static_cast<std::size_t>(width) * channels;
  for (int y = 0; y < height; ++y) png_write_row(png, pixels.data() + y * stride);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fclose(file) != 0) throw std::runtime_error("cannot write " + out.string() + ": " + std::strerror(errno));
}

}  // namespace

void write_scatter_png(const float* points, const std::int64_t* labels, std::int64_t n,
                       const std::filesystem::path& out, const ScatterOptions& options) {
  std::map<std::int64_t, std::vector<std::int64_t>> by_class;  // label -> sample indices
  for (std::int64_t i = 0; i < n; ++i) {
    if (labels[i] < 0) {
      throw std::runtime_error("scatter plot: sample " + std::to_string(i) + " has label " +
                               std::to_string(labels[i]) + "; labels must be >= 0");
    }
    by_class[labels[i]].push_back(i);
  }
  detail::ScratchDir scratch;
  const std::filesystem::path data = scratch / "points.dat";
  {
    std::ofstream file(data);
    char line[64];
    for (const auto& [label, indices] : by_class) {
      for (std::int64_t i : indices) {
        std::snprintf(line, sizeof line, "%.7g %.7g\n", points[2 * i], points[2 * i + 1]);
        file << line;
      }
      file << "\n\n";  // a gnuplot data block per class, selected with `index`
    }
    if (!file) throw std::runtime_error("cannot write " + data.string());
  }
  std::string script = detail::png_terminal(options.width, options.height, out);
  if (!options.title.empty()) script += "set title " + detail::gnuplot_string(options.title) + "\n";
  script += "set size ratio -1\nset key outside right top\nset grid\n";
  if (by_class.empty()) {
    script += "set xrange [-1:1]\nset yrange [-1:1]\nplot NaN title 'no samples'\n";
  } else {
    script += "plot ";
    std::size_t block = 0;
    for (const auto& [label, indices] : by_class) {
      const char* colour = kPalette[static_cast<std::size_t>(label) % std::size(kPalette)];
      script += std::string(block ? ", \\\n     " : "") + detail::gnuplot_string(data.string()) + " index " +
                std::to_string(block) + " using 1:2 with points pt 7 ps " + std::to_string(options.point_size) +
                " lc rgb '" + colour + "' title 'class " + std::to_string(label) + "'";
      ++block;
    }
    script += "\n";
  }
  const std::filesystem::path script_file = scratch / "scatter.gp";
  std::ofstream(script_file) << script;
  detail::run_gnuplot(script_file, out);
}

void write_image_grid_png(const ImageBatch& images, const std::filesystem::path& out,
                          const ImageGridOptions& options) {
  if (images.channels != 1 && images.channels != 3) {
    throw std::invalid_argument("image grid: images have " + std::to_string(images.channels) +
                                " channels; only 1 (grey) or 3 (RGB) can be drawn");
  }
  if (images.n < 0 || images.height <= 0 || images.width <= 0) {
    throw std::invalid_argument("image grid: bad image shape [" + std::to_string(images.n) + ", " +
                                std::to_string(images.channels) + ", " + std::to_string(images.height) + ", " +
                                std::to_string(images.width) + "]");
  }
  if (options.per_class < 1 || options.max_classes < 1 || options.padding < 0 || options.scale < 1) {
    throw std::invalid_argument("image grid: per_class, max_classes and scale must be >= 1, padding >= 0");
  }
  // The smallest max_classes labels present, each with its first per_class sample indices.
  std::map<std::int64_t, std::vector<std::int64_t>> rows;
  for (std::int64_t i = 0; i < images.n; ++i) {
    if (images.labels[i] < 0) {
      throw std::invalid_argument("image grid: sample " + std::to_string(i) + " has label " +
                                  std::to_string(images.labels[i]) + "; labels must be >= 0");
    }
    rows[images.labels[i]];
  }
  while (static_cast<std::int64_t>(rows.size()) > options.max_classes) rows.erase(std::prev(rows.end()));
  for (std::int64_t i = 0; i < images.n; ++i) {
    auto row = rows.find(images.labels[i]);
    if (row != rows.end() && static_cast<std::int64_t>(row->second.size()) < options.per_class) {
      row->second.push_back(i);
    }
  }

  const std::int64_t cell_w = images.width * options.scale, cell_h = images.height * options.scale;
  const std::int64_t columns = options.per_class;
  const std::int64_t row_count = std::max<std::int64_t>(1, static_cast<std::int64_t>(rows.size()));
  const std::int64_t width = columns * (cell_w + options.padding) + options.padding;
  const std::int64_t height = row_count * (cell_h + options.padding) + options.padding;
  if (width > (1 << 16) || height > (1 << 16)) {
    throw std::invalid_argument("image grid: " + std::to_string(width) + " x " + std::to_string(height) +
                                " pixels is too large for one picture");
  }
  const int channels = static_cast<int>(images.channels);
  std::vector<std::uint8_t> pixels(static_cast<std::size_t>(width * height * channels), options.background);
  const std::int64_t plane = images.height * images.width;
  std::int64_t r = 0;
  for (const auto& [label, indices] : rows) {
    for (std::size_t c = 0; c < indices.size(); ++c) {
      const float* image = images.values + indices[c] * images.channels * plane;
      const std::int64_t left = options.padding + static_cast<std::int64_t>(c) * (cell_w + options.padding);
      const std::int64_t top = options.padding + r * (cell_h + options.padding);
      for (std::int64_t y = 0; y < cell_h; ++y) {
        for (std::int64_t x = 0; x < cell_w; ++x) {
          const std::int64_t source = (y / options.scale) * images.width + x / options.scale;
          std::uint8_t* pixel = pixels.data() + ((top + y) * width + left + x) * channels;
          for (int ch = 0; ch < channels; ++ch) pixel[ch] = to_byte(image[ch * plane + source]);
        }
      }
    }
    ++r;
  }
  write_png(out, static_cast<int>(width), static_cast<int>(height), channels, pixels);
}

std::uint32_t RgbImage::pixel(int x, int y) const {
  const std::uint8_t* p = rgb.data() + (static_cast<std::size_t>(y) * width + x) * 3;
  return (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
}

RgbImage read_png_rgb(const std::filesystem::path& file) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, file.c_str())) {
    throw std::runtime_error("cannot read PNG " + file.string() + ": " + image.message);
  }
  image.format = PNG_FORMAT_RGB;
  RgbImage out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.rgb.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out.rgb.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    throw std::runtime_error("cannot decode PNG " + file.string() + ": " + message);
  }
  return out;
}

std::vector<Artifact> draw_sample_pictures(const SampleSet& samples, const std::filesystem::path& folder) {
  const std::vector<std::int64_t>& shape = samples.shape;
  const std::filesystem::path absolute = std::filesystem::absolute(folder);
  if (shape.size() == 2 && shape[1] == 2) {
    const std::filesystem::path out = absolute / "samples_scatter.png";
    write_scatter_png(samples.values, samples.labels, shape[0], out);
    return {{"scatter", out.string()}};
  }
  if (shape.size() == 4 && (shape[1] == 1 || shape[1] == 3)) {
    const std::filesystem::path out = absolute / "samples_grid.png";
    write_image_grid_png({samples.values, samples.labels, shape[0], shape[1], shape[2], shape[3]}, out);
    return {{"image_grid", out.string()}};
  }
  return {};
}

}  // namespace msd::results
