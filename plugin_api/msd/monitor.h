// How long-running plugin work (teacher training, auxiliary networks) reports back to the host.
#pragma once

#include <cstdint>
#include <string>

namespace msd {

/// Receives progress and training curves. The host implements it; plugins only call it.
class Monitor {
 public:
  virtual ~Monitor();
  /// A training step finished. `what` names the phase ("teacher", "student 2 / dm"), `loss` its
  /// current value. The host prints a progress line and throttles by itself: call it every step.
  virtual void progress(const std::string& what, std::int64_t step, std::int64_t total, double loss) = 0;
  /// Records one point of a curve (name, step, value) in the results store under `scope`.
  virtual void metric(const std::string& name, std::int64_t step, double value,
                      const std::string& scope) = 0;
};

}  // namespace msd
