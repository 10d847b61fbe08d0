// examples/fashion_mnist/idx.hpp - reads the IDX files of (Fashion-)MNIST, gzip-compressed or not.
//
// IDX (the format MNIST and Fashion-MNIST ship in): a big-endian header, then the raw elements.
//   bytes 0-1: 0, byte 2: element type (0x08 = unsigned byte), byte 3: number of dimensions;
//   then one 32-bit big-endian size per dimension, then prod(sizes) elements, row-major.
// Images are 3-dimensional (count x rows x cols, magic 0x00000803), labels 1-dimensional (count,
// magic 0x00000801). zlib's gzread decompresses .gz files and reads plain files unchanged, so both
// the Debian package's .gz files and already unpacked files work.
//
// Every error throws IdxError whose message names the file. Header only; needs zlib (-lz).
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace fmnist {

/// A bad or missing data file; what() names the file and says what is wrong with it.
class IdxError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Images of one IDX file: `count` images of rows x cols unsigned bytes, row-major, image after image.
struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;
};

/// A labelled split (train or test): images and one label per image.
struct Dataset {
  IdxImages images;
  std::vector<uint8_t> labels;
  int64_t size() const { return images.count; }
};

/// The Debian package that installs the real data, and where it puts it.
inline constexpr const char* kDebianPackage = "dataset-fashion-mnist";
inline constexpr const char* kDefaultDataDir = "/usr/share/datasets/fashion-mnist";

namespace idx_detail {

/// zlib's message for the error state of `f`, without the "path: " it puts in front.
inline std::string gz_message(gzFile f, const std::string& path) {
  int code = Z_OK;
  const char* m = gzerror(f, &code);
  std::string why = m ? m : "";
  if (why.rfind(path + ": ", 0) == 0) why.erase(0, path.size() + 2);
  return why;
}

/// The whole (decompressed) content of a file, read with zlib. Throws IdxError naming the file when
/// it cannot be opened or the compressed stream is corrupt or cut short.
inline std::vector<uint8_t> read_all(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw IdxError(path + ": cannot open");
  std::vector<uint8_t> out(size_t{1} << 20);
  size_t size = 0;
  for (;;) {
    if (size == out.size()) out.resize(2 * out.size());
    const int got = gzread(f, out.data() + size, unsigned(std::min(out.size() - size, size_t{1} << 30)));
    if (got < 0) {
      const std::string why = gz_message(f, path);
      gzclose(f);
      throw IdxError(path + ": corrupt or truncated gzip data (" + why + ")");
    }
    if (got == 0) break;
    size += size_t(got);
  }
  out.resize(size);
  // gzread reports a stream cut short inside the deflate data as end of file plus an error state.
  int code = Z_OK;
  gzerror(f, &code);
  const std::string message = gz_message(f, path);
  gzclose(f);
  if (code != Z_OK && code != Z_STREAM_END) throw IdxError(path + ": corrupt or truncated gzip data (" + message + ")");
  return out;
}

/// Big-endian 32-bit value at `p`.
inline uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

/// Checks the header of an unsigned-byte IDX file with `rank` dimensions and returns the sizes.
/// Throws IdxError for a wrong magic, a header cut short, a data part of the wrong length, or sizes
/// past 2^31 elements.
inline std::vector<int64_t> parse_header(const std::string& path, const std::vector<uint8_t>& bytes, int rank) {
  const uint32_t want = 0x0800u | uint32_t(rank);
  if (bytes.size() < 4) throw IdxError(path + ": too short for an IDX file (" + std::to_string(bytes.size()) + " bytes)");
  const uint32_t magic = be32(bytes.data());
  if (magic != want) {
    char buf[96];
    std::snprintf(buf, sizeof buf, ": wrong magic 0x%08x (expected 0x%08x: unsigned bytes, %d dimensions)",
                  unsigned(magic), unsigned(want), rank);
    throw IdxError(path + buf);
  }
  const size_t header = 4 + 4 * size_t(rank);
  if (bytes.size() < header) throw IdxError(path + ": truncated IDX header");
  std::vector<int64_t> dims;
  int64_t elems = 1;
  for (int i = 0; i < rank; ++i) {
    dims.push_back(int64_t(be32(bytes.data() + 4 + 4 * i)));
    elems *= dims.back();
    if (elems > (int64_t{1} << 31)) throw IdxError(path + ": implausible IDX sizes (more than 2^31 elements)");
  }
  const int64_t have = int64_t(bytes.size() - header);
  if (have < elems)
    throw IdxError(path + ": truncated: the header announces " + std::to_string(elems) + " bytes of data, the file has " +
                   std::to_string(have));
  if (have > elems)
    throw IdxError(path + ": " + std::to_string(have - elems) + " bytes of unexpected data after the " +
                   std::to_string(elems) + " announced");
  return dims;
}

}  // namespace idx_detail

/// Reads an IDX image file (magic 0x00000803). Throws IdxError naming the file on any problem.
inline IdxImages read_idx_images(const std::string& path) {
  const std::vector<uint8_t> bytes = idx_detail::read_all(path);
  const std::vector<int64_t> dims = idx_detail::parse_header(path, bytes, 3);
  IdxImages im;
  im.count = dims[0];
  im.rows = dims[1];
  im.cols = dims[2];
  im.pixels.assign(bytes.begin() + 16, bytes.end());
  return im;
}

/// Reads an IDX label file (magic 0x00000801). Throws IdxError naming the file on any problem.
inline std::vector<uint8_t> read_idx_labels(const std::string& path) {
  const std::vector<uint8_t> bytes = idx_detail::read_all(path);
  idx_detail::parse_header(path, bytes, 1);
  return {bytes.begin() + 8, bytes.end()};
}

/// Path of `name` in `dir`: `name.gz` when present, else `name` (unpacked files), else `name.gz`
/// (so that the error names the file the package installs).
inline std::string find_idx_file(const std::filesystem::path& dir, const std::string& name) {
  const auto gz = dir / (name + ".gz");
  if (std::filesystem::exists(gz)) return gz.string();
  if (std::filesystem::exists(dir / name)) return (dir / name).string();
  return gz.string();
}

/// Loads split `split` ("train" or "t10k") from `dir`: `<split>-images-idx3-ubyte[.gz]` and
/// `<split>-labels-idx1-ubyte[.gz]`. Checks that the image and label counts agree, that labels are
/// below `classes`, and (when rows/cols > 0) the image size. A missing directory names the Debian
/// package to install. Throws IdxError.
inline Dataset load_split(const std::filesystem::path& dir, const std::string& split, int classes = 10,
                          int64_t rows = 28, int64_t cols = 28) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw IdxError("data directory " + dir.string() + " not found: install the Fashion-MNIST data with `apt-get install " +
                   kDebianPackage + "` (it goes to " + kDefaultDataDir + "), or pass --data DIR");
  Dataset ds;
  const std::string images = find_idx_file(dir, split + "-images-idx3-ubyte");
  const std::string labels = find_idx_file(dir, split + "-labels-idx1-ubyte");
  ds.images = read_idx_images(images);
  ds.labels = read_idx_labels(labels);
  if (int64_t(ds.labels.size()) != ds.images.count)
    throw IdxError(labels + ": " + std::to_string(ds.labels.size()) + " labels for the " + std::to_string(ds.images.count) +
                   " images of " + images);
  if ((rows > 0 && ds.images.rows != rows) || (cols > 0 && ds.images.cols != cols))
    throw IdxError(images + ": images are " + std::to_string(ds.images.rows) + "x" + std::to_string(ds.images.cols) +
                   ", expected " + std::to_string(rows) + "x" + std::to_string(cols));
  for (size_t i = 0; i < ds.labels.size(); ++i)
    if (ds.labels[i] >= classes)
      throw IdxError(labels + ": label " + std::to_string(ds.labels[i]) + " at index " + std::to_string(i) +
                     " is not below " + std::to_string(classes));
  return ds;
}

}  // namespace fmnist
