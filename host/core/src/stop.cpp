#include "msd/host/stop.h"

namespace msd::host {

std::atomic<bool> g_stop_requested{false};

}  // namespace msd::host
