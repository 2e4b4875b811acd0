#!/usr/bin/env bash
# Rewrites /etc/bf-check inside a raw disk made by make-boot-disk.sh, without mounting anything.
#
#   scripts/guest/set-check-file.sh DISK.raw TEXT
#
# Finds partition 1's byte offset from the GPT (sfdisk --dump) and edits the ext4 filesystem in place with
# `debugfs -w 'DISK.raw?offset=N'` (rm + write), then reads the file back with debugfs and fails unless it
# holds exactly TEXT + newline. Do not run it while a VM uses the disk. A guest boot prints the new text as
# BFGUEST-FILE:<TEXT>.
set -euo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 DISK.raw TEXT" >&2; exit 2; }
disk="$1"
text="$2"
[[ -f "$disk" ]] || { echo "error: $disk: no such file" >&2; exit 1; }

start="$(sfdisk --dump "$disk" 2>/dev/null | sed -n 's/^[^:]*1 : start= *\([0-9]*\),.*/\1/p' | head -n1)"
[[ -n "$start" ]] || { echo "error: $disk: no partition 1 in its partition table" >&2; exit 1; }
sector_size="$(sfdisk --dump "$disk" 2>/dev/null | sed -n 's/^sector-size: *\([0-9]*\)/\1/p')"
offset=$((start * ${sector_size:-512}))
image="$disk?offset=$offset"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bfguest-check.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$text" >"$tmp/bf-check"
chmod 0644 "$tmp/bf-check"

# debugfs exits 0 even when a request fails, so the result is verified by reading the file back.
debugfs -w -f - "$image" >"$tmp/debugfs.out" 2>&1 <<EOF
rm /etc/bf-check
write $tmp/bf-check /etc/bf-check
EOF
debugfs -R 'cat /etc/bf-check' "$image" 2>/dev/null >"$tmp/readback" || true
if ! cmp -s "$tmp/bf-check" "$tmp/readback"; then
  cat "$tmp/debugfs.out" >&2
  echo "error: $disk: /etc/bf-check at partition offset $offset does not read back as '$text'" >&2
  exit 1
fi
echo "set-check-file: $disk /etc/bf-check = '$text'" >&2
