// kd_feature: O2MKD's feature distillation through learned adapters, and the pairing of student and
// teacher features it shares with kd_relational.
#pragma once

#include <cstddef>

#include "msd/plugin.h"

namespace distill {

/// The teacher feature (of `teacher_count`) that student feature `student` (of `student_count`) is matched
/// with by position: round(i (Lt - 1) / (Ls - 1)), the teacher's last for a student with one feature.
std::size_t paired_position(std::size_t student, std::size_t student_count, std::size_t teacher_count);

/// The descriptor of the kd_feature loss plugin.
msd::PluginDescriptor feature_kd_plugin();

}  // namespace distill
