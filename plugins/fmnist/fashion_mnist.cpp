// fashion_mnist: the Fashion-MNIST images (Debian package dataset-fashion-mnist) as a class-conditional
// dataset with values in [-1, 1], plus the feature network its image metrics embed samples with.
//
// No pretrained network (Inception-v3 for FID) is available offline, so the feature network is a small
// CNN classifier trained here on the training split, cached under <cache>/fashion_mnist/ by a hash of
// everything that changes its weights, and scored on the whole test split each time it is loaded.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "idx.h"
#include "image_metrics.h"
#include "msd/atomic_file.h"
#include "msd/cache_lock.h"
#include "msd/dataset.h"
#include "msd/plugin.h"

namespace {

constexpr std::int64_t kClasses = 10;
constexpr std::int64_t kSide = 28;
/// Part of the classifier's cache key: bump when its architecture or training procedure changes.
constexpr const char* kClassifierVersion = "cnn-bn-2conv-v1";

const std::array<const char*, kClasses> kClassNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                       "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// 64-bit FNV-1a: a stable hash for cache keys, independent of the standard library's std::hash.
std::uint64_t fnv1a(const void* data, size_t size, std::uint64_t h = 0xcbf29ce484222325ULL) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}

std::string hex(std::uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

// Grey levels 0..255 to the platform's data range [-1, 1].
torch::Tensor to_data(const torch::Tensor& pixels) { return pixels.to(torch::kFloat32) / 127.5 - 1.0; }

/// The standard deviation of every value of `pixels` (uint8) in the data range, exactly, from the
/// histogram of its grey levels.
double value_std(const torch::Tensor& pixels) {
  const torch::Tensor counts = torch::bincount(pixels.reshape({-1}).to(torch::kInt64), {}, 256).to(torch::kFloat64);
  const torch::Tensor values = to_data(torch::arange(256)).to(torch::kFloat64);
  const double n = counts.sum().item<double>();
  const double mean = (counts * values).sum().item<double>() / n;
  const double second = (counts * values.pow(2)).sum().item<double>() / n;
  return std::sqrt(second - mean * mean);
}

/// One split in memory: uint8 pixels (a quarter of float32's memory) and the images of each class.
struct SplitTensors {
  torch::Tensor pixels;                   // [N, 1, 28, 28] uint8
  torch::Tensor labels;                   // [N] int64
  std::vector<torch::Tensor> of_class;    // [classes] int64 indices into pixels

  static SplitTensors from(msd::fmnist::SplitData data, std::int64_t limit) {
    const std::int64_t n = limit > 0 ? std::min(limit, data.count) : data.count;
    SplitTensors s;
    s.pixels = torch::from_blob(data.pixels.data(), {data.count, 1, data.rows, data.cols}, torch::kUInt8)
                   .narrow(0, 0, n)
                   .clone();
    s.labels = torch::from_blob(data.labels.data(), {data.count}, torch::kUInt8).narrow(0, 0, n).to(torch::kInt64);
    for (std::int64_t c = 0; c < kClasses; ++c) s.of_class.push_back(torch::nonzero(s.labels == c).squeeze(1));
    return s;
  }
  std::int64_t size() const { return pixels.size(0); }
};

// --- the feature network ------------------------------------------------------------------------

/// Shape of the classifier.
struct ClassifierOptions {
  std::int64_t width = 16;      ///< channels of the first convolution; the second has twice as many
  std::int64_t features = 128;  ///< width of the penultimate layer, the feature space metrics use
};

/// Two conv-BN-ReLU-maxpool blocks (28 -> 14 -> 7), a fully connected feature layer, a linear head.
/// Features are the penultimate ReLU activations, as FID uses Inception-v3's last pooling layer.
class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const ClassifierOptions& o)
      : conv1_(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, o.width, 3).padding(1)))),
        bn1_(register_module("bn1", torch::nn::BatchNorm2d(o.width))),
        conv2_(register_module("conv2",
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(o.width, 2 * o.width, 3).padding(1)))),
        bn2_(register_module("bn2", torch::nn::BatchNorm2d(2 * o.width))),
        fc_(register_module("fc", torch::nn::Linear(2 * o.width * 7 * 7, o.features))),
        head_(register_module("head", torch::nn::Linear(o.features, kClasses))) {}

  msd::Embedding forward(const torch::Tensor& x) {
    torch::Tensor h = torch::max_pool2d(torch::relu(bn1_(conv1_(x))), 2);
    h = torch::max_pool2d(torch::relu(bn2_(conv2_(h))), 2);
    torch::Tensor features = torch::relu(fc_(h.flatten(1)));
    return {features, head_(features)};
  }

 private:
  torch::nn::Conv2d conv1_;
  torch::nn::BatchNorm2d bn1_;
  torch::nn::Conv2d conv2_;
  torch::nn::BatchNorm2d bn2_;
  torch::nn::Linear fc_;
  torch::nn::Linear head_;
};
TORCH_MODULE(Classifier);

/// How the classifier is trained.
struct TrainOptions {
  std::int64_t epochs = 4;  ///< passes over the training split
  std::int64_t batch = 128; ///< images per Adam step
  double lr = 2e-3;         ///< Adam's initial learning rate, decayed linearly to zero
  std::uint64_t seed = 0;   ///< initial weights and batch order
};

class FeatureNetwork final : public msd::FeatureSpace {
 public:
  FeatureNetwork(Classifier net, std::int64_t dim, torch::Device device, std::string id, const SplitTensors& test)
      : net_(std::move(net)), dim_(dim), device_(device), id_(std::move(id)) {
    net_->to(device_);
    net_->eval();
    const torch::Tensor predicted = embed(to_data(test.pixels)).logits.argmax(1);
    test_accuracy_ = (predicted == test.labels).to(torch::kFloat64).mean().item<double>();
  }

  msd::Embedding embed(const torch::Tensor& x) const override {
    // Chunks bound the activation memory of 10^4-10^5 images; BatchNorm in eval mode makes the result
    // independent of the chunking.
    constexpr std::int64_t kChunk = 1000;
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> features;
    std::vector<torch::Tensor> logits;
    for (std::int64_t i = 0; i < x.size(0); i += kChunk) {
      const torch::Tensor part = x.slice(0, i, std::min(i + kChunk, x.size(0))).to(device_, torch::kFloat32);
      msd::Embedding e = net_->forward(part.view({-1, 1, kSide, kSide}));
      features.push_back(e.features.to(torch::kCPU));
      logits.push_back(e.logits.to(torch::kCPU));
    }
    if (features.empty()) return {torch::zeros({0, dim_}), torch::zeros({0, kClasses})};
    return {torch::cat(features), torch::cat(logits)};
  }
  double test_accuracy() const override { return test_accuracy_; }
  std::string id() const override { return id_; }

 private:
  mutable Classifier net_;  // forward() is not const in LibTorch, though eval-mode inference changes nothing
  std::int64_t dim_;
  torch::Device device_;
  std::string id_;
  double test_accuracy_ = 0.0;
};

Classifier train_classifier(const ClassifierOptions& shape, const TrainOptions& o, const SplitTensors& train,
                            const msd::DatasetContext& ctx) {
  // The classifier's own seed, not the run's: every run of an experiment, whatever its seed, is then
  // measured in the same feature space (the host reseeds torch before its next phase).
  torch::manual_seed(o.seed);
  Classifier net(shape);
  net->to(ctx.device);
  net->train();
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(o.lr));
  const std::int64_t n = train.size();
  const std::int64_t per_epoch = (n + o.batch - 1) / o.batch;
  const std::int64_t total = o.epochs * per_epoch;
  std::int64_t step = 0;
  for (std::int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    const torch::Tensor order = torch::randperm(n, torch::kInt64);
    for (std::int64_t i = 0; i < n; i += o.batch, ++step) {
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamOptions&>(group.options())
            .lr(o.lr * (1.0 - static_cast<double>(step) / static_cast<double>(total)));
      }
      const torch::Tensor idx = order.slice(0, i, std::min(i + o.batch, n));
      const torch::Tensor x = to_data(train.pixels.index_select(0, idx)).to(ctx.device);
      const torch::Tensor y = train.labels.index_select(0, idx).to(ctx.device);
      const torch::Tensor loss = torch::cross_entropy_loss(net->forward(x).logits, y);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      if (ctx.monitor != nullptr) ctx.monitor->progress("fashion_mnist feature network", step + 1, total, loss.item<double>());
    }
  }
  net->eval();
  return net;
}

// --- the dataset --------------------------------------------------------------------------------

class FashionMnist final : public msd::Dataset {
 public:
  static msd::PluginInfo info() {
    return {msd::PluginKind::dataset,
            "fashion_mnist",
            "1.0.0",
            "Fashion-MNIST 28x28 grey images in 10 classes, values in [-1, 1], with a trained feature network "
            "for image metrics",
            {msd::key_string("folder", msd::fmnist::kDefaultFolder,
                             "folder holding the four gzip IDX files (apt-get install dataset-fashion-mnist)"),
             msd::key_int("train_limit", 0,
                          "use only the first n training images, for smoke runs; 0 = all 60000", 0, 60000),
             msd::key_int("classifier_epochs", 4, "training passes of the feature network over the training split",
                          1, 1000),
             msd::key_int("classifier_width", 16,
                          "channels of the feature network's first convolution (second: 2x); 16 with 4 epochs "
                          "reaches 91.4% test accuracy in ~100 CPU-seconds",
                          1, 1024),
             msd::key_int("classifier_features", 128, "dimension of the feature space the image metrics use", 2, 4096),
             msd::key_int("classifier_batch", 128, "images per step of the feature network's training", 1, 60000),
             msd::key_real("classifier_lr", 2e-3, "Adam learning rate of the feature network, decayed linearly to 0",
                           0.0),
             msd::key_int("classifier_seed", 0,
                          "seed of the feature network's weights and batch order; independent of the run's seed "
                          "so that runs of every seed are measured in one feature space",
                          0)}};
  }

  explicit FashionMnist(const msd::Params& params)
      : folder_(params.get_string("folder")), train_limit_(params.get_int("train_limit")) {
    shape_.width = params.get_int("classifier_width");
    shape_.features = params.get_int("classifier_features");
    training_.epochs = params.get_int("classifier_epochs");
    training_.batch = params.get_int("classifier_batch");
    training_.lr = params.get_real("classifier_lr");
    training_.seed = static_cast<std::uint64_t>(params.get_int("classifier_seed"));
  }

  void prepare(const msd::DatasetContext& ctx) override {
    train_ = SplitTensors::from(msd::fmnist::read_split(folder_, msd::fmnist::train_split()), train_limit_);
    test_ = SplitTensors::from(msd::fmnist::read_split(folder_, msd::fmnist::test_split()), 0);
    for (std::int64_t c = 0; c < kClasses; ++c) {
      if (train_.of_class[c].numel() == 0) {
        throw std::runtime_error("fashion_mnist: train_limit = " + std::to_string(train_limit_) +
                                 " leaves no training image of class " + std::to_string(c) + " (" + kClassNames[c] +
                                 "); raise it");
      }
    }
    sigma_data_ = value_std(train_.pixels);
    const std::string id = classifier_id(ctx.device);
    const std::filesystem::path file = ctx.cache / "fashion_mnist" / ("classifier-" + id + ".pt");
    Classifier net(shape_);
    // Runs started together (sweep workers) wait for the one training the classifier: on a GPU two
    // trainings differ, and runs measured in different feature spaces could not be compared.
    const msd::CacheLock lock(file.string() + ".lock");
    if (std::filesystem::exists(file)) {
      try {
        torch::load(net, file.string());
      } catch (const c10::Error& e) {
        const std::string why = e.what_without_backtrace();
        throw std::runtime_error("fashion_mnist: the cached feature classifier " + file.string() + " cannot be read (" +
                                 why.substr(0, why.find('\n')) + "); delete it, and the next run trains it again");
      }
    } else {
      const auto start = std::chrono::steady_clock::now();
      net = train_classifier(shape_, training_, train_, ctx);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (ctx.monitor != nullptr) ctx.monitor->metric("feature_net.train_seconds", 0, seconds, "");
      // Whole or not at all, so that a run started beside this one never loads a half-written file.
      std::ostringstream bytes;
      torch::save(net, bytes);
      msd::write_file_atomically(file, bytes.str());
    }
    features_ = std::make_unique<FeatureNetwork>(net, shape_.features, ctx.device, id, test_);
  }

  std::vector<std::int64_t> sample_shape() const override { return {1, kSide, kSide}; }
  std::int64_t num_classes() const override { return kClasses; }
  double sigma_data() const override {
    if (sigma_data_ == 0.0) throw std::logic_error("fashion_mnist: sigma_data() called before prepare()");
    return sigma_data_;
  }
  std::string class_name(std::int64_t c) const override {
    return c >= 0 && c < kClasses ? kClassNames[c] : std::to_string(c);
  }

  msd::Batch sample(std::int64_t n, const std::vector<std::int64_t>& classes) override {
    torch::Tensor labels;
    if (classes.empty()) {
      labels = torch::randint(kClasses, {n}, torch::kInt64);
    } else {
      const torch::Tensor allowed = torch::tensor(classes, torch::kInt64);
      labels = allowed.index_select(0, torch::randint(allowed.numel(), {n}, torch::kInt64));
    }
    return {sample_given(labels), labels};
  }

  // Training images, drawn with replacement within each class.
  torch::Tensor sample_given(const torch::Tensor& labels) override {
    const SplitTensors& split = prepared(train_);
    check_labels(labels);
    torch::Tensor index = torch::empty({labels.numel()}, torch::kInt64);
    for (std::int64_t c = 0; c < kClasses; ++c) {
      const torch::Tensor where = torch::nonzero(labels == c).squeeze(1);
      if (where.numel() == 0) continue;
      const torch::Tensor pool = split.of_class[c];
      index.index_put_({where}, pool.index_select(0, torch::randint(pool.numel(), {where.numel()}, torch::kInt64)));
    }
    return to_data(split.pixels.index_select(0, index));
  }

  torch::Tensor sample_distinct(msd::Split which, const torch::Tensor& labels) override {
    const bool test = which == msd::Split::test;
    const SplitTensors& split = prepared(test ? test_ : train_);
    check_labels(labels);
    torch::Tensor index = torch::empty({labels.numel()}, torch::kInt64);
    for (std::int64_t c = 0; c < kClasses; ++c) {
      const torch::Tensor where = torch::nonzero(labels == c).squeeze(1);
      const torch::Tensor pool = split.of_class[c];
      if (where.numel() > pool.numel()) {
        throw std::runtime_error("fashion_mnist: asked for " + std::to_string(where.numel()) + " distinct " +
                                 (test ? "test" : "training") + " images of class " + std::to_string(c) + " (" +
                                 kClassNames[c] + ") but the split holds " + std::to_string(pool.numel()));
      }
      if (where.numel() == 0) continue;
      index.index_put_({where}, pool.index_select(0, torch::randperm(pool.numel(), torch::kInt64).narrow(0, 0, where.numel())));
    }
    return to_data(split.pixels.index_select(0, index));
  }

  const msd::FeatureSpace* feature_space() const override { return features_.get(); }

  std::vector<std::vector<double>> class_features() const override {
    if (!features_) throw std::logic_error("fashion_mnist: class_features() called before prepare()");
    // Computed on first use only: a pass over 60000 images costs seconds that most runs do not need.
    if (class_features_.empty()) {
      const torch::Tensor features = features_->embed(to_data(train_.pixels)).features.to(torch::kFloat64);
      for (std::int64_t c = 0; c < kClasses; ++c) {
        const torch::Tensor mean = features.index_select(0, train_.of_class[c]).mean(0).contiguous();
        class_features_.emplace_back(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
      }
    }
    return class_features_;
  }

 private:
  const SplitTensors& prepared(const SplitTensors& split) const {
    if (!split.pixels.defined()) throw std::logic_error("fashion_mnist: sampled before prepare() loaded the files");
    return split;
  }

  static void check_labels(const torch::Tensor& labels) {
    if (labels.numel() > 0 && (labels.min().item<std::int64_t>() < 0 || labels.max().item<std::int64_t>() >= kClasses)) {
      throw std::invalid_argument("fashion_mnist: labels must lie in 0.." + std::to_string(kClasses - 1));
    }
  }

  // Everything that changes the classifier's weights: the training images and labels, its shape and
  // training options, its code version and the device kind (CUDA kernels round differently).
  std::string classifier_id(const torch::Device& device) const {
    char lr[32];
    std::snprintf(lr, sizeof(lr), "%.17g", training_.lr);
    const std::string settings = std::string(kClassifierVersion) + "/w" + std::to_string(shape_.width) + "/f" +
                                 std::to_string(shape_.features) + "/e" + std::to_string(training_.epochs) + "/b" +
                                 std::to_string(training_.batch) + "/lr" + lr + "/s" + std::to_string(training_.seed) +
                                 "/" + (device.is_cuda() ? "cuda" : "cpu");
    std::uint64_t h = fnv1a(settings.data(), settings.size());
    h = fnv1a(train_.pixels.data_ptr(), static_cast<size_t>(train_.pixels.numel()), h);
    const torch::Tensor labels = train_.labels.contiguous();
    return hex(fnv1a(labels.data_ptr(), static_cast<size_t>(labels.numel()) * sizeof(std::int64_t), h));
  }

  std::string folder_;
  std::int64_t train_limit_;
  ClassifierOptions shape_;
  double sigma_data_ = 0.0;  // of the training split, in the data range
  TrainOptions training_;
  SplitTensors train_;
  SplitTensors test_;
  std::unique_ptr<FeatureNetwork> features_;
  mutable std::vector<std::vector<double>> class_features_;
};

}  // namespace

MSD_PLUGIN_LIBRARY((msd::PluginLibrary{"fmnist", {msd::describe<FashionMnist>(), msd::fmnist::image_metrics_plugin()}}))
