// distill_losses: the objectives of both methods.
//   MSD (one-step students):  dm (DMD2 distribution matching), regression (teacher pairs).
//   O2MKD (multi-step):       diffusion (EDM loss), kd_prediction (teacher's output), kd_relational.
//   TSM for small students is kd_prediction in a stage before dm.
// Formulas follow docs/ARCHITECTURE.md ("The science"), which cites EDM, DMD/DMD2, MSD and O2MKD.
#include <cmath>
#include <stdexcept>

#include <torch/torch.h>

#include "msd/edm.h"
#include "msd/loss.h"

namespace {

torch::Tensor broadcast_sigma(const torch::Tensor& sigma, const torch::Tensor& like) {
  std::vector<std::int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = like.size(0);
  return sigma.view(shape);
}

/// DMD2 distribution matching. The student's one-step samples x are noised, the frozen teacher
/// ("real" score) and an online fake-score network both denoise them, and x is pushed along
/// (mu_fake - mu_real), normalised per sample by mean |x - mu_real|.
class DistributionMatching final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::loss, "dm", "1.0",
            "DMD2 distribution matching with an online fake-score network initialised from the teacher",
            {msd::key_real("fake_lr", 1e-4, "AdamW learning rate of the fake-score network", 0.0),
             msd::key_real("fake_beta1", 0.9, "AdamW beta1 of the fake-score network", 0.0, 1.0),
             msd::key_real("fake_beta2", 0.999, "AdamW beta2 of the fake-score network", 0.0, 1.0),
             msd::key_real("fake_weight_decay", 0.01, "AdamW weight decay of the fake-score network", 0.0),
             msd::key_real("fake_grad_clip", 10.0, "max gradient norm of the fake-score network; 0 disables", 0.0),
             msd::key_int("grid_levels", 1000, "noise levels of the Karras training grid (rho = 7)", 2),
             msd::key_real("min_level", 0.02, "lowest grid fraction the DM gradient uses (DMD2: 20 of 1000)", 0.0, 1.0),
             msd::key_real("max_level", 0.98, "highest grid fraction the DM gradient uses (DMD2: 980 of 1000)", 0.0, 1.0)}};
  }

  explicit DistributionMatching(const msd::Params& params) : params_(params) {
    if (!(params.get_real("min_level") < params.get_real("max_level"))) {
      throw std::invalid_argument("dm: min_level must be below max_level");
    }
  }

  void setup(const msd::LossSetup& setup) override {
    if (setup.student_type != msd::StudentType::one_step) {
      throw std::invalid_argument("dm: distribution matching trains one-step students; this student is multi-step");
    }
    setup_ = setup;
    fake_ = setup.teacher->clone_denoiser();
    msd::set_trainable(*fake_, true);
    fake_->train();
    optimizer_ = std::make_unique<torch::optim::AdamW>(
        fake_->parameters(), torch::optim::AdamWOptions(params_.get_real("fake_lr"))
                                 .betas({params_.get_real("fake_beta1"), params_.get_real("fake_beta2")})
                                 .weight_decay(params_.get_real("fake_weight_decay")));
    grid_ = msd::edm::training_grid(params_.get_int("grid_levels"), setup.sampler.sigma_min,
                                    setup.sampler.sigma_max, 7.0)
                .to(setup.device);
  }

  std::map<std::string, double> update_auxiliary(msd::StepContext& ctx) override {
    // The fake score learns the student's current distribution with the denoising loss over the whole grid.
    const msd::GeneratedBatch& g = ctx.generated();
    torch::Tensor x = g.x.detach();
    torch::Tensor sigma = draw_sigma(x.size(0), 0, grid_.size(0) - 1);
    torch::Tensor s = broadcast_sigma(sigma, x);
    torch::Tensor denoised = fake_->denoise(x + torch::randn_like(x) * s, sigma, g.labels);
    torch::Tensor loss = msd::edm::weighted_denoising_loss(denoised, x, sigma, setup_.sigma_data);
    optimizer_->zero_grad();
    loss.backward();
    const double clip = params_.get_real("fake_grad_clip");
    if (clip > 0) torch::nn::utils::clip_grad_norm_(fake_->parameters(), clip);
    optimizer_->step();
    return {{"fake_score_loss", loss.item<double>()}};
  }

  torch::Tensor student_loss(msd::StepContext& ctx) override {
    const msd::GeneratedBatch& g = ctx.generated();
    const std::int64_t levels = grid_.size(0);
    const auto lo = static_cast<std::int64_t>(std::lround(params_.get_real("min_level") * (levels - 1)));
    const auto hi = static_cast<std::int64_t>(std::lround(params_.get_real("max_level") * (levels - 1)));
    torch::Tensor grad;
    {
      torch::NoGradGuard no_grad;
      torch::Tensor x = g.x.detach();
      torch::Tensor sigma = draw_sigma(x.size(0), lo, hi);
      torch::Tensor xt = x + torch::randn_like(x) * broadcast_sigma(sigma, x);
      torch::Tensor mu_real = setup_.teacher->denoise(xt, sigma, g.labels);
      torch::Tensor mu_fake = fake_->denoise(xt, sigma, g.labels);
      std::vector<std::int64_t> dims;
      for (std::int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
      torch::Tensor normaliser = (x - mu_real).abs().mean(dims, /*keepdim=*/true).clamp_min(1e-12);
      grad = (mu_fake - mu_real) / normaliser;
    }
    // d/dx of 0.5 ||x - stopgrad(x - grad)||^2 (mean) is grad / numel: the DMD gradient.
    return 0.5 * torch::mse_loss(g.x, (g.x - grad).detach());
  }

  void save(torch::serialize::OutputArchive& archive) const override {
    torch::serialize::OutputArchive fake, opt;
    fake_->save(fake);
    optimizer_->save(opt);
    archive.write("fake_score", fake);
    archive.write("fake_optimizer", opt);
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::serialize::InputArchive fake, opt;
    archive.read("fake_score", fake);
    archive.read("fake_optimizer", opt);
    fake_->load(fake);
    optimizer_->load(opt);
  }

 private:
  torch::Tensor draw_sigma(std::int64_t n, std::int64_t lo, std::int64_t hi) const {
    torch::Tensor index = torch::randint(lo, hi + 1, {n}, torch::TensorOptions().dtype(torch::kInt64).device(grid_.device()));
    return grid_.index_select(0, index);
  }

  msd::Params params_;
  msd::LossSetup setup_;
  std::shared_ptr<msd::Denoiser> fake_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  torch::Tensor grid_;
};

/// Regression on teacher pairs: the student maps the teacher's starting noise to the teacher's sample.
class Regression final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::loss, "regression", "1.0",
            "regression of the one-step student onto teacher noise->sample pairs (DMD's paired loss)",
            {msd::key_string("distance", "pseudo_huber",
                             "per-sample distance: l2 (squared error) or pseudo_huber sqrt(|d|^2 + c^2) - c; "
                             "LPIPS needs pretrained weights, unavailable offline",
                             {"l2", "pseudo_huber"}),
             msd::key_real("huber_c", 0.01, "pseudo-Huber constant c, in data units", 1e-9)}};
  }
  explicit Regression(const msd::Params& params) : params_(params) {}

  void setup(const msd::LossSetup& setup) override {
    if (setup.student_type != msd::StudentType::one_step) {
      throw std::invalid_argument("regression: teacher pairs train one-step students; this student is multi-step");
    }
    setup_ = setup;
  }
  bool uses_teacher_pairs() const override { return true; }

  torch::Tensor student_loss(msd::StepContext& ctx) override {
    msd::PairedBatch p = ctx.paired();
    const double s = setup_.generator_sigma;
    torch::Tensor sigma = torch::full({p.noise.size(0)}, s, p.noise.options());
    torch::Tensor x = setup_.student->denoise(p.noise * s, sigma, p.labels);
    torch::Tensor sq = (x - p.target).pow(2).reshape({x.size(0), -1}).sum(1);
    if (params_.get_string("distance") == "l2") return sq.mean();
    const double c = params_.get_real("huber_c");
    return ((sq + c * c).sqrt() - c).mean();
  }

 private:
  msd::Params params_;
  msd::LossSetup setup_;
};

/// The EDM denoising loss on the cell's noised real data.
class Diffusion final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::loss, "diffusion", "1.0",
            "EDM denoising loss lambda(sigma) ||D_student(x + sigma n) - x||^2 on real data", {}};
  }
  explicit Diffusion(const msd::Params&) {}
  void setup(const msd::LossSetup& setup) override { sigma_data_ = setup.sigma_data; }
  torch::Tensor student_loss(msd::StepContext& ctx) override {
    const msd::NoisedBatch& b = ctx.noised_real();
    return msd::edm::weighted_denoising_loss(ctx.student_on_noised().denoised, b.x0, b.sigma, sigma_data_);
  }

 private:
  double sigma_data_ = 0.5;
};

/// Knowledge distillation on the teacher's prediction; as a stage before DM it is MSD's TSM.
class PredictionKD final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::loss, "kd_prediction", "1.0",
            "KD on the teacher's denoised output, lambda(sigma) ||D_student - D_teacher||^2 (also MSD's TSM)", {}};
  }
  explicit PredictionKD(const msd::Params&) {}
  void setup(const msd::LossSetup& setup) override { sigma_data_ = setup.sigma_data; }
  torch::Tensor student_loss(msd::StepContext& ctx) override {
    const msd::NoisedBatch& b = ctx.noised_real();
    return msd::edm::weighted_denoising_loss(ctx.student_on_noised().denoised, ctx.teacher_on_noised().denoised,
                                             b.sigma, sigma_data_);
  }

 private:
  double sigma_data_ = 0.5;
};

/// Relational KD (O2MKD's most stable feature loss): match the batch's normalised pairwise similarity
/// matrices of student and teacher features. Needs no adapters: both matrices are [B, B].
class RelationalKD final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::loss, "kd_relational", "1.0",
            "relational feature KD: ||G(f_student) - G(f_teacher)||^2 with G the batch cosine-similarity matrix; "
            "student layer i is paired with teacher layer round(i (Lt-1)/(Ls-1))",
            {}};
  }
  explicit RelationalKD(const msd::Params&) {}
  torch::Tensor student_loss(msd::StepContext& ctx) override {
    const auto& fs = ctx.student_on_noised().features;
    const auto& ft = ctx.teacher_on_noised().features;
    if (fs.empty() || ft.empty()) {
      throw std::runtime_error("kd_relational: the student or teacher network exposes no features");
    }
    torch::Tensor total = torch::zeros({}, fs.front().options());
    for (size_t i = 0; i < fs.size(); ++i) {
      const size_t j = fs.size() == 1 ? ft.size() - 1
                                      : static_cast<size_t>(std::lround(static_cast<double>(i) * (ft.size() - 1) /
                                                                        static_cast<double>(fs.size() - 1)));
      total = total + (gram(fs[i]) - gram(ft[j])).pow(2).mean();
    }
    return total / static_cast<double>(fs.size());
  }

 private:
  static torch::Tensor gram(const torch::Tensor& f) {
    torch::Tensor flat = torch::nn::functional::normalize(
        f.reshape({f.size(0), -1}), torch::nn::functional::NormalizeFuncOptions().dim(1));
    return flat.matmul(flat.t());
  }
};

}  // namespace

MSD_PLUGIN_LIBRARY((msd::PluginLibrary{
    "distill_losses",
    {msd::describe<DistributionMatching>(), msd::describe<Regression>(), msd::describe<Diffusion>(),
     msd::describe<PredictionKD>(), msd::describe<RelationalKD>()}}))
