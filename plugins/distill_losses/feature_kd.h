// kd_feature: O2MKD's feature distillation through learned adapters.
#pragma once

#include "msd/plugin.h"

namespace distill {

/// The descriptor of the kd_feature loss plugin.
msd::PluginDescriptor feature_kd_plugin();

}  // namespace distill
