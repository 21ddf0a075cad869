// Student plugins build the networks that are distilled from the teacher.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "msd/denoiser.h"
#include "msd/partition.h"
#include "msd/plugin.h"

namespace msd {

/// How a student generates.
enum class StudentType {
  one_step,   ///< G(z, c) = D(sigma_gen z; sigma_gen, c): one network evaluation (MSD)
  multi_step  ///< a denoiser sampled with the teacher's sampler (O2MKD)
};

/// What a student may build from.
struct StudentContext {
  const Denoiser* teacher = nullptr;        ///< the trained teacher, for initialising from its weights
  std::vector<std::int64_t> sample_shape;   ///< shape of one sample
  std::int64_t num_classes = 0;
  double sigma_data = 0.5;                  ///< the teacher's preconditioning constant
  std::int64_t index = 0;                   ///< which student (cell) this is
  const Cell* cell = nullptr;               ///< the keys it is responsible for
};

class Student : public Plugin {
 public:
  ~Student() override;
  virtual StudentType type() const = 0;
  /// The noise level a one-step generator is evaluated at (ignored for multi-step students).
  virtual double generator_sigma() const { return 80.0; }
  /// A new network for student ctx.index, on the CPU (the host moves it).
  virtual std::shared_ptr<Denoiser> build(const StudentContext& ctx) = 0;
};

}  // namespace msd
