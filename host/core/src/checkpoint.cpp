#include "msd/host/pipeline/checkpoint.h"

#include <mutex>

#include <torch/optim/optimizer.h>
#include <torch/serialize.h>

#include "msd/denoiser.h"
#include "msd/host/pipeline/models.h"
#include "msd/text.h"
#include "msd/loss.h"

namespace msd::host {

namespace {

void write_int(torch::serialize::OutputArchive& archive, const std::string& key, std::int64_t value) {
  archive.write(key, torch::tensor(value, torch::kInt64));
}

std::int64_t read_int(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  return t.item<std::int64_t>();
}

torch::Tensor to_tensor(const Compute& c) {
  return torch::tensor({static_cast<double>(c.iterations), static_cast<double>(c.student_updates),
                        static_cast<double>(c.samples), c.seconds},
                       torch::kFloat64);
}

Compute read_compute(torch::serialize::InputArchive& archive, const std::string& key) {
  torch::Tensor t;
  archive.read(key, t);
  t = t.to(torch::kCPU);
  const auto v = t.accessor<double, 1>();
  return {static_cast<std::int64_t>(v[0]), static_cast<std::int64_t>(v[1]), static_cast<std::int64_t>(v[2]), v[3]};
}

/// Where member m's generator state is kept: "rng" for a student alone (as before groups existed).
std::string generator_key(std::size_t members, std::size_t m) {
  return members == 1 ? "rng" : "rng." + std::to_string(m);
}

}  // namespace

const char* const RunFolder::kDamaged =
    "delete it (or the run's folder), and `msd sweep` trains the students it held again";

void Compute::add(const Compute& other) {
  iterations += other.iterations;
  student_updates += other.student_updates;
  samples += other.samples;
  seconds += other.seconds;
}

void Compute::log(std::vector<results::MetricRow>& rows, const std::string& scope) const {
  rows.push_back({"train.iterations", 0, static_cast<double>(iterations), scope});
  rows.push_back({"train.student_updates", 0, static_cast<double>(student_updates), scope});
  rows.push_back({"train.samples", 0, static_cast<double>(samples), scope});
  rows.push_back({"train.seconds", 0, seconds, scope});
}

void Progress::finish_student(const Compute& spent) {
  students_spent.push_back(spent);
  ++student;
  stage = 0;
  finish_stage();
  student_spent = Compute{};
}

void Progress::resume_at(const Progress& position) {
  student = position.student;
  stage = position.stage;
  iteration = position.iteration;
  updates = position.updates;
  stage_seconds = position.stage_seconds;
  student_spent = position.student_spent;
}

void Progress::finish_stage() {
  iteration = updates = 0;
  stage_seconds = 0.0;
}

void StudentCheckpoint::restore(const TrainingState& into) try {
  const std::size_t members = into.generators.size();
  torch::Tensor saved_members;
  const std::int64_t saved = state.try_read("members", saved_members) ? saved_members.item<std::int64_t>() : 1;
  if (saved != static_cast<std::int64_t>(members)) {
    throw std::runtime_error(file.string() + " holds " + std::to_string(saved) + " students trained as one network, " +
                             "but the run now trains " + std::to_string(members) +
                             " per network: set experiment.students_per_network back, or " + RunFolder::kDamaged);
  }
  torch::serialize::InputArchive net, optimizer;
  state.read("net", net);
  into.student.load(net);
  state.read("optimizer", optimizer);
  into.optimizer.load(optimizer);
  for (size_t i = 0; i < into.losses.size(); ++i) {
    torch::serialize::InputArchive loss;
    state.read("loss." + std::to_string(i), loss);
    into.losses[i]->load(loss);
  }
  for (std::size_t m = 0; m < members; ++m) {
    torch::Tensor rng;
    state.read(generator_key(members, m), rng);
    std::lock_guard<std::mutex> lock(into.generators[m].mutex());
    into.generators[m].set_state(rng.to(torch::kCPU));
  }
} catch (const c10::Error& error) {
  throw std::runtime_error(file.string() + " does not fit this stage's student, optimizer or losses (" +
                           text::first_line(error.what_without_backtrace()) + "); " + RunFolder::kDamaged);
}

RunFolder::RunFolder(std::filesystem::path folder, torch::Device device)
    : folder_(std::move(folder)), device_(device) {}

std::filesystem::path RunFolder::student_weights(std::int64_t k) const {
  return folder_ / ("student-" + std::to_string(k) + ".pt");
}
std::filesystem::path RunFolder::student_log(std::int64_t k) const {
  return folder_ / ("student-" + std::to_string(k) + ".log");
}
std::filesystem::path RunFolder::run_checkpoint() const { return folder_ / "checkpoint.pt"; }
std::filesystem::path RunFolder::student_checkpoint(std::int64_t k) const {
  return folder_ / ("checkpoint-student-" + std::to_string(k) + ".pt");
}
std::filesystem::path RunFolder::student_done_file(std::int64_t k) const {
  return folder_ / ("student-" + std::to_string(k) + ".compute.pt");
}

void RunFolder::save_finished(const Progress& progress) const {
  torch::serialize::OutputArchive archive;
  write_int(archive, "students_done", static_cast<std::int64_t>(progress.students_spent.size()));
  for (size_t k = 0; k < progress.students_spent.size(); ++k) {
    archive.write("spent." + std::to_string(k), to_tensor(progress.students_spent[k]));
  }
  save_archive(archive, run_checkpoint());
}

Progress RunFolder::read_finished() const {
  Progress progress;
  if (!std::filesystem::exists(run_checkpoint())) return progress;
  read_archive(run_checkpoint(), torch::kCPU, kDamaged, [&](torch::serialize::InputArchive& archive) {
    const std::int64_t done = read_int(archive, "students_done");
    for (std::int64_t k = 0; k < done; ++k) progress.finish_student(read_compute(archive, "spent." + std::to_string(k)));
  });
  return progress;
}

void RunFolder::save_student(const Progress& position, const TrainingState& state) const {
  torch::serialize::OutputArchive archive, net, optimizer;
  write_int(archive, "stage", position.stage);
  write_int(archive, "iteration", position.iteration);
  write_int(archive, "updates", position.updates);
  archive.write("stage_seconds", torch::tensor(position.stage_seconds, torch::kFloat64));
  archive.write("student_spent", to_tensor(position.student_spent));
  state.student.save(net);
  state.optimizer.save(optimizer);
  archive.write("net", net);
  archive.write("optimizer", optimizer);
  for (size_t i = 0; i < state.losses.size(); ++i) {
    torch::serialize::OutputArchive loss;
    state.losses[i]->save(loss);
    archive.write("loss." + std::to_string(i), loss);
  }
  const std::size_t members = state.generators.size();
  if (members != 1) write_int(archive, "members", static_cast<std::int64_t>(members));
  for (std::size_t m = 0; m < members; ++m) {
    std::lock_guard<std::mutex> lock(state.generators[m].mutex());
    archive.write(generator_key(members, m), state.generators[m].get_state());
  }
  save_archive(archive, student_checkpoint(position.student));
}

std::optional<StudentCheckpoint> RunFolder::read_student(std::int64_t k) const {
  const std::filesystem::path file = student_checkpoint(k);
  if (!std::filesystem::exists(file)) return std::nullopt;
  StudentCheckpoint checkpoint;
  checkpoint.file = file;
  read_archive(file, device_, kDamaged, [&](torch::serialize::InputArchive& archive) {
    checkpoint.position.student = k;
    checkpoint.position.stage = read_int(archive, "stage");
    checkpoint.position.iteration = read_int(archive, "iteration");
    checkpoint.position.updates = read_int(archive, "updates");
    torch::Tensor seconds;
    archive.read("stage_seconds", seconds);
    checkpoint.position.stage_seconds = seconds.item<double>();
    checkpoint.position.student_spent = read_compute(archive, "student_spent");
    checkpoint.state = std::move(archive);
  });
  return checkpoint;
}

void RunFolder::save_student_done(std::int64_t k, const Compute& spent) const {
  torch::serialize::OutputArchive archive;
  archive.write("spent", to_tensor(spent));
  save_archive(archive, student_done_file(k));
}

std::optional<Compute> RunFolder::student_done(std::int64_t k) const {
  const std::filesystem::path file = student_done_file(k);
  if (!std::filesystem::exists(file)) return std::nullopt;
  Compute spent;
  read_archive(file, torch::kCPU, kDamaged,
               [&](torch::serialize::InputArchive& archive) { spent = read_compute(archive, "spent"); });
  return spent;
}

void RunFolder::remove_checkpoints(std::int64_t students) const {
  std::filesystem::remove(run_checkpoint());
  for (std::int64_t k = 0; k < students; ++k) {
    remove_student_checkpoint(k);
    std::filesystem::remove(student_done_file(k));
  }
}

void RunFolder::remove_student_checkpoint(std::int64_t k) const { std::filesystem::remove(student_checkpoint(k)); }

}  // namespace msd::host
