#include "feature_kd.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "msd/loss.h"

namespace distill {
namespace {

/// A 1x1 map from the student's channels to the teacher's: a 1x1 convolution for [B, C, h, w] features,
/// a linear map for [B, C]. It starts as the identity when the widths agree, else as torch::nn::Linear
/// starts (uniform in +-1/sqrt(in)), with a zero bias.
class Adapter : public torch::nn::Module {
 public:
  Adapter(std::int64_t in, std::int64_t out) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    weight_ = register_parameter("weight", in == out ? torch::eye(in) : torch::empty({out, in}).uniform_(-bound, bound));
    bias_ = register_parameter("bias", torch::zeros({out}));
  }

  torch::Tensor forward(const torch::Tensor& f) const {
    if (f.dim() == 2) return torch::addmm(bias_, f, weight_.t());
    return torch::conv2d(f, weight_.view({weight_.size(0), weight_.size(1), 1, 1}), bias_);
  }

 private:
  torch::Tensor weight_, bias_;
};

/// Feature KD (FitNets-style, as O2MKD applies it): at each chosen student feature, a learned 1x1 adapter
/// A maps the student's channels to the teacher's, and the loss is the relative squared error
///   ||A(f_s) - f_t||^2 / ||f_t||^2   (sums over the whole batch and feature; the denominator detached),
/// averaged over the chosen features, so that features of different scales weigh alike and the value
/// reads as a fraction of the teacher feature's energy. The adapters belong to the loss and train with
/// the student (Loss::extra_parameters); where student and teacher widths agree an adapter starts as
/// the identity, so a student copied from the teacher starts at zero loss.
///
/// Pairing: a student feature goes with the teacher's feature of the same name when the teacher has
/// one (UNet students of the teacher's levels), else, as kd_relational pairs them, with teacher feature
/// round(i (Lt - 1) / (Ls - 1)) for student feature i of Ls (MLPs of different depth).
class FeatureKD final : public msd::Loss {
 public:
  static msd::PluginInfo info() {
    msd::KeySpec features{"features", msd::KeyType::string_list, msd::Value{std::vector<std::string>{}},
                          "the student's features to distil, by name (Denoiser::feature_names, e.g. \"mid\", "
                          "\"enc.0\", \"block.1\"); empty: all of them"};
    return {msd::PluginKind::loss, "kd_feature", "1.0",
            "feature KD through learned 1x1 adapters: ||A(f_student) - f_teacher||^2 / ||f_teacher||^2, averaged "
            "over the chosen features",
            {features}};
  }

  explicit FeatureKD(const msd::Params& params) : chosen_(params.get_string_list("features")) {}

  void setup(const msd::LossSetup& setup) override {
    const std::vector<std::string> student_names = setup.student->feature_names();
    const std::vector<std::string> teacher_names = setup.teacher->feature_names();
    if (student_names.empty() || teacher_names.empty()) {
      throw std::invalid_argument("kd_feature: the student or the teacher network names no features");
    }
    const msd::DenoiserOutput student_probe = probe(*setup.student, setup);
    const msd::DenoiserOutput teacher_probe = probe(*setup.teacher, setup);
    for (const std::string& name : chosen_.empty() ? student_names : chosen_) {
      const auto at = std::find(student_names.begin(), student_names.end(), name);
      if (at == student_names.end()) {
        throw std::invalid_argument("kd_feature: features lists '" + name + "', which the student does not name; "
                                    "it names " + joined(student_names));
      }
      const auto student_index = static_cast<size_t>(at - student_names.begin());
      const size_t teacher = teacher_index(name, student_index, student_names.size(), teacher_names);
      const auto [in, out] =
          adapter_width(student_probe.features.at(student_index), teacher_probe.features.at(teacher), name);
      auto adapter = std::make_shared<Adapter>(in, out);
      adapter->to(setup.device);
      adapters_->register_module(std::to_string(pairs_.size()), adapter);
      pairs_.push_back({student_index, teacher, adapter});
    }
  }

  torch::Tensor student_loss(msd::StepContext& ctx) override {
    const auto& fs = ctx.student_on_noised().features;
    const auto& ft = ctx.teacher_on_noised().features;
    torch::Tensor total;
    for (const Pair& pair : pairs_) {
      const torch::Tensor& target = ft.at(pair.teacher);
      torch::Tensor mapped = pair.adapter->forward(fs.at(pair.student));
      torch::Tensor term = (mapped - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12).detach();
      total = total.defined() ? total + term : term;
    }
    return total / static_cast<double>(pairs_.size());
  }

  std::vector<torch::Tensor> extra_parameters() override { return adapters_->parameters(); }

  void save(torch::serialize::OutputArchive& archive) const override {
    torch::serialize::OutputArchive adapters;
    adapters_->save(adapters);
    archive.write("adapters", adapters);
  }
  void load(torch::serialize::InputArchive& archive) override {
    torch::serialize::InputArchive adapters;
    if (archive.try_read("adapters", adapters)) adapters_->load(adapters);
  }

 private:
  /// A student feature, the teacher feature it is matched to, and the adapter between them.
  struct Pair {
    size_t student, teacher;
    std::shared_ptr<Adapter> adapter;
  };

  static std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
    return out;
  }

  /// One forward pass on a zero sample, for the features' shapes.
  static msd::DenoiserOutput probe(msd::Denoiser& net, const msd::LossSetup& setup) {
    torch::NoGradGuard no_grad;
    std::vector<std::int64_t> shape{1};
    shape.insert(shape.end(), setup.sample_shape.begin(), setup.sample_shape.end());
    const auto on = torch::TensorOptions().device(setup.device);
    return net.denoise_with_features(torch::zeros(shape, on), torch::ones({1}, on),
                                     torch::zeros({1}, on.dtype(torch::kInt64)));
  }

  /// {in, out} channels of the adapter from `student` to `teacher` ([B, C] or [B, C, h, w], equal otherwise).
  static std::pair<std::int64_t, std::int64_t> adapter_width(const torch::Tensor& student, const torch::Tensor& teacher,
                                                             const std::string& name) {
    const bool flat = student.dim() == 2 && teacher.dim() == 2;
    const bool maps = student.dim() == 4 && teacher.dim() == 4 && student.size(2) == teacher.size(2) &&
                      student.size(3) == teacher.size(3);
    if (!flat && !maps) {
      throw std::invalid_argument("kd_feature: feature '" + name + "' is " + c10::str(student.sizes()) +
                                  " in the student and " + c10::str(teacher.sizes()) +
                                  " in the teacher's feature it is paired with; a 1x1 adapter needs [B, C] or "
                                  "[B, C, h, w] with the same h and w");
    }
    return {student.size(1), teacher.size(1)};
  }

  static size_t teacher_index(const std::string& name, size_t student, size_t student_count,
                              const std::vector<std::string>& teacher_names) {
    const auto same = std::find(teacher_names.begin(), teacher_names.end(), name);
    if (same != teacher_names.end()) return static_cast<size_t>(same - teacher_names.begin());
    return paired_position(student, student_count, teacher_names.size());
  }

  std::vector<std::string> chosen_;
  std::vector<Pair> pairs_;
  std::shared_ptr<torch::nn::Module> adapters_ = std::make_shared<torch::nn::Module>();  // for saving
};

}  // namespace

std::size_t paired_position(std::size_t student, std::size_t student_count, std::size_t teacher_count) {
  if (student_count == 1) return teacher_count - 1;
  return static_cast<std::size_t>(std::lround(static_cast<double>(student) * static_cast<double>(teacher_count - 1) /
                                              static_cast<double>(student_count - 1)));
}

msd::PluginDescriptor feature_kd_plugin() { return msd::describe<FeatureKD>(); }

}  // namespace distill
