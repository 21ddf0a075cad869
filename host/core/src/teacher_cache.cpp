#include "msd/host/pipeline/teacher_cache.h"

#include <chrono>
#include <ostream>

#include <torch/serialize.h>

#include "msd/atomic_file.h"
#include "msd/cache_lock.h"
#include "msd/host/config.h"
#include "msd/host/pipeline/models.h"
#include "msd/host/run_monitor.h"

namespace msd::host {

namespace {

constexpr const char* kRetrainTeacher = "delete it, and the next run trains the teacher again";
constexpr const char* kRemakePairs = "delete it, and the next run makes the teacher pairs again";
/// Teacher samples made at once when making pairs.
constexpr std::int64_t kPairsChunk = 2048;

void freeze(Denoiser& net, const torch::Device& device) {
  net.to(device);
  net.eval();
  set_trainable(net, false);
}

/// `n` pairs of the teacher's sampler: standard-normal noise and labels cycling through the classes.
TeacherPairs make_pairs(std::int64_t n, const Teacher& plugin, Denoiser& teacher, Dataset& data,
                        const RunConfig& config, const torch::Device& device) {
  TeacherPairs pairs;
  pairs.labels = torch::arange(n, torch::kInt64) % data.num_classes();
  std::vector<std::int64_t> shape = data.sample_shape();
  shape.insert(shape.begin(), n);
  pairs.noise = torch::randn(shape);
  const edm::DenoiseFn fn = stoppable_denoise_fn(teacher);
  torch::NoGradGuard no_grad;
  const MixedPrecision precision(device, config.precision);
  std::vector<torch::Tensor> parts;
  for (std::int64_t i = 0; i < n; i += kPairsChunk) {
    const std::int64_t m = std::min(kPairsChunk, n - i);
    parts.push_back(plugin.sample(fn, pairs.noise.slice(0, i, i + m).to(device), pairs.labels.slice(0, i, i + m).to(device))
                        .to(torch::kCPU, torch::kFloat32));
  }
  pairs.target = torch::cat(parts, 0);
  return pairs;
}

}  // namespace

TeacherPairs TeacherPairs::of_classes(const std::vector<std::int64_t>& classes) const {
  if (classes.empty() || empty()) return *this;
  const torch::Tensor keep = torch::isin(labels, torch::tensor(classes, labels.options()));
  const torch::Tensor index = keep.nonzero().squeeze(1);
  return {noise.index_select(0, index), labels.index_select(0, index), target.index_select(0, index)};
}

TeacherPairs TeacherPairs::to(const torch::Device& device) const {
  return {noise.to(device), labels.to(device), target.to(device)};
}

TeacherCache::TeacherCache(std::filesystem::path folder, std::ostream& log) : folder_(std::move(folder)), log_(log) {}

std::filesystem::path TeacherCache::teacher_file(const RunConfig& config) const {
  return folder_ / "teachers" / (config.teacher_hash + ".pt");
}

std::filesystem::path TeacherCache::pairs_file(const RunConfig& config) const {
  return folder_ / "teacher_pairs" / (config.pairs_hash + ".pt");
}

CachedTeacher TeacherCache::teacher(const RunConfig& config, Teacher& plugin, Dataset& data,
                                    const torch::Device& device, RunMonitor& monitor) const {
  seed_phase(config.seed, "teacher");
  CachedTeacher result;
  result.file = teacher_file(config);
  const CacheLock lock(result.file.string() + ".lock", &log_);
  if (std::filesystem::exists(result.file)) {
    result.net = load_teacher(plugin, data, result.file, device, kRetrainTeacher);
    result.cached = true;
    log_ << "teacher: reusing " << result.file.string() << "\n";
    return result;
  }
  result.net = plugin.build(data.sample_shape(), data.num_classes());
  result.net->to(device);
  const auto start = std::chrono::steady_clock::now();
  {
    const MixedPrecision precision(device, config.precision);
    plugin.train(*result.net, TeacherContext{&data, device, &monitor});
  }
  monitor.finish_line();
  result.train_seconds = seconds_since(start);
  save_weights(*result.net, result.file);
  // Provenance beside the weights: the run config whose dataset, teacher and seed produced them.
  write_file_atomically(result.file.string() + ".toml", config.canonical_toml);
  log_ << "teacher: trained and cached at " << result.file.string() << "\n";
  freeze(*result.net, device);
  return result;
}

CachedPairs TeacherCache::pairs(const RunConfig& config, const Teacher& plugin, Denoiser& teacher, Dataset& data,
                                const torch::Device& device) const {
  if (config.distill.pairs <= 0) {
    throw std::runtime_error("a loss uses teacher pairs but distill.pairs = 0; set distill.pairs > 0");
  }
  const std::filesystem::path file = pairs_file(config);
  const CacheLock lock(file.string() + ".lock", &log_);
  const auto start = std::chrono::steady_clock::now();
  CachedPairs result;
  result.cached = std::filesystem::exists(file);
  if (result.cached) {
    read_archive(file, torch::kCPU, kRemakePairs, [&](torch::serialize::InputArchive& archive) {
      archive.read("noise", result.pairs.noise);
      archive.read("labels", result.pairs.labels);
      archive.read("target", result.pairs.target);
    });
    log_ << "teacher pairs: reusing " << file.string() << "\n";
  } else {
    seed_phase(config.seed, "teacher-pairs");
    result.pairs = make_pairs(config.distill.pairs, plugin, teacher, data, config, device);
    torch::serialize::OutputArchive archive;
    archive.write("noise", result.pairs.noise);
    archive.write("labels", result.pairs.labels);
    archive.write("target", result.pairs.target);
    save_archive(archive, file);
    write_file_atomically(file.string() + ".toml", config.canonical_toml);
    log_ << "teacher pairs: " << config.distill.pairs << " made in " << seconds_since(start) << " s and cached at "
         << file.string() << "\n";
  }
  result.pairs = result.pairs.to(device);
  result.seconds = seconds_since(start);
  return result;
}

std::shared_ptr<Denoiser> load_teacher(Teacher& plugin, Dataset& data, const std::filesystem::path& file,
                                       const torch::Device& device, const std::string& remedy) {
  std::shared_ptr<Denoiser> net = plugin.build(data.sample_shape(), data.num_classes());
  load_weights(*net, file, remedy);
  freeze(*net, device);
  return net;
}

}  // namespace msd::host
