// Teacher plugins: the architecture of the trained diffusion model, how it is trained and how it samples.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
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
  /// Called by the host once, right after it makes the teacher and prepares the run's dataset, before
  /// build(): a teacher may take settings from its data. EdmTeacher takes sigma_data from it.
  virtual void adopt_data(const Dataset& data) { (void)data; }
  /// The data standard deviation the preconditioning assumes.
  virtual double sigma_data() const = 0;
  /// The noise levels the teacher trained on. Students trained on noised real data (O2MKD's, TSM)
  /// draw theirs from it, so that they learn the levels the teacher knows. Default: EDM's.
  virtual edm::NoisePrior noise_prior() const { return {}; }
  /// Samples with `denoise` (the teacher, or a router over multi-step students). When the host samples
  /// the teacher, `denoise` throws on a stop request (Ctrl-C), so keep this exception-safe.
  virtual torch::Tensor sample(const edm::DenoiseFn& denoise, const torch::Tensor& noise,
                               const torch::Tensor& labels) const {
    return edm::heun_sample(denoise, noise, labels, sampler());
  }
  /// Network evaluations per sample of sample().
  virtual std::int64_t nfe() const { return edm::heun_nfe(sampler()); }
};

/// EDM's training recipe for a teacher network, shared by the built-in teachers.
struct EdmTrainingOptions {
  std::int64_t steps = 4000;            ///< iterations
  std::int64_t batch_size = 512;        ///< samples per iteration
  double lr = 1e-3;                     ///< Adam learning rate after warm-up
  std::int64_t warmup = 200;            ///< iterations of linear learning-rate warm-up
  double ema_halflife_kimg = 50.0;      ///< half-life of the weight EMA in thousands of samples; 0: no EMA
  double p_mean = edm::kPMean;          ///< mean of ln(sigma) of the training noise levels
  double p_std = edm::kPStd;            ///< standard deviation of ln(sigma)
  double sigma_data = 0.5;              ///< the preconditioning constant of the loss weight
};

/// The value of the key sigma_data that means "the dataset's" (Dataset::sigma_data), its default.
inline constexpr double kSigmaDataOfDataset = 0.0;

/// The keys of an EDM teacher besides its architecture, with `training` and `sampler` as defaults
/// (sigma_data's default is kSigmaDataOfDataset whatever `training` says): sigma_data, steps,
/// batch_size, lr, warmup, ema_halflife_kimg, p_mean, p_std and the sampling-only sampler_steps,
/// sigma_min, sigma_max and rho.
std::vector<KeySpec> edm_teacher_keys(const EdmTrainingOptions& training, const edm::SamplerOptions& sampler = {});

/// The options from the keys edm_teacher_keys declares.
EdmTrainingOptions edm_training_options(const Params& params, double sigma_data);

/// The sampler from the keys edm_teacher_keys declares; throws std::invalid_argument naming `plugin`
/// when sigma_min is not below sigma_max.
edm::SamplerOptions edm_sampler_options(const Params& params, const std::string& plugin);

/// Trains `net` with the EDM loss: Adam with warm-up, log-normal noise levels, the EDM-weighted
/// denoising loss on batches of ctx.data (all classes), progress to ctx.monitor as "teacher"; at the
/// end the EMA of the weights is copied into `net`, which is left in eval mode.
void train_edm_teacher(Denoiser& net, const TeacherContext& ctx, const EdmTrainingOptions& options);

/// A teacher trained by train_edm_teacher and sampled by the EDM Heun sampler, both configured by the
/// keys edm_teacher_keys declares (list them in the plugin's PluginInfo). A plugin derives from it and
/// writes build(), its architecture, reading its own keys through params().
class EdmTeacher : public Teacher {
 public:
  void train(Denoiser& net, const TeacherContext& ctx) override;
  edm::SamplerOptions sampler() const override { return sampler_; }
  /// With sigma_data = 0 (the default), takes the dataset's.
  void adopt_data(const Dataset& data) override;
  /// The key sigma_data, or the dataset's when the key is 0; throws std::logic_error when the key is 0
  /// and no dataset was adopted.
  double sigma_data() const override;
  /// The keys p_mean and p_std.
  edm::NoisePrior noise_prior() const override;

 protected:
  /// Reads the sampler keys at once, so that a bad sigma range is an error naming `plugin` when the
  /// plugin is made, not when it first samples.
  EdmTeacher(const Params& params, const std::string& plugin);
  const Params& params() const { return params_; }

 private:
  Params params_;
  edm::SamplerOptions sampler_;
  std::string plugin_;
  double sigma_data_;  // kSigmaDataOfDataset until a dataset is adopted, when the key asks for it
};

}  // namespace msd
