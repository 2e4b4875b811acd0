#!/usr/bin/env bash
# The README's test command: installs what the tests need (Debian packages included) and runs every test,
# with real FUSE mounts and the qemu-img / qemu-io / vhdiinfo / vhdimount / 7zz oracles.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
# Every test must run here: a missing /dev/fuse, libfuse3 or test tool fails the test instead of skipping it,
# and any test still reported Skipped fails the run (see the closing counts).
export BACKUPFUSE_REQUIRE_FUSE=1

log=$(mktemp)
published=$(mktemp -d)
trap 'rm -rf "$log" "$published"' EXIT
# The integration tests run the binary that ships: scripts/publish.sh (the NativeAOT publish that package.sh ships and
# the Dockerfile repeats), made once here (about a minute) and named by BACKUPFUSE_EXE.
echo "publishing the NativeAOT binary the tests run (BACKUPFUSE_EXE)" >&2
scripts/publish.sh "$published/out"
export BACKUPFUSE_EXE="$published/out/backupfuse"
status=0
# -m:1 runs the test assemblies one after another: the FUSE and oracle tests are heavy on a 2-core machine.
dotnet test BackupFuse.sln -c Release -m:1 --nologo "$@" 2>&1 | tee "$log" || status=$?

# One closing line for every assembly together, in the plain "N passed, N failed" form.
counts=$(awk '/(Passed|Failed|Skipped)! +- Failed:/ {
       for (i = 1; i <= NF; i++) { gsub(",", "", $(i+1));
         if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) } }
     END { printf "%d %d %d\n", p, f, s }' "$log")
read -r passed failed skipped <<<"$counts"
echo "tests: $passed passed, $failed failed, $skipped skipped"
if ((skipped > 0)); then
  echo "error: $skipped test(s) skipped: every test must run here (their reasons are in the log above)" >&2
  status=1
fi

# --- fuzz smoke (issue 19, docs/fuzzing.md): every fuzz target replays its seeds and tests/fuzz-regressions/, then
# runs 15 s under afl-fuzz; a failing seed or regression input or a new crash fails the run (about 6 min in all). ---
fuzz_out=$(mktemp -d)
if ! FUZZ_OUT=$fuzz_out FUZZ_NO_SAVE=1 scripts/fuzz.sh all 0.25; then
  echo "error: fuzz smoke failed (crash inputs: $fuzz_out/<target>/findings/default/crashes)" >&2
  status=1
else
  rm -rf "$fuzz_out"
fi
# --- end fuzz smoke ---
exit $status
