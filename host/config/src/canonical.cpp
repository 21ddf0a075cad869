#include "canonical.h"

#include <algorithm>

#include "msd/text.h"

namespace msd::host::config_detail {
namespace {

// Plugin authors name their own keys; anything beyond TOML's bare-key alphabet must be quoted.
std::string toml_key(const std::string& key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return bare ? key : to_toml(Value{key});
}

std::string to_text(const std::vector<const CanonicalSection*>& sections) {
  std::string out;
  for (const CanonicalSection* section : sections) {
    if (!out.empty()) out += '\n';
    out += section->array ? "[[" + section->name + "]]\n" : "[" + section->name + "]\n";
    for (const auto& [key, value] : section->values) out += toml_key(key) + " = " + to_toml(value) + "\n";
  }
  return out;
}

const CanonicalSection* find(const std::vector<CanonicalSection>& sections, const std::string& name) {
  for (const CanonicalSection& section : sections) {
    if (section.name == name) return &section;
  }
  return nullptr;
}

}  // namespace

void write_canonical(const std::vector<CanonicalSection>& sections, RunConfig& run) {
  std::vector<const CanonicalSection*> all;
  for (const CanonicalSection& section : sections) all.push_back(&section);
  run.canonical_toml = to_text(all);

  // The hash identifies what a run computes: keys that only describe it or say where things are kept
  // stay in the stored text but not in the hash, so editing them does not make finished runs look new.
  // Keys added after runs were recorded are hashed only when they differ from the value that gives the
  // old behaviour, so that those runs keep their hash: no NFE curve, students one by one, the default
  // one-thread rule.
  struct HashedWhenNot {
    const char* section;
    const char* key;
    Value value;
  };
  const HashedWhenNot hashed_when_not[] = {{"evaluate", "sampler_steps", Value{std::vector<std::int64_t>{}}},
                                           {"experiment", "students_per_network", Value{std::int64_t{1}}},
                                           {"experiment", "one_thread_below_gflop", Value{1.0}}};
  std::vector<CanonicalSection> hashed_sections = sections;
  for (CanonicalSection& section : hashed_sections) {
    for (const HashedWhenNot& rule : hashed_when_not) {
      const auto found = section.name == rule.section ? section.values.find(rule.key) : section.values.end();
      if (found != section.values.end() && found->second == rule.value) section.values.erase(found);
    }
    if (section.name != "experiment") continue;
    for (const char* key : {"description", "results", "plugin_paths", "checkpoint_seconds"}) section.values.erase(key);
  }
  std::vector<const CanonicalSection*> hashed;
  for (const CanonicalSection& section : hashed_sections) hashed.push_back(&section);
  run.hash = text::hash_text(to_text(hashed));

  // A trained teacher is reused by every run whose data, teacher, seed and precision agree, whatever
  // they distil.
  CanonicalSection seed{"experiment", false, "experiment", {}};
  if (const CanonicalSection* experiment = find(sections, "experiment")) {
    seed.values.emplace("seed", experiment->values.at("seed"));
    seed.values.emplace("precision", experiment->values.at("precision"));
  }
  // Keys that only change how the trained teacher samples are left out: a sweep over them reuses it.
  std::vector<CanonicalSection> trained;
  for (const char* name : {"dataset", "teacher"}) {
    if (const CanonicalSection* section = find(sections, name)) {
      trained.push_back(*section);
      for (const std::string& key : section->sampling_only) trained.back().values.erase(key);
    }
  }
  std::vector<const CanonicalSection*> teacher_part{&seed};
  for (const CanonicalSection& section : trained) teacher_part.push_back(&section);
  run.teacher_hash = text::hash_text(to_text(teacher_part));

  // The teacher pairs (noise drawn from the seed, sampled by the teacher) are shared the same way by
  // every run whose teacher, sampler and pair count agree.
  std::vector<const CanonicalSection*> pairs_part{&seed};
  for (const char* name : {"dataset", "teacher"}) {
    if (const CanonicalSection* section = find(sections, name)) pairs_part.push_back(section);
  }
  CanonicalSection count{"distill", false, "distill", {}};
  if (const CanonicalSection* distill = find(sections, "distill")) {
    count.values.emplace("pairs", distill->values.at("pairs"));
  }
  pairs_part.push_back(&count);
  run.pairs_hash = text::hash_text(to_text(pairs_part));

  run.params.clear();
  for (const CanonicalSection& section : sections) {
    for (const auto& [key, value] : section.values) run.params.emplace_back(section.path + "." + key, to_toml(value));
  }
}

}  // namespace msd::host::config_detail
