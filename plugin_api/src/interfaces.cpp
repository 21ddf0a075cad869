// Out-of-line destructors give every interface one home for its vtable and type_info, so that
// dynamic_cast works across plugin libraries.
#include "msd/dataset.h"
#include "msd/loss.h"
#include "msd/metric.h"
#include "msd/student.h"
#include "msd/teacher.h"

namespace msd {
Dataset::~Dataset() = default;
FeatureSpace::~FeatureSpace() = default;
Teacher::~Teacher() = default;
Student::~Student() = default;
StepContext::~StepContext() = default;
Loss::~Loss() = default;
Metric::~Metric() = default;
}  // namespace msd
