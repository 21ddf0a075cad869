#include "msd/host/pipeline/models.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/serialize.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "msd/atomic_file.h"
#include "msd/edm.h"
#include "msd/host/config.h"
#include "msd/host/plugin_registry.h"
#include "msd/host/run_monitor.h"
#include "msd/host/stop.h"
#include "msd/results/store.h"
#include "msd/text.h"

namespace msd::host {

edm::DenoiseFn as_denoise_fn(Denoiser& net) {
  return [&net](const torch::Tensor& x, double sigma, const torch::Tensor& labels) {
    return net.denoise(x, torch::full({x.size(0)}, sigma, x.options()), labels);
  };
}

edm::DenoiseFn stoppable_denoise_fn(Denoiser& net) {
  const edm::DenoiseFn fn = as_denoise_fn(net);
  return [fn](const torch::Tensor& x, double sigma, const torch::Tensor& labels) {
    check_stop();
    return fn(x, sigma, labels);
  };
}

// The default generator is left as it was, so that a sampler that draws does not shift the run's
// random numbers.
std::vector<double> sampler_levels(const Teacher& teacher, const std::vector<std::int64_t>& sample_shape) {
  std::vector<double> levels;
  const edm::DenoiseFn record = [&levels](const torch::Tensor& x, double sigma, const torch::Tensor&) {
    levels.push_back(sigma);
    return torch::zeros_like(x);
  };
  std::vector<std::int64_t> shape{1};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  const at::Tensor state = generator.get_state();
  teacher.sample(record, torch::zeros(shape), torch::zeros({1}, torch::kInt64));
  generator.set_state(state);
  return levels;
}

std::vector<double> LevelDifficulty::per_evaluation(const std::vector<double>& levels) const {
  std::vector<double> values;
  for (const double level : levels) {
    if (!(level > 0.0)) {  // unmeasurable (EDM's loss weight is infinite at 0), and never a boundary's neighbour
      values.push_back(0.0);
      continue;
    }
    // Levels read back from the store are the recorded doubles to the last bit; allow for rounding anyway.
    const auto at = std::find_if(sigma.begin(), sigma.end(),
                                 [&](double s) { return std::abs(s - level) <= 1e-12 * std::max(1.0, level); });
    if (at == sigma.end()) {
      throw std::runtime_error("the difficulty probe measured no loss at sigma = " + number_text(level) +
                               ", a level the teacher's sampler evaluates; was teacher.sampler_steps changed?");
    }
    values.push_back(loss[static_cast<size_t>(at - sigma.begin())]);
  }
  return values;
}

void record_difficulty(results::Store& store, std::int64_t run_id, const LevelDifficulty& difficulty, double seconds) {
  std::vector<results::MetricRow> rows{{"probe.seconds", 0, seconds, "probe"}};
  for (size_t i = 0; i < difficulty.sigma.size(); ++i) {
    rows.push_back({"probe.sigma", static_cast<std::int64_t>(i), difficulty.sigma[i], "probe"});
    rows.push_back({"probe.loss", static_cast<std::int64_t>(i), difficulty.loss[i], "probe"});
  }
  store.log_metrics(run_id, rows);  // one transaction: a run records all of it or none
}

std::optional<LevelDifficulty> recorded_difficulty(const results::Store& store, std::int64_t run_id) {
  LevelDifficulty difficulty;
  for (const results::MetricRow& row : store.metrics(run_id)) {  // ordered by name, then step
    if (row.scope != "probe") continue;
    if (row.name == "probe.sigma") difficulty.sigma.push_back(row.value);
    if (row.name == "probe.loss") difficulty.loss.push_back(row.value);
  }
  if (difficulty.sigma.empty() || difficulty.sigma.size() != difficulty.loss.size()) return std::nullopt;
  return difficulty;
}

const StageConfig& probe_stage(const RunConfig& config) {
  const auto stage = std::find_if(config.stages.begin(), config.stages.end(),
                                  [](const StageConfig& s) { return s.steps > 0; });
  if (stage == config.stages.end()) {
    throw std::runtime_error("partition '" + config.partition.plugin + "': its probe needs a stage with steps > 0");
  }
  return *stage;
}

namespace {

/// `partition`'s ProbeOptions, each of its probe_losses checked to be a loss of the probe's stage.
ProbeOptions checked_probe_options(const Partition& partition, const RunConfig& config) {
  ProbeOptions options = partition.probe_options();
  const StageConfig& stage = probe_stage(config);
  for (const std::string& loss : options.losses) {
    const bool in_stage = std::any_of(stage.losses.begin(), stage.losses.end(),
                                      [&](const LossConfig& l) { return l.plugin == loss; });
    if (!in_stage) {
      throw std::runtime_error("partition '" + config.partition.plugin + "': probe_losses names '" + loss +
                               "', which is not a loss of stage '" + stage.name + "', the stage its probe trains with");
    }
  }
  return options;
}

}  // namespace

std::optional<ProbeOptions> partition_probe(const PluginRegistry& registry, const RunConfig& config) {
  if (!registry.find(PluginKind::partition, config.partition.plugin)->partition.uses_probe) return std::nullopt;
  return checked_probe_options(
      *registry.make<Partition>(PluginKind::partition, config.partition.plugin, config.partition.params), config);
}

namespace {

/// Throws when a cell's noise range holds none of the levels the sampler evaluates: its student would
/// be trained and never used.
void check_every_cell_is_sampled(const std::vector<Cell>& cells, const std::vector<double>& levels,
                                 const std::string& who) {
  for (size_t i = 0; i < cells.size(); ++i) {
    const bool sampled = std::any_of(levels.begin(), levels.end(), [&](double s) { return cells[i].contains_sigma(s); });
    if (sampled) continue;
    throw std::runtime_error(who + ": cell " + std::to_string(i) + " (" + cells[i].label + ") holds none of the " +
                             std::to_string(levels.size()) +
                             " noise levels at which the teacher's sampler evaluates the network, so its student "
                             "would be trained and never used; use fewer students, more teacher.sampler_steps, or "
                             "partition noise_equal_nfe");
  }
}

}  // namespace

std::vector<Cell> partition_cells(const PluginRegistry& registry, const RunConfig& config, Dataset& data,
                                  const Teacher& teacher, StudentType student_type,
                                  const LevelDifficulty* difficulty) {
  auto partition = registry.make<Partition>(PluginKind::partition, config.partition.plugin, config.partition.params);
  const PartitionTraits& traits = registry.find(PluginKind::partition, config.partition.plugin)->partition;
  PartitionContext ctx;
  ctx.k = config.k;
  ctx.num_classes = data.num_classes();
  ctx.sigma_min = teacher.sampler().sigma_min;
  ctx.sigma_max = teacher.sampler().sigma_max;
  ctx.seed = static_cast<std::uint64_t>(config.seed);
  ctx.sampler_levels = sampler_levels(teacher, data.sample_shape());
  if (traits.uses_class_features) ctx.class_features = data.class_features();
  if (traits.uses_probe) {
    checked_probe_options(*partition, config);  // its keys are checked before the teacher trains
    ctx.level_difficulty = difficulty != nullptr ? difficulty->per_evaluation(ctx.sampler_levels)
                                                 : std::vector<double>(ctx.sampler_levels.size(), 1.0);
  }
  std::vector<Cell> cells = partition->split(ctx);
  const std::string who = "partition plugin '" + config.partition.plugin + "'";
  try {
    check_partition(cells, traits.key, data.num_classes());
  } catch (const std::exception& e) {
    throw std::runtime_error(who + " returned an invalid partition: " + e.what());
  }
  if (static_cast<std::int64_t>(cells.size()) != config.k) {
    throw std::runtime_error(who + " returned " + std::to_string(cells.size()) + " cells for partition.k = " +
                             std::to_string(config.k));
  }
  const bool bounds_noise = std::any_of(cells.begin(), cells.end(), [](const Cell& cell) {
    return cell.sigma_lo > 0.0 || cell.sigma_hi != std::numeric_limits<double>::infinity();
  });
  if (student_type == StudentType::one_step && bounds_noise) {
    throw std::runtime_error("one-step students are evaluated at a single noise level, so a partition that splits "
                             "the noise levels (" + who + ") would leave students untrained; use a condition "
                             "partition, or multi-step students");
  }
  if (bounds_noise) check_every_cell_is_sampled(cells, ctx.sampler_levels, who + " (k = " + std::to_string(config.k) + ")");
  return cells;
}

namespace {

/// What student `index` of cell `cell` is built from.
StudentContext student_context(const Denoiser& teacher, Dataset& data, const Teacher& teacher_plugin,
                               std::int64_t index, const Cell& cell) {
  StudentContext ctx;
  ctx.teacher = &teacher;
  ctx.sample_shape = data.sample_shape();
  ctx.num_classes = data.num_classes();
  ctx.sigma_data = teacher_plugin.sigma_data();
  ctx.index = index;
  ctx.cell = &cell;
  return ctx;
}

}  // namespace

std::unique_ptr<Teacher> make_teacher(const PluginRegistry& registry, const RunConfig& config, const Dataset& data) {
  std::unique_ptr<Teacher> teacher = registry.make<Teacher>(PluginKind::teacher, config.teacher.plugin,
                                                            config.teacher.params);
  teacher->adopt_data(data);
  return teacher;
}

StudentPlan plan_students(const PluginRegistry& registry, const RunConfig& config, Dataset& data,
                          const Teacher& teacher, const LevelDifficulty* difficulty) {
  StudentPlan plan;
  plan.plugin = registry.make<Student>(PluginKind::student, config.student.plugin, config.student.params);
  plan.cells = partition_cells(registry, config, data, teacher, plan.plugin->type(), difficulty);
  return plan;
}

std::shared_ptr<Denoiser> StudentPlan::build(std::int64_t k, const Denoiser& teacher, Dataset& data,
                                             const Teacher& teacher_plugin) const {
  return build_for(cells.at(static_cast<std::size_t>(k)), k, teacher, data, teacher_plugin);
}

std::shared_ptr<Denoiser> StudentPlan::build_for(const Cell& cell, std::int64_t index, const Denoiser& teacher,
                                                 Dataset& data, const Teacher& teacher_plugin) const {
  return plugin->build(student_context(teacher, data, teacher_plugin, index, cell));
}

StudentEnsemble::StudentEnsemble(StudentType type, double generator_sigma, std::vector<StudentSlot> students,
                                 std::int64_t num_classes, bool as_group)
    : type_(type), generator_sigma_(generator_sigma), students_(std::move(students)) {
  if (students_.empty()) throw std::invalid_argument("a student ensemble needs at least one student");
  for (const StudentSlot& slot : students_) {
    std::vector<std::int64_t> classes = slot.cell.classes;
    std::sort(classes.begin(), classes.end());
    bool all = num_classes > 0 && static_cast<std::int64_t>(classes.size()) == num_classes;
    for (std::size_t c = 0; all && c < classes.size(); ++c) all = classes[c] == static_cast<std::int64_t>(c);
    every_class_.push_back(slot.cell.classes.empty() || all);
  }
  const bool condition_cells = std::all_of(students_.begin(), students_.end(), [](const StudentSlot& slot) {
    return slot.cell.sigma_lo <= 0.0 && std::isinf(slot.cell.sigma_hi) && !slot.cell.classes.empty();
  });
  if (as_group && students_.size() > 1 && condition_cells) {
    std::vector<const Denoiser*> members;
    for (const StudentSlot& slot : students_) members.push_back(slot.net.get());
    grouped_ = students_.front().net->group(members);  // stays empty without a grouped form
  }
}

torch::Tensor StudentEnsemble::grouped_denoise(const torch::Tensor& x, double sigma, const torch::Tensor& labels) const {
  std::vector<torch::Tensor> rows;
  std::int64_t block = 1;
  for (const StudentSlot& slot : students_) {
    rows.push_back(torch::isin(labels, torch::tensor(slot.cell.classes, labels.options())).nonzero().squeeze(1));
    block = std::max(block, rows.back().numel());
  }
  // Each block padded to the largest with copies of one sample (any valid input does): the padding's
  // outputs are dropped.
  std::vector<torch::Tensor> gather;
  torch::Tensor any_row = torch::zeros({1}, labels.options());
  for (const torch::Tensor& r : rows) {
    torch::Tensor pad = r.numel() > 0 ? r.narrow(0, 0, 1) : any_row;
    gather.push_back(torch::cat({r, pad.expand({block - r.numel()})}));
  }
  const torch::Tensor index = torch::cat(gather);
  const torch::Tensor all = grouped_->denoise(x.index_select(0, index), torch::full({index.size(0)}, sigma, x.options()),
                                              labels.index_select(0, index));
  torch::Tensor out = torch::empty_like(x);
  std::int64_t served = 0;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    out.index_copy_(0, rows[k], all.narrow(0, static_cast<std::int64_t>(k) * block, rows[k].numel()));
    served += rows[k].numel();
  }
  if (served != x.size(0)) {
    throw std::logic_error("router: " + std::to_string(x.size(0) - served) + " samples matched no student cell");
  }
  return out;
}

torch::Tensor StudentEnsemble::routed_denoise(const torch::Tensor& x, double sigma, const torch::Tensor& labels) const {
  auto sigmas = [&](std::int64_t n) { return torch::full({n}, sigma, x.options()); };
  // Cells with every class take the whole batch at their noise levels (cells are disjoint): the
  // common case for noise-level partitions and K = 1, with no gather or scatter.
  for (std::size_t k = 0; k < students_.size(); ++k) {
    if (every_class_[k] && students_[k].cell.contains_sigma(sigma)) {
      return students_[k].net->denoise(x, sigmas(x.size(0)), labels);
    }
  }
  if (grouped_) return grouped_denoise(x, sigma, labels);
  torch::Tensor out = torch::empty_like(x);
  std::int64_t served = 0;
  for (const StudentSlot& slot : students_) {
    if (!slot.cell.contains_sigma(sigma)) continue;
    torch::Tensor index = torch::isin(labels, torch::tensor(slot.cell.classes, labels.options())).nonzero().squeeze(1);
    if (index.numel() == 0) continue;
    out.index_copy_(0, index, slot.net->denoise(x.index_select(0, index), sigmas(index.numel()), labels.index_select(0, index)));
    served += index.numel();
  }
  if (served != x.size(0)) {
    throw std::logic_error("router: " + std::to_string(x.size(0) - served) + " samples matched no student cell at sigma " +
                           std::to_string(sigma));
  }
  return out;
}

torch::Tensor StudentEnsemble::sample(const Teacher& teacher, const torch::Tensor& noise, const torch::Tensor& labels) const {
  torch::NoGradGuard no_grad;
  auto fn = [this](const torch::Tensor& x, double sigma, const torch::Tensor& l) { return routed_denoise(x, sigma, l); };
  if (type_ == StudentType::one_step) return edm::one_step_generate(fn, noise, labels, generator_sigma_);
  return teacher.sample(fn, noise, labels);
}

std::int64_t StudentEnsemble::nfe(const Teacher& teacher) const {
  return type_ == StudentType::one_step ? 1 : teacher.nfe();
}

std::int64_t StudentEnsemble::params_per_sample() const {
  std::int64_t most = 0;
  for (const auto& s : students_) most = std::max(most, count_parameters(*s.net));
  return most;
}

std::int64_t StudentEnsemble::params_total() const {
  std::int64_t total = 0;
  for (const auto& s : students_) total += count_parameters(*s.net);
  return total;
}

torch::Tensor sample_in_chunks(const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& sampler,
                               const std::vector<std::int64_t>& sample_shape, const torch::Tensor& labels,
                               const torch::Device& device, std::int64_t chunk) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  const std::int64_t n = labels.size(0);
  for (std::int64_t start = 0; start < n; start += chunk) {
    const std::int64_t m = std::min(chunk, n - start);
    std::vector<std::int64_t> shape{m};
    shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
    torch::Tensor noise = torch::randn(shape).to(device);
    parts.push_back(sampler(noise, labels.slice(0, start, start + m).to(device)).to(torch::kCPU));
  }
  return torch::cat(parts, 0);
}

std::string describe_error(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) return torch_error->what_without_backtrace();
  return error.what();
}

void save_archive(torch::serialize::OutputArchive& archive, const std::filesystem::path& file) {
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_file_atomically(file, bytes.str());
}

void read_archive(const std::filesystem::path& file, const torch::Device& device, const std::string& remedy,
                  const std::function<void(torch::serialize::InputArchive&)>& read) {
  if (!std::filesystem::exists(file)) throw std::runtime_error(file.string() + " does not exist; " + remedy);
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(file.string(), device);
    read(archive);
  } catch (const c10::Error& error) {
    throw std::runtime_error(file.string() + " cannot be read (" + text::first_line(error.what_without_backtrace()) +
                             "): it is truncated, damaged or of another model; " + remedy);
  }
}

void save_weights(torch::nn::Module& net, const std::filesystem::path& file) {
  // Checkpoints are always written from CPU tensors so that any device can load them.
  auto params = net.parameters();
  const torch::Device device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
  net.to(torch::kCPU);
  torch::serialize::OutputArchive archive;
  net.save(archive);
  net.to(device);
  save_archive(archive, file);
}

std::string weights_digest(const torch::nn::Module& net) {
  std::string bytes;
  const auto append = [&bytes](const std::string& name, const torch::Tensor& tensor) {
    const torch::Tensor values = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    bytes += name;
    bytes.append(static_cast<const char*>(values.data_ptr()), static_cast<std::size_t>(values.nbytes()));
  };
  for (const auto& entry : net.named_parameters()) append(entry.key(), entry.value());
  for (const auto& entry : net.named_buffers()) append(entry.key(), entry.value());
  return text::hash_text(bytes);
}

void load_weights(torch::nn::Module& net, const std::filesystem::path& file, const std::string& remedy) {
  auto params = net.parameters();
  const torch::Device device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
  net.to(torch::kCPU);
  read_archive(file, torch::kCPU, remedy, [&](torch::serialize::InputArchive& archive) { net.load(archive); });
  net.to(device);
}

void write_npy(const torch::Tensor& tensor, const std::filesystem::path& file) {
  torch::Tensor t = tensor.to(torch::kCPU).contiguous();
  std::string descr;
  if (t.scalar_type() == torch::kFloat32) {
    descr = "<f4";
  } else if (t.scalar_type() == torch::kInt64) {
    descr = "<i8";
  } else {
    t = t.to(torch::kFloat32);
    descr = "<f4";
  }
  std::string shape = "(";
  for (std::int64_t d : t.sizes()) shape += std::to_string(d) + ",";
  if (t.dim() > 1) shape.pop_back();
  shape += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Version 1.0 header: magic, version, little-endian length; total header size a multiple of 64.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  const auto len = static_cast<std::uint16_t>(header.size());
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(len & 0xff);
  bytes += static_cast<char>(len >> 8);
  bytes += header;
  bytes.append(static_cast<const char*>(t.data_ptr()), static_cast<std::size_t>(t.numel() * t.element_size()));
  write_file_atomically(file, bytes);
}

torch::Device resolve_device(const std::string& requested) {
  if (requested == "cpu") return torch::kCPU;
  const bool gpu = torch::cuda::is_available();
  if (requested == "cuda") {
    if (!gpu) {
      throw std::runtime_error("device cuda (from --device or experiment.device): this machine has no CUDA device "
                               "that this LibTorch build can use; use --device cpu, or auto to take a GPU when "
                               "there is one (docs/GPU.md builds msd for CUDA)");
    }
    return torch::Device(torch::kCUDA, 0);
  }
  return gpu ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
}

// LibTorch 2.4 replaced the CUDA-specific autocast switches by ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
namespace {
at::DeviceType autocast_device(bool cuda) { return cuda ? at::kCUDA : at::kCPU; }
bool autocast_enabled(bool cuda) { return at::autocast::is_autocast_enabled(autocast_device(cuda)); }
void set_autocast(bool cuda, bool on) { at::autocast::set_autocast_enabled(autocast_device(cuda), on); }
at::ScalarType autocast_dtype(bool cuda) { return at::autocast::get_autocast_dtype(autocast_device(cuda)); }
void set_autocast_dtype(bool cuda, at::ScalarType t) { at::autocast::set_autocast_dtype(autocast_device(cuda), t); }
}  // namespace
#else
namespace {
bool autocast_enabled(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void set_autocast(bool cuda, bool on) { cuda ? at::autocast::set_enabled(on) : at::autocast::set_cpu_enabled(on); }
at::ScalarType autocast_dtype(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_dtype(bool cuda, at::ScalarType t) {
  cuda ? at::autocast::set_autocast_gpu_dtype(t) : at::autocast::set_autocast_cpu_dtype(t);
}
}  // namespace
#endif

MixedPrecision::MixedPrecision(const torch::Device& device, const std::string& precision) {
  if (precision == "fp32") return;
  if (precision != "bf16") throw std::invalid_argument("unknown precision '" + precision + "' (fp32 or bf16)");
  active_ = true;
  cuda_ = device.is_cuda();
  was_enabled_ = autocast_enabled(cuda_);
  was_dtype_ = autocast_dtype(cuda_);
  was_caching_ = at::autocast::is_autocast_cache_enabled();
  set_autocast_dtype(cuda_, torch::kBFloat16);
  set_autocast(cuda_, true);
  at::autocast::set_autocast_cache_enabled(false);
}

MixedPrecision::~MixedPrecision() {
  if (!active_) return;
  set_autocast(cuda_, was_enabled_);
  set_autocast_dtype(cuda_, was_dtype_);
  at::autocast::set_autocast_cache_enabled(was_caching_);
}

void seed_phase(std::int64_t seed, const std::string& phase) {
  const std::string h = text::hash_text(std::to_string(seed) + "/" + phase);
  const std::uint64_t value = std::stoull(h.substr(0, 15), nullptr, 16);
  torch::manual_seed(value);
}

}  // namespace msd::host
