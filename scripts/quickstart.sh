#!/usr/bin/env bash
# Quick start: install what is missing, build, and run experiments/quickstart.toml
# (a teacher, MSD with 4 one-step students, and two 1-student baselines), printing them side by side.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
msd_install_packages
msd_build OFF
cd "$MSD_ROOT"
"$MSD_BUILD/host/core/msd" run experiments/quickstart.toml "$@"
