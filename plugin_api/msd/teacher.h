// Teacher plugins: the architecture of the trained diffusion model, how it is trained and how it samples.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/types.h>

#include "msd/dataset.h"
#include "msd/denoiser.h"
#include "msd/edm.h"
#include "msd/monitor.h"
#include "msd/plugin.h"

namespace msd {

/// Everything a teacher needs to train.
struct TeacherContext {
  Dataset* data = nullptr;       ///< the run's dataset
  torch::Device device{torch::kCPU};
  Monitor* monitor = nullptr;    ///< progress and loss curve
};

class Teacher : public Plugin {
 public:
  ~Teacher() override;
  /// A fresh, untrained network for samples of `sample_shape` and `num_classes` classes.
  virtual std::shared_ptr<Denoiser> build(const std::vector<std::int64_t>& sample_shape,
                                          std::int64_t num_classes) = 0;
  /// Trains `net` (made by build) in place. The host seeds torch before calling.
  virtual void train(Denoiser& net, const TeacherContext& ctx) = 0;
  /// The sampler students and the teacher itself are evaluated with.
  virtual edm::SamplerOptions sampler() const = 0;
  /// The data standard deviation the preconditioning assumes.
  virtual double sigma_data() const = 0;
  /// Samples with `denoise` (the teacher, or a router over multi-step students).
  virtual torch::Tensor sample(const edm::DenoiseFn& denoise, const torch::Tensor& noise,
                               const torch::Tensor& labels) const {
    return edm::heun_sample(denoise, noise, labels, sampler());
  }
  /// Network evaluations per sample of sample().
  virtual std::int64_t nfe() const { return edm::heun_nfe(sampler()); }
};

}  // namespace msd
