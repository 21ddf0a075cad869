#!/usr/bin/env bash
# Builds msd-lab with its tests and runs them all (unit and integration), then each fuzz target for
# 15 s. Pass ctest options through, e.g. `scripts/test.sh -LE integration` for the fast unit tests only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
msd_install_packages "${MSD_TEST_PACKAGES[@]}"
msd_build ON
# slurm_test submits a job array to a single-node Slurm on this machine; starting one needs root.
if [ "${MSD_SKIP_SLURM_TESTS:-0}" != 1 ]; then
  slurm_sudo=""
  [ "$(id -u)" -eq 0 ] || slurm_sudo="sudo"
  $slurm_sudo bash "$MSD_ROOT/scripts/slurm_local.sh" start ||
    echo "msd-lab: the local Slurm did not start; slurm_test will fail (MSD_SKIP_SLURM_TESTS=1 skips it)" >&2
fi
ctest --test-dir "$MSD_BUILD" --output-on-failure "$@"
# The parsers of user input under libFuzzer, 15 s a target (docs/RELIABILITY.md); MSD_SKIP_FUZZ=1 skips.
if [ "${MSD_SKIP_FUZZ:-0}" != 1 ]; then
  bash "$MSD_ROOT/scripts/fuzz.sh"
fi
