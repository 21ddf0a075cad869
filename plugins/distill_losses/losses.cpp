// distill_losses: the objectives of both methods.
//   MSD (one-step students):  dm (DMD2 distribution matching), adm (dm + GAN), regression (teacher pairs).
//   O2MKD (multi-step):       diffusion (EDM loss), kd_prediction (teacher's output), kd_relational,
//                             kd_feature (feature_kd.cpp).
//   TSM for small students is kd_prediction in a stage before dm.
// Formulas follow docs/ARCHITECTURE.md ("The science"), which cites EDM, DMD/DMD2, MSD and O2MKD.
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

#include <torch/torch.h>

#include "feature_kd.h"
#include "msd/edm.h"
#include "msd/loss.h"
#include "msd/optim.h"

namespace {

torch::Tensor broadcast_sigma(const torch::Tensor& sigma, const torch::Tensor& like) {
  std::vector<std::int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = like.size(0);
  return sigma.view(shape);
}

/// Standard normal noise shaped like `x`, each member's block from its own generator.
torch::Tensor noise_like(const msd::StepContext& ctx, std::int64_t members, const torch::Tensor& x) {
  if (members == 1) return ctx.random(0).normal_like(x);
  const torch::Tensor block = x.narrow(0, 0, x.size(0) / members);
  return msd::draw_per_member(ctx, members, [&](const msd::Random& random) { return random.normal_like(block); });
}

/// The grouped form of `network` for `members` members (itself copied, for one).
std::shared_ptr<msd::Denoiser> copies_of(const msd::Denoiser& network, std::int64_t members, const std::string& loss) {
  if (members == 1) return network.clone_denoiser();
  std::shared_ptr<msd::Denoiser> grouped =
      network.group(std::vector<const msd::Denoiser*>(static_cast<size_t>(members), &network));
  if (!grouped) {
    throw std::invalid_argument(loss + ": the teacher's network has no grouped form (Denoiser::group), so " +
                                std::to_string(members) + " students cannot train as one network with it");
  }
  return grouped;
}

/// DMD2 distribution matching. The student's one-step samples x are noised, the frozen teacher
/// ("real" score) and an online fake-score network both denoise them, and x is pushed along
/// (mu_fake - mu_real), normalised per sample by mean |x - mu_real|. Not final: `adm` extends it.
class DistributionMatching : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    msd::PluginInfo info{msd::PluginKind::loss, "dm", "1.1",
                         "DMD2 distribution matching with an online fake-score network initialised from the teacher",
                         keys()};
    info.loss.resumes_from = {"dm"};
    info.loss.trains_groups = true;
    return info;
  }

  explicit DistributionMatching(const msd::Params& params) : DistributionMatching(params, "dm") {}

  void setup(const msd::LossSetup& setup) override {
    if (setup.student_type != msd::StudentType::one_step) {
      throw std::invalid_argument(name_ + ": distribution matching trains one-step students; this student is multi-step");
    }
    setup_ = setup;
    members_ = setup.group_size();
    fake_ = copies_of(*setup.teacher, members_, name_);
    msd::set_trainable(*fake_, true);
    fake_->train();
    optimizer_ = std::make_unique<msd::AdamW>(fake_->parameters(), adamw_options());
    grid_ = msd::edm::training_grid(params_.get_int("grid_levels"), setup.sampler.sigma_min,
                                    setup.sampler.sigma_max, 7.0)
                .to(setup.device);
  }

  msd::LoggedValues update_auxiliary(msd::StepContext& ctx) override {
    torch::Tensor loss = fake_score_loss(ctx, ctx.generated());
    optimizer_->zero_grad();
    total(loss).backward();
    clip_and_step_fake();
    if (!ctx.logs()) return {};
    return {{"fake_score_loss", loss.detach()}};
  }

  torch::Tensor student_loss(msd::StepContext& ctx) override {
    const msd::GeneratedBatch& g = ctx.generated();
    torch::Tensor grad;
    {
      torch::NoGradGuard no_grad;
      torch::Tensor x = g.x.detach();
      torch::Tensor sigma = draw_dm_sigma(ctx, x.size(0));
      torch::Tensor xt = x + noise_like(ctx, members_, x) * broadcast_sigma(sigma, x);
      torch::Tensor mu_real = setup_.teacher->denoise(xt, sigma, g.labels);
      torch::Tensor mu_fake = fake_->denoise(xt, sigma, g.labels);
      std::vector<std::int64_t> dims;
      for (std::int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
      torch::Tensor normaliser = (x - mu_real).abs().mean(dims, /*keepdim=*/true).clamp_min(1e-12);
      grad = (mu_fake - mu_real) / normaliser;
    }
    // d/dx of 0.5 ||x - stopgrad(x - grad)||^2 (mean) is grad / numel: the DMD gradient.
    if (members_ == 1) return 0.5 * torch::mse_loss(g.x, (g.x - grad).detach());
    return 0.5 * msd::mean_per_member((g.x - (g.x - grad).detach()).pow(2), members_);
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    torch::serialize::OutputArchive fake, opt;
    fake_->save(fake);
    optimizer_->save(opt);
    archive.write("fake_score", fake);
    archive.write("fake_optimizer", opt);
  }
  /// Resumes the fake-score network and its optimizer's moments; the optimizer's hyperparameters stay
  /// this stage's keys (DMD2 resumes its GAN stage at a different learning rate).
  void load(torch::serialize::InputArchive& archive) override {
    torch::serialize::InputArchive fake, opt;
    if (!archive.try_read("fake_score", fake) || !archive.try_read("fake_optimizer", opt)) {
      throw std::runtime_error(name_ + ": the saved loss state holds no fake-score network (fake_score, "
                               "fake_optimizer); it was not written by dm or adm");
    }
    try {
      fake_->load(fake);
      optimizer_->load(opt);
    } catch (const c10::Error& e) {
      throw std::runtime_error(name_ + ": the saved fake-score network does not match this teacher's "
                               "architecture: " + e.what_without_backtrace());
    }
    for (auto& group : optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()) = adamw_options();
    }
  }

 protected:
  DistributionMatching(const msd::Params& params, std::string name) : params_(params), name_(std::move(name)) {
    if (!(params.get_real("min_level") < params.get_real("max_level"))) {
      throw std::invalid_argument(name_ + ": min_level must be below max_level");
    }
  }

  static std::vector<msd::KeySpec> keys() {
    return {msd::key_real("fake_lr", 1e-4, "AdamW learning rate of the fake-score network", 0.0),
            msd::key_real("fake_beta1", 0.9, "AdamW beta1 of the fake-score network", 0.0, 1.0),
            msd::key_real("fake_beta2", 0.999, "AdamW beta2 of the fake-score network", 0.0, 1.0),
            msd::key_real("fake_weight_decay", 0.01, "AdamW weight decay of the fake-score network", 0.0),
            msd::key_real("fake_grad_clip", 10.0, "max gradient norm of the fake-score network; 0 disables", 0.0),
            msd::key_int("grid_levels", 1000, "noise levels of the Karras training grid (rho = 7)", 2),
            msd::key_real("min_level", 0.02, "lowest grid fraction the DM gradient uses (DMD2: 20 of 1000)", 0.0, 1.0),
            msd::key_real("max_level", 0.98, "highest grid fraction the DM gradient uses (DMD2: 980 of 1000)", 0.0, 1.0)};
  }

  /// The fake score's objective: learn the student's current distribution with the denoising loss over
  /// the whole grid, on detached samples. One value per member.
  torch::Tensor fake_score_loss(const msd::StepContext& ctx, const msd::GeneratedBatch& g) {
    torch::Tensor x = g.x.detach();
    torch::Tensor sigma = draw_sigma(ctx, x.size(0), 0, grid_.size(0) - 1);
    torch::Tensor xt = x + noise_like(ctx, members_, x) * broadcast_sigma(sigma, x);
    return msd::edm::weighted_denoising_loss(fake_->denoise(xt, sigma, g.labels), x, sigma, setup_.sigma_data, members_);
  }

  /// The sum of the members' losses, whose gradient is each member's own.
  static torch::Tensor total(const torch::Tensor& loss) { return loss.dim() == 0 ? loss : loss.sum(); }

  /// Clips the fake network's gradients (fake_grad_clip, per member) and steps its optimizer.
  void clip_and_step_fake() {
    const double clip = params_.get_real("fake_grad_clip");
    if (clip > 0) msd::clip_grad_norm(fake_->parameters(), clip, members_);
    optimizer_->step();
  }

  /// Noise levels from the grid between min_level and max_level, where the DM gradient is taken.
  torch::Tensor draw_dm_sigma(const msd::StepContext& ctx, std::int64_t n) const {
    const std::int64_t levels = grid_.size(0);
    const auto lo = static_cast<std::int64_t>(std::lround(params_.get_real("min_level") * (levels - 1)));
    const auto hi = static_cast<std::int64_t>(std::lround(params_.get_real("max_level") * (levels - 1)));
    return draw_sigma(ctx, n, lo, hi);
  }

  torch::optim::AdamWOptions adamw_options() const {
    return torch::optim::AdamWOptions(params_.get_real("fake_lr"))
        .betas({params_.get_real("fake_beta1"), params_.get_real("fake_beta2")})
        .weight_decay(params_.get_real("fake_weight_decay"));
  }

  msd::Params params_;
  std::string name_;  // plugin name, for messages
  msd::LossSetup setup_;
  std::int64_t members_ = 1;  // students trained at once (LossSetup::members)
  std::shared_ptr<msd::Denoiser> fake_;
  std::unique_ptr<msd::AdamW> optimizer_;

 private:
  /// n grid levels with indices in [lo, hi], each member's block from its own generator.
  torch::Tensor draw_sigma(const msd::StepContext& ctx, std::int64_t n, std::int64_t lo, std::int64_t hi) const {
    const std::int64_t block = n / members_;
    torch::Tensor index = msd::draw_per_member(
        ctx, members_, [&](const msd::Random& random) { return random.integers(lo, hi + 1, {block}); });
    return grid_.index_select(0, index);
  }

  torch::Tensor grid_;
};

/// DMD2's discriminator head on the fake-score network's bottleneck features [B, C, h, w]: conv 4x4
/// stride 2 -> GroupNorm -> SiLU -> conv 3x3 -> GroupNorm -> SiLU -> spatial mean -> linear -> one
/// logit. DMD2's second convolution (4x4 stride 4) assumes a larger map than a 28-pixel image's 7x7
/// bottleneck; the spatial mean takes its place. Maps under 4x4 skip the stride (3x3 convolution).
/// DMD2's GroupNorm has 32 groups of 32 or more channels; on a small bottleneck 32 groups would be one
/// channel each, an instance norm that removes every channel's mean over the image, which is what
/// tells real from generated images here: groups keep `group_channels` channels (at most 32 groups).
class DiscriminatorHead : public torch::nn::Module {
 public:
  DiscriminatorHead(std::int64_t channels, std::int64_t height, std::int64_t width, std::int64_t group_channels) {
    const bool downsample = height >= 4 && width >= 4;
    auto first = downsample ? torch::nn::Conv2dOptions(channels, channels, 4).stride(2).padding(1)
                            : torch::nn::Conv2dOptions(channels, channels, 3).padding(1);
    const std::int64_t groups =
        std::gcd<std::int64_t>(channels, std::clamp<std::int64_t>(channels / group_channels, 1, 32));
    conv1_ = register_module("conv1", torch::nn::Conv2d(first));
    norm1_ = register_module("norm1", torch::nn::GroupNorm(groups, channels));
    conv2_ = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, channels, 3).padding(1)));
    norm2_ = register_module("norm2", torch::nn::GroupNorm(groups, channels));
    logit_ = register_module("logit", torch::nn::Linear(channels, 1));
  }

  /// [B] logits.
  torch::Tensor forward(const torch::Tensor& features) {
    torch::Tensor h = torch::silu(norm1_->forward(conv1_->forward(features)));
    h = torch::silu(norm2_->forward(conv2_->forward(h)));
    return logit_->forward(h.mean({2, 3})).squeeze(1);
  }

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::GroupNorm norm1_{nullptr}, norm2_{nullptr};
  torch::nn::Linear logit_{nullptr};
};

/// DMD2's ADM stage: DM plus a non-saturating GAN whose discriminator is a head on the fake-score
/// network's bottleneck features (features[0] of denoise_with_features, [B, C, h, w]). Real and fake
/// images are noised at levels drawn like the DM gradient's before the discriminator sees them. The
/// fake network learns denoising + disc_weight * (softplus(-D(real)) + softplus(D(fake))); the student
/// adds gan_weight * softplus(-D(G(z))) to the DM loss.
class AdversarialDistributionMatching final : public DistributionMatching {
 public:
  static msd::PluginInfo info() {
    std::vector<msd::KeySpec> k = keys();
    k.push_back(msd::key_real("gan_weight", 3e-3,
                              "weight of the student's GAN term softplus(-D(fake)) next to DM (DMD2 ImageNet-64: 3e-3)",
                              0.0));
    k.push_back(msd::key_int("disc_group_channels", 8,
                             "channels per GroupNorm group of the discriminator head (at most 32 groups; DMD2: "
                             "32 groups); 1 is an instance norm, which erases what tells real from generated "
                             "images (docs/RESULTS.md)",
                             1, 4096));
    k.push_back(msd::key_real("disc_weight", 1e-2,
                              "weight of the discriminator loss in the fake-score network's objective "
                              "(DMD2 ImageNet-64: 1e-2)",
                              0.0));
    msd::PluginInfo info{msd::PluginKind::loss, "adm", "1.2",
                         "DMD2 ADM: dm plus a non-saturating GAN whose discriminator head reads the fake-score "
                         "network's bottleneck features; resumes dm's fake-score network (head and optimizer "
                         "settings: fake_*)",
                         k};
    info.loss.resumes_from = {"dm", "adm"};
    return info;
  }

  explicit AdversarialDistributionMatching(const msd::Params& params) : DistributionMatching(params, "adm") {}

  void setup(const msd::LossSetup& setup) override {
    DistributionMatching::setup(setup);
    std::vector<std::int64_t> shape{1};
    shape.insert(shape.end(), setup.sample_shape.begin(), setup.sample_shape.end());
    torch::Tensor bottleneck;
    {
      torch::NoGradGuard no_grad;
      const auto probe = fake_->denoise_with_features(
          torch::zeros(shape, torch::TensorOptions().device(setup.device)),
          torch::ones({1}, torch::TensorOptions().device(setup.device)),
          torch::zeros({1}, torch::TensorOptions().dtype(torch::kInt64).device(setup.device)));
      if (!probe.features.empty()) bottleneck = probe.features.front();
    }
    if (!bottleneck.defined() || bottleneck.dim() != 4) {
      throw std::invalid_argument(
          "adm: the discriminator head reads the teacher network's bottleneck features as [B, C, h, w] "
          "(features[0] of denoise_with_features); this teacher's network provides none (use edm_unet)");
    }
    head_ = std::make_shared<DiscriminatorHead>(bottleneck.size(1), bottleneck.size(2), bottleneck.size(3),
                                                params_.get_int("disc_group_channels"));
    head_->to(setup.device);
    head_optimizer_ = std::make_unique<msd::AdamW>(head_->parameters(), adamw_options());
  }

  msd::LoggedValues update_auxiliary(msd::StepContext& ctx) override {
    const msd::GeneratedBatch& g = ctx.generated();
    const msd::NoisedBatch& real = ctx.noised_real();
    torch::Tensor denoising = fake_score_loss(ctx, g);
    const Judged real_judged = discriminate(ctx, real.x0, real.labels);
    const Judged fake_judged = discriminate(ctx, g.x.detach(), g.labels);
    const torch::Tensor& real_logits = real_judged.logits;
    const torch::Tensor& fake_logits = fake_judged.logits;
    torch::Tensor disc = torch::softplus(-real_logits).mean() + torch::softplus(fake_logits).mean();
    torch::Tensor loss = denoising + params_.get_real("disc_weight") * disc;
    optimizer_->zero_grad();
    head_optimizer_->zero_grad();
    loss.backward();
    const double clip = params_.get_real("fake_grad_clip");
    if (clip > 0) msd::clip_grad_norm(head_->parameters(), clip);
    clip_and_step_fake();
    head_optimizer_->step();
    if (!ctx.logs()) return {};
    msd::LoggedValues logged{{"fake_score_loss", denoising.detach()},
                             {"disc_loss", disc.detach()},
                             {"disc_real_logit", real_logits.mean().detach()},
                             {"disc_fake_logit", fake_logits.mean().detach()}};
    add_accuracy(logged, real_judged, fake_judged);
    return logged;
  }

  torch::Tensor student_loss(msd::StepContext& ctx) override {
    // DM first, so that it draws the same noise as dm's student_loss would on the same seed.
    torch::Tensor dm = DistributionMatching::student_loss(ctx);
    const msd::GeneratedBatch& g = ctx.generated();
    return dm + params_.get_real("gan_weight") * torch::softplus(-discriminate(ctx, g.x, g.labels).logits).mean();
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    DistributionMatching::save(archive);
    torch::serialize::OutputArchive head, opt;
    head_->save(head);
    head_optimizer_->save(opt);
    archive.write("disc_head", head);
    archive.write("disc_optimizer", opt);
  }
  /// Accepts dm's state (no head: the head keeps its fresh initialisation) as well as adm's.
  void load(torch::serialize::InputArchive& archive) override {
    DistributionMatching::load(archive);
    torch::serialize::InputArchive head, opt;
    if (!archive.try_read("disc_head", head)) return;
    if (!archive.try_read("disc_optimizer", opt)) {
      throw std::runtime_error("adm: the saved loss state has a discriminator head but no disc_optimizer");
    }
    head_->load(head);
    head_optimizer_->load(opt);
    for (auto& group : head_optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()) = adamw_options();
    }
  }

 private:
  /// The discriminator's logits ([B]) and the noise levels the samples were seen at ([B]).
  struct Judged {
    torch::Tensor logits, sigma;
  };

  /// D(x): the head on the fake network's bottleneck for x noised at a DM-range grid level.
  Judged discriminate(const msd::StepContext& ctx, const torch::Tensor& x, const torch::Tensor& labels) {
    torch::Tensor sigma = draw_dm_sigma(ctx, x.size(0));
    torch::Tensor xt = x + ctx.random(0).normal_like(x) * broadcast_sigma(sigma, x);
    return {head_->forward(fake_->denoise_with_features(xt, sigma, labels).features.front()), sigma};
  }

  /// disc_accuracy: the share of real and fake samples the discriminator classifies right (logit sign);
  /// disc_accuracy_low_noise: the same among those seen below sigma_data, where the images still show.
  /// Most DM levels drown the image, so there even a perfect discriminator is at chance; the second
  /// figure says whether it learns where it can. Left out when no sample of the batch was seen there.
  void add_accuracy(msd::LoggedValues& logged, const Judged& real, const Judged& fake) const {
    const torch::Tensor right = torch::cat({real.logits > 0, fake.logits < 0}).to(torch::kFloat32).detach();
    const torch::Tensor low = (torch::cat({real.sigma, fake.sigma}) < setup_.sigma_data).to(torch::kFloat32);
    logged.emplace("disc_accuracy", right.mean());
    const torch::Tensor seen = low.sum();
    if (seen.item<double>() > 0) logged.emplace("disc_accuracy_low_noise", (right * low).sum() / seen);
  }

  std::shared_ptr<DiscriminatorHead> head_;
  std::unique_ptr<msd::AdamW> head_optimizer_;
};

/// Regression on teacher pairs: the student maps the teacher's starting noise to the teacher's sample.
class Regression final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    msd::PluginInfo info{msd::PluginKind::loss, "regression", "1.1",
                         "regression of the one-step student onto teacher noise->sample pairs (DMD's paired loss)",
                         {msd::key_string("distance", "pseudo_huber",
                                          "per-sample distance: l2 (squared error) or pseudo_huber "
                                          "sqrt(|d|^2 + c^2) - c; LPIPS needs pretrained weights, unavailable offline",
                                          {"l2", "pseudo_huber"}),
                          msd::key_real("huber_c", 0.01, "pseudo-Huber constant c, in data units", 1e-9)}};
    info.loss.uses_teacher_pairs = true;
    info.loss.trains_groups = true;
    return info;
  }
  explicit Regression(const msd::Params& params) : params_(params) {}

  void setup(const msd::LossSetup& setup) override {
    if (setup.student_type != msd::StudentType::one_step) {
      throw std::invalid_argument("regression: teacher pairs train one-step students; this student is multi-step");
    }
    setup_ = setup;
  }

  torch::Tensor student_loss(msd::StepContext& ctx) override {
    msd::PairedBatch p = ctx.paired();
    const double s = setup_.generator_sigma;
    torch::Tensor sigma = torch::full({p.noise.size(0)}, s, p.noise.options());
    torch::Tensor x = setup_.student->denoise(p.noise * s, sigma, p.labels);
    torch::Tensor sq = (x - p.target).pow(2).reshape({x.size(0), -1}).sum(1);
    const std::int64_t members = setup_.group_size();
    if (params_.get_string("distance") == "l2") return msd::mean_per_member(sq, members);
    const double c = params_.get_real("huber_c");
    return msd::mean_per_member((sq + c * c).sqrt() - c, members);
  }

 private:
  msd::Params params_;
  msd::LossSetup setup_;
};

/// The EDM denoising loss on the cell's noised real data.
class Diffusion final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    msd::PluginInfo info{msd::PluginKind::loss, "diffusion", "1.1",
                         "EDM denoising loss lambda(sigma) ||D_student(x + sigma n) - x||^2 on real data", {}};
    info.loss.trains_groups = true;
    return info;
  }
  explicit Diffusion(const msd::Params&) {}
  void setup(const msd::LossSetup& setup) override {
    sigma_data_ = setup.sigma_data;
    members_ = setup.group_size();
  }
  torch::Tensor student_loss(msd::StepContext& ctx) override {
    const msd::NoisedBatch& b = ctx.noised_real();
    return msd::edm::weighted_denoising_loss(ctx.student_on_noised().denoised, b.x0, b.sigma, sigma_data_, members_);
  }

 private:
  double sigma_data_ = 0.5;
  std::int64_t members_ = 1;
};

/// Knowledge distillation on the teacher's prediction; as a stage before DM it is MSD's TSM.
///
/// Where it matches the teacher (`levels`): on the student's own training batch ("student": its cell,
/// the teacher's noise prior; O2MKD's KD), or, for TSM, at the levels a one-step student is used at
/// ("generator"). The teacher's prior puts sigma above 20 with probability about 2e-4, so TSM on it
/// would almost never train the student at sigma_gen = 80, the only level it generates at. With
/// "generator", each sample is at sigma_gen with probability generator_p, else at a level log-uniform
/// over the sampler's range, so that the student still learns the teacher's denoiser at every level
/// it will see as a fake-score initialisation does. MSD does not publish TSM's levels; generator_p =
/// 0.5 gives the level that matters half the batch.
class PredictionKD final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    msd::PluginInfo info{
        msd::PluginKind::loss, "kd_prediction", "1.1",
        "KD on the teacher's denoised output, lambda(sigma) ||D_student - D_teacher||^2 (also MSD's TSM)",
        {msd::key_string("levels", "student",
                         "student: the noise levels of the student's training batch (its cell, the teacher's prior: "
                         "O2MKD's KD); generator: MSD's TSM for a one-step student, sigma_gen with probability "
                         "generator_p, else log-uniform over the sampler's range",
                         {"student", "generator"}),
         msd::key_real("generator_p", 0.5, "with levels = generator: the share of samples at sigma_gen", 0.0, 1.0)}};
    info.loss.trains_groups = true;
    return info;
  }
  explicit PredictionKD(const msd::Params& params) : params_(params) {}
  void setup(const msd::LossSetup& setup) override {
    setup_ = setup;
    members_ = setup.group_size();
    if (at_generator_levels() && setup.student_type != msd::StudentType::one_step) {
      throw std::invalid_argument("kd_prediction: levels = \"generator\" is TSM for one-step students; this student is "
                                  "multi-step (use levels = \"student\")");
    }
  }
  torch::Tensor student_loss(msd::StepContext& ctx) override {
    const msd::NoisedBatch& b = ctx.noised_real();
    if (!at_generator_levels()) {
      return msd::edm::weighted_denoising_loss(ctx.student_on_noised().denoised, ctx.teacher_on_noised().denoised,
                                               b.sigma, setup_.sigma_data, members_);
    }
    const torch::Tensor sigma = generator_levels(ctx, b.x0.size(0) / members_);
    const torch::Tensor xt = b.x0 + noise_like(ctx, members_, b.x0) * broadcast_sigma(sigma, b.x0);
    torch::Tensor target;
    {
      torch::NoGradGuard no_grad;
      target = setup_.teacher->denoise(xt, sigma, b.labels);
    }
    return msd::edm::weighted_denoising_loss(setup_.student->denoise(xt, sigma, b.labels), target, sigma,
                                             setup_.sigma_data, members_);
  }

 private:
  bool at_generator_levels() const { return params_.get_string("levels") == "generator"; }

  /// n levels per member: sigma_gen with probability generator_p, else log-uniform over the sampler's range.
  torch::Tensor generator_levels(const msd::StepContext& ctx, std::int64_t n) const {
    const double lo = std::log(setup_.sampler.sigma_min), hi = std::log(setup_.sampler.sigma_max);
    const double p = params_.get_real("generator_p");
    return msd::draw_per_member(ctx, members_, [&](const msd::Random& random) {
      torch::Tensor spread = (random.uniform({n}) * (hi - lo) + lo).exp();
      return torch::where(random.uniform({n}) < p, torch::full_like(spread, setup_.generator_sigma), spread);
    });
  }

  msd::Params params_;
  msd::LossSetup setup_;
  std::int64_t members_ = 1;
};

/// Relational KD (O2MKD's most stable feature loss): match the batch's normalised pairwise similarity
/// matrices of student and teacher features. Needs no adapters: both matrices are [B, B].
class RelationalKD final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    msd::PluginInfo info{msd::PluginKind::loss, "kd_relational", "1.1",
                         "relational feature KD: ||G(f_student) - G(f_teacher)||^2 with G the batch cosine-similarity "
                         "matrix; student layer i is paired with teacher layer round(i (Lt-1)/(Ls-1))",
                         {}};
    info.loss.trains_groups = true;
    return info;
  }
  explicit RelationalKD(const msd::Params&) {}
  void setup(const msd::LossSetup& setup) override { members_ = setup.group_size(); }
  torch::Tensor student_loss(msd::StepContext& ctx) override {
    const auto& fs = ctx.student_on_noised().features;
    const auto& ft = ctx.teacher_on_noised().features;
    if (fs.empty() || ft.empty()) {
      throw std::runtime_error("kd_relational: the student or teacher network exposes no features");
    }
    torch::Tensor total;
    for (size_t i = 0; i < fs.size(); ++i) {
      const size_t j = distill::paired_position(i, fs.size(), ft.size());
      torch::Tensor term = msd::mean_per_member((gram(fs[i]) - gram(ft[j])).pow(2), members_);
      total = total.defined() ? total + term : term;
    }
    return total / static_cast<double>(fs.size());
  }

 private:
  /// The cosine-similarity matrix of the batch's samples, [B, B]; of each member's block, [K, B/K, B/K].
  torch::Tensor gram(const torch::Tensor& f) const {
    namespace F = torch::nn::functional;
    if (members_ == 1) {
      torch::Tensor flat = F::normalize(f.reshape({f.size(0), -1}), F::NormalizeFuncOptions().dim(1));
      return flat.matmul(flat.t());
    }
    torch::Tensor flat = F::normalize(f.reshape({members_, f.size(0) / members_, -1}), F::NormalizeFuncOptions().dim(2));
    return torch::bmm(flat, flat.transpose(1, 2));
  }

  std::int64_t members_ = 1;
};

}  // namespace

MSD_PLUGIN_LIBRARY((msd::PluginLibrary{
    "distill_losses",
    {msd::describe<DistributionMatching>(), msd::describe<AdversarialDistributionMatching>(),
     msd::describe<Regression>(), msd::describe<Diffusion>(), msd::describe<PredictionKD>(),
     msd::describe<RelationalKD>(), distill::feature_kd_plugin()}}))
