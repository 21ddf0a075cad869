// image_unet: the class-conditional EDM UNet teacher for images ([C, H, W]) and the one-step UNet
// student distilled from it (MSD): a copy of the teacher, or a fresh UNet scaled down in width and
// depth that starts with a TSM stage (kd_prediction) before DM.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

#include "msd/edm.h"
#include "msd/student.h"
#include "msd/teacher.h"
#include "unet.h"

namespace {

unet::UNetOptions image_options(const std::string& plugin, const std::vector<std::int64_t>& sample_shape,
                                std::int64_t num_classes, double sigma_data) {
  if (sample_shape.size() != 3) {
    std::string shape;
    for (size_t i = 0; i < sample_shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(sample_shape[i]);
    throw std::invalid_argument(plugin + ": needs image samples [C, H, W]; the dataset's sample shape is [" + shape + "]");
  }
  unet::UNetOptions o;
  o.channels = sample_shape[0];
  o.height = sample_shape[1];
  o.width = sample_shape[2];
  o.num_classes = num_classes;
  o.sigma_data = sigma_data;
  return o;
}

class EdmUNetTeacher final : public msd::EdmTeacher {
 public:
  static msd::PluginInfo info() {
    std::vector<msd::KeySpec> keys = {
        msd::key_int("base_channels", 32, "channels of the full-resolution level", 1, 4096),
        {"channel_mult", msd::KeyType::integer_list, msd::Value{std::vector<std::int64_t>{1, 2, 2}},
         "channel multiplier per level; each level after the first halves the resolution (28 -> 14 -> 7)",
         1.0, 64.0, {}},
        msd::key_int("res_blocks", 1, "residual blocks per level (the decoder has one more per level)", 1, 16),
        msd::key_bool("attention", false, "self-attention in the bottleneck (lowest resolution)"),
        msd::key_real("dropout", 0.1, "dropout probability in the residual blocks (EDM CIFAR-10: 0.13)", 0.0, 0.99),
        msd::key_int("embed", 128, "width of the noise-level + class embedding (even)", 2, 4096)};
    msd::EdmTrainingOptions training;  // defaults for 28x28 images on a CPU
    training.steps = 2000;
    training.batch_size = 64;
    training.lr = 5e-4;
    training.ema_halflife_kimg = 10.0;  // EDM's 500 (CIFAR-10) scaled down for short runs
    const std::vector<msd::KeySpec> more = msd::edm_teacher_keys(training);
    keys.insert(keys.end(), more.begin(), more.end());
    return {msd::PluginKind::teacher, "edm_unet", "1.0",
            "class-conditional EDM-preconditioned UNet for images, EDM loss, Heun sampler", keys};
  }

  explicit EdmUNetTeacher(const msd::Params& params) : EdmTeacher(params, "edm_unet") {
    if (params.get_int("embed") % 2 != 0) throw std::invalid_argument("edm_unet: embed must be even");
    if (params.get_int_list("channel_mult").empty()) {
      throw std::invalid_argument("edm_unet: channel_mult must list at least one level");
    }
  }

  std::shared_ptr<msd::Denoiser> build(const std::vector<std::int64_t>& sample_shape,
                                       std::int64_t num_classes) override {
    unet::UNetOptions o = image_options("edm_unet", sample_shape, num_classes, sigma_data());
    o.base_channels = params().get_int("base_channels");
    o.channel_mult = params().get_int_list("channel_mult");
    o.res_blocks = params().get_int("res_blocks");
    o.attention = params().get_bool("attention");
    o.dropout = params().get_real("dropout");
    o.embed = params().get_int("embed");
    unet::validate(o, "edm_unet");
    return std::make_shared<unet::UNetDenoiser>(o);
  }
};

/// Rounds `value * mult` to an integer of at least `floor`.
std::int64_t scaled(std::int64_t value, double mult, std::int64_t floor) {
  return std::max(floor, static_cast<std::int64_t>(std::lround(static_cast<double>(value) * mult)));
}

/// The keys that scale a student UNet from the teacher's.
std::vector<msd::KeySpec> scaling_keys() {
  return {msd::key_real("width_mult", 1.0,
                        "channels (and embedding width) relative to the teacher; with depth_mult = 1, 1 the "
                        "student is a copy of the teacher's weights, otherwise a fresh, randomly initialised UNet "
                        "(unet_denoiser: see init)",
                        0.01, 1.0),
          msd::key_real("depth_mult", 1.0, "residual blocks per level relative to the teacher (at least 1)", 0.01, 1.0),
          msd::key_real("dropout", 0.0,
                        "dropout of the student's residual blocks; 0 makes it deterministic (applies to UNet "
                        "teachers' copies too)",
                        0.0, 0.99)};
}

/// Copies every parameter and buffer of `from` whose name and shape `to` shares.
void copy_matching(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  const auto copy = [](const torch::OrderedDict<std::string, torch::Tensor>& sources, const std::string& name,
                       torch::Tensor& target) {
    const torch::Tensor* match = sources.find(name);
    if (match != nullptr && match->sizes().equals(target.sizes())) target.copy_(*match);
  };
  const auto parameters = from.named_parameters(true);
  const auto buffers = from.named_buffers(true);
  for (auto& item : to.named_parameters(true)) copy(parameters, item.key(), item.value());
  for (auto& item : to.named_buffers(true)) copy(buffers, item.key(), item.value());
}

/// How a student UNet starts.
enum class StudentInit {
  copy_or_fresh,   ///< a copy of the teacher at full size, else fresh (unet_generator)
  teacher_weights, ///< the teacher's weights wherever names and shapes agree (a copy at full size)
  scratch          ///< fresh at every size
};

/// A student UNet for `plugin`, scaled from the teacher's options by width_mult and depth_mult.
std::shared_ptr<msd::Denoiser> student_unet(const msd::StudentContext& ctx, const msd::Params& params,
                                            const std::string& plugin, StudentInit init) {
  if (ctx.teacher == nullptr) throw std::invalid_argument(plugin + ": needs the trained teacher");
  const double width = params.get_real("width_mult");
  const double depth = params.get_real("depth_mult");
  const double dropout = params.get_real("dropout");
  const auto* teacher = dynamic_cast<const unet::UNetDenoiser*>(ctx.teacher);
  if (width == 1.0 && depth == 1.0 && init != StudentInit::scratch) {
    std::shared_ptr<msd::Denoiser> copy = ctx.teacher->clone_denoiser();
    copy->to(torch::kCPU);
    msd::set_trainable(*copy, true);
    if (auto* net = dynamic_cast<unet::UNetDenoiser*>(copy.get())) net->set_dropout(dropout);
    return copy;
  }
  if (teacher == nullptr) {
    throw std::invalid_argument(plugin + ": width_mult/depth_mult below 1 (or init = \"scratch\") scale the teacher's "
                                "UNet, but the teacher is not an edm_unet network; use a copy of the teacher");
  }
  unet::UNetOptions o = teacher->options();
  o.base_channels = scaled(o.base_channels, width, 1);
  o.embed = 2 * scaled(o.embed / 2, width, 1);
  o.res_blocks = scaled(o.res_blocks, depth, 1);
  o.dropout = dropout;
  auto student = std::make_shared<unet::UNetDenoiser>(o);
  if (init == StudentInit::teacher_weights) {
    const auto cpu_teacher = teacher->clone_denoiser();
    cpu_teacher->to(torch::kCPU);
    copy_matching(*cpu_teacher, *student);
  }
  return student;
}

class UNetGenerator final : public msd::Student {
 public:
  static msd::PluginInfo info() {
    std::vector<msd::KeySpec> keys{msd::key_real(
        "generator_sigma", 80.0,
        "noise level the generator is evaluated at: G(z) = D(generator_sigma z; generator_sigma) (DMD: the "
        "teacher's sigma_max)",
        1e-6)};
    for (const msd::KeySpec& key : scaling_keys()) keys.push_back(key);
    return {msd::PluginKind::student, "unet_generator", "1.0",
            "one-step UNet generator G(z, c) = D(sigma_gen z; sigma_gen, c): a copy of the teacher, or a "
            "fresh UNet scaled down in width/depth (train it with a TSM stage, kd_prediction, before DM)",
            keys};
  }

  explicit UNetGenerator(const msd::Params& params) : params_(params) {}

  msd::StudentType type() const override { return msd::StudentType::one_step; }
  double generator_sigma() const override { return params_.get_real("generator_sigma"); }

  std::shared_ptr<msd::Denoiser> build(const msd::StudentContext& ctx) override {
    return student_unet(ctx, params_, "unet_generator", StudentInit::copy_or_fresh);
  }

 private:
  msd::Params params_;
};

/// O2MKD's students: multi-step UNet denoisers, sampled with the teacher's sampler, each for its noise
/// range, scaled from the teacher's UNet by the same code.
class UNetStudent final : public msd::Student {
 public:
  static msd::PluginInfo info() {
    std::vector<msd::KeySpec> keys = scaling_keys();
    keys.push_back(msd::key_string("init", "teacher",
                                   "teacher: start from the teacher's weights wherever names and shapes agree (all "
                                   "of them at width_mult = depth_mult = 1; with fewer blocks, the embeddings, the "
                                   "input and output layers, the bottleneck and the blocks that keep their place; none "
                                   "when width shrinks); scratch: a fresh UNet",
                                   {"teacher", "scratch"}));
    return {msd::PluginKind::student, "unet_denoiser", "1.0",
            "multi-step UNet denoiser (O2MKD's student), the teacher's UNet scaled in width and depth, sampled "
            "with the teacher's sampler",
            keys};
  }

  explicit UNetStudent(const msd::Params& params) : params_(params) {}

  msd::StudentType type() const override { return msd::StudentType::multi_step; }

  std::shared_ptr<msd::Denoiser> build(const msd::StudentContext& ctx) override {
    return student_unet(ctx, params_, "unet_denoiser",
                        params_.get_string("init") == "teacher" ? StudentInit::teacher_weights : StudentInit::scratch);
  }

 private:
  msd::Params params_;
};

}  // namespace

MSD_PLUGIN_LIBRARY((msd::PluginLibrary{"image_unet",
                                       {msd::describe<EdmUNetTeacher>(), msd::describe<UNetGenerator>(),
                                        msd::describe<UNetStudent>()}}))
