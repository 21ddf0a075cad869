#!/usr/bin/env bash
# The SDK end to end (ctest sdk_test): install this build into a prefix, build the class_interleaved
# plugin of tests/sdk from a copy outside the checkout against that prefix (its own unit test
# included), and run an experiment with it through the installed msd, which must record the plugin's
# name, version and file with the run.
#
#   tests/sdk/sdk_test.sh BUILD_DIR
set -euo pipefail
BUILD="$(cd "$1" && pwd)"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "sdk_test: $*" >&2; exit 1; }

cmake --install "$BUILD" --prefix "$WORK/prefix" > "$WORK/install.log"
cp -r "$HERE/class_interleaved" "$WORK/plugin"
cmake -S "$WORK/plugin" -B "$WORK/plugin/build" -DCMAKE_PREFIX_PATH="$WORK/prefix" -DCMAKE_BUILD_TYPE=Release \
  > "$WORK/configure.log" || { cat "$WORK/configure.log"; fail "the out-of-tree plugin does not configure"; }
cmake --build "$WORK/plugin/build" -j 2 > "$WORK/build.log" || { cat "$WORK/build.log"; fail "it does not build"; }
ctest --test-dir "$WORK/plugin/build" --output-on-failure || fail "its own unit test fails"

MSD="$WORK/prefix/bin/msd"
PLUGINS="$WORK/plugin/build/plugins"
"$MSD" --plugin-path "$PLUGINS" plugins show class_interleaved | grep -q "1.0.0" || fail "msd does not load it"
cat > "$WORK/experiment.toml" <<'TOML'
[experiment]
name = "sdk"
threads = 1
[dataset]
plugin = "gaussian_grid"
[teacher]
plugin = "edm_mlp"
steps = 50
hidden = 32
blocks = 1
sampler_steps = 4
[student]
plugin = "one_step_generator"
[partition]
plugin = "class_interleaved"
k = 2
offset = 1
[distill]
pairs = 128
[[stage]]
name = "dm"
steps = 10
[[stage.loss]]
plugin = "dm"
[[stage.loss]]
plugin = "regression"
[evaluate]
samples = 200
[[evaluate.metric]]
plugin = "swd"
TOML
"$MSD" --plugin-path "$PLUGINS" run "$WORK/experiment.toml" --db "$WORK/results.db" > "$WORK/run.log" 2>&1 ||
  { cat "$WORK/run.log"; fail "the run with the plugin fails"; }
show="$("$MSD" results show 1 --db "$WORK/results.db")"
echo "$show" | grep -E "^partition +class_interleaved +1\.0\.0 +$PLUGINS/libmsd_class_interleaved\.so$" > /dev/null ||
  { echo "$show"; fail "msd results show lists no class_interleaved 1.0.0 from $PLUGINS"; }
echo "$show" | grep -q "cell.0 *= *classes 1,3\|cell.0.*classes 1,3" || { echo "$show"; fail "the cells are not the plugin's"; }
echo "sdk_test: the plugin built against the installed prefix ran in an experiment and was recorded"
