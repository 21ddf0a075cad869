#include "msd/edm.h"

#include <algorithm>

#include <cmath>
#include <stdexcept>

#include <torch/torch.h>

#include "msd/optim.h"
#include "msd/teacher.h"

namespace msd::edm {

Preconditioning precondition(const torch::Tensor& sigma, double sigma_data) {
  const double sd2 = sigma_data * sigma_data;
  torch::Tensor s2 = sigma * sigma;
  torch::Tensor denom = (s2 + sd2).sqrt();
  return Preconditioning{sd2 / (s2 + sd2), sigma * sigma_data / denom, 1.0 / denom, sigma.log() / 4.0};
}

torch::Tensor loss_weight(const torch::Tensor& sigma, double sigma_data) {
  const double sd2 = sigma_data * sigma_data;
  return (sigma * sigma + sd2) / (sigma * sigma * sd2);
}

torch::Tensor weighted_denoising_loss(const torch::Tensor& denoised, const torch::Tensor& target,
                                      const torch::Tensor& sigma, double sigma_data) {
  std::vector<std::int64_t> shape(static_cast<size_t>(denoised.dim()), 1);
  shape[0] = denoised.size(0);
  return (loss_weight(sigma, sigma_data).view(shape) * (denoised - target).pow(2)).mean();
}

torch::Tensor weighted_denoising_loss(const torch::Tensor& denoised, const torch::Tensor& target,
                                      const torch::Tensor& sigma, double sigma_data, std::int64_t members) {
  if (members == 1) return weighted_denoising_loss(denoised, target, sigma, sigma_data);
  std::vector<std::int64_t> shape(static_cast<size_t>(denoised.dim()), 1);
  shape[0] = denoised.size(0);
  return (loss_weight(sigma, sigma_data).view(shape) * (denoised - target).pow(2)).reshape({members, -1}).mean(1);
}

torch::Tensor sample_training_sigma(std::int64_t n, double p_mean, double p_std, const Random& random) {
  return (random.normal({n}) * p_std + p_mean).exp();
}

torch::Tensor sample_training_sigma_in(std::int64_t n, double p_mean, double p_std, double lo, double hi,
                                       const Random& random) {
  if (!(hi > lo) || lo < 0) throw std::invalid_argument("sample_training_sigma_in: empty range");
  // Standard-normal CDF bounds of ln(sigma); computed in double so that tail ranges keep precision.
  auto cdf = [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); };
  const double a = lo > 0 ? cdf((std::log(lo) - p_mean) / p_std) : 0.0;
  const double b = std::isinf(hi) ? 1.0 : cdf((std::log(hi) - p_mean) / p_std);
  torch::Tensor u = random.uniform({n}, torch::kFloat64) * (b - a) + a;
  u = u.clamp(1e-300, 1.0 - 1e-16);
  torch::Tensor z = std::sqrt(2.0) * torch::erfinv(2.0 * u - 1.0);
  torch::Tensor sigma = (z * p_std + p_mean).exp().clamp(lo, std::isinf(hi) ? 1e30 : std::nextafter(hi, lo));
  return sigma.to(torch::kFloat32);
}

torch::Tensor sample_cell_sigma(std::int64_t n, const NoisePrior& prior, double lo, double hi, double p,
                                const Random& random) {
  torch::Tensor whole = sample_training_sigma(n, prior.p_mean, prior.p_std, random);
  if (lo <= 0.0 && std::isinf(hi)) return whole;
  torch::Tensor inside = sample_training_sigma_in(n, prior.p_mean, prior.p_std, lo, hi, random);
  torch::Tensor outside = random.uniform({n}) < p;
  return torch::where(outside, whole, inside);
}

std::vector<double> karras_schedule(std::int64_t num_steps, double sigma_min, double sigma_max, double rho) {
  if (num_steps < 1) throw std::invalid_argument("karras_schedule: num_steps must be >= 1");
  std::vector<double> sigmas;
  const double a = std::pow(sigma_max, 1.0 / rho);
  const double b = std::pow(sigma_min, 1.0 / rho);
  for (std::int64_t i = 0; i < num_steps; ++i) {
    const double t = num_steps == 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(num_steps - 1);
    sigmas.push_back(std::pow(a + t * (b - a), rho));
  }
  sigmas.push_back(0.0);
  return sigmas;
}

std::int64_t heun_nfe(const SamplerOptions& options) { return 2 * options.num_steps - 1; }

torch::Tensor heun_sample(const DenoiseFn& denoise, const torch::Tensor& noise, const torch::Tensor& labels,
                          const SamplerOptions& options) {
  torch::NoGradGuard no_grad;
  const std::vector<double> s = karras_schedule(options.num_steps, options.sigma_min, options.sigma_max, options.rho);
  torch::Tensor x = noise * s[0];
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    torch::Tensor d = (x - denoise(x, s[i], labels)) / s[i];
    torch::Tensor x_next = x + (s[i + 1] - s[i]) * d;
    if (s[i + 1] > 0) {
      torch::Tensor d_next = (x_next - denoise(x_next, s[i + 1], labels)) / s[i + 1];
      x_next = x + (s[i + 1] - s[i]) * 0.5 * (d + d_next);
    }
    x = x_next;
  }
  return x;
}

torch::Tensor one_step_generate(const DenoiseFn& denoise, const torch::Tensor& noise, const torch::Tensor& labels,
                                double sigma_gen) {
  return denoise(noise * sigma_gen, sigma_gen, labels);
}

torch::Tensor training_grid(std::int64_t levels, double sigma_min, double sigma_max, double rho) {
  std::vector<double> s = karras_schedule(levels, sigma_min, sigma_max, rho);
  s.pop_back();  // drop the final 0: losses never train at sigma = 0
  return torch::tensor(s, torch::kFloat64).to(torch::kFloat32);
}

}  // namespace msd::edm

namespace msd {

std::vector<KeySpec> edm_teacher_keys(const EdmTrainingOptions& t, const edm::SamplerOptions& s) {
  return {key_real("sigma_data", kSigmaDataOfDataset,
                   "EDM data standard deviation sigma_data; 0: the dataset's (its pixels' or points' standard "
                   "deviation, e.g. 0.706 for Fashion-MNIST in [-1, 1])",
                   0.0),
          key_int("steps", t.steps, "training iterations", 1),
          key_int("batch_size", t.batch_size, "samples per iteration", 1),
          key_real("lr", t.lr, "Adam learning rate", 0.0),
          key_int("warmup", t.warmup, "linear learning-rate warm-up, iterations", 0),
          key_real("ema_halflife_kimg", t.ema_halflife_kimg,
                   "half-life of the weight EMA in thousands of samples (EDM: 500 for CIFAR-10); 0 disables "
                   "the EMA",
                   0.0),
          key_real("p_mean", t.p_mean, "mean of ln(sigma) during training (EDM P_mean)"),
          key_real("p_std", t.p_std, "std of ln(sigma) during training (EDM P_std)", 1e-6),
          sampling(key_int("sampler_steps", s.num_steps, "Heun sampler noise levels N (NFE = 2N - 1)", 1, 10000)),
          sampling(key_real("sigma_min", s.sigma_min, "lowest sampler noise level", 1e-9)),
          sampling(key_real("sigma_max", s.sigma_max, "highest sampler noise level", 1e-6)),
          sampling(key_real("rho", s.rho, "sampler schedule exponent", 1e-3))};
}

edm::SamplerOptions edm_sampler_options(const Params& params, const std::string& plugin) {
  edm::SamplerOptions s;
  s.num_steps = params.get_int("sampler_steps");
  s.sigma_min = params.get_real("sigma_min");
  s.sigma_max = params.get_real("sigma_max");
  s.rho = params.get_real("rho");
  if (!(s.sigma_min < s.sigma_max)) throw std::invalid_argument(plugin + ": sigma_min must be below sigma_max");
  return s;
}

EdmTrainingOptions edm_training_options(const Params& params, double sigma_data) {
  EdmTrainingOptions o;
  o.steps = params.get_int("steps");
  o.batch_size = params.get_int("batch_size");
  o.lr = params.get_real("lr");
  o.warmup = params.get_int("warmup");
  o.ema_halflife_kimg = params.get_real("ema_halflife_kimg");
  o.p_mean = params.get_real("p_mean");
  o.p_std = params.get_real("p_std");
  o.sigma_data = sigma_data;
  return o;
}

void train_edm_teacher(Denoiser& net, const TeacherContext& ctx, const EdmTrainingOptions& o) {
  const double halflife = o.ema_halflife_kimg * 1000.0;
  // EMA decay per iteration so that the weight of old parameters halves every `halflife` samples.
  const double beta = halflife > 0 ? std::pow(0.5, static_cast<double>(o.batch_size) / halflife) : 0.0;
  std::shared_ptr<Denoiser> ema = net.clone_denoiser();
  set_trainable(*ema, false);
  pack(ema->parameters());  // the optimizer packs net's on its first step: then the EMA is one operation

  // Adam, as EDM trains: msd::AdamW without weight decay makes the same update bit for bit (optim_test)
  // in a few multi-tensor operations instead of eight per parameter tensor.
  msd::AdamW optimizer(net.parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(0.0));
  net.train();
  for (std::int64_t step = 0; step < o.steps; ++step) {
    const double scale = o.warmup > 0 ? std::min(1.0, static_cast<double>(step + 1) / o.warmup) : 1.0;
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(o.lr * scale);
    }
    Batch b = ctx.data->sample(o.batch_size, {});
    torch::Tensor x = b.x.to(ctx.device);
    torch::Tensor labels = b.labels.to(ctx.device);
    torch::Tensor sigma = edm::sample_training_sigma(o.batch_size, o.p_mean, o.p_std, Random(ctx.device));
    std::vector<std::int64_t> shape(static_cast<size_t>(x.dim()), 1);
    shape[0] = x.size(0);
    torch::Tensor denoised = net.denoise(x + torch::randn_like(x) * sigma.view(shape), sigma, labels);
    torch::Tensor loss = edm::weighted_denoising_loss(denoised, x, sigma, o.sigma_data);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    update_average(ema->parameters(), net.parameters(), beta);
    if (ctx.monitor != nullptr) ctx.monitor->progress("teacher", step + 1, o.steps, loss.item<double>());
  }
  copy_weights(*ema, net);
  net.eval();
}

EdmTeacher::EdmTeacher(const Params& params, const std::string& plugin)
    : params_(params),
      sampler_(edm_sampler_options(params, plugin)),
      plugin_(plugin),
      sigma_data_(params.get_real("sigma_data")) {}

void EdmTeacher::adopt_data(const Dataset& data) {
  if (params_.get_real("sigma_data") == kSigmaDataOfDataset) sigma_data_ = data.sigma_data();
}

void EdmTeacher::train(Denoiser& net, const TeacherContext& ctx) {
  train_edm_teacher(net, ctx, edm_training_options(params_, sigma_data()));
}

double EdmTeacher::sigma_data() const {
  if (sigma_data_ == kSigmaDataOfDataset) {
    throw std::logic_error(plugin_ + ": sigma_data = 0 takes the dataset's, but no dataset was adopted "
                           "(call adopt_data before build)");
  }
  return sigma_data_;
}

edm::NoisePrior EdmTeacher::noise_prior() const { return {params_.get_real("p_mean"), params_.get_real("p_std")}; }

}  // namespace msd
