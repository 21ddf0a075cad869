#include "idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace msd::fmnist {
namespace {

std::string install_hint() {
  return "install it with: sudo apt-get install dataset-fashion-mnist (or set dataset.folder to a folder holding "
         "the four gzip IDX files)";
}

std::string reinstall_hint() { return "reinstall it with: sudo apt-get install --reinstall dataset-fashion-mnist"; }

[[noreturn]] void corrupt(const std::filesystem::path& file, const std::string& what) {
  throw std::runtime_error("fashion_mnist: " + file.string() + " is corrupt: " + what + "; " + reinstall_hint());
}

// IDX stores integers big-endian.
std::uint32_t read_u32(const std::vector<std::uint8_t>& bytes, size_t at) {
  return (std::uint32_t{bytes[at]} << 24) | (std::uint32_t{bytes[at + 1]} << 16) |
         (std::uint32_t{bytes[at + 2]} << 8) | std::uint32_t{bytes[at + 3]};
}

// Checks an IDX file's header (magic, then one u32 per dimension) against `dims` and its length
// against the header, and returns its payload.
std::vector<std::uint8_t> read_idx(const std::filesystem::path& file, std::uint32_t magic,
                                   const std::vector<std::int64_t>& dims, const std::vector<const char*>& dim_names) {
  std::vector<std::uint8_t> bytes = read_gzip(file);
  const size_t header = 4 * (1 + dims.size());
  if (bytes.size() < header) {
    corrupt(file, "it holds " + std::to_string(bytes.size()) + " bytes, less than its " + std::to_string(header) +
                      "-byte header");
  }
  const std::uint32_t found_magic = read_u32(bytes, 0);
  if (found_magic != magic) {
    char text[64];
    std::snprintf(text, sizeof(text), "magic number 0x%08X, expected 0x%08X", found_magic, magic);
    corrupt(file, text);
  }
  size_t payload = 1;
  for (size_t d = 0; d < dims.size(); ++d) {
    const std::uint32_t found = read_u32(bytes, 4 * (d + 1));
    if (static_cast<std::int64_t>(found) != dims[d]) {
      corrupt(file, std::string("header gives ") + dim_names[d] + " = " + std::to_string(found) + ", expected " +
                        std::to_string(dims[d]));
    }
    payload *= found;
  }
  if (bytes.size() != header + payload) {
    corrupt(file, "decompressed length is " + std::to_string(bytes.size()) + " bytes but its header implies " +
                      std::to_string(header + payload) + (bytes.size() < header + payload ? " (truncated)" : ""));
  }
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  return bytes;
}

}  // namespace

SplitSpec train_split() { return {"train", 60000}; }
SplitSpec test_split() { return {"t10k", 10000}; }

std::vector<std::uint8_t> read_gzip(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) {
    throw std::runtime_error("fashion_mnist: " + file.string() + " is missing; " + install_hint());
  }
  gzFile in = gzopen(file.c_str(), "rb");
  if (in == nullptr) {
    throw std::runtime_error("fashion_mnist: cannot open " + file.string() + ": " + std::strerror(errno));
  }
  std::vector<std::uint8_t> bytes;
  std::uint8_t chunk[1 << 16];
  for (;;) {
    const int got = gzread(in, chunk, sizeof(chunk));
    if (got < 0) {
      int code = 0;
      const std::string message = gzerror(in, &code);
      gzclose(in);
      corrupt(file, "gzip error: " + message);
    }
    if (got == 0) break;
    // zlib passes a file without a gzip header through unchanged; these files are always compressed.
    if (bytes.empty() && gzdirect(in) == 1) {
      gzclose(in);
      corrupt(file, "it is not gzip-compressed");
    }
    bytes.insert(bytes.end(), chunk, chunk + got);
  }
  // gzread reports a stream cut short only as end of input; gzclose_r then says Z_BUF_ERROR.
  if (gzclose(in) != Z_OK) corrupt(file, "the gzip stream ends early (truncated file)");
  return bytes;
}

SplitData read_split(const std::filesystem::path& folder, const SplitSpec& spec) {
  const std::filesystem::path images_file = folder / (spec.prefix + "-images-idx3-ubyte.gz");
  const std::filesystem::path labels_file = folder / (spec.prefix + "-labels-idx1-ubyte.gz");
  SplitData split;
  split.count = spec.count;
  split.rows = spec.rows;
  split.cols = spec.cols;
  split.pixels = read_idx(images_file, kImagesMagic, {spec.count, spec.rows, spec.cols}, {"count", "rows", "columns"});
  split.labels = read_idx(labels_file, kLabelsMagic, {spec.count}, {"count"});
  for (size_t i = 0; i < split.labels.size(); ++i) {
    if (split.labels[i] >= spec.classes) {
      corrupt(labels_file, "label " + std::to_string(split.labels[i]) + " of item " + std::to_string(i) +
                               " is outside 0.." + std::to_string(spec.classes - 1));
    }
  }
  return split;
}

}  // namespace msd::fmnist
