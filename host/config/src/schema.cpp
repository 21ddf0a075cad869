#include "msd/host/schema.h"

namespace msd::host {
namespace {

KeySpec plugin_key(PluginKind kind) {
  return key_required("plugin", KeyType::string,
                      std::string("name of the ") + to_string(kind) + " plugin (`msd plugins list`)");
}

KeySpec required_int(std::string name, std::string doc, double min, double max) {
  KeySpec spec = key_required(std::move(name), KeyType::integer, std::move(doc));
  spec.min = min;
  spec.max = max;
  return spec;
}

// Upper bounds far above any study, below what would hang the process (a million threads) or
// overflow the compute counters (steps x batch in 64 bits).
constexpr double kMaxThreads = 1024;
constexpr double kMaxSamples = 1 << 24;
constexpr double kMaxSteps = 1e9;

std::vector<SectionSchema> make_schema() {
  return {
      {"experiment", false, Presence::required, std::nullopt,
       "what the experiment is called and where and how it runs",
       {
           key_required("name", KeyType::string, "name of the experiment, recorded with every run"),
           key_string("description", "", "one line for listings"),
           key_int("seed", 0, "seed of every random generator of a run", 0),
           key_int("threads", 0, "CPU threads per run; 0: every core", 0, kMaxThreads),
           key_real("one_thread_below_gflop", 1.0,
                    "with threads = 0, on the CPU: a student stage whose iterations are smaller than this "
                    "(the student network's training GFLOP per sample x batch x students trained together) "
                    "runs on one thread, where OpenMP's fork and join cost more than a second core gives "
                    "back; 0: never",
                    0.0),
           key_real("checkpoint_seconds", 60.0,
                    "seconds between checkpoints of the student being trained (an interrupted run "
                    "resumes from the last one); 0: only when interrupted and after each student", 0.0),
           key_int("students_per_network", 1,
                   "students of a run trained at once as one grouped network (consecutive students; the same "
                   "students as one at a time, up to rounding, in little more than one's time); 0: all K",
                   0, kMaxThreads),
           key_string("device", "auto", "where tensors live; auto: cuda when available, else cpu",
                      {"auto", "cpu", "cuda"}),
           key_string("precision", "fp32",
                      "arithmetic of the networks' forward passes in training and sampling: fp32, or bf16 "
                      "autocast (weights, optimizers and metrics stay fp32)",
                      {"fp32", "bf16"}),
           key_string("results", "",
                      "results database path, relative to this file's folder; empty: the command line's default"),
           KeySpec{"plugin_paths", KeyType::string_list, Value{std::vector<std::string>{}},
                   "extra folders searched for plugin libraries, relative to this file's folder",
                   {}, {}, {}},
       }},
      {"dataset", false, Presence::required, PluginKind::dataset,
       "the data the teacher learns and the condition space it describes", {plugin_key(PluginKind::dataset)}},
      {"teacher", false, Presence::required, PluginKind::teacher,
       "the diffusion model being distilled: architecture, training, sampler", {plugin_key(PluginKind::teacher)}},
      {"student", false, Presence::required_to_distill, PluginKind::student,
       "how each student network is built", {plugin_key(PluginKind::student)}},
      {"partition", false, Presence::required_to_distill, PluginKind::partition,
       "how the routing key (condition or noise level) is split into one cell per student",
       {
           plugin_key(PluginKind::partition),
           key_int("k", 1, "number of cells, hence of students", 1, 1024),
       }},
      {"distill", false, Presence::optional, std::nullopt, "whether and how the teacher is distilled",
       {
           key_bool("enabled", true, "false: the run is the teacher-only baseline"),
           key_int("pairs", 1024, "teacher noise->sample pairs made per run for regression losses", 0, kMaxSamples),
           key_string("pairs_split", "shared",
                      "shared: every student sees all pairs; partitioned: only its cell's",
                      {"shared", "partitioned"}),
           key_real("outside_cell_p", 0.1,
                    "probability of training a student at a noise level outside its cell (O2MKD's p)", 0, 1),
       }},
      {"budget", false, Presence::optional, std::nullopt,
       "how training compute is counted, so that K students can be compared with one at equal cost",
       {
           key_string("scope", "per_student",
                      "per_student: each student gets stage.steps; total: the K students share them",
                      {"per_student", "total"}),
           key_string("divide", "steps", "with scope total: divide the steps or the batch size by K",
                      {"steps", "batch"}),
           key_int("batch_size", 256, "samples per iteration per student, before any division", 1, kMaxSamples),
       }},
      {"stage", true, Presence::required_to_distill, std::nullopt,
       "one training stage (TSM, DM, ADM, KD, ...), run in file order",
       {
           key_required("name", KeyType::string, "names the stage in checkpoints and metrics"),
           required_int("steps", "iterations, per student or in total (see [budget]); 0 skips the stage, so an "
                        "ablation can switch it off", 0, kMaxSteps),
           key_real("lr", 1e-4, "student learning rate", 0),
           key_real("beta1", 0.9, "AdamW beta1", 0, 1),
           key_real("beta2", 0.999, "AdamW beta2", 0, 1),
           key_real("weight_decay", 0.0, "AdamW weight decay", 0),
           key_real("grad_clip", 10.0, "maximum gradient norm of the student; 0 disables clipping", 0),
           key_int("warmup", 0, "iterations of linear learning-rate warm-up", 0, kMaxSteps),
           key_int("update_every", 1, "the student steps every this many iterations (two-time-scale rule)", 1, kMaxSteps),
       }},
      {"stage.loss", true, Presence::required, PluginKind::loss,
       "one objective of the stage above; the student minimises the weighted sum",
       {
           plugin_key(PluginKind::loss),
           key_real("weight", 1.0, "multiplies this loss in the student's objective"),
       }},
      {"evaluate", false, Presence::optional, std::nullopt, "how the finished run is scored",
       {key_int("samples", 5000, "samples drawn from the model under test", 1, kMaxSamples),
        KeySpec{"sampler_steps", KeyType::integer_list, Value{std::vector<std::int64_t>{}},
                "the model evaluated again with the teacher's sampler at each of these teacher.sampler_steps "
                "(an NFE curve): every metric recorded at scope nfe:<NFE>, no samples kept; for the teacher "
                "and multi-step students",
                1, 100000, {}}}},
      {"evaluate.metric", true, Presence::optional, PluginKind::metric, "one metric computed on those samples",
       {plugin_key(PluginKind::metric)}},
      {"sweep", false, Presence::optional, std::nullopt, "the runs made from this file: [[sweep.variant]], [sweep.grid], [sweep.zip] and seeds = [...]", {}},
      {"sweep.variant", true, Presence::optional, std::nullopt,
       "one run: this file with overrides written as dotted keys from the root (`partition.k = 4`, "
       "`stage.0.steps = 100`); without variants the file is one run named \"base\"",
       {key_required("name", KeyType::string, "names the run; unique within the file")}},
  };
}

}  // namespace

const std::vector<SectionSchema>& host_schema() {
  static const std::vector<SectionSchema> schema = make_schema();
  return schema;
}

const SectionSchema* find_section_schema(const std::string& name) {
  for (const SectionSchema& section : host_schema()) {
    if (section.name == name) return &section;
  }
  return nullptr;
}

}  // namespace msd::host
