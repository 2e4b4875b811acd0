#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of untrusted bytes (docs/fuzzing.md).
#   scripts/fuzz.sh [TARGET|all] [MINUTES]      default: all, 10 minutes per target (decimals allowed: 0.25 = 15 s)
#   scripts/fuzz.sh build                       only build and instrument (later runs of the same sources reuse it)
#   scripts/fuzz.sh report                      one Markdown table row per target fuzzed in $FUZZ_OUT (docs/fuzzing.md)
# Builds the harness (fuzz/BackupFuse.Fuzz), instruments the project's assemblies with sharpfuzz, makes the seed corpus
# with the project's writers, replays the seeds and tests/fuzz-regressions/<target>/, then runs afl-fuzz for MINUTES
# and prints, per target: run time, executions, corpus count, bitmap coverage, crashes, hangs. New crash inputs are
# minimized (afl-tmin) into tests/fuzz-regressions/<target>/.
# Output: $FUZZ_OUT/<target>/findings (default /work/fuzz-runs when /work is writable, else ./fuzz-runs); a second
# run on the same directory resumes it (afl-fuzz -i -). Exit 1 when a seed or saved regression fails or a new crash
# is found (hangs are reported, not failed: the machine may be busy); 2 on usage errors.
# Environment: FUZZ_OUT, FUZZ_TIMEOUT_MS (afl -t, default 10000), FUZZ_NO_SAVE=1 (do not copy crashes into tests/).
set -euo pipefail
cd "${FUZZ_REPO:-$(dirname "$0")/..}"
repo=$(pwd)
target=${1:-all}
minutes=${2:-10}
if ! [[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "usage: scripts/fuzz.sh [TARGET|all] [MINUTES]" >&2
  exit 2
fi
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60 + 0.5); print (s < 1 ? 1 : s) }')
if [[ -z ${FUZZ_OUT:-} ]]; then
  if [[ -d /work && -w /work ]]; then FUZZ_OUT=/work/fuzz-runs; else FUZZ_OUT=$repo/fuzz-runs; fi
fi
timeout_ms=${FUZZ_TIMEOUT_MS:-10000}

stat() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
if [[ $target == report ]]; then
  echo "| target | run time | executions | corpus | edges | bitmap | crashes | hangs |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for stats in "$FUZZ_OUT"/*/findings/default/fuzzer_stats; do
    t=$(basename "$(dirname "$(dirname "$(dirname "$stats")")")")
    echo "| \`$t\` | $(($(stat run_time) / 60)) min | $(stat execs_done) | $(stat corpus_count) | $(stat edges_found) | $(stat bitmap_cvg) | $(stat saved_crashes) | $(stat saved_hangs) |"
  done
  exit 0
fi
for tool in afl-fuzz afl-tmin dotnet; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed (scripts/install-deps.sh --test installs afl++)" >&2; exit 1; }
done

# Build once per source state into $FUZZ_OUT/bin/plain (seeds, replays: instrumented code runs only under the
# fuzzer) and a copy in $FUZZ_OUT/bin/afl whose project assemblies are instrumented (never the harness itself, whose
# loop would only add noise, and never a shared build output).
# One directory per source state, so that a rebuild never pulls the files from under a run still going.
stamp=$( (git -C "$repo" rev-parse HEAD:src HEAD:fuzz; git -C "$repo" diff HEAD -- src fuzz; git -C "$repo" ls-files -o --exclude-standard -- src fuzz) 2>/dev/null | md5sum | cut -c1-12)
bin=$FUZZ_OUT/bin/$stamp
mkdir -p "$FUZZ_OUT"
mkdir -p "$FUZZ_OUT/bin"
exec 9>"$FUZZ_OUT/bin/.lock"
flock 9 # two runs started together build once
if [[ ! -f $bin/.instrumented ]]; then
  rm -rf "$bin"
  dotnet tool restore >/dev/null
  dotnet publish fuzz/BackupFuse.Fuzz -c Release -nologo -v q -m:1 -o "$bin/plain" >/dev/null
  cp -a "$bin/plain" "$bin/afl"
  for dll in BackupFuse.Core BackupFuse.BackupImage BackupFuse.Vhdx BackupFuse.Remote backupfuse; do
    dotnet sharpfuzz "$bin/afl/$dll.dll" >/dev/null
  done
  touch "$bin/.instrumented"
fi
flock -u 9
[[ $target == build ]] && { echo "built: $bin"; exit 0; }
harness=(dotnet "$bin/plain/BackupFuse.Fuzz.dll")
instrumented=(dotnet "$bin/afl/BackupFuse.Fuzz.dll")
if [[ $target == all ]]; then
  mapfile -t targets < <("${harness[@]}" list | cut -f1)
else
  targets=("$target")
fi

# Runaway allocation ends in OutOfMemoryException (a crash) instead of swapping the machine.
export DOTNET_GCHeapHardLimit=0x30000000 DOTNET_gcServer=0 DOTNET_TieredPGO=0
export AFL_SKIP_BIN_CHECK=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
export AFL_FORKSRV_INIT_TMOUT=60000
status=0
summary=()
for t in "${targets[@]}"; do
  out=$FUZZ_OUT/$t
  regressions=$repo/tests/fuzz-regressions/$t
  mkdir -p "$out"
  rm -rf "$out/seeds"
  "${harness[@]}" seeds "$t" "$out/seeds" >/dev/null
  # The seeds and every saved regression input must pass before fuzzing.
  replay=("$out/seeds")
  [[ -d $regressions ]] && replay+=("$regressions")
  if ! "${harness[@]}" replay "$t" "${replay[@]}" >"$out/replay.log" 2>&1; then
    echo "error: $t fails on its seeds or saved regressions:" >&2
    grep -A3 '^FAIL' "$out/replay.log" >&2 || cat "$out/replay.log" >&2
    status=1
    summary+=("$t: FAILED on seeds/regressions")
    continue
  fi

  dict=()
  [[ -f fuzz/dictionaries/$t.dict ]] && dict=(-x "fuzz/dictionaries/$t.dict")
  input=(-i "$out/seeds")
  [[ -f $out/findings/default/fuzzer_stats ]] && input=(-i -)
  before=$(ls "$out/findings/default/crashes" 2>/dev/null | grep -c '^id' || true)
  afl-fuzz "${input[@]}" -o "$out/findings" -t "$timeout_ms" -m none -V "$seconds" "${dict[@]}" \
    -- "${instrumented[@]}" fuzz "$t" >"$out/afl.log" 2>&1 || {
    echo "error: afl-fuzz failed for $t (see $out/afl.log):" >&2
    tail -20 "$out/afl.log" >&2
    status=1
    summary+=("$t: afl-fuzz FAILED to run")
    continue
  }

  stats=$out/findings/default/fuzzer_stats
  crashes=$(stat saved_crashes)
  hangs=$(stat saved_hangs)
  summary+=("$t: run $(stat run_time) s total, $(stat execs_done) execs ($(stat execs_per_sec)/s), corpus $(stat corpus_count), edges $(stat edges_found), bitmap $(stat bitmap_cvg), crashes $crashes, hangs $hangs")

  # New crash inputs: minimized (when afl-tmin manages) into tests/fuzz-regressions/<target>/.
  new=$(ls "$out/findings/default/crashes" 2>/dev/null | grep -c '^id' || true)
  if ((new > before)); then
    status=1
    if [[ -z ${FUZZ_NO_SAVE:-} ]]; then
      mkdir -p "$regressions"
      for crash in "$out"/findings/default/crashes/id*; do
        name=crash-$(md5sum <"$crash" | cut -c1-12)
        [[ -f $regressions/$name ]] && continue
        if ! afl-tmin -i "$crash" -o "$regressions/$name" -t "$timeout_ms" -m none -- "${instrumented[@]}" fuzz "$t" >"$out/tmin.log" 2>&1; then
          cp "$crash" "$regressions/$name"
        fi
        echo "$t: new crash input saved as tests/fuzz-regressions/$t/$name"
      done
    fi
  fi
done

echo "fuzzing summary ($minutes min per target, outputs in $FUZZ_OUT):"
printf '  %s\n' "${summary[@]}"
exit $status
