// image_metrics: distribution metrics in the feature space of the dataset's own classifier.
//
// Generated samples are compared with the TEST split: the feature network was trained on the training
// split, so its features of training images are fitted (tighter, more confidently classified) and a
// model that memorised training images would look better against them than it is. The floor compares
// training images with the same test images: what a perfect sampler of the training distribution
// scores at this sample count. FD and KID are biased by the sample count, so the floor uses the same
// count as the model's value.
#include "image_metrics.h"

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "feature_stats.h"
#include "msd/dataset.h"
#include "msd/metric.h"

namespace msd::fmnist {
namespace {

/// `info` with the values it shows as columns of the run summary (PluginInfo::metric).
PluginInfo with_summary(PluginInfo info, std::vector<SummaryColumn> columns) {
  info.metric.summary = std::move(columns);
  return info;
}

class ImageMetrics final : public Metric {
 public:
  static PluginInfo info() {
    return with_summary({PluginKind::metric,
            "image_metrics",
            "1.0.0",
            "FD, KID, precision/recall and conditional accuracy in the dataset's feature network, with the "
            "real-data floor (train vs test split)",
            {key_int("samples", 10000,
                     "generated samples compared with as many distinct test images (the floor draws as many "
                     "training images); Fashion-MNIST's test split holds 1000 per class",
                     2),
             key_int("kid_subset_size", 1000, "samples of each set in one KID subset", 2),
             key_int("kid_subsets", 100, "random subsets KID is averaged over", 1, 1e5),
             key_int("pr_k", 3, "neighbour whose distance is a point's manifold radius (Kynkäänniemi et al.: 3)", 1,
                     1000),
             key_bool("per_class", true, "also report fd and cond_accuracy of each class (scope class:<c>)"),
             key_bool("floor", true, "also report every value for training images in place of generated ones "
                                     "(names floor.<metric>)")}}, {{"fd", "fd"}, {"kid", "kid"}, {"precision", "precision"}, {"recall", "recall"}, {"cond_accuracy", "cond_acc"}});
  }

  explicit ImageMetrics(const Params& params)
      : samples_(params.get_int("samples")),
        kid_{params.get_int("kid_subset_size"), params.get_int("kid_subsets")},
        pr_k_(params.get_int("pr_k")),
        per_class_(params.get_bool("per_class")),
        floor_(params.get_bool("floor")) {
    if (kid_.subset_size > samples_) {
      throw std::invalid_argument("image_metrics: kid_subset_size (" + std::to_string(kid_.subset_size) +
                                  ") exceeds samples (" + std::to_string(samples_) + ")");
    }
  }

  void check(std::int64_t samples) const override {
    if (samples < samples_) throw std::invalid_argument(too_few(samples));
  }

  std::vector<MetricValue> evaluate(const EvalContext& ctx) override {
    const FeatureSpace* space = ctx.data != nullptr ? ctx.data->feature_space() : nullptr;
    if (space == nullptr) {
      throw std::runtime_error("image_metrics: the dataset has no feature network (Dataset::feature_space() is null); "
                               "use a dataset that trains one, such as fashion_mnist");
    }
    if (ctx.generated.x.size(0) < samples_) throw std::runtime_error(too_few(ctx.generated.x.size(0)));
    // The host's labels cycle through the classes, so the first n stay balanced.
    const torch::Tensor labels = ctx.generated.labels.narrow(0, 0, samples_).to(torch::kCPU, torch::kInt64);
    const Embedding generated = space->embed(ctx.generated.x.narrow(0, 0, samples_));
    const Embedding reference = space->embed(ctx.data->sample_distinct(Split::test, labels));

    std::vector<MetricValue> out{{"feature_net.test_accuracy", space->test_accuracy(), ""},
                                 {"samples", static_cast<double>(samples_), ""}};
    compare("", generated, reference, labels, out);
    if (floor_) {
      const Embedding train = space->embed(ctx.data->sample_distinct(Split::train, labels));
      out.push_back({"floor.samples", static_cast<double>(samples_), ""});
      compare("floor.", train, reference, labels, out);
    }
    return out;
  }

 private:
  std::string too_few(std::int64_t generated) const {
    return "image_metrics: samples = " + std::to_string(samples_) + " but the model under test generates " +
           std::to_string(generated) + " (evaluate.samples); raise evaluate.samples or lower image_metrics.samples";
  }
  // Every value for `candidate` against the test `reference`, both carrying `labels`.
  void compare(const std::string& prefix, const Embedding& candidate, const Embedding& reference,
               const torch::Tensor& labels, std::vector<MetricValue>& out) const {
    out.push_back({prefix + "fd", frechet_distance(fit_gaussian(candidate.features), fit_gaussian(reference.features)), ""});
    out.push_back({prefix + "kid", kernel_inception_distance(candidate.features, reference.features, kid_), ""});
    const PrecisionRecall pr = precision_recall(reference.features, candidate.features, pr_k_);
    out.push_back({prefix + "precision", pr.precision, ""});
    out.push_back({prefix + "recall", pr.recall, ""});
    out.push_back({prefix + "cond_accuracy", conditional_accuracy(candidate.logits, labels), ""});
    if (!per_class_) return;
    const std::int64_t classes = candidate.logits.size(1);
    for (std::int64_t c = 0; c < classes; ++c) {
      const torch::Tensor rows = torch::nonzero(labels == c).squeeze(1);
      const std::string scope = "class:" + std::to_string(c);
      // A covariance needs two samples; fewer gives no value rather than a wrong one.
      const double fd = rows.numel() < 2 ? std::numeric_limits<double>::quiet_NaN()
                                         : frechet_distance(fit_gaussian(candidate.features.index_select(0, rows)),
                                                            fit_gaussian(reference.features.index_select(0, rows)));
      out.push_back({prefix + "fd", fd, scope});
      out.push_back({prefix + "cond_accuracy",
                     conditional_accuracy(candidate.logits.index_select(0, rows), labels.index_select(0, rows)), scope});
    }
  }

  std::int64_t samples_;
  KidOptions kid_;
  std::int64_t pr_k_;
  bool per_class_;
  bool floor_;
};

}  // namespace

PluginDescriptor image_metrics_plugin() { return describe<ImageMetrics>(); }

}  // namespace msd::fmnist
