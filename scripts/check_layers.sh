#!/usr/bin/env bash
# Fails when a layer reaches up: each library may include only the headers of the layers below it.
#
#   text  <  plugin_api (meta: torch-free)  <  plugin_api (kinds: LibTorch)  <  plugins
#   text, plugin meta  <  results, host/catalog  <  host/loader, host/config  <  host/core
#
#   scripts/check_layers.sh [ROOT]     (default: this checkout; ctest runs it as layering_test)
#
# Prints each offending include as FILE:LINE: what it includes, and which layer that belongs to.
set -uo pipefail
ROOT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
cd "$ROOT" || exit 2
status=0

# check NAME FOLDERS... -- FORBIDDEN-PATTERN WHY: each quoted or angled include in the files under FOLDERS
# (C++ sources and headers) that matches the extended regex FORBIDDEN is a violation.
check() {
  local name="$1" pattern="$2" why="$3"
  shift 3
  local folders=()
  for folder in "$@"; do [ -e "$folder" ] && folders+=("$folder"); done
  [ ${#folders[@]} -gt 0 ] || return 0
  local found
  found=$(grep -rnE --include='*.cpp' --include='*.h' "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($pattern)" \
          "${folders[@]}" 2>/dev/null)
  if [ -n "$found" ]; then
    while IFS= read -r line; do echo "$line   <- $name must not include $why"; done <<< "$found"
    status=1
  fi
}

TORCH='torch/|ATen/|c10/'
KINDS='msd/(dataset|teacher|student|loss|metric|denoiser|edm|optim)\.h'
PLUGIN_API="msd/(plugin|partition|monitor|cache_lock|atomic_file)\.h|$KINDS"
META_FILES=(plugin_api/msd/plugin.h plugin_api/msd/partition.h plugin_api/msd/monitor.h plugin_api/msd/cache_lock.h
            plugin_api/msd/atomic_file.h plugin_api/src/plugin.cpp plugin_api/src/partition.cpp
            plugin_api/src/cache_lock.cpp plugin_api/src/atomic_file.cpp)

check "text" "msd/(host|results)/|$PLUGIN_API|$TORCH" "any other msd library or LibTorch (it is the lowest layer)" text
check "the torch-free plugin API" "$TORCH|$KINDS|msd/host/|msd/results/|msd/text" \
      "LibTorch, the kinds' interfaces or the host (plugin authors build against it alone)" "${META_FILES[@]}"
check "the plugin API" "msd/host/|msd/results/|msd/text" "the host or the results store (plugins use plugin_api/ only)" plugin_api
check "plugins" "msd/host/|msd/results/|msd/text" "the host or the results store (plugins use plugin_api/ only)" plugins
check "results" "msd/host/|$PLUGIN_API|$TORCH" \
      "the host, the plugin API or LibTorch (it sits below them)" results
check "host/catalog" "msd/host/(config|schema|plugin_registry|runner|pipeline/)|msd/results/|$TORCH" \
      "the loader, the config, the runner or LibTorch" host/catalog
check "host/loader" "msd/host/(config|schema|runner|pipeline/|progress|summary)|msd/results/|$TORCH" \
      "the config, the runner, the results store or LibTorch (config and loader are siblings)" host/loader
check "host/config" "msd/host/(plugin_registry|runner|pipeline/|progress|summary)|msd/results/|$TORCH" \
      "the loader, the runner, the results store or LibTorch (config and loader are siblings)" host/config
# LibTorch costs 17-45 s per translation unit: only the run pipeline's headers (msd/host/pipeline/),
# which hand tensors and networks around, include it; the rest of host/core stays light.
check "host/core's headers outside msd/host/pipeline/" "$TORCH|$KINDS" \
      "LibTorch (each includer would compile it)" host/core/include/msd/host/*.h

[ $status -eq 0 ] && echo "layers: every include points down"
exit $status
