#!/usr/bin/env bash
# Where the daemon's memory goes: mounts N plugins of one backup chain, reads 4 of them in parallel (dd, 1 MiB),
# writes 2 others with qemu-io, then holds all N open and reads a little from each, then closes everything; prints
# the daemon's VmRSS / VmHWM (from /proc/PID/status) after each phase, and the peak RSS sampled every 100 ms.
#
#   scripts/memory-check.sh                         256 MiB disk, 64 plugins, default cache budget
#   scripts/memory-check.sh --cache-size 64M        pass a mount option through (any further mount options too)
#   scripts/memory-check.sh --size-mib 512 --plugins 16
#   BF_MEM_KEEP=1 scripts/memory-check.sh           keep the work directory (and the daemon log)
# Needs root (FUSE), qemu-io (qemu-utils). Builds backupfuse (Release) first. Takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

size_mib=256
plugins=64
mount_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size-mib) size_mib=$2; shift 2 ;;
    --plugins) plugins=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) mount_args+=("$1"); shift ;;
  esac
done
(( plugins >= 6 )) || { echo "memory-check.sh: --plugins must be at least 6 (4 readers, 2 writers)" >&2; exit 2; }

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

if [[ -z "${BF_MEM_NO_BUILD:-}" ]]; then
  say "Building backupfuse (Release)"
  dotnet build -c Release src/BackupFuse.Daemon --nologo -v q -clp:NoSummary >&2
fi
bf="$repo/src/BackupFuse.Daemon/bin/Release/net10.0/backupfuse"

W=$(mktemp -d /var/tmp/backupfuse-mem.XXXXXX)
daemon=
sampler=
cleanup() {
  exec 3>&- || true
  [[ -n "$sampler" ]] && kill "$sampler" 2>/dev/null || true
  [[ -n "$daemon" ]] && kill "$daemon" 2>/dev/null || true
  sleep 0.5
  umount "$W/vms" 2>/dev/null || umount -l "$W/vms" 2>/dev/null || true
  if [[ -z "${BF_MEM_KEEP:-}" ]]; then rm -rf "$W"; else echo "kept $W" >&2; fi
}
trap cleanup EXIT
mkdir -p "$W/img" "$W/vms"

say "Making a ${size_mib} MiB disk of real files and its backup"
# Real file bytes (compressible like a real disk), with a 1 MiB zero gap every 8 MiB.
find /usr/lib /usr/share -type f -size +16k -print0 2>/dev/null | sort -z | xargs -0 cat 2>/dev/null | head -c $((size_mib << 20)) > "$W/disk.raw" || true
truncate -s $((size_mib << 20)) "$W/disk.raw"
for ((m = 8; m < size_mib; m += 8)); do dd if=/dev/zero of="$W/disk.raw" bs=1M seek=$m count=1 conv=notrunc status=none; done
"$bf" backup "$W/disk.raw" "$W/img/disk.bfi" >/dev/null 2>&1
for ((i = 0; i < plugins; i++)); do "$bf" plugin create "$W/img/disk.bfi" "$W/vms/p$i.vhdx" >/dev/null; done

status() { awk '/^VmRSS|^VmHWM/ { printf "%s %.0f MiB  ", $1, $2 / 1024 }' "/proc/$daemon/status"; echo; }
rss_mib() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$daemon/status" 2>/dev/null || echo 0; }

say "Mounting ${mount_args[*]:-(default options)}"
"$bf" mount "$W/vms" --images "$W/img" --foreground --log-file "$W/daemon.log" "${mount_args[@]}" >/dev/null 2>&1 &
daemon=$!
for _ in $(seq 100); do grep -q " $W/vms fuse" /proc/mounts && break; sleep 0.1; done
grep -q " $W/vms fuse" /proc/mounts || { echo "memory-check.sh: the mount did not come up; log:" >&2; cat "$W/daemon.log" >&2; exit 1; }
printf 'mounted:          '; status
( peak=0; while kill -0 "$daemon" 2>/dev/null; do r=$(rss_mib); (( r > peak )) && peak=$r && echo "$peak" > "$W/peak"; sleep 0.1; done ) &
sampler=$!

say "4 readers (dd 1 MiB, whole disk) + 2 writers (qemu-io, 4 KiB..64 KiB random writes)"
vhdx_size=$(stat -c %s "$W/vms/p0.vhdx")
readers=()
for i in 0 1 2 3; do dd if="$W/vms/p$i.vhdx" of=/dev/null bs=1M status=none & readers+=($!); done
writers=()
for i in 4 5; do
  (
    args=()
    for ((k = 0; k < 400; k++)); do args+=(-c "write -P $((k % 250 + 1)) $(( (RANDOM * 32768 + RANDOM) % ((size_mib << 20) - 65536) / 4096 * 4096 )) $(( (RANDOM % 16 + 1) * 4096 ))"); done
    qemu-io -f vhdx "${args[@]}" "$W/vms/p$i.vhdx" >/dev/null
  ) & writers+=($!)
done
wait "${readers[@]}" "${writers[@]}"
printf 'after 4r+2w:      '; status

say "Holding all $plugins plugins open, 8 MiB read from each"
fds=()
for ((i = 0; i < plugins; i++)); do
  exec {fd}<"$W/vms/p$i.vhdx"
  fds+=("$fd")
  dd if="$W/vms/p$i.vhdx" of=/dev/null bs=1M count=8 skip=$(( (i * 8) % (vhdx_size >> 20) )) status=none
done
printf '%d open:          ' "$plugins"; status

say "Closing everything; sampling for 5 s"
for fd in "${fds[@]}"; do exec {fd}<&-; done
for s in 1 2 3 4 5; do sleep 1; printf 'closed +%ds:       ' "$s"; status; done
say "Resident memory by kind of mapping (/proc/PID/smaps), after close"
awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6 ? $6 : "[anon]"); if (name ~ /\.so|\.dll|backupfuse$/) name = "code and data of files (.so, .dll)" }
     /^Rss:/ { rss[name] += $2 }
     END { for (n in rss) if (rss[n] >= 1024) printf "  %6.0f MiB  %s\n", rss[n] / 1024, n }' "/proc/$daemon/smaps" | sort -rn
kill "$sampler" 2>/dev/null || true; sampler=
printf 'peak sampled RSS: %s MiB (VmHWM above is the kernel'"'"'s own peak)\n' "$(cat "$W/peak" 2>/dev/null || echo '?')"
