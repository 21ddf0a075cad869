// The image_metrics plugin's descriptor, so that the library's one entry point (fashion_mnist.cpp) can
// list it without this header pulling in LibTorch.
#pragma once

#include "msd/plugin.h"

namespace msd::fmnist {

/// image_metrics: Fréchet distance, KID, precision/recall, conditional accuracy and their floor, in
/// the dataset's feature space (Dataset::feature_space()).
PluginDescriptor image_metrics_plugin();

}  // namespace msd::fmnist
