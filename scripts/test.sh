#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian packages included) and runs every test,
# with real FUSE mounts and the qemu-img / qemu-io / vhdiinfo / vhdimount / 7zz oracles.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
# Every FUSE test must run here: a missing /dev/fuse or libfuse3 fails the run instead of skipping.
export BACKUPFUSE_REQUIRE_FUSE=1

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# -m:1 runs the test assemblies one after another: the FUSE and oracle tests are heavy on a 2-core machine.
dotnet test BackupFuse.sln -c Release -m:1 --nologo "$@" 2>&1 | tee "$log" || status=$?

# One closing line for every assembly together, in the plain "N passed, N failed" form.
awk '/(Passed|Failed)!  - Failed:/ {
       for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1));
         if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit $status
