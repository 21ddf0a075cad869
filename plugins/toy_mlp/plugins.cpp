// toy_mlp: the EDM MLP teacher for vector data, and two students built from the same network:
// a one-step generator (MSD) and a smaller multi-step denoiser (O2MKD).
#include <cmath>
#include <stdexcept>

#include <torch/torch.h>

#include "mlp_denoiser.h"
#include "msd/edm.h"
#include "msd/student.h"
#include "msd/teacher.h"

namespace {

std::int64_t flat_size(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) n *= d;
  return n;
}

std::vector<msd::KeySpec> architecture_keys(std::int64_t hidden, std::int64_t blocks) {
  return {msd::key_int("hidden", hidden, "width of the hidden layers", 1, 65536),
          msd::key_int("blocks", blocks, "number of residual blocks (two linear layers each)", 1, 64),
          msd::key_int("embed", 64, "width of the noise-level and class embeddings (even)", 2, 4096)};
}

toy::MlpDenoiserOptions architecture(const msd::Params& p, std::int64_t dim, std::int64_t num_classes,
                                     double sigma_data) {
  toy::MlpDenoiserOptions o;
  o.dim = dim;
  o.num_classes = num_classes;
  o.hidden = p.get_int("hidden");
  o.blocks = p.get_int("blocks");
  o.embed = p.get_int("embed");
  o.sigma_data = sigma_data;
  return o;
}

class EdmMlpTeacher final : public msd::EdmTeacher {
 public:
  static msd::PluginInfo info() {
    std::vector<msd::KeySpec> keys = architecture_keys(128, 3);
    msd::EdmTrainingOptions training;  // defaults for the 2-D toy data
    training.steps = 4000;
    training.batch_size = 512;
    training.lr = 1e-3;
    training.ema_halflife_kimg = 50.0;
    const std::vector<msd::KeySpec> more = msd::edm_teacher_keys(training);
    keys.insert(keys.end(), more.begin(), more.end());
    return {msd::PluginKind::teacher, "edm_mlp", "1.1",
            "EDM-preconditioned residual MLP trained with the EDM loss; Heun sampler", keys};
  }

  explicit EdmMlpTeacher(const msd::Params& params) : EdmTeacher(params, "edm_mlp") {
    if (params.get_int("embed") % 2 != 0) throw std::invalid_argument("edm_mlp: embed must be even");
  }

  std::shared_ptr<msd::Denoiser> build(const std::vector<std::int64_t>& sample_shape,
                                       std::int64_t num_classes) override {
    return std::make_shared<toy::MlpDenoiser>(
        architecture(params(), flat_size(sample_shape), num_classes, sigma_data()));
  }
};

/// Shared by both students: copy the teacher, or build a fresh (usually smaller) MLP.
class MlpStudent : public msd::Student {
 public:
  explicit MlpStudent(const msd::Params& params) : params_(params) {}

  std::shared_ptr<msd::Denoiser> build(const msd::StudentContext& ctx) override {
    if (params_.get_string("init") == "teacher") {
      if (ctx.teacher == nullptr) throw std::invalid_argument("student init = \"teacher\" needs a teacher");
      std::shared_ptr<msd::Denoiser> copy = ctx.teacher->clone_denoiser();
      copy->to(torch::kCPU);
      msd::set_trainable(*copy, true);
      return copy;
    }
    return std::make_shared<toy::MlpDenoiser>(
        architecture(params_, flat_size(ctx.sample_shape), ctx.num_classes, ctx.sigma_data));
  }

 protected:
  static std::vector<msd::KeySpec> keys(std::int64_t hidden, std::int64_t blocks, const std::string& init) {
    std::vector<msd::KeySpec> k = architecture_keys(hidden, blocks);
    k.push_back(msd::key_string("init", init,
                                "teacher: start as a copy of the teacher (architecture keys ignored); "
                                "scratch: a fresh MLP of the given size",
                                {"teacher", "scratch"}));
    return k;
  }
  msd::Params params_;
};

class OneStepGenerator final : public MlpStudent {
 public:
  static msd::PluginInfo info() {
    std::vector<msd::KeySpec> k = keys(128, 3, "teacher");
    k.push_back(msd::key_real("sigma_gen", 80.0,
                              "noise level the generator is evaluated at: G(z) = D(sigma_gen z; sigma_gen)", 1e-6));
    return {msd::PluginKind::student, "one_step_generator", "1.1",
            "one-step generator G(z, c) = D(sigma_gen z; sigma_gen, c), by default a copy of the teacher", k};
  }
  explicit OneStepGenerator(const msd::Params& params) : MlpStudent(params) {}
  msd::StudentType type() const override { return msd::StudentType::one_step; }
  double generator_sigma() const override { return params_.get_real("sigma_gen"); }
};

class MultiStepMlpStudent final : public MlpStudent {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::student, "mlp_denoiser", "1.1",
            "multi-step EDM MLP denoiser, smaller than the teacher by default, sampled with the teacher's sampler",
            keys(64, 2, "scratch")};
  }
  explicit MultiStepMlpStudent(const msd::Params& params) : MlpStudent(params) {}
  msd::StudentType type() const override { return msd::StudentType::multi_step; }
};

}  // namespace

MSD_PLUGIN_LIBRARY((msd::PluginLibrary{
    "toy_mlp",
    {msd::describe<EdmMlpTeacher>(), msd::describe<OneStepGenerator>(), msd::describe<MultiStepMlpStudent>()}}))
