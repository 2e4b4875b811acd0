#!/usr/bin/env bash
# The NativeAOT publish of the daemon that ships (linux-x64): one command line for scripts/package.sh, scripts/test.sh
# (the binary the integration tests run) and scripts/bench.sh, so what is tested and measured is what ships. The
# Dockerfile's build stage has no scripts/ before its COPY of src/ and keeps the same arguments inline;
# PackagingTests checks that the two agree.
#
#   scripts/publish.sh OUT_DIR     writes OUT_DIR/backupfuse; intermediate files go to OUT_DIR.build, not the checkout
#
# Needs clang and zlib1g-dev (scripts/install-deps.sh --test installs them). About a minute on two cores.
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: scripts/publish.sh OUT_DIR" >&2; exit 2; }
out=$(realpath -m "$1")
cd "$(dirname "$0")/.."
if ! command -v clang >/dev/null 2>&1 || [[ ! -e /usr/include/zlib.h ]]; then
  echo "error: the NativeAOT publish needs clang and zlib1g-dev (apt-get install clang zlib1g-dev, or scripts/install-deps.sh --test)" >&2
  exit 1
fi
dotnet publish src/BackupFuse.Daemon/BackupFuse.Daemon.csproj -c Release -r linux-x64 --self-contained \
  -p:PublishAot=true -p:DebugType=none --artifacts-path "$out.build" -o "$out" --nologo -v q -clp:NoSummary >&2
