#!/usr/bin/env bash
# Builds msd-lab with its tests and runs them all (unit and integration). Pass ctest options through,
# e.g. `scripts/test.sh -LE integration` for the fast unit tests only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
msd_install_packages "${MSD_TEST_PACKAGES[@]}"
msd_build ON
ctest --test-dir "$MSD_BUILD" --output-on-failure "$@"
